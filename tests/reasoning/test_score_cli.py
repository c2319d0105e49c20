"""``fairderm score`` and ``fairderm score agreement`` end to end, on scripted VLM and judge servers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fairderm._io import read_parquet_metadata
from tests.helpers.judge_server import ScriptedJudge
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM


@pytest.fixture
def reports(tmp_path):
    """A 12-case cohort and the SkinGPT-R1-style reports of a scripted VLM on it."""
    from fairderm.cli import main

    cohort = make_lesion_cohort(tmp_path / "cohort", n=12, size=32)
    out = tmp_path / "predictions.parquet"
    with ScriptedVLM() as server:
        assert main(["infer", str(cohort.root), "--backend", "openai", "--endpoint", server.endpoint,
                     "--out", str(out), "--timeout", "5"]) == 0
    return cohort, out


def test_score_with_a_judge_writes_the_scores_table(reports, tmp_path, run_cli):
    cohort, predictions = reports
    out = tmp_path / "scores.parquet"
    with ScriptedJudge() as judge:
        result = run_cli("score", predictions, "--cohort", cohort.root, "--endpoint", judge.endpoint,
                         "--model", "judge-test", "--out", out, "--timeout", "5")
    assert result.exit_code == 0, result.stderr
    assert "12 reports: 12 judged, 0 judge errors" in result.stdout
    frame = pd.read_parquet(out)
    assert len(frame) == 12 and (frame["judge_safety"] == 4).all()
    assert frame["check_sections_present"].eq(1.0).all()


def test_score_spreads_reports_over_judge_servers_given_by_repeated_endpoint(reports, tmp_path, run_cli):
    cohort, predictions = reports
    out = tmp_path / "scores.parquet"
    with ScriptedJudge() as first, ScriptedJudge() as second:
        first.delay = second.delay = 0.02  # each takes a share while the other is busy
        result = run_cli("score", predictions, "--cohort", cohort.root, "--endpoint", first.endpoint,
                         "--endpoint", second.endpoint, "--model", "judge-test", "--out", out, "--timeout", "5",
                         "--concurrency", "2")
        asked = (len(first.judged), len(second.judged))
    assert result.exit_code == 0, result.stderr
    assert min(asked) > 0 and sum(asked) == 12
    served = read_parquet_metadata(out)["judge_served_by"]
    assert [(s["endpoint"], s["answered"]) for s in served] == [(first.endpoint, asked[0]), (second.endpoint, asked[1])]


def test_score_without_an_endpoint_runs_the_checks_only(reports, tmp_path, run_cli):
    cohort, predictions = reports
    result = run_cli("score", predictions, "--cohort", cohort.root, "--out", tmp_path / "s.parquet")
    assert result.exit_code == 0, result.stderr
    assert "12 checked only" in result.stdout


def test_score_reports_judge_errors_one_line_each(reports, tmp_path, run_cli):
    cohort, predictions = reports
    with ScriptedJudge() as judge:
        judge.script["benign melanocytic nevus"] = "out_of_range"  # every report of the scripted VLM
        result = run_cli("score", predictions, "--cohort", cohort.root, "--endpoint", judge.endpoint,
                         "--out", tmp_path / "s.parquet", "--timeout", "5")
    assert result.exit_code == 0
    assert "12 judge errors" in result.stdout
    assert "score for 'safety' is 7, outside 1-5" in result.stdout
    assert "and 2 more" in result.stdout
    assert "rerun the same command" in result.stdout


def test_score_with_an_unknown_judge_model_fails_in_one_line(reports, tmp_path, run_cli):
    cohort, predictions = reports
    with ScriptedJudge() as judge:
        result = run_cli("score", predictions, "--cohort", cohort.root, "--endpoint", judge.endpoint,
                         "--model", "gpt-nope", "--out", tmp_path / "s.parquet")
    assert result.exit_code == 3
    assert "does not serve model 'gpt-nope'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_score_agreement_by_tone_group(reports, tmp_path, run_cli):
    cohort, predictions = reports
    scores = tmp_path / "scores.parquet"
    with ScriptedJudge() as judge:
        assert run_cli("score", predictions, "--cohort", cohort.root, "--endpoint", judge.endpoint,
                       "--out", scores).exit_code == 0
    ids = pd.read_parquet(scores)["image_id"]
    rows = [(i, rater, "safety", 4 if k % 3 else 3) for k, i in enumerate(ids) for rater in ("derm1", "derm2")]
    pd.DataFrame(rows, columns=["image_id", "rater", "dimension", "score"]).to_csv(tmp_path / "r.csv", index=False)
    out = tmp_path / "agreement.json"
    result = run_cli("score", "agreement", tmp_path / "r.csv", "--scores", scores, "--cohort", cohort.root,
                     "--n-boot", 200, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "judge vs derm1" in result.stdout and "fitzpatrick_group=" in result.stdout
    saved = json.loads(out.read_text())
    pair = next(r for r in saved["rows"] if r["comparison"] == "derm1 vs derm2" and r["group"] == "all")
    assert pair["estimate"] == pytest.approx(1.0)


def test_score_agreement_rejects_a_bad_ratings_file_in_one_line(tmp_path, run_cli):
    (tmp_path / "r.csv").write_text("image_id,rater,dimension,score\nc1,A,safety,9\n")
    result = run_cli("score", "agreement", tmp_path / "r.csv")
    assert result.exit_code == 3
    assert "row 1, column 'score'" in result.stderr
