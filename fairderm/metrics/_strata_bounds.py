"""Ranges of the metrics by true group without labels, under an error model (see :mod:`fairderm.metrics._strata`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fairderm.errors import InputError
from fairderm.metrics import _catalogue as cat
from fairderm.metrics._inputs import MISSING, Cases, ModelOutput
from fairderm.metrics._strata_inputs import (
    BOUNDED_SUFFIX,
    StrataErrorModel,
    StrataTables,
    group_name,
    resample_counts,
)

# ---------------------------------------------------------------------------
# Bounds without labels.

#: Rate metrics as (counts for, counts against) cells of the event's confusion
#: (tp, fp, fn, tn); cells in neither are outside the denominator.
_RATE_CELLS = {
    "sensitivity": ((0,), (2,)),
    "specificity": ((3,), (1,)),
    "ppv": ((0,), (1,)),
    "npv": ((3,), (2,)),
    "selection_rate": ((0, 1), (2, 3)),
}


def _outcome_classes(metric: cat.MetricDef, cases: Cases, model: ModelOutput,
                     top_k: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(counts for, counts against) indicators per case and the weight of 'for' cases, or None (no bound)."""
    family = metric.family
    if family == "accuracy":
        correct = model.pred == cases.y
        return correct, ~correct, 1.0
    if family == "top_k_accuracy" and model.proba is not None:
        true_p = model.proba[np.arange(cases.n), cases.y]
        hit = (model.proba > true_p[:, None]).sum(axis=1) < top_k
        return hit, ~hit, 1.0
    if family in _RATE_CELLS or family == "f1":
        if metric.event == "set":
            actual, predicted = cases.y_pos, model.pred_pos
        else:
            actual, predicted = cases.y == metric.event, model.pred == metric.event
        cell = np.where(actual, np.where(predicted, 0, 2), np.where(predicted, 1, 3))
        if family == "f1":
            return cell == 0, (cell == 1) | (cell == 2), 2.0
        good, bad = _RATE_CELLS[family]
        return np.isin(cell, good), np.isin(cell, bad), 1.0
    return None


