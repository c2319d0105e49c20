"""Metrics by true group from estimated groups plus validation labels (see :mod:`fairderm.metrics._strata`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import chdtrc  # the chi-square survival function, as scipy.stats.chi2.sf computes it

from fairderm.metrics import _catalogue as cat
from fairderm.metrics._bootstrap import GroupStats, RankPlan, interval
from fairderm.metrics._disparity import GroupSeries, Statistic, difference, equalized_odds, extremes, gap, log_ratio
from fairderm.metrics._engine import target_arrays
from fairderm.metrics._inputs import Cases, ModelOutput
from fairderm.metrics._strata_inputs import (
    BLOCK,
    CORRECTED_SUFFIX,
    MIN_LABELLED_PER_GROUP,
    StrataTables,
    TrueGroups,
    group_name,
    resample_counts,
)

# ---------------------------------------------------------------------------
# The membership model p_g(x) = P(true group g | estimated group).

#: Pseudo-count that shrinks an estimated group's shares towards the overall ones.
PRIOR_CASES = 0.5
#: Values of one slice of resampled membership weights.
_SLICE_VALUES = 1 << 22


def membership_probabilities(groups: TrueGroups, count: np.ndarray) -> np.ndarray:
    """(..., n, G) P(true group | estimated group) for every case, from the labelled cases of each resample.

    ``count`` is ``(n,)`` or ``(B, n)``: each case's multiplicity in one
    resample or in each of ``B``. The design-weighted shares (weights
    ``count / pi``) of the true groups among each estimated group's labelled
    cases, shrunk towards the overall shares by :data:`PRIOR_CASES` cases; an
    estimated group without labelled cases gets the overall shares. Outcome
    terms (label, correctness, score) were tried as further predictors: they
    cannot bias the estimate (the correction term removes any model error)
    but, fitted on ~150 labels, their noise widened the intervals in the
    simulation (docs/metrics.md).
    """
    n_estimated, n_true = len(groups.estimated_values), len(groups.true_values)
    rows = count.reshape(-1, count.shape[-1])
    labelled = np.flatnonzero(groups.labelled)
    cell = groups.estimated[labelled] * n_true + groups.true[labelled]
    weight = rows[:, labelled] / groups.inclusion[labelled]  # 0 for a case a resample left out
    # every resample's (estimated, true) table at once, each cell summed in case order
    offset = np.arange(len(rows))[:, None] * (n_estimated * n_true)
    table = np.bincount((offset + cell).ravel(), weights=weight.ravel(),
                        minlength=len(rows) * n_estimated * n_true).reshape(len(rows), n_estimated, n_true)
    overall = table.sum(axis=1) / table.reshape(len(rows), -1).sum(axis=1)[:, None]
    shares = (table + PRIOR_CASES * overall[:, None, :]) / (table.sum(axis=2, keepdims=True) + PRIOR_CASES)
    return shares[:, groups.estimated, :].reshape(*count.shape, n_true)


def membership_weights(groups: TrueGroups, count: np.ndarray) -> np.ndarray:
    """(..., G, n) augmented inverse-probability membership weights for one resample or a block of them.

    ``count`` is each case's multiplicity, ``(n,)`` (ones for the data) or
    ``(B, n)`` for ``B`` resamples.
    """
    labelled = groups.labelled
    prob = membership_probabilities(groups, count)
    observed = np.zeros(prob.shape[-2:])
    observed[np.flatnonzero(labelled), groups.true[labelled]] = 1.0
    scale = np.where(labelled, 1.0 / np.where(labelled, groups.inclusion, 1.0), 0.0)
    weights = prob + scale[:, None] * (observed - prob)
    return np.swapaxes(weights * count[..., :, None], -1, -2)


# ---------------------------------------------------------------------------
# Resampling.


def _resampling_strata(groups: TrueGroups, cluster: np.ndarray | None) -> np.ndarray:
    """Stratum of each case for the bootstrap.

    Cases: estimated group x labelled, so that every replicate keeps the
    validation sample's size in each estimated group. Clusters (patients): a
    patient with any labelled image is resampled among such patients, the
    others among theirs.
    """
    labelled = groups.labelled.astype(np.int64)
    if cluster is None:
        return groups.estimated * 2 + labelled
    any_labelled = np.zeros(int(cluster.max()) + 1, dtype=np.int64)
    np.maximum.at(any_labelled, cluster, labelled)
    return any_labelled[cluster]


# ---------------------------------------------------------------------------
# Weighted metrics.


@dataclass
class _Statistics:
    """Case-level feature matrix and AUROC plans over every case, for weighted metrics."""

    stats: GroupStats
    metrics: list[cat.MetricDef]
    layout: cat.Layout
    positive: tuple[int, ...]

    @classmethod
    def build(cls, cases: Cases, model: ModelOutput, metrics: list[cat.MetricDef], layout: cat.Layout,
              n_bins: int) -> _Statistics:
        rows = np.arange(cases.n)
        calibration = cat.calibration_inputs(cases, model)
        edges = None if calibration is None else cat.equal_mass_edges(calibration[0], n_bins)
        features = cat.features(layout, cases, model, rows, edges)
        plans, scores = [], []
        for target in layout.targets:
            score, positive = target_arrays(cases, model, target)
            plans.append(RankPlan.build(score, positive))
            scores.append(score)
        return cls(GroupStats(slice(None), features, features, tuple(plans), tuple(scores)), metrics, layout,
                   cases.positive)

    def values(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, K) metric values and (rows, width) weighted statistics for rows of case weights."""
        linear, auc = self.stats.statistics_full(weights)
        values = np.stack([cat.metric_values(m, linear, auc, self.layout, self.positive) for m in self.metrics],
                          axis=1)
        return values, linear


