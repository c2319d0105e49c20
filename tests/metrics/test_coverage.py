"""Reduced, seeded coverage simulation (the full study: benchmarks/coverage.py).

Bands are set from the Monte Carlo error: with S audits a coverage near 0.95
has a standard error of about sqrt(0.95 * 0.05 / S); pooled group intervals
(several per audit) are held to about +-3 standard errors.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "simulated_audits.py"


def _harness():
    spec = importlib.util.spec_from_file_location("simulated_audits", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("simulated_audits", module)
    spec.loader.exec_module(module)
    return module


_sim = _harness()
binary_scenario, clustered_scenario = _sim.binary_scenario, _sim.clustered_scenario
coverage_study, multiclass_scenario = _sim.coverage_study, _sim.multiclass_scenario

pytestmark = pytest.mark.slow


def _coverage(frame, kind):
    return frame[frame["kind"] == kind]["covered"].mean()


def test_binary_intervals_cover_the_truth():
    frame = coverage_study(binary_scenario((30, 100, 400)), n_sims=100, n_boot=200, seed=1)
    assert 0.925 <= _coverage(frame, "group") <= 0.985
    for kind in ("gap", "ratio"):
        assert 0.89 <= _coverage(frame, kind) <= 1.0, kind


def test_multiclass_intervals_cover_the_truth():
    scenario = multiclass_scenario((60, 300), truth_draws=300_000)
    frame = coverage_study(scenario, n_sims=80, n_boot=200, seed=2)
    assert 0.92 <= _coverage(frame, "group") <= 0.99
    assert 0.88 <= _coverage(frame, "gap") <= 1.0


def test_row_resampling_under_covers_clustered_data_and_the_cluster_bootstrap_does_not():
    scenario = clustered_scenario((60, 150))
    clustered = coverage_study(scenario, n_sims=80, n_boot=200, ci="percentile", seed=3)
    rows = coverage_study(scenario, n_sims=80, n_boot=200, ci="percentile", use_cluster=False, seed=3)
    by_cluster, by_row = _coverage(clustered, "group"), _coverage(rows, "group")
    assert 0.91 <= by_cluster <= 0.99
    assert by_row < 0.89 and by_row < by_cluster - 0.05