def _true_shares(estimated_counts: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """(B, E, T) shares of true groups within each estimated group, by Bayes' rule.

    The prior of the true groups solves P(estimated) = prior @ confusion
    (clipped to the simplex).
    """
    total = estimated_counts.sum(axis=1, keepdims=True)
    observed = estimated_counts / np.where(total > 0, total, 1.0)
    prior = observed @ np.linalg.inv(confusion)
    prior = np.clip(prior, 0.0, None)
    prior /= np.where(prior.sum(axis=1, keepdims=True) > 0, prior.sum(axis=1, keepdims=True), 1.0)
    joint = prior[:, None, :] * confusion.T[None, :, :]
    marginal = joint.sum(axis=2, keepdims=True)
    return joint / np.where(marginal > 0, marginal, 1.0)


def _rate_bounds(good: np.ndarray, neutral: np.ndarray, bad: np.ndarray, capacity: np.ndarray,
                 good_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) lower and upper bound of a rate over allocations.

    ``good``, ``neutral``, ``bad``: (B, E) weighted counts per estimated
    group; ``capacity``: (B, E, T) cases of each true group in each estimated group.
    Filling a true group with 'for' cases first, then neutral ones, then
    'against' ones maximises its numerator and minimises its denominator's
    'against' part at once; the reverse order gives the minimum.
    """
    g, z, b = good[:, :, None], neutral[:, :, None], bad[:, :, None]

    def fill(first: np.ndarray, second: np.ndarray, room: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        take_first = np.minimum(first, room)
        take_second = np.minimum(second, room - take_first)
        return take_first, take_second, room - take_first - take_second

    up_good, _, up_bad = fill(g, z, capacity)
    down_bad, _, down_good = fill(b, z, capacity)

    def rate(numerator: np.ndarray, against: np.ndarray) -> np.ndarray:
        top = good_weight * numerator.sum(axis=1)
        bottom = top + against.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)

    return rate(down_good, down_bad), rate(up_good, up_bad)


def bounded_tables(
    cases: Cases,
    model: ModelOutput,
    metrics: list[cat.MetricDef],
    attribute_name: str,
    error_model: StrataErrorModel,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    top_k: int,
) -> StrataTables:
    """Ranges of every rate metric, and of the differences between groups, by true group."""
    attribute = next(a for a in cases.attributes if a.name == attribute_name)
    values = tuple(group.split("=", 1)[1] for group in attribute.groups)
    # a group of the model that no case was estimated in is an empty estimated group (a small cohort's test split
    # with no III-IV estimate); a group the model does not know has no error rates to bound it with
    unknown = sorted({v for v in values if v != MISSING} - set(error_model.groups))
    if unknown:
        raise InputError(f"the strata error model has no error rates for the groups {unknown} of {attribute_name!r} "
                         f"(its groups: {list(error_model.groups)})", column="strata_error")
    estimated = np.full(cases.n, -1, dtype=np.int64)
    for position, group in enumerate(error_model.groups):
        if group in values:
            estimated[attribute.codes == values.index(group)] = position
    measured = estimated >= 0
    n_est = len(error_model.groups)
    name = attribute_name + BOUNDED_SUFFIX
    group_names = [group_name(name, v) for v in error_model.groups]
    rng = np.random.default_rng(seed)
    # cases resampled within estimated group; patients (a patient's images may span groups) in one stratum
    strata = np.where(measured, estimated, n_est) if cases.cluster is None else np.zeros(cases.n, dtype=np.int64)
    counts = np.ones((1, cases.n))
    if n_boot:
        counts = np.vstack([counts, resample_counts(rng, strata, cases.cluster, n_boot)])
    counts = counts * measured[None, :]
    onehot = np.zeros((cases.n, n_est))
    onehot[np.flatnonzero(measured), estimated[measured]] = 1.0
    estimated_counts = counts @ onehot
    capacity = _true_shares(estimated_counts, error_model.confusion) * estimated_counts[:, :, None]
    group_rows, disparity_rows, unbounded = [], [], []
    for metric in metrics:
        classes = _outcome_classes(metric, cases, model, top_k)
        if classes is None:
            unbounded.append(metric.name)
            continue
        good, bad, good_weight = classes
        neutral = ~(good | bad)
        lower, upper = _rate_bounds(counts @ (onehot * good[:, None]), counts @ (onehot * neutral[:, None]),
                                    counts @ (onehot * bad[:, None]), capacity, good_weight)
        size = capacity[0].sum(axis=0)
        for t in range(n_est):
            low, high = _outer(lower[:, t], upper[:, t], confidence)
            group_rows.append({"attribute": name, "group": group_names[t], "metric": metric.name,
                               "estimate": math.nan, "ci_low": low, "ci_high": high,
                               "bound_low": float(lower[0, t]), "bound_high": float(upper[0, t]),
                               "n": int(round(size[t])), "n_pos": None,
                               "flag": "ok" if math.isfinite(low) and math.isfinite(high) else "undefined",
                               "basis": "bounded"})
        disparity_rows.extend(_bounded_disparities(name, metric, group_names, lower, upper, confidence))
    config = {
        "attribute": attribute_name,
        "bounded_attribute": name,
        "basis": "bounded",
        "method": ("sharp range over every allocation of cases to true groups consistent with the error model "
                   "(Manski 2003; Kallus, Mao & Zhou 2020); sampling error: 2.5% quantile of the lower and "
                   "97.5% of the upper bound over bootstrap replicates"),
        "error_model": error_model.to_dict(),
        "not_bounded": unbounded,
        "n_measured": int(measured.sum()),
        "n_abstained": int((~measured).sum()),
    }
    return StrataTables(pd.DataFrame(group_rows), pd.DataFrame(disparity_rows),
                        pd.DataFrame(columns=["metric"]), config)


def _outer(lower: np.ndarray, upper: np.ndarray, confidence: float) -> tuple[float, float]:
    """Lower bound's lower quantile and upper bound's upper quantile over replicates (row 0 is the data)."""
    alpha = (1.0 - confidence) / 2.0
    low_draws, high_draws = (lower[1:], upper[1:]) if lower.size > 1 else (lower, upper)
    low_draws, high_draws = low_draws[np.isfinite(low_draws)], high_draws[np.isfinite(high_draws)]
    if not low_draws.size or not high_draws.size:
        return math.nan, math.nan
    return float(min(np.quantile(low_draws, alpha), lower[0])), float(max(np.quantile(high_draws, 1 - alpha),
                                                                          upper[0]))


def _bounded_disparities(name: str, metric: cat.MetricDef, group_names: list[str], lower: np.ndarray,
                         upper: np.ndarray, confidence: float) -> list[dict[str, Any]]:
    """diff_vs_ref (against the lightest group) and the max-min gap, as ranges."""
    rows = []
    n_groups = lower.shape[1]
    reference = 0
    base = {"attribute": name, "metric": metric.name, "basis": "bounded", "flag": "ok"}
    for t in range(1, n_groups):
        low_draws = lower[:, t] - upper[:, reference]
        high_draws = upper[:, t] - lower[:, reference]
        low, high = _outer(low_draws, high_draws, confidence)
        rows.append({**base, "kind": "diff_vs_ref", "group": group_names[t], "reference": group_names[reference],
                     "estimate": math.nan, "ci_low": low, "ci_high": high,
                     "bound_low": float(low_draws[0]), "bound_high": float(high_draws[0])})
    # max - min over groups lies between the largest certain pairwise separation and the largest possible one.
    pair_high = np.stack([upper[:, a] - lower[:, b] for a in range(n_groups) for b in range(n_groups) if a != b])
    pair_low = np.stack([lower[:, a] - upper[:, b] for a in range(n_groups) for b in range(n_groups) if a != b])
    gap_high = pair_high.max(axis=0)
    gap_low = np.maximum(pair_low.max(axis=0), 0.0)
    low, high = _outer(gap_low, gap_high, confidence)
    rows.append({**base, "kind": "gap", "group": None, "reference": None, "estimate": math.nan,
                 "ci_low": max(low, 0.0), "ci_high": high, "bound_low": float(gap_low[0]),
                 "bound_high": float(gap_high[0])})
    return rows

