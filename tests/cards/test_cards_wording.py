"""What the card says in words: flag reasons, evidence, clusters, labels, top-k, figures in Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from fairderm.cards import build_card
from tests.helpers.card_runs import make_run


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _write_metrics(run: Path, **options) -> None:
    from fairderm.metrics import evaluate

    rng = np.random.default_rng(1)
    tone = np.array(["I-II"] * 191 + ["III-IV"] * 120)
    # I-II: many cases but only 4 positives; III-IV: balanced
    y = np.concatenate([np.r_[np.ones(4), np.zeros(187)], rng.integers(0, 2, 120)]).astype(int)
    score = np.clip(y * 0.6 + rng.uniform(0, 0.4, y.size), 0, 1)
    result = evaluate(y, score, {"fitzpatrick_est": tone}, n_boot=50, seed=0, tests=False, case_mix=False,
                      power=False, metrics=["accuracy", "sensitivity", "specificity"], **options)
    (run / "metrics.json").write_text(result.to_json(), encoding="utf-8")


def test_group_with_many_cases_but_few_positives_says_why_it_is_insufficient(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", optional=False)
    _write_metrics(run)
    section = _section(build_card(run).to_markdown(), "Group sizes and power")
    row = next(line for line in section.splitlines() if line.startswith("| fitzpatrick_est | I-II |"))
    assert "| 191 | 4 |" in row
    assert "insufficient for Sensitivity: 4 positives (fewer than 10)" in row, row
    assert "Accuracy" not in row  # accuracy has its 191 cases: only the positive-rate metric is flagged


def test_group_with_too_few_cases_says_so(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    section = _section(build_card(run).to_markdown(), "Group sizes and power")
    row = next(line for line in section.splitlines() if line.startswith("| fitzpatrick_est | unknown |"))
    assert "6 cases (fewer than 30)" in row, row


def test_card_written_before_evidence_json_does_not_say_it_is_missing(tmp_path: Path) -> None:
    # The audit writes evidence.json last, after the card: a fresh run's card has none to read.
    run = make_run(tmp_path / "run", optional=False)
    evidence = _section(build_card(run).to_markdown(), "Evidence")
    assert "No evidence.json in this run folder" not in evidence
    assert "writes evidence.json after this card" in evidence and "fairderm verify" in evidence


def test_cluster_resampling_names_the_spec_cluster_column(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    spec["bootstrap"] = {"cluster": "patient_id"}
    (run / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    markdown = build_card(run).to_markdown()
    assert "cluster clusters" not in markdown
    assert "resampling whole clusters of cases sharing a patient_id" in markdown


def test_cluster_resampling_without_a_named_column_reads_plainly(tmp_path: Path) -> None:
    markdown = build_card(make_run(tmp_path / "run", optional=False)).to_markdown()
    assert "cluster clusters" not in markdown and "resampling whole clusters" in markdown


def test_tone_validation_measures_have_human_labels(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    (run / "tone_validation.json").write_text(json.dumps({
        "label": "fitzpatrick", "n_labelled": 204,
        "config": {"ci": "percentile", "ci_level": 0.95, "n_boot": 200, "seed": 0},
        "metrics": {"kappa_quadratic": {"estimate": 0.93, "ci_low": 0.9, "ci_high": 0.95},
                    "exact_agreement": {"estimate": 0.59, "ci_low": 0.49, "ci_high": 0.67},
                    "abstention_rate": {"estimate": 0.005, "ci_low": 0.0, "ci_high": 0.015}},
    }), encoding="utf-8")
    section = _section(build_card(run).to_markdown(), "Skin-tone estimator reliability")
    assert "metrics." not in section and "config." not in section and "kappa_quadratic" not in section
    assert "| Quadratic-weighted kappa | 0.930 (0.900 to 0.950) |" in section
    assert "| Exact agreement | 0.590 (0.490 to 0.670) |" in section
    assert "ci_level" not in section


def test_top_k_accuracy_names_its_k(tmp_path: Path) -> None:
    from fairderm.metrics import evaluate

    run = make_run(tmp_path / "run", optional=False)
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 200)
    scores = rng.dirichlet(np.ones(4), 200)
    result = evaluate(y, scores, {"fitzpatrick_est": rng.choice(["I-II", "III-IV"], 200)}, n_boot=30,
                      metrics=["accuracy", "top_k_accuracy"], top_k=3, tests=False, case_mix=False, power=False)
    (run / "metrics.json").write_text(result.to_json(), encoding="utf-8")
    markdown = build_card(run).to_markdown()
    assert "Top-k" not in markdown and "top k" not in markdown
    assert "Top-3 accuracy" in markdown


def test_markdown_figures_are_described_or_tabled_not_placeholders(tmp_path: Path) -> None:
    markdown = build_card(make_run(tmp_path / "run")).to_markdown()
    assert "Interactive in card.html" not in markdown
    assert "_Figure:" not in markdown
    quantitative = _section(markdown, "Quantitative analyses")
    assert "| Group | Bin | Mean predicted probability | Observed frequency | n |" in quantitative


def test_html_card_packs_plotly_js_once_so_it_stays_under_two_and_a_half_megabytes(tmp_path):
    """plotly.js inlined as text made every card 4.9 MB; packed (gzip + base64) it is under 2 MB."""
    from fairderm.cards import build_card
    from tests.helpers.card_runs import make_run

    run = make_run(tmp_path / "run")
    html = build_card(run).to_html()
    assert html.count('id="plotly-js-gzip"') == 1
    assert "data-plotly-figure" in html
    assert len(html.encode("utf-8")) < 2_500_000


def test_mitigation_section_judges_each_method_against_erm_and_names_baseline_fallbacks(tmp_path):
    """#23: levelling down (best group worse beyond its interval), fallback classes and the split are on the card."""
    from fairderm.cards import build_card
    from tests.helpers.card_runs import make_run

    markdown = build_card(make_run(tmp_path / "run")).to_markdown()
    section = markdown.split("## Mitigation", 1)[1].split("\n## ", 1)[0]
    assert "| Method | Worst group | Its change (95% CI) | Best group | Its change (95% CI) |" in section
    assert "| reweight | V-VI | 0.050 (0.010 to 0.090) | I-II | -0.100 (-0.150 to -0.050) |" in section
    rows = {line.split("|")[1].strip(): line.rstrip("| ").rsplit("|", 1)[-1].strip()
            for line in section.splitlines() if line.startswith("| moe_parity | V-VI") or line.startswith(
                "| reweight | V-VI")}
    assert rows == {"moe_parity": "no", "reweight": "yes"}
    assert "threshold, class melanoma: ThresholdOptimizer failed" in section
    assert "a quarter of the training patients became val" in section
