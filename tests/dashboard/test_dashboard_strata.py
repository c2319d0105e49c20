"""The Disparities page says how each attribute's groups are known, and draws bounded ranges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fairderm.dashboard.sample_run import write_sample_runs
from fairderm.metrics import StrataErrorModel, evaluate

APP = Path(__file__).resolve().parents[2] / "fairderm" / "dashboard" / "app.py"
RUN = "audits/erm/runs/run-001"


def _metrics(corrected: bool) -> dict:
    rng = np.random.default_rng(5)
    n = 600
    true = rng.choice(["I-II", "III-IV", "V-VI"], n)
    estimated = np.where(rng.random(n) < 0.4, rng.choice(["I-II", "III-IV", "V-VI"], n), true)
    y = (rng.random(n) < 0.4).astype(int)
    right = rng.random(n) < np.where(true == "V-VI", 0.6, 0.85)
    score = np.where(right == (y == 1), 0.8, 0.2)
    options = {"n_boot": 100, "metrics": ["accuracy", "sensitivity"], "case_mix": False, "power": False}
    strata = ({"true_groups": np.where(np.arange(n) % 4 == 0, true, None)} if corrected
              else {"strata_error": StrataErrorModel.published()})
    return json.loads(evaluate(y, score, {"fitzpatrick_est": estimated}, **strata, **options).to_json())


@pytest.fixture(scope="module", params=[True, False], ids=["corrected", "bounded"])
def strata_runs(request, tmp_path_factory) -> tuple[Path, bool]:
    root = tmp_path_factory.mktemp("strata")
    write_sample_runs(root, n=60, seed=3)
    (root / RUN / "metrics.json").write_text(json.dumps(_metrics(request.param)), encoding="utf-8")
    return root, request.param


def test_disparities_page_names_the_basis_of_each_attribute(strata_runs, monkeypatch):
    root, corrected = strata_runs
    monkeypatch.setenv("FAIRDERM_RUNS_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = RUN
    at.query_params["page"] = "Disparities"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="disp_attribute").set_value("fitzpatrick_est").run()
    true_attribute = "fitzpatrick_est:true" if corrected else "fitzpatrick_est:bounds"
    assert any("estimated from colour" in w.value and true_attribute in w.value for w in at.warning)
    at.selectbox(key="disp_attribute").set_value(true_attribute).run()
    assert not at.exception, [e.value for e in at.exception]
    expected = "corrected with validation labels" if corrected else "bounded"
    assert any(expected in i.value for i in at.info)
