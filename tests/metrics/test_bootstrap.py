"""The resampling engine: weights, kernels, jackknife, intervals, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from fairderm.metrics import evaluate
from fairderm.metrics._bootstrap import (
    GroupStats,
    RankPlan,
    acceleration,
    build_design,
    draw_weights,
    interval,
)
from fairderm.metrics._engine import Engine, prepare
from fairderm.metrics._options import EvaluationOptions
from fairderm.metrics._table_groups import disparity_statistics

QUICK = {"tests": False, "case_mix": False, "power": False}


def _engine(y, score, groups, *, metrics, n_boot=200, cluster=None, ci="bca", seed=0):
    options = EvaluationOptions(n_boot=n_boot, ci=ci, seed=seed, min_group_size=0, min_positives=0, n_perm=0, workers=1,
                                tests=False, case_mix=False, power=False)
    cases, models = prepare(y, [score], groups, labels=None, positive_label=None, intersections=None,
                            cluster=cluster, scores=None, covariates=None, threshold=0.5)
    engine = Engine(cases, models, metrics, options)
    engine.run()
    return engine


def test_weights_keep_every_stratum_size_fixed():
    rng = np.random.default_rng(0)
    strata = rng.integers(0, 3, size=(500, 1))
    design = build_design(strata, [rng.random(500)], None)
    weights = draw_weights(np.random.default_rng(1), design, 40)
    for cell in range(3):
        columns = design.cell == cell
        np.testing.assert_array_equal(weights[:, columns].sum(axis=1), columns.sum())


def test_cluster_weights_resample_whole_clusters_within_strata():
    rng = np.random.default_rng(2)
    cluster = rng.integers(0, 60, size=400)
    strata = (cluster % 2).reshape(-1, 1)  # clusters nested in strata
    design = build_design(strata, [rng.random(400)], cluster)
    weights = draw_weights(np.random.default_rng(3), design, 30)
    clusters_sorted = cluster[design.order]
    for c in np.unique(cluster):
        block = weights[:, clusters_sorted == c]
        assert (block == block[:, :1]).all()  # one count per cluster
    for cell in (0, 1):
        units = design.unit_cell == cell
        first_case = np.array([np.flatnonzero(design.unit == u)[0] for u in np.flatnonzero(units)])
        np.testing.assert_array_equal(weights[:, first_case].sum(axis=1), units.sum())


def test_weighted_statistics_equal_recomputation_on_repeated_rows(binary):
    """A replicate's metrics equal the metrics of the data with rows repeated by their weights."""
    engine = _engine(binary.y, binary.score, None, metrics=["accuracy", "sensitivity", "auroc", "brier"])
    design = engine.design
    weights = draw_weights(np.random.default_rng(5), design, 3)
    stats_all = engine.stats[0][0]
    lin, auc = stats_all.statistics(weights)
    values = engine.values(lin, auc)
    y, score = binary.y[design.order], binary.score[design.order]
    for row, counts in enumerate(weights.astype(int)):
        yy, ss = np.repeat(y, counts), np.repeat(score, counts)
        expected = [skm.accuracy_score(yy, ss >= 0.5), skm.recall_score(yy, ss >= 0.5),
                    skm.roc_auc_score(yy, ss), skm.brier_score_loss(yy, ss)]
        np.testing.assert_allclose(values[row], expected, rtol=1e-5)


@pytest.mark.parametrize("clustered", [False, True])
def test_jackknife_equals_leave_one_unit_out_recomputation(binary, clustered):
    n = 240
    y, score = binary.y[:n], np.round(binary.score[:n], 2)  # ties included
    cluster = binary.patient[:n] % 50 if clustered else None
    engine = _engine(y, score, None, metrics=["accuracy", "auroc", "ece", "f1"], cluster=cluster)
    slot = engine.slots[0]
    stats_all: GroupStats = engine.stats[0][0]
    lin, auc = stats_all.jackknife(slot.unit_local, slot.unit_ids.size)
    jack = engine.values(lin, auc)
    for unit in range(0, slot.unit_ids.size, 7):
        keep = slot.unit_local != unit
        weights = keep.astype(np.float64)[None, :]
        expected = engine.values(*stats_all.statistics_full(weights))[0]
        np.testing.assert_allclose(jack[unit], expected, rtol=1e-10, atol=1e-12)


def test_percentile_interval_is_numpy_quantile():
    rng = np.random.default_rng(6)
    values = rng.normal(size=999)
    low, high = interval(values, 0.0, method="percentile", confidence=0.9)
    np.testing.assert_allclose([low, high], np.quantile(values, [0.05, 0.95]))


