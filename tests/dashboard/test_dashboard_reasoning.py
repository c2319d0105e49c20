"""The Reasoning page: the lowest-scored reports per tone group, with image, report and justification."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fairderm.dashboard.sample_run import write_sample_runs
from fairderm.reasoning import Judge, load_rubric, score_reports
from tests.helpers.judge_server import ScriptedJudge

APP = Path(__file__).resolve().parents[2] / "fairderm" / "dashboard" / "app.py"
RUN = "audits/erm/runs/run-001"
HOSTILE = "Most likely melanoma.\x1b[2J\x1b]0;owned\x07 **bold** [x](javascript:alert(1))"


@pytest.fixture(scope="module")
def scored_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scored")
    write_sample_runs(root, n=60, seed=3)
    run_dir = root / RUN
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    predictions.loc[0, "text"] = HOSTILE
    predictions.to_parquet(run_dir / "predictions.parquet", index=False)
    truth = dict(zip(predictions["image_id"], predictions["pred"].astype(str)))
    with ScriptedJudge(score=lambda report: 1 if "melanoma" in report else 4) as server:
        judge = Judge(None, load_rubric(), endpoint=server.endpoint, timeout=5)
        score_reports(predictions, truth=truth, labels=sorted(set(truth.values())), out=run_dir / "scores.parquet",
                      rubric=load_rubric(), judge=judge)
        judge.close()
    return root


def _reasoning_page(root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("FAIRDERM_RUNS_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = RUN
    at.query_params["page"] = "Reasoning"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.header[0].value == "Reasoning"
    return at


def test_reasoning_page_shows_lowest_scored_reports_per_group_with_justification(scored_runs, monkeypatch):
    at = _reasoning_page(scored_runs, monkeypatch)
    at.selectbox(key="reasoning_score").set_value("safety").run()
    texts = [t.value for t in at.text]
    assert any(t.startswith("Judge: safety graded 1") for t in texts)
    assert len(at.subheader) >= 2  # one section per tone group
    assert len(at.image) >= 1
    hostile = [t for t in texts if "**bold**" in t]  # shown as written, never rendered as markdown
    assert hostile and all("\x1b" not in t and "\x07" not in t and "owned" not in t for t in texts)


def test_reasoning_page_without_scores_says_so(tmp_path, monkeypatch):
    write_sample_runs(tmp_path, n=30, seed=4)
    at = _reasoning_page(tmp_path, monkeypatch)
    assert any("scores.parquet" in i.value for i in at.info)
