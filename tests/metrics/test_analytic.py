"""Analytic pieces against statsmodels/scipy: Wilson, Newcombe, p-value
adjustment, chi-square/Fisher and permutation tests, power, case mix."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from fairderm.errors import InputError
from fairderm.metrics import (
    adjust_pvalues,
    case_mix_adjustment,
    evaluate,
    minimum_detectable_difference,
    newcombe_interval,
    wilson_interval,
)
from fairderm.metrics._power import design_effect
from fairderm.metrics._significance import proportion_test


@pytest.mark.parametrize("successes,n", [(0, 10), (3, 10), (10, 10), (47, 130), (999, 1000)])
def test_wilson_interval_equals_statsmodels(successes, n):
    ours = wilson_interval(successes, n)
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert ours.low == pytest.approx(low, abs=1e-12) and ours.high == pytest.approx(high, abs=1e-12)


def test_wilson_interval_is_vectorised_and_nan_for_no_trials():
    ours = wilson_interval(np.array([1, 0]), np.array([4, 0]), confidence=0.9)
    low, high = proportion_confint(1, 4, alpha=0.1, method="wilson")
    assert ours.low[0] == pytest.approx(low) and ours.high[0] == pytest.approx(high)
    assert np.isnan(ours.low[1]) and np.isnan(ours.estimate[1])


@pytest.mark.parametrize("counts", [(56, 70, 48, 80), (9, 10, 3, 10), (0, 25, 4, 30)])
def test_newcombe_interval_equals_statsmodels(counts):
    s1, n1, s2, n2 = counts
    ours = newcombe_interval(s1, n1, s2, n2)
    low, high = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", compare="diff")
    assert ours.low == pytest.approx(low, abs=1e-10) and ours.high == pytest.approx(high, abs=1e-10)


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), Table II example (a): 56/70 vs 48/80 -> 0.0524 to 0.3339.
    interval = newcombe_interval(56, 70, 48, 80)
    assert interval.low == pytest.approx(0.0524, abs=5e-5) and interval.high == pytest.approx(0.3339, abs=5e-5)


ADJUSTMENTS = [("holm", "holm"), ("fdr_bh", "fdr_bh"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")]


@pytest.mark.parametrize("method,name", ADJUSTMENTS)
def test_adjusted_pvalues_equal_multipletests_and_keep_nan(method, name):
    raw = np.array([0.01, np.nan, 0.04, 0.03, 0.5, np.inf])
    ours = adjust_pvalues(raw, method)
    expected = multipletests(raw[np.isfinite(raw)], method=name)[1]
    np.testing.assert_array_equal(ours[np.isfinite(raw)], expected)
    assert np.isnan(ours[1]) and np.isnan(ours[5])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.01, 0.05, 1.0]), st.just(float("nan"))),
             min_size=1, max_size=40),
    st.sampled_from(ADJUSTMENTS),
)
def test_adjusted_pvalues_are_multipletests_bit_for_bit(raw, adjustment):
    # ties (the sampled values) and NaN included: statsmodels' numbers, not merely close ones
    method, name = adjustment
    raw = np.array(raw)
    ours = adjust_pvalues(raw, method)
    finite = np.isfinite(raw)
    assert np.isnan(ours[~finite]).all()
    if finite.any():
        # statsmodels' Holm runs a full garbage collection on every call (a second in a loaded test process); it
        # changes no number
        with mock.patch("gc.collect", return_value=0):
            expected = multipletests(raw[finite], method=name)[1]
        np.testing.assert_array_equal(ours[finite], expected)


def test_no_adjustment_keeps_the_raw_pvalues():
    raw = np.array([0.2, np.nan, 0.01])
    np.testing.assert_array_equal(adjust_pvalues(raw, "none"), raw)


def test_unknown_adjustment_is_rejected():
    with pytest.raises(InputError, match="p-value adjustment"):
        adjust_pvalues([0.1], "sidak-ish")


def test_proportion_test_uses_chi_square_with_large_cells_and_fisher_with_small():
    large = proportion_test([80, 60, 70], [100, 100, 100], seed=0)
    expected = stats.chi2_contingency(np.array([[80, 20], [60, 40], [70, 30]]), correction=False)
    assert large["test"] == "chi2" and large["p_value"] == pytest.approx(expected.pvalue)
    small = proportion_test([9, 3], [10, 10], seed=0)
    assert small["test"] == "fisher"
    assert small["p_value"] == pytest.approx(stats.fisher_exact([[9, 1], [3, 7]]).pvalue)
    several = proportion_test([9, 3, 1], [10, 10, 4], seed=0)
    assert several["test"] == "fisher_mc" and 0 < several["p_value"] < 0.05
    assert proportion_test([5, 5], [5, 5], seed=0)["p_value"] == 1.0


def test_tests_find_a_real_difference_and_adjust_over_the_family(binary):
    result = evaluate(binary.y, binary.score, binary.group, n_boot=0, n_perm=200, case_mix=False, power=False)
    tests = result.tests.set_index("metric")
    assert tests.loc["sensitivity", "test"] == "chi2" and tests.loc["auroc", "test"] == "permutation"
    assert tests.loc["sensitivity", "p_value"] < 0.01  # V-VI scores are shifted down
    np.testing.assert_allclose(result.tests["p_adjusted"], adjust_pvalues(result.tests["p_value"], "holm"))
    assert (result.tests["p_adjusted"] >= result.tests["p_value"] - 1e-15).all()


@pytest.mark.slow
def test_permutation_test_is_calibrated_when_groups_do_not_differ():
    rng = np.random.default_rng(11)
    pvalues = []
    for _ in range(40):
        y = rng.integers(0, 2, 200)
        score = np.clip(rng.normal(0.3 + 0.3 * y, 0.25), 0, 1)
        group = rng.choice(["a", "b", "c"], 200)
        result = evaluate(y, score, group, metrics=["auroc"], n_boot=0, n_perm=99, p_adjust="none",
                          seed=int(rng.integers(1 << 30)), case_mix=False, power=False)
        pvalues.append(result.tests["p_value"].item())
    # Uniform p-values: about 5% below 0.05 and a mean near 0.5.
    assert np.mean(np.asarray(pvalues) < 0.05) <= 0.15
    assert 0.35 < np.mean(pvalues) < 0.65


def test_clustered_tests_permute_whole_clusters(binary):
    result = evaluate(binary.y, binary.score, binary.group, cluster=binary.patient, n_boot=0, n_perm=100,
                      case_mix=False, power=False)
    assert set(result.tests["test"]) == {"permutation"}
    assert result.tests["note"].str.contains("clusters").all()


@pytest.mark.parametrize("n,n_other", [(30, 970), (200, 800), (1000, 1000)])
def test_minimum_detectable_difference_has_80_percent_power_in_statsmodels(n, n_other):
    baseline = 0.85
    mdd = minimum_detectable_difference(n, baseline, n_other)
    h = 2 * np.arcsin(np.sqrt(baseline)) - 2 * np.arcsin(np.sqrt(baseline - mdd))
    power = NormalIndPower().power(effect_size=h, nobs1=n, alpha=0.05, ratio=n_other / n)
    assert power == pytest.approx(0.8, abs=1e-4)


def test_minimum_detectable_difference_grows_with_clustering_and_shrinks_with_size():
    assert minimum_detectable_difference(100, 0.8, 900, design_effect=2.0) > minimum_detectable_difference(
        100, 0.8, 900)
    assert minimum_detectable_difference(400, 0.8, 900) < minimum_detectable_difference(100, 0.8, 900)
    assert np.isnan(minimum_detectable_difference(3, 0.05, 10))


def test_design_effect_is_one_without_and_above_one_with_correlation():
    rng = np.random.default_rng(12)
    cluster = np.repeat(np.arange(100), 5)
    independent = (rng.random(500) < 0.7).astype(float)
    correlated = np.repeat(rng.random(100) < 0.7, 5).astype(float)
    ones = np.ones(500)
    assert design_effect(independent, ones, cluster) < 1.5
    assert design_effect(correlated, ones, cluster) == pytest.approx(5.0, rel=0.1)


def test_power_rows_report_group_against_the_rest(binary):
    result = evaluate(binary.y, binary.score, binary.group, n_boot=0, tests=False, case_mix=False)
    power = result.power.set_index(["group", "metric"])
    row = power.loc[("group=V-VI", "accuracy")]
    assert row["comparator"] == "rest" and row["n"] == (binary.group == "V-VI").sum()
    assert row["n_comparator"] == (binary.group != "V-VI").sum() and 0 < row["mdd"] < 0.3
    assert power.loc[("group=V-VI", "sensitivity"), "mdd"] > row["mdd"]  # fewer positives


def _case_mix_data(seed: int = 13, n: int = 900):
    rng = np.random.default_rng(seed)
    patient = rng.integers(0, 300, n)
    tone = np.asarray(["I-II", "III-IV", "V-VI"])[patient % 3]
    diagnosis = rng.choice(["nevus", "melanoma", "bcc"], n)
    age = rng.integers(20, 85, n)
    logit = 1.0 - 0.6 * (tone == "V-VI") + 0.5 * (diagnosis == "nevus") - 0.01 * (age - 50)
    correct = rng.random(n) < 1 / (1 + np.exp(-logit))
    return correct, tone, diagnosis, age, patient


def test_case_mix_odds_ratios_equal_a_direct_statsmodels_fit():
    correct, tone, diagnosis, age, patient = _case_mix_data()
    table = case_mix_adjustment(correct, tone, diagnosis, covariates=pd.DataFrame({"age": age}),
                                cluster=patient, reference="I-II", attribute="tone")
    design = pd.get_dummies(pd.DataFrame({"tone": tone, "diagnosis": diagnosis}), drop_first=True, dtype=float)
    design["age"] = age
    fit = sm.GLM(correct.astype(float), sm.add_constant(design), family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": patient})
    row = table.set_index("group").loc["V-VI"]
    assert row["adjusted_or"] == pytest.approx(np.exp(fit.params["tone_V-VI"]), rel=1e-6)
    assert row["ci_low"] == pytest.approx(np.exp(fit.conf_int().loc["tone_V-VI", 0]), rel=1e-6)
    assert row["p_value"] == pytest.approx(fit.pvalues["tone_V-VI"], rel=1e-6)
    assert row["adjusted_or"] < 1 and row["flag"] == "ok" and row["se"] == "cluster-robust"
    assert row["adjusted_for"] == ["diagnosis", "age"]


def test_case_mix_flags_a_group_that_is_always_right():
    correct, tone, diagnosis, _, _ = _case_mix_data()
    correct = correct.copy()
    correct[tone == "V-VI"] = True
    table = case_mix_adjustment(correct, tone, diagnosis, reference="I-II").set_index("group")
    assert table.loc["V-VI", "flag"] == "separation" and np.isnan(table.loc["V-VI", "adjusted_or"])
    assert table.loc["III-IV", "flag"] == "ok"


def test_evaluate_reports_case_mix_beside_the_raw_disparities():
    correct, tone, diagnosis, age, patient = _case_mix_data()
    y = np.isin(diagnosis, ["melanoma", "bcc"]).astype(int)
    score = np.where(correct, y, 1 - y) * 0.6 + 0.2
    result = evaluate(y, score, {"tone": tone}, cluster=patient, covariates=pd.DataFrame({"age": age}),
                      n_boot=0, tests=False, power=False, reference={"tone": "I-II"})
    table = result.case_mix.set_index("group")
    assert list(table.index) == ["tone=III-IV", "tone=V-VI"]
    assert (table["reference"] == "tone=I-II").all()
    assert table.loc["tone=V-VI", "raw_or"] < 1