def test_bca_interval_follows_efrons_formula():
    rng = np.random.default_rng(7)
    replicates = rng.gamma(2.0, size=4000)
    estimate, accel = 1.9, 0.04
    z0 = stats.norm.ppf(np.mean(replicates < estimate))
    z = stats.norm.ppf([0.025, 0.975])
    levels = stats.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    expected = np.quantile(replicates, levels)
    got = interval(replicates, estimate, method="bca", confidence=0.95, accel=accel)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_acceleration_of_one_stratum_is_the_jackknife_skewness():
    rng = np.random.default_rng(8)
    jack = rng.exponential(size=300)
    d = jack.mean() - jack
    expected = (d ** 3).sum() / (6 * ((d ** 2).sum()) ** 1.5)
    assert acceleration(jack, np.zeros(300, dtype=np.int64)) == pytest.approx(expected, rel=1e-12)


def test_bca_interval_of_a_two_group_difference_agrees_with_scipy():
    rng = np.random.default_rng(9)
    correct_a = (rng.random(60) < 0.7).astype(int)
    correct_b = (rng.random(400) < 0.85).astype(int)
    pred = np.r_[correct_a, correct_b]
    y = np.ones(pred.size, dtype=int)
    groups = np.r_[np.repeat("a", 60), np.repeat("b", 400)]
    result = evaluate(y, pred, {"g": groups}, labels=[0, 1], metrics=["accuracy"], n_boot=4000, ci="bca",
                      reference={"g": "b"}, **QUICK)
    ours = result.disparities.get("accuracy", "diff_vs_ref")[["ci_low", "ci_high"]].to_numpy()[0]
    scipy_bca = stats.bootstrap((correct_a, correct_b), lambda a, b, axis=-1: a.mean(axis) - b.mean(axis),
                                method="BCa", n_resamples=4000, rng=np.random.default_rng(0), vectorized=True)
    np.testing.assert_allclose(ours, [scipy_bca.confidence_interval.low, scipy_bca.confidence_interval.high],
                               atol=0.015)


def test_equal_seed_gives_equal_results_whatever_the_threads(binary):
    first = evaluate(binary.y, binary.score, binary.group, n_boot=300, seed=4, workers=1, **QUICK)
    second = evaluate(binary.y, binary.score, binary.group, n_boot=300, seed=4, workers=3, **QUICK)
    other = evaluate(binary.y, binary.score, binary.group, n_boot=300, seed=5, workers=1, **QUICK)
    assert first.to_dict()["groups"] == second.to_dict()["groups"]
    assert first.to_dict()["disparities"] == second.to_dict()["disparities"]
    assert not np.allclose(first.to_frame()["ci_low"], other.to_frame()["ci_low"], equal_nan=True)


def test_gaps_come_from_the_same_replicates_as_the_groups(binary):
    engine = _engine(binary.y, binary.score, binary.group, metrics=["accuracy"], n_boot=300)
    ids = engine.attribute_slots("group")
    replicates = engine.replicates[0, ids, 0]
    gap = next(s for base, s in disparity_statistics(engine, 0, [0]) if base["kind"] == "gap")
    np.testing.assert_allclose(gap.replicates, replicates.max(axis=0) - replicates.min(axis=0))
    ratio = next(s for base, s in disparity_statistics(engine, 0, [0]) if base["kind"] == "ratio")
    np.testing.assert_allclose(ratio.replicates, np.log(replicates.min(axis=0) / replicates.max(axis=0)))


def test_stratified_bootstrap_keeps_intersection_cells(binary):
    result = evaluate(binary.y, binary.score, {"tone": binary.group, "sex": binary.sex}, intersections="all",
                      n_boot=100, **QUICK)
    frame = result.to_frame(full=True)
    assert "tone&sex" in set(frame["attribute"])
    assert "tone=V-VI & sex=female" in set(frame["group"])
    assert result.config["resampling"].startswith("stratified by tone x sex")


def test_rank_plan_marks_ties_only_when_present():
    assert RankPlan.build(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 1])).tied is None
    plan = RankPlan.build(np.array([0.3, 0.1, 0.3, 0.3]), np.array([1, 0, 0, 1]))
    columns, _, first, last = plan.tied
    np.testing.assert_array_equal(columns, [1, 2, 3])
    np.testing.assert_array_equal(first, [0])
    np.testing.assert_array_equal(last, [2])
