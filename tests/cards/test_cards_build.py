"""Model cards from run folders: sections, the three forms, schemas, escaping, bad input."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from fairderm.cards import build_card, card_info_from_dict, card_schema_errors, load_card_info, write_card
from fairderm.errors import InputError
from tests.helpers.card_runs import HOSTILE, make_run

MITCHELL_SECTIONS = [
    "Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
    "Quantitative analyses", "Ethical considerations", "Caveats and recommendations",
]
FAIRDERM_SECTIONS = ["Group sizes and power", "Skin-tone estimator reliability", "Release gate", "Evidence"]


def _front_matter(markdown: str) -> dict:
    assert markdown.startswith("---\n")
    return yaml.safe_load(markdown.split("---\n", 2)[1])


def test_card_has_mitchell_sections_in_order_and_fairderm_additions(full_run: Path) -> None:
    titles = [s.title for s in build_card(full_run).document.sections]
    assert [t for t in titles if t in MITCHELL_SECTIONS] == MITCHELL_SECTIONS
    assert set(FAIRDERM_SECTIONS) <= set(titles)
    assert "Mitigation" in titles


def test_mitigation_section_says_which_method_trained_on_extra_views(full_run: Path) -> None:
    markdown = build_card(full_run).to_markdown()
    assert "moe_parity also trained on 1098 turned or mirrored views" in markdown
    assert "III-IV 4, V-VI 6" in markdown


def _row(metrics: dict, group: str, metric: str) -> dict:
    return next(r for r in metrics["groups"] if r["group"] == group and r["metric"] == metric)


def _interval_text(row: dict) -> str:
    return f"{row['estimate']:.3f} ({row['ci_low']:.3f} to {row['ci_high']:.3f})"


def test_card_reports_tone_groups_intersections_reliability_power_gate_and_hashes(full_run: Path) -> None:
    markdown = build_card(full_run).to_markdown()
    metrics = json.loads((full_run / "metrics.json").read_text())
    cells = [_interval_text(_row(metrics, f"fitzpatrick_est={g}", "accuracy")) for g in ("I-II", "III-IV", "V-VI")]
    assert f"| Accuracy | {' | '.join(cells)} |" in markdown
    assert "### Intersectional: fitzpatrick_est&amp;sex" in markdown  # '_' inside a word is left unescaped
    assert "exact agreement 0.710 (0.660 to 0.760)" in markdown
    power = next(r for r in metrics["power"] if r["group"] == "fitzpatrick_est=V-VI" and r["metric"] == "accuracy")
    assert f"| V-VI | Accuracy | {power['n']} | {power['estimate']:.3f} |" in markdown
    gate = json.loads((full_run / "gate.json").read_text())
    assert f"Verdict: {gate['verdict']} under policy demo-release-policy" in markdown
    metrics_hash = hashlib.sha256((full_run / "metrics.json").read_bytes()).hexdigest()
    assert f"| metrics.json | {metrics_hash} |" in markdown
    assert "unknown (fitzpatrick_est, n=6)" in markdown  # small groups are named in the caveats
    assert "Reliability curves by fitzpatrick_est" in markdown
    # the test tone table's intervals are ita +- 3 degrees
    assert "- **Median 95% ITA interval width**: 6.0° (skin variation, colour cast and exposure)" in markdown


def test_markdown_front_matter_is_hugging_face_metadata(full_run: Path) -> None:
    meta = _front_matter(build_card(full_run).to_markdown())
    assert meta["license"] == "other"
    assert {"fairderm", "dermatology", "fairness"} <= set(meta["tags"])
    (result,) = meta["model-index"][0]["results"]
    assert result["task"]["type"] == "image-classification"
    overall = next(m for m in result["metrics"] if m["name"] == "Accuracy (all cases)")
    accuracy = _row(json.loads((full_run / "metrics.json").read_text()), "all", "accuracy")["estimate"]
    assert overall == {"type": "accuracy", "value": round(accuracy, 4), "name": "Accuracy (all cases)",
                       "verified": False}


def test_card_json_validates_against_fairderm_schema(full_run: Path) -> None:
    card = build_card(full_run).to_dict()
    assert card_schema_errors(card) == []
    metric = next(m for m in card["quantitative_analysis"]["performance_metrics"]
                  if m["slice"] == "fitzpatrick_est=V-VI" and m["type"] == "sensitivity")
    row = _row(json.loads((full_run / "metrics.json").read_text()), "fitzpatrick_est=V-VI", "sensitivity")
    assert metric["value"] == f"{row['estimate']:.4f}" and metric["n"] == row["n"]
    assert set(metric["confidence_interval"]) == {"lower_bound", "upper_bound"}
    gate = json.loads((full_run / "gate.json").read_text())
    assert card["quantitative_analysis"]["gate"]["verdict"] == gate["verdict"]


def test_card_json_validates_against_upstream_model_card_toolkit_schema(full_run: Path, upstream_schema) -> None:
    card = build_card(full_run).to_dict()
    assert card_schema_errors(card, upstream_schema) == []
    # the upstream schema is strict at the top level, so the check above can fail
    assert card_schema_errors({**card, "fairderm": {}}, upstream_schema)


def test_minimal_run_with_metrics_only_gives_an_honest_card(tmp_path: Path, upstream_schema) -> None:
    run = make_run(tmp_path / "run", optional=False)
    card = build_card(run)
    markdown = card.to_markdown()
    assert "NOT GATED" in markdown and "This run was not gated" in markdown
    assert "not validated against labels in this run" in markdown
    assert "An audit writes evidence.json after this card" in markdown
    assert card_schema_errors(card.to_dict()) == [] and card_schema_errors(card.to_dict(), upstream_schema) == []
    assert card.to_dict()["quantitative_analysis"]["gate"]["verdict"] == "NOT_GATED"


def test_hostile_labels_render_as_text_in_markdown(hostile_run: Path) -> None:
    markdown = build_card(hostile_run).to_markdown()
    assert "<script" not in markdown and "<img" not in markdown
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown.split("---\n", 2)[2])
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<h1>heading</h1>" not in html and "<em>bold</em>" not in html
    assert "<script" not in yaml.safe_dump(_front_matter(markdown))


def test_hostile_labels_are_escaped_in_html_and_json(hostile_run: Path, upstream_schema) -> None:
    card = build_card(hostile_run)
    html = card.to_html()
    assert HOSTILE not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    document = card.to_dict()
    assert document["model_details"]["name"] == HOSTILE  # JSON keeps the data as given
    assert card_schema_errors(document) == [] and card_schema_errors(document, upstream_schema) == []


def test_html_is_self_contained_with_plotly_packed_once(full_run: Path) -> None:
    import base64
    import gzip

    html = build_card(full_run).to_html()
    assert html.count("<script") == html.count("</script>")
    # tone forest, calibration, intersection, group sizes, mitigation
    assert html.count('<script type="application/json" data-plotly-figure=') == 5
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    packed = [body for attributes, body in scripts if 'id="plotly-js-gzip"' in attributes]
    assert len(packed) == 1 and gzip.decompress(base64.b64decode(packed[0]))[:2000].count(b"plotly.js v") == 1
    assert all("src=" not in attributes for attributes, _ in scripts)
    # Outside the scripts (plotly.js holds map-tile URLs it only uses for map traces) nothing points anywhere.
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S)
    for marker in ("http:", "https:", "//", "<link", "@import", "url(", "src="):
        assert marker not in markup, marker


def test_card_is_deterministic(full_run: Path) -> None:
    first, second = build_card(full_run), build_card(full_run)
    assert first.to_markdown() == second.to_markdown()
    assert first.to_json() == second.to_json()
    assert first.to_html() == second.to_html()


def test_write_card_writes_three_files_and_ignores_an_earlier_card(full_run: Path, tmp_path: Path) -> None:
    paths = write_card(full_run)
    assert sorted(p.name for p in paths.values()) == ["card.html", "card.json", "card.md"]
    again = write_card(full_run, tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "card.md").read_text() == paths["markdown"].read_text()
    files = [f["path"] for f in json.loads(again["json"].read_text())["model_details"]["evidence"]["files"]]
    assert "card.md" not in files and "metrics.json" in files


def test_unvalidated_strata_report_the_repeatability_as_not_accuracy(full_run: Path, tmp_path: Path) -> None:
    from fairderm.tone import measurement_repeatability, read_tone_table

    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    (run / "tone_validation.json").unlink()
    card = build_card(run)
    tone = read_tone_table(run / "tone.parquet")
    expected = measurement_repeatability(tone.frame, tone.provenance)["repeatability"]
    markdown = " ".join(card.to_markdown().split())
    assert "not validated against tone labels in this run" in markdown
    assert f"the ITA of {100 * expected:.0f}% of the measured images stays in its group" in markdown
    assert "repeatability is not accuracy" in markdown and "0.41-0.49" in markdown and "0.69-0.76" in markdown
    assert "right group" not in markdown and "group of their true" not in markdown
    estimator = card.to_dict()["quantitative_analysis"]["tone_reliability"]["estimator"]
    assert estimator["measurement_repeatability"] == pytest.approx(expected)
    assert card_schema_errors(card.to_dict()) == []


def test_tone_calibration_is_read_from_the_estimation_provenance(tmp_path: Path) -> None:
    import pandas as pd

    from fairderm._io import atomic_write_parquet

    run = make_run(tmp_path / "run")
    frame = pd.read_parquet(run / "tone.parquet")
    calibration = {"sha256": "cd" * 32, "scale": "fitzpatrick", "cutpoints": [50.0, 40.0, 30.0, 20.0, 10.0]}
    atomic_write_parquet(run / "tone.parquet", frame, metadata_json={"estimation": {"calibration": calibration}})
    markdown = build_card(run).to_markdown()
    assert "**Calibration**" in markdown and "cdcdcdcd" in markdown


def test_owner_text_comes_from_spec_and_info_file_overrides_it(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", card={"license": "Apache-2.0", "intended_use": "Triage support.",
                                           "owners": [{"name": "Derm team"}]})
    info = tmp_path / "card.yaml"
    info.write_text("card:\n  intended_use: Research only.\n  date: 2024-05-01\n", encoding="utf-8")
    card = build_card(run, info=info)
    markdown = card.to_markdown()
    assert "Research only." in markdown and "Triage support." not in markdown
    assert "Derm team" in markdown
    assert _front_matter(markdown)["license"] == "apache-2.0"
    assert card.to_dict()["model_details"]["version"] == {"date": "2024-05-01"}


def test_card_info_with_unknown_key_is_rejected_naming_it(tmp_path: Path) -> None:
    info = tmp_path / "card.yaml"
    info.write_text("licence: MIT\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"column 'licence': unknown key \(did you mean 'license'\?\)"):
        load_card_info(info)
    info.write_text("architecture: ResNet-50\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"column 'architecture': unknown key \(did you mean 'model_architecture'"):
        load_card_info(info)
    with pytest.raises(InputError, match="column 'date': expected a date"):
        card_info_from_dict({"date": "2024-13-01"})


def test_run_folder_without_metrics_is_rejected(full_run: Path) -> None:
    (full_run / "metrics.json").unlink()
    with pytest.raises(InputError, match=r"metrics\.json not found"):
        build_card(full_run)


def test_missing_run_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run folder not found"):
        build_card(tmp_path / "nope")


def test_malformed_optional_file_is_rejected_naming_it(full_run: Path) -> None:
    (full_run / "gate.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"gate\.json.*not valid JSON"):
        build_card(full_run)


def test_unreadable_tone_parquet_is_rejected_naming_it(full_run: Path) -> None:
    (full_run / "tone.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(InputError, match=r"tone\.parquet: cannot read"):
        build_card(full_run)


def test_metrics_without_groups_table_is_rejected(full_run: Path) -> None:
    (full_run / "metrics.json").write_text('{"disparities": []}', encoding="utf-8")
    with pytest.raises(InputError, match="no 'groups' table"):
        build_card(full_run)


def test_spec_with_bad_card_text_is_rejected_naming_the_key(full_run: Path) -> None:
    spec = yaml.safe_load((full_run / "spec.yaml").read_text())
    spec["card"] = {"owners": "just a string"}
    (full_run / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(InputError, match=r"spec\.yaml: card, column 'owners'"):
        build_card(full_run)


def test_card_cli_writes_the_card(full_run: Path, tmp_path: Path, run_cli) -> None:
    result = run_cli("card", full_run, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"card.md", "card.html", "card.json"}
    assert json.loads((full_run / "gate.json").read_text())["verdict"] in result.stdout


def test_card_cli_on_folder_without_metrics_fails_with_one_line(tmp_path: Path, run_cli) -> None:
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
    result = run_cli("card", tmp_path)
    assert result.exit_code == 3
    assert "metrics.json not found" in result.stderr


def _strata_metrics(corrected: bool) -> dict:
    """metrics.json of a model worse on true V-VI, by estimated tone, corrected with labels or bounded."""
    import numpy as np

    from fairderm.metrics import StrataErrorModel, evaluate

    rng = np.random.default_rng(3)
    n = 600
    true = rng.choice(["I-II", "III-IV", "V-VI"], n)
    flip = rng.random(n) < 0.4
    estimated = np.where(flip, rng.choice(["I-II", "III-IV", "V-VI"], n), true)
    y = (rng.random(n) < 0.4).astype(int)
    right = rng.random(n) < np.where(true == "V-VI", 0.6, 0.85)
    score = np.where(right == (y == 1), 0.8, 0.2)
    options = {"n_boot": 100, "metrics": ["accuracy", "sensitivity"], "tests": False, "case_mix": False,
               "power": False}
    if corrected:
        labels = np.where(np.arange(n) % 4 == 0, true, None)
        result = evaluate(y, score, {"fitzpatrick_est": estimated}, true_groups=labels, **options)
    else:
        result = evaluate(y, score, {"fitzpatrick_est": estimated}, strata_error=StrataErrorModel.published(),
                          **options)
    return json.loads(result.to_json())


@pytest.mark.parametrize("corrected", [True, False], ids=["corrected", "bounded"])
def test_card_says_how_far_the_tone_groups_can_be_trusted(tmp_path: Path, corrected: bool) -> None:
    run = make_run(tmp_path / "run", optional=False)
    (run / "metrics.json").write_text(json.dumps(_strata_metrics(corrected)), encoding="utf-8")
    markdown = build_card(run).to_markdown()
    section = markdown.split("## How far the tone groups can be trusted", 1)[1].split("\n## ", 1)[0]
    assert "Groh et al. 2022" in section
    if corrected:
        assert "Validation: 150 labelled cases" in section and "Validation confusion matrix" in section
        assert "| corrected |" in section and "| estimated |" in section
    else:
        assert "No tone labels were given" in section and "Error model of the strata" in section
        assert "range " in section and "| bounded |" in section
