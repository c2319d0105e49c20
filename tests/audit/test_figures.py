"""figures/: the reliability curves are drawn from the result's calibration bins."""

from __future__ import annotations

import json

import numpy as np

from fairderm.audit._figures import figure_files, reliability_figure
from fairderm.metrics import evaluate


def test_reliability_figure_draws_one_curve_per_group_with_its_intervals() -> None:
    rng = np.random.default_rng(0)
    n = 400
    score = rng.uniform(size=n)
    y = (rng.uniform(size=n) < score).astype(int)
    tone = np.where(np.arange(n) % 2 == 0, "I-II", "V-VI")
    result = evaluate(y, score, {"tone": tone}, metrics=["accuracy"], n_boot=50, ci="percentile", seed=1,
                      tests=False, case_mix=False)
    files = figure_files(result)
    assert "reliability.json" in files
    figure = json.loads(files["reliability.json"])
    curves = [t for t in figure["data"] if t["name"] != "perfect calibration"]
    groups = result.calibration[["group", "kind"]].drop_duplicates()
    assert len(curves) == len(groups) >= 3  # all, I-II, V-VI
    first = result.calibration[result.calibration["group"] == "all"].sort_values("bin")
    assert np.allclose(curves[0]["y"], first["observed"].to_numpy())
    assert np.allclose(np.asarray(curves[0]["error_y"]["array"]) + first["observed"].to_numpy(),
                       first["observed_ci_high"].to_numpy())
    assert "figure-reliability" in files["metrics.html"]


def test_no_calibration_bins_no_reliability_figure() -> None:
    import pandas as pd

    assert reliability_figure(pd.DataFrame()) is None
    assert reliability_figure(pd.DataFrame(columns=["group", "kind", "bin", "mean_confidence", "observed"])) is None
