"""Property tests: invariance to row order and to group relabelling, bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from fairderm.metrics import evaluate

pytestmark = pytest.mark.slow  # ~25 examples x a few evaluations each

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = {"n_boot": 25, "tests": False, "case_mix": False, "power": False, "min_group_size": 5, "min_positives": 2}
BOUNDED = ["accuracy", "balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "selection_rate",
           "auroc", "brier", "ece"]


@st.composite
def audits(draw):
    n = draw(st.integers(12, 70))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    y[:2] = [0, 1]
    coarse = draw(st.booleans())  # rounded scores: many ties
    score = rng.random(n)
    score = np.round(score, 1) if coarse else score
    n_groups = draw(st.integers(1, 3))
    group = np.asarray(["a", "b", "c"])[rng.integers(0, n_groups, size=n)]
    cluster = rng.integers(0, max(2, n // 3), size=n) if draw(st.booleans()) else None
    return y, score, group, cluster


def _both(result):
    return result.to_frame(), result.disparities.to_frame(full=True)


@SETTINGS
@given(audits(), st.integers(0, 2**31 - 1))
def test_results_do_not_depend_on_row_order(audit, seed):
    y, score, group, cluster = audit
    order = np.random.default_rng(seed).permutation(y.size)
    # Tests included (BH: statsmodels' Holm runs a full garbage collection per call).
    kwargs = {**QUICK, "ci": "bca", "seed": 3, "tests": True, "n_perm": 20, "p_adjust": "fdr_bh"}
    first = evaluate(y, score, {"tone": group}, cluster=cluster, **kwargs)
    second = evaluate(y[order], score[order], {"tone": group[order]},
                      cluster=None if cluster is None else cluster[order], **kwargs)
    for a, b in zip(_both(first), _both(second)):
        pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(first.tests.drop(columns=["groups"]), second.tests.drop(columns=["groups"]))


@SETTINGS
@given(audits())
def test_point_estimates_do_not_depend_on_group_names(audit):
    y, score, group, cluster = audit
    renamed = np.asarray([{"a": "z9", "b": "m1", "c": "a0"}[g] for g in group])
    # No bootstrap: a flag may also come from undefined replicates, which follow the draws.
    first = evaluate(y, score, {"tone": group}, cluster=cluster, **{**QUICK, "n_boot": 0}).to_frame()
    second = evaluate(y, score, {"tone": renamed}, cluster=cluster, **{**QUICK, "n_boot": 0}).to_frame()
    mapping = {"tone=a": "tone=z9", "tone=b": "tone=m1", "tone=c": "tone=a0", "all": "all"}
    first["group"] = first["group"].map(mapping)
    merged = first.merge(second, on=["group", "metric"], suffixes=("", "_renamed"))
    assert len(merged) == len(first) == len(second)
    np.testing.assert_allclose(merged["estimate"].to_numpy(), merged["estimate_renamed"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(merged["flag"].to_numpy(), merged["flag_renamed"].to_numpy())


@SETTINGS
@given(audits())
def test_gap_and_ratio_estimates_do_not_depend_on_group_names(audit):
    y, score, group, cluster = audit
    renamed = np.asarray([{"a": "z9", "b": "m1", "c": "a0"}[g] for g in group])
    columns = ["metric", "kind", "estimate"]
    first = evaluate(y, score, {"tone": group}, cluster=cluster, **{**QUICK, "n_boot": 0}).disparities.to_frame()
    second = evaluate(y, score, {"tone": renamed}, cluster=cluster, **{**QUICK, "n_boot": 0}).disparities.to_frame()
    keep = ["gap", "ratio", "eod", "dpd"]
    pd.testing.assert_frame_equal(first[first["kind"].isin(keep)][columns].reset_index(drop=True),
                                  second[second["kind"].isin(keep)][columns].reset_index(drop=True))


@SETTINGS
@given(audits(), st.sampled_from(["bca", "percentile"]))
def test_estimates_and_intervals_stay_in_bounds(audit, ci):
    y, score, group, cluster = audit
    result = evaluate(y, score, {"tone": group}, cluster=cluster, **{**QUICK, "ci": ci})
    frame = result.to_frame()
    bounded = frame[frame["metric"].isin(BOUNDED)]
    for column in ("estimate", "ci_low", "ci_high"):
        values = bounded[column].dropna()
        assert ((values >= 0) & (values <= 1)).all(), column
    both = bounded.dropna(subset=["ci_low", "ci_high"])
    assert (both["ci_low"] <= both["ci_high"] + 1e-12).all()
    spread = result.disparities.to_frame()
    for kind, low, high in (("gap", 0.0, 1.0), ("ratio", 0.0, 1.0), ("eod", 0.0, 1.0), ("dpd", 0.0, 1.0)):
        rows = spread[spread["kind"] == kind]
        for column in ("estimate", "ci_low", "ci_high"):
            values = rows[column].dropna()
            assert ((values >= low - 1e-12) & (values <= high + 1e-12)).all(), (kind, column)


@SETTINGS
@given(audits())
def test_overall_estimates_equal_scikit_learn(audit):
    y, score, group, _ = audit
    result = evaluate(y, score, {"tone": group}, n_boot=0, tests=False, case_mix=False, power=False)
    pred = (score >= 0.5).astype(int)
    assert result.estimate("accuracy") == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert result.estimate("auroc") == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert result.estimate("brier") == pytest.approx(skm.brier_score_loss(y, score), abs=1e-12)