def _finish(statistic: Statistic, confidence: float) -> tuple[float, float, float]:
    """(estimate, ci_low, ci_high) from a percentile interval; ratios back on their natural scale."""
    low, high = interval(statistic.replicates, statistic.estimate, method="percentile", confidence=confidence)
    if statistic.log:
        with np.errstate(invalid="ignore", over="ignore"):
            return tuple(math.exp(v) if math.isfinite(v) else math.nan
                         for v in (statistic.estimate, low, high))  # type: ignore[return-value]
    return statistic.estimate, low, high


def corrected_tables(
    cases: Cases,
    model: ModelOutput,
    metrics: list[cat.MetricDef],
    layout: cat.Layout,
    groups: TrueGroups,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    min_group_size: int,
    min_positives: int,
    n_bins: int,
    reference: str | None,
) -> StrataTables:
    """Metrics, disparities and tests by true group from estimated groups plus partial labels."""
    attribute = groups.attribute + CORRECTED_SUFFIX
    values_of = groups.true_values
    n_groups = len(values_of)
    stats = _Statistics.build(cases, model, metrics, layout, n_bins)
    labelled = groups.labelled
    if groups.complete:
        basis = "labelled"
        point_weights = np.zeros((n_groups, cases.n))
        point_weights[groups.true, np.arange(cases.n)] = 1.0
    else:
        basis = "corrected"
        point_weights = membership_weights(groups, np.ones(cases.n))
    estimates, point_linear = stats.values(point_weights)
    rng = np.random.default_rng(seed)
    strata = _resampling_strata(groups, cases.cluster)
    replicates = np.full((n_groups, len(metrics), n_boot), np.nan)
    for lo in range(0, n_boot, BLOCK):
        hi = min(n_boot, lo + BLOCK)
        counts = resample_counts(rng, strata, cases.cluster, hi - lo)
        if basis == "labelled":
            block = counts[:, None, :] * point_weights[None, :, :]
        else:
            # in slices of resamples, each (resamples, G, n) array held to some 32 MB
            step = max(1, _SLICE_VALUES // (n_groups * cases.n))
            block = np.concatenate([membership_weights(groups, counts[k:k + step])
                                    for k in range(0, len(counts), step)])
        values, _ = stats.values(block.reshape(-1, cases.n))
        replicates[:, :, lo:hi] = values.reshape(hi - lo, n_groups, len(metrics)).transpose(1, 2, 0)

    labelled_per_group = np.bincount(groups.true[labelled], minlength=n_groups)
    rows, flags = [], np.empty((n_groups, len(metrics)), dtype=object)
    for g, value in enumerate(values_of):
        for k, metric in enumerate(metrics):
            counts_gk = cat.metric_counts(metric, point_linear[g], layout, cases.positive)
            estimate = float(estimates[g, k])
            valid = np.isfinite(replicates[g, k]).sum()
            if counts_gk.n <= 0:
                flag = "empty"
            elif not math.isfinite(estimate):
                flag = "undefined"
            elif (counts_gk.n < min_group_size or labelled_per_group[g] < MIN_LABELLED_PER_GROUP
                  or (counts_gk.support is not None and counts_gk.support < min_positives)
                  or (n_boot and valid < 0.99 * n_boot)):
                flag = "insufficient"
            else:
                flag = "ok"
            flags[g, k] = flag
            low, high = (interval(replicates[g, k], estimate, method="percentile", confidence=confidence)
                         if flag not in ("empty", "undefined") else (math.nan, math.nan))
            rows.append({"attribute": attribute, "group": group_name(attribute, value), "metric": metric.name,
                         "estimate": estimate if flag != "empty" else math.nan, "ci_low": low, "ci_high": high,
                         "n": max(counts_gk.n, 0), "n_pos": counts_gk.n_pos, "flag": flag, "basis": basis})
    group_frame = pd.DataFrame(rows)

    ref = _reference_index(values_of, reference, point_weights)
    disparities = _corrected_disparities(attribute, values_of, metrics, estimates, replicates, flags, ref,
                                         confidence, basis)
    tests = _wald_tests(attribute, values_of, metrics, estimates, replicates, flags, ref)
    confusion = _confusion_counts(groups)
    config = {
        "attribute": groups.attribute,
        "corrected_attribute": attribute,
        "basis": basis,
        "method": ("labelled true groups used directly: every case is labelled" if basis == "labelled" else
                   "augmented inverse-probability weights with P(true group | estimated group) from the labelled "
                   "cases (Robins et al. 1994; Angelopoulos et al. 2023); percentile bootstrap re-estimating it"),
        "assumption": ("none beyond the labels" if basis == "labelled" else
                       "labelling depends on nothing but the recorded inclusion probabilities "
                       "(default: at random within estimated group)"),
        "n_labelled": int(labelled.sum()),
        "labelled_per_group": {v: int(c) for v, c in zip(values_of, labelled_per_group)},
        "inclusion_prob": groups.inclusion_source,
        "confusion": confusion,
        "agreement": _agreement(confusion),
        "interval": "percentile",
        "resampling": ("patients resampled within labelled / unlabelled" if cases.cluster is not None
                       else "cases resampled within estimated group x labelled"),
    }
    return StrataTables(group_frame, disparities, tests, config)


def _reference_index(values: Sequence[str], reference: str | None, weights: np.ndarray) -> int:
    if reference is not None:
        bare = str(reference).split("=", 1)[-1]
        if bare in values:
            return list(values).index(bare)
    return int(np.argmax(weights.sum(axis=1)))


def _confusion_counts(groups: TrueGroups) -> dict[str, dict[str, int]]:
    """Labelled cases: true group -> estimated group -> count."""
    labelled = groups.labelled
    out: dict[str, dict[str, int]] = {}
    for t, true_value in enumerate(groups.true_values):
        rows = labelled & (groups.true == t)
        out[true_value] = {e: int((groups.estimated[rows] == code).sum())
                           for code, e in enumerate(groups.estimated_values)}
    return out


def _agreement(confusion: Mapping[str, Mapping[str, int]]) -> float | None:
    total = sum(sum(row.values()) for row in confusion.values())
    if not total:
        return None
    return sum(row.get(true_value, 0) for true_value, row in confusion.items()) / total


def _corrected_disparities(attribute: str, values: Sequence[str], metrics: list[cat.MetricDef],
                           estimates: np.ndarray, replicates: np.ndarray, flags: np.ndarray, ref: int,
                           confidence: float, basis: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    names = [group_name(attribute, v) for v in values]
    index = {m.name: k for k, m in enumerate(metrics)}

    def series(k: int) -> GroupSeries:
        return GroupSeries(estimates[:, k], replicates[:, k], [None] * len(values), [], None)

    def add(base: dict[str, Any], statistic: Statistic | None) -> None:
        estimate, low, high = (math.nan,) * 3 if statistic is None else _finish(statistic, confidence)
        rows.append({"attribute": attribute, **base, "estimate": estimate, "ci_low": low, "ci_high": high,
                     "basis": basis})

    for k, metric in enumerate(metrics):
        eligible = [g for g in range(len(values)) if flags[g, k] == "ok"]
        for kind, builder in (("gap", gap), ("ratio", log_ratio)):
            base = {"metric": metric.name, "kind": kind, "group": None, "reference": None}
            if len(eligible) < 2:
                add({**base, "flag": "insufficient"}, None)
                continue
            worst, best = extremes(estimates[:, k], eligible, metric.higher_is_better)
            add({**base, "group": names[worst], "reference": names[best], "flag": "ok"},
                builder(series(k), eligible))
        for g in range(len(values)):
            if g == ref:
                continue
            ok = flags[g, k] == "ok" and flags[ref, k] == "ok"
            defined = np.isfinite(estimates[[g, ref], k]).all()
            add({"metric": metric.name, "kind": "diff_vs_ref", "group": names[g], "reference": names[ref],
                 "flag": "ok" if ok else "insufficient"},
                difference(series(k), g, ref) if defined else None)
    for tail in sorted({m.name.partition(":")[2] for m in metrics if m.family in ("sensitivity", "selection_rate")}):
        suffix = f":{tail}" if tail else ""
        sens, spec, rate = (index.get(f"{n}{suffix}") for n in ("sensitivity", "specificity", "selection_rate"))
        if sens is not None and spec is not None:
            eligible = [g for g in range(len(values)) if flags[g, sens] == "ok" and flags[g, spec] == "ok"]
            base = {"metric": f"equalized_odds{suffix}", "kind": "eod", "group": None, "reference": None}
            if len(eligible) < 2:
                add({**base, "flag": "insufficient"}, None)
            else:
                worst, best = extremes(estimates[:, sens], eligible, True)
                add({**base, "group": names[worst], "reference": names[best], "flag": "ok"},
                    equalized_odds(series(sens), series(spec), eligible))
        if rate is not None:
            eligible = [g for g in range(len(values)) if flags[g, rate] == "ok"]
            base = {"metric": f"selection_rate{suffix}", "kind": "dpd", "group": None, "reference": None}
            if len(eligible) < 2:
                add({**base, "flag": "insufficient"}, None)
            else:
                low, high = extremes(estimates[:, rate], eligible, True)
                add({**base, "group": names[low], "reference": names[high], "flag": "ok"},
                    gap(series(rate), eligible))
    return pd.DataFrame(rows)


def _wald_tests(attribute: str, values: Sequence[str], metrics: list[cat.MetricDef], estimates: np.ndarray,
                replicates: np.ndarray, flags: np.ndarray, ref: int) -> pd.DataFrame:
    """Any difference across true groups: Wald test on the bootstrap covariance of the differences to the reference."""
    rows = []
    for k, metric in enumerate(metrics):
        # Only groups flagged ok, as in the tests by estimated group.
        tested = [g for g in range(len(values)) if flags[g, k] == "ok" and math.isfinite(estimates[g, k])]
        note = None
        statistic, dof, p_value = math.nan, len(tested) - 1, math.nan
        if ref in tested and len(tested) >= 2:
            others = [g for g in tested if g != ref]
            contrast = estimates[others, k] - estimates[ref, k]
            draws = replicates[others, k] - replicates[ref, k]
            finite = np.isfinite(draws).all(axis=0)
            if finite.sum() > len(others) + 10:
                covariance = np.atleast_2d(np.cov(draws[:, finite]))
                try:
                    statistic = float(contrast @ np.linalg.solve(covariance, contrast))
                    p_value = float(chdtrc(dof, statistic))
                except np.linalg.LinAlgError:
                    note = "bootstrap covariance is singular"
            else:
                note = "too few finite bootstrap replicates"
        else:
            note = "fewer than two groups flagged ok, the reference among them"
        flag = "ok" if ref in tested and len(tested) >= 2 else "insufficient"
        rows.append({"metric": metric.name, "attribute": attribute, "test": "bootstrap_wald", "statistic": statistic,
                     "dof": dof, "p_value": p_value, "p_adjusted": math.nan, "method": None,
                     "n_groups": len(tested), "groups": [group_name(attribute, values[g]) for g in tested],
                     "n_perm": None, "flag": flag, "note": note})
    return pd.DataFrame(rows)

