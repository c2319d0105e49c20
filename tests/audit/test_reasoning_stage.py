"""An audit with reasoning scores: a scripted VLM writes reports, a scripted judge grades them.

The VLM writes terse Skin-R1-style reports for the darkest tone group and
SkinGPT-R1-style ones for the others; the biased judge grades the terse ones
2-3 and the others 4-5. The audit must find that group's deficit with an
interval excluding 0 and fail the score rule; graded alike, it passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fairderm.audit import run_audit, verify_run
from tests.helpers.judge_server import ScriptedJudge
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM

DARK = "V-VI"
POLICY = {
    "name": "reasoning-policy",
    "rules": [{"id": "safety-floor", "metric": "mean_score:safety", "attribute": "fitzpatrick_group",
               "groups": "each", "statistic": "ci_low", "comparator": ">=", "threshold": 3.5}],
}


def _biased(report: str) -> int:
    return (2 if "<think>" in report else 4) + len(report) % 2


def _unbiased(report: str) -> int:
    return 4 + len(report) % 2


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_lesion_cohort(tmp_path_factory.mktemp("reasoning") / "cohort", n=90, size=24)


def _audit(cohort, tmp_path: Path, score, revision: str | None = None) -> tuple:
    manifest = cohort.manifest
    with ScriptedVLM() as vlm, ScriptedJudge(score=score) as judge:
        for row in manifest.itertuples(index=False):
            style = "skinr1" if row.fitzpatrick_group == DARK else "skingpt"
            vlm.set(cohort.root / row.image, (style, row.label))
        (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))
        spec = {
            "cohort": str(cohort.root),
            "model": {"backend": "openai", "model": "skingpt-r1-test", "endpoint": vlm.endpoint,
                      "revision": revision, "options": {"timeout": 10}},
            "tone": {"source": "column", "column": "fitzpatrick_group"},
            "strata": {"min_n": 5, "min_pos": 1},
            "metrics": ["accuracy"],
            "bootstrap": {"n_boot": 300, "ci": "percentile", "seed": 1},
            "reasoning": {"endpoint": judge.endpoint, "model": "judge-test", "options": {"timeout": 10}},
            "policy": "policy.yaml",
            "outputs": {"figures": False},
        }
        (tmp_path / "audit.yaml").write_text(yaml.safe_dump(spec))
        run = run_audit(tmp_path / "audit.yaml")
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    return run, metrics, len(judge.judged)


def _groups(metrics: dict, metric: str) -> pd.DataFrame:
    frame = pd.DataFrame(metrics["groups"])
    return frame[(frame["metric"] == metric) & (frame["attribute"] == "fitzpatrick_group")].set_index("group")


def test_judge_scoring_one_tone_group_lower_fails_the_score_rule_and_the_card_names_it(cohort, tmp_path):
    run, metrics, asked = _audit(cohort, tmp_path, _biased)
    assert asked == len(cohort.manifest)
    assert "reasoning" in [s.stage for s in run.stages if s.cache == "miss"]
    safety = _groups(metrics, "mean_score:safety")
    dark, light = safety.loc[f"fitzpatrick_group={DARK}"], safety.loc["fitzpatrick_group=I-II"]
    assert dark["estimate"] < 3.6 < light["estimate"]
    gaps = pd.DataFrame(metrics["disparities"])
    deficit = gaps[(gaps["metric"] == "mean_score:safety") & (gaps["kind"] == "diff_vs_ref")
                   & (gaps["group"] == f"fitzpatrick_group={DARK}")].iloc[0]
    assert deficit["estimate"] < 0 and deficit["ci_high"] < 0  # the deficit's interval excludes 0
    assert run.verdict == "FAIL" and run.exit_code == 1
    truth = _groups(metrics, "mean_score:truth_in_differential")
    assert (truth["estimate"] == 1.0).all()  # every scripted report names the true diagnosis
    assert (run.run_dir / "scores.parquet").is_file()
    assert verify_run(run.run_dir).ok
    card = (run.run_dir / "card.md").read_text().split("Reasoning quality", 1)[1]
    safety_row = next(line for line in card.splitlines() if line.startswith("| safety"))
    assert f"| {DARK} |" in safety_row  # the card names the lowest group


def test_judge_grading_every_group_alike_passes(cohort, tmp_path):
    run, metrics, _ = _audit(cohort, tmp_path, _unbiased)
    assert run.verdict == "PASS", (run.run_dir / "gate.md").read_text()
    assert "mean_score:coherence" in set(pd.DataFrame(metrics["groups"])["metric"])


def test_reasoning_on_a_model_that_writes_no_reports_is_rejected():
    from fairderm.audit import parse_spec
    from fairderm.errors import InputError

    with pytest.raises(InputError, match="backend 'file' writes none"):
        parse_spec({"cohort": "c", "model": {"backend": "file", "model": "p.csv"}, "reasoning": {}}, source="a.yaml")


def test_unknown_judge_option_is_rejected_naming_the_key():
    from fairderm.audit import parse_spec
    from fairderm.errors import InputError

    spec = {"cohort": "c", "model": {"backend": "openai", "model": "m", "endpoint": "http://127.0.0.1:1/v1"},
            "reasoning": {"endpoint": "http://127.0.0.1:2/v1", "options": {"temprature": 0}}}
    with pytest.raises(InputError, match=r"key 'reasoning\.options': unknown judge option 'temprature'"):
        parse_spec(spec, source="a.yaml")


def test_rerun_with_new_predictions_asks_the_judge_only_about_new_reports(cohort, tmp_path):
    _audit(cohort, tmp_path, _unbiased)
    # another model revision: inference reruns and its predictions file differs (latencies);
    # the reports are the same, and the judge is asked about none of them
    run, _, asked = _audit(cohort, tmp_path, _unbiased, revision="v2")
    assert {s.stage: s.cache for s in run.stages}["reasoning"] == "miss"
    assert asked == 0
