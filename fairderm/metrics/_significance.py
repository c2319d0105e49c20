"""Is there any difference across groups? Tests per metric and attribute.

* proportions (accuracy, top-k accuracy, sensitivity, specificity, PPV, NPV,
  selection rate) on independent cases: Pearson's chi-square test of
  homogeneity of the groups x (success, failure) table; when an expected count
  is below 5, Fisher's exact test (2 groups) or its Monte Carlo version over
  tables with the observed margins (more groups);
* every other metric (AUROC, ECE, Brier, F1, balanced accuracy, mean scores),
  and every metric on clustered data: a permutation test of the max-min range
  across groups, permuting group labels over cases or, with clusters, over
  whole clusters (Good 2005). ECE under permutation uses equal-mass bins fixed
  from the pooled sample.

p-values are adjusted over all tests of an evaluation with Holm (1979;
confirmatory) or Benjamini-Hochberg (1995; exploratory).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from fairderm.errors import InputError

P_ADJUST_METHODS = {"holm": "holm", "fdr_bh": "fdr_bh", "bh": "fdr_bh", "bonferroni": "bonferroni", "none": None}
FISHER_RESAMPLES = 9999


def adjust_pvalues(pvalues: ArrayLike, method: str = "holm") -> np.ndarray:
    """Multiplicity-adjusted p-values (NaN entries are left out and stay NaN).

    Parameters
    ----------
    pvalues
        Raw p-values.
    method
        ``holm`` (Holm 1979, family-wise error), ``fdr_bh`` or ``bh``
        (Benjamini & Hochberg 1995, false discovery rate), ``bonferroni`` or
        ``none``. The numbers are statsmodels' ``multipletests``, bit for bit
        (tests/metrics/test_analytic.py); computed here because its Holm runs a
        full garbage collection on every call, tenths of a second in a process
        that holds a model.
    """
    if method not in P_ADJUST_METHODS:
        raise InputError(f"unknown p-value adjustment {method!r}; use one of {sorted(P_ADJUST_METHODS)}",
                         column="p_adjust")
    values = np.asarray(pvalues, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if P_ADJUST_METHODS[method] is None:
        out[finite] = values[finite]
        return out
    raw = values[finite]
    order = np.argsort(raw)
    adjusted = np.empty_like(raw)
    adjusted[order] = _adjust_sorted(raw[order], P_ADJUST_METHODS[method])
    out[finite] = adjusted
    return out


def _adjust_sorted(ascending: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values of p-values in ascending order (tied p-values get equal values in any tie order)."""
    m = len(ascending)
    if method == "bonferroni":
        adjusted = ascending * float(m)
    elif method == "holm":
        # step-down: the k-th smallest times (m - k + 1), made non-decreasing
        adjusted = np.maximum.accumulate(ascending * np.arange(m, 0, -1))
    else:
        # Benjamini-Hochberg step-up: the k-th smallest times m / k, made non-decreasing from the largest down
        adjusted = np.minimum.accumulate((ascending / (np.arange(1, m + 1) / float(m)))[::-1])[::-1]
    return np.minimum(adjusted, 1.0)


def proportion_test(successes: Sequence[int], trials: Sequence[int], *, seed: int) -> dict[str, object]:
    """Chi-square, or Fisher's exact test for small expected counts, on a groups x 2 table."""
    successes = np.asarray(successes, dtype=np.int64)
    trials = np.asarray(trials, dtype=np.int64)
    table = np.stack([successes, trials - successes], axis=1)
    table = table[trials > 0]
    if table.shape[0] < 2:
        return {"test": "none", "statistic": math.nan, "dof": None, "p_value": math.nan,
                "note": "fewer than two groups with cases"}
    column_totals = table.sum(axis=0)
    if (column_totals == 0).any():
        return {"test": "chi2", "statistic": 0.0, "dof": table.shape[0] - 1, "p_value": 1.0,
                "note": "no variation: every case is a success (or every one a failure)"}
    expected = table.sum(axis=1, keepdims=True) * column_totals[None, :] / table.sum()
    from scipy import stats

    if expected.min() >= 5:
        result = stats.chi2_contingency(table, correction=False)
        return {"test": "chi2", "statistic": float(result.statistic), "dof": int(result.dof),
                "p_value": float(result.pvalue), "note": ""}
    if table.shape[0] == 2:
        result = stats.fisher_exact(table)
        return {"test": "fisher", "statistic": float(result.statistic), "dof": None,
                "p_value": float(result.pvalue), "note": "expected count < 5"}
    method = stats.MonteCarloMethod(n_resamples=FISHER_RESAMPLES, rng=np.random.default_rng(seed))
    result = stats.fisher_exact(table, method=method)
    return {"test": "fisher_mc", "statistic": float(np.ravel(result.statistic)[0]), "dof": None,
            "p_value": float(np.ravel(result.pvalue)[0]),
            "note": f"expected count < 5; Monte Carlo over {FISHER_RESAMPLES} tables with fixed margins"}


def permutation_pvalue(observed: np.ndarray, permuted: np.ndarray) -> np.ndarray:
    """(1 + #{T* >= T}) / (1 + P) per column (Phipson & Smyth 2010); NaN where T is NaN."""
    valid = np.isfinite(permuted)
    tolerance = 1e-12 * np.maximum(1.0, np.abs(observed))
    with np.errstate(invalid="ignore"):
        exceed = (valid & (permuted >= observed[None, :] - tolerance[None, :])).sum(axis=0)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (1.0 + exceed) / (1.0 + count)
    return np.where(np.isfinite(observed) & (count > 0), p, np.nan)


def group_range(values: np.ndarray) -> np.ndarray:
    """max - min over groups (last axis), ignoring groups where the metric is undefined."""
    finite = np.isfinite(values)
    spread = np.where(finite, values, -np.inf).max(axis=-1) - np.where(finite, values, np.inf).min(axis=-1)
    return np.where(finite.sum(axis=-1) >= 2, spread, np.nan)
