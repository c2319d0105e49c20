"""Metrics by *true* skin-tone group when the strata are only estimated.

Colour-based skin-tone estimates agree with dermatologists' three Fitzpatrick
groups for about half of clinical photographs (Groh et al. 2022, CSCW: 0.41-0.49
for ITA methods, against 0.69-0.76 between two dermatologists). Stratifying by
the estimate mixes the groups and attenuates -- or hides -- a real disparity.
This module carries the strata's error into every group metric and disparity,
in one of two ways.

Corrected: validation labels for part of the cases
    ``true_groups`` holds the labelled true group of a validation sample and is
    missing elsewhere. Case i's membership of true group g is the augmented
    inverse-probability weight (Robins, Rotnitzky & Zhao 1994; the generalised
    regression estimator of survey sampling, Sarndal, Swensson & Wretman 1992;
    the same correction as prediction-powered inference, Angelopoulos et al.
    2023)::

        w_ig = p_g(x_i) + R_i / pi_i * (1[T_i = g] - p_g(x_i))

    where ``p_g(x)`` is P(true group g | estimated group), the labelled cases'
    shares weighted by ``1 / pi`` (:func:`membership_probabilities`); ``R_i``
    marks a labelled case and ``pi_i`` its inclusion probability. Every metric is then
    computed from the weighted case statistics exactly as for an ordinary group
    (the weights enter the confusion counts and the Mann-Whitney pairs of
    AUROC). The weighted sums are unbiased whatever ``p_g`` is, provided the
    inclusion probabilities are right; a good ``p_g`` only narrows the interval,
    which is why the estimate beats the labelled cases alone whenever the
    estimated group carries information about the true group: every case's
    outcome then speaks, through its estimated group, for the true groups.

    Assumption: given the recorded inclusion probabilities (default: labelled
    at random within estimated group, ``pi`` = labelled share of the estimated
    group), whether a case was labelled does not depend on its true group.

    Intervals are percentile intervals of a bootstrap that resamples labelled
    and unlabelled cases (or patients) separately, within estimated group for
    cases, and refits ``p_g`` in every replicate, so that they carry the
    validation sample's uncertainty as well as the cohort's ("bootstrap, then
    impute": Schomaker & Heumann 2018).

Bounded: no labels, an error model of the strata
    Given P(estimated group | true group) (default :meth:`StrataErrorModel.published`),
    the share of every true group within each estimated group follows from
    Bayes' rule, but which of an estimated group's cases belong to which true
    group is not identified. The sharp range of a rate metric of true group t
    over every allocation consistent with those shares (partial identification,
    Manski 2003; for fairness with an unobserved protected class, Kallus, Mao &
    Zhou 2020) is reached by filling t, in each estimated group, first with the
    cases that count for the metric (maximum) or against it (minimum); cases
    outside the metric's denominator come in between. The range of a
    difference between two groups is bounded by the differences of their
    ranges. Sampling error is added by taking the 2.5% quantile of the lower
    bound and the 97.5% quantile of the upper bound over bootstrap replicates
    (Imbens & Manski 2004 give a narrower construction; this one is
    conservative). Metrics that are not a rate of cases (AUROC, Brier, ECE,
    balanced accuracy, macro F1) get no bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from fairderm.errors import InputError
from fairderm.metrics import _catalogue as cat
from fairderm.metrics._bootstrap import GroupStats, RankPlan
from fairderm.metrics._disparity import GroupSeries, Statistic, difference, equalized_odds, extremes, gap, log_ratio
from fairderm.metrics._inputs import MISSING, Cases, ModelOutput
from fairderm.metrics._significance import adjust_pvalues

#: Suffix of the attribute that holds metrics by corrected true group.
CORRECTED_SUFFIX = ":true"
#: Suffix of the attribute that holds bounds by true group.
BOUNDED_SUFFIX = ":bounds"
#: The ``basis`` of a row in metrics.json.
BASES = ("labelled", "estimated", "corrected", "bounded")
#: A true group with fewer labelled cases is flagged insufficient.
MIN_LABELLED_PER_GROUP = 10
#: Replicates per block of weighted statistics (bounds the (B x G x n) temporaries).
BLOCK = 128

#: Fitzpatrick groups of the published error model.
PUBLISHED_GROUPS = ("I-II", "III-IV", "V-VI")
#: P(estimated group = column | dermatologists' group = row) assumed for colour
#: (ITA) estimates on clinical photographs. Its level, 0.50 agreement with equal
#: group sizes, is that of Groh et al. 2022 (0.41-0.49 three-group agreement of
#: ITA with dermatologists on atlas photographs); the split of the errors, a
#: third of them two groups away (light read as dark and the reverse), is
#: fairderm's assumption from what its estimator does on real photographs in
#: dim or warm light. Give a validation's own confusion matrix when there is one.
PUBLISHED_CONFUSION = np.array([
    [0.55, 0.30, 0.15],
    [0.25, 0.45, 0.30],
    [0.15, 0.35, 0.50],
])
PUBLISHED_SOURCE = ("published level of colour (ITA) estimates against dermatologists on clinical photographs, "
                    "Groh et al. 2022 (0.41-0.49 three-group agreement); error split assumed by fairderm")


@dataclass(frozen=True)
class StrataErrorModel:
    """How estimated strata relate to true groups: P(estimated = e | true = t).

    Attributes
    ----------
    groups
        Group values, the same for true and estimated (e.g. ``I-II``).
    confusion
        (G, G) array; row t holds P(estimated = e | true = t) and sums to 1.
    source
        Where it comes from (a citation, or the validation behind it).
    n_validation
        Labelled cases behind it (None for an assumed model).
    """

    groups: tuple[str, ...]
    confusion: np.ndarray
    source: str
    n_validation: int | None = None

    def __post_init__(self) -> None:
        matrix = np.asarray(self.confusion, dtype=np.float64)
        size = len(self.groups)
        if size < 2 or len(set(self.groups)) != size:
            raise InputError("needs two or more distinct groups", column="strata_error.groups")
        if matrix.shape != (size, size):
            raise InputError(f"confusion must be {size} x {size}, got {matrix.shape}", column="strata_error.confusion")
        if not np.isfinite(matrix).all() or (matrix < 0).any():
            raise InputError("confusion must hold finite non-negative values", column="strata_error.confusion")
        if not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-6):
            raise InputError("every row of the confusion (a true group) must sum to 1",
                             column="strata_error.confusion")
        if abs(np.linalg.det(matrix)) < 1e-6:
            raise InputError("confusion is singular: the estimate carries no information on some group",
                             column="strata_error.confusion")
        object.__setattr__(self, "confusion", matrix)

    @classmethod
    def published(cls) -> StrataErrorModel:
        """The default: colour estimates' published agreement with dermatologists (see :data:`PUBLISHED_CONFUSION`)."""
        return cls(PUBLISHED_GROUPS, PUBLISHED_CONFUSION.copy(), PUBLISHED_SOURCE)

    @classmethod
    def from_counts(cls, counts: Any, groups: Sequence[str], source: str) -> StrataErrorModel:
        """From a validation's counts (rows true group, columns estimated group)."""
        matrix = np.asarray(counts, dtype=np.float64)
        totals = matrix.sum(axis=1, keepdims=True)
        if (totals <= 0).any():
            empty = [g for g, t in zip(groups, totals[:, 0]) if t <= 0]
            raise InputError(f"true group(s) {empty} have no validated case", column="strata_error.confusion")
        return cls(tuple(str(g) for g in groups), matrix / totals, source, int(matrix.sum()))

    @classmethod
    def from_csv(cls, path: str | Path) -> StrataErrorModel:
        """A CSV whose first column names the true group and whose other columns are the estimated groups.

        Values are counts (a validation) or row proportions.
        """
        path = Path(path)
        try:
            frame = pd.read_csv(path, index_col=0)
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read the strata error model ({error})", source=str(path)) from None
        rows = [str(v) for v in frame.index]
        columns = [str(v) for v in frame.columns]
        if rows != columns:
            raise InputError(f"rows {rows} and columns {columns} must name the same groups in the same order",
                             source=str(path))
        try:
            matrix = frame.to_numpy(dtype=np.float64)
        except ValueError:
            raise InputError("holds a value that is not a number", source=str(path)) from None
        if np.allclose(matrix.sum(axis=1), 1.0, atol=1e-6):
            return cls(tuple(rows), matrix, f"confusion proportions from {path.name}")
        return cls.from_counts(matrix, rows, f"validation counts from {path.name}")

    def agreement(self, prior: Sequence[float] | None = None) -> float:
        """Share of cases in their true group, for a prior of true groups (default equal)."""
        weights = np.full(len(self.groups), 1.0 / len(self.groups)) if prior is None else np.asarray(prior)
        return float(weights @ np.diag(self.confusion))

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": list(self.groups),
            "confusion": [[float(v) for v in row] for row in self.confusion],
            "source": self.source,
            "n_validation": self.n_validation,
            "agreement_equal_groups": self.agreement(),
        }


@dataclass(frozen=True)
class TrueGroups:
    """Validated inputs of the correction.

    Attributes
    ----------
    attribute
        The estimated attribute the true groups correct.
    estimated
        Code of each case's estimated group (the missing group included).
    estimated_values
        Values of those codes (``missing`` for abstentions).
    true
        Code of each labelled case's true group, -1 where unlabelled.
    true_values
        Values of the true-group codes.
    inclusion
        Inclusion probability of each labelled case (NaN where unlabelled).
    inclusion_source
        ``given`` or ``estimated`` (labelled share within estimated group).
    """

    attribute: str
    estimated: np.ndarray
    estimated_values: tuple[str, ...]
    true: np.ndarray
    true_values: tuple[str, ...]
    inclusion: np.ndarray
    inclusion_source: str

    @property
    def labelled(self) -> np.ndarray:
        return self.true >= 0

    @property
    def complete(self) -> bool:
        return bool(self.labelled.all())


def _missing(values: pd.Series) -> np.ndarray:
    return values.isna().to_numpy(dtype=bool)


def true_group_inputs(
    true_groups: Any,
    inclusion_prob: Any,
    cases: Cases,
) -> TrueGroups:
    """Check ``true_groups`` and ``inclusion_prob`` against the cases (one line per fault).

    ``true_groups`` is an array (when the cases have one attribute) or
    ``{attribute: array}`` naming the estimated attribute it corrects. The
    true groups are the labelled values, or the categories of a pandas
    Categorical (then a category without a labelled case is an error). They
    need not be the estimated attribute's groups (e.g. labels I-II / III-VI
    against estimated I-II / III-IV / V-VI).
    """
    base = [a for a in cases.attributes if len(a.members) == 1]
    if isinstance(true_groups, Mapping):
        if len(true_groups) != 1:
            raise InputError("give the true groups of one estimated attribute: {attribute: array}",
                             column="true_groups")
        name, values = next(iter(true_groups.items()))
        matches = [a for a in base if a.name == str(name)]
        if not matches:
            raise InputError(f"names {name!r}, which is not an attribute of groups ({[a.name for a in base]})",
                             column="true_groups")
        attribute = matches[0]
    else:
        if len(base) != 1:
            raise InputError("groups has several attributes: name the one corrected, {attribute: array}",
                             column="true_groups")
        attribute, values = base[0], true_groups
    dtype = getattr(values, "dtype", None)
    declared = [str(c) for c in dtype.categories] if isinstance(dtype, pd.CategoricalDtype) else None
    series = pd.Series(np.asarray(values, dtype=object)).reset_index(drop=True)
    if len(series) != cases.n:
        raise InputError(f"has {len(series)} values but y_true has {cases.n}", column="true_groups")
    series = series.where(~series.isna(), None)
    labelled = ~_missing(series)
    if not labelled.any():
        raise InputError("no case is labelled", column="true_groups")
    text = series[labelled].astype(str)
    estimated_values = tuple(group.split("=", 1)[1] for group in attribute.groups)
    if declared is not None:
        true_values = tuple(declared)
    else:
        # the estimated attribute's order where the scales agree, then any other labelled value
        seen = set(text)
        true_values = tuple(v for v in estimated_values if v in seen) + tuple(
            sorted(seen - set(estimated_values)))
    unlabelled_groups = [g for g in true_values if not (text == g).any()]
    if unlabelled_groups:
        raise InputError(f"true group {unlabelled_groups[0]!r} has no labelled case; label some of its cases "
                         "(fairderm tone label) or leave it out of true_groups' categories", column="true_groups")
    if len(true_values) < 2:
        raise InputError(f"needs labelled cases of two or more true groups, got {list(true_values)}",
                         column="true_groups")
    true = np.full(cases.n, -1, dtype=np.int64)
    true[labelled] = pd.Categorical(text, categories=list(true_values)).codes
    estimated = attribute.codes.astype(np.int64)
    if inclusion_prob is None:
        share = np.zeros(len(estimated_values))
        for code in range(len(estimated_values)):
            rows = estimated == code
            share[code] = labelled[rows].mean() if rows.any() else np.nan
        inclusion = np.where(labelled, share[estimated], np.nan)
        source = "estimated"
    else:
        prob = pd.to_numeric(pd.Series(np.asarray(inclusion_prob, dtype=object)), errors="coerce").to_numpy(float)
        if prob.size != cases.n:
            raise InputError(f"has {prob.size} values but y_true has {cases.n}", column="inclusion_prob")
        bad = labelled & ~((prob > 0) & (prob <= 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"inclusion probability {prob[row]!r} of a labelled case is outside (0, 1]",
                             row=row + 1, column="inclusion_prob")
        inclusion = np.where(labelled, prob, np.nan)
        source = "given"
    return TrueGroups(attribute.name, estimated, estimated_values, true, true_values, inclusion, source)


# ---------------------------------------------------------------------------
# The membership model p_g(x) = P(true group g | estimated group).

#: Pseudo-count that shrinks an estimated group's shares towards the overall ones.
PRIOR_CASES = 0.5


def membership_probabilities(groups: TrueGroups, count: np.ndarray) -> np.ndarray:
    """(n, G) P(true group | estimated group) for every case, from the labelled cases of a resample.

    The design-weighted shares (weights ``count / pi``) of the true groups among
    each estimated group's labelled cases, shrunk towards the overall shares by
    :data:`PRIOR_CASES` cases; an estimated group without labelled cases gets
    the overall shares. Outcome terms (label, correctness, score) were tried as
    further predictors: they cannot bias the estimate (the correction term
    removes any model error) but, fitted on ~150 labels, their noise widened the
    intervals in the simulation (docs/metrics.md).
    """
    labelled = groups.labelled & (count > 0)
    weight = count[labelled] / groups.inclusion[labelled]
    table = np.zeros((len(groups.estimated_values), len(groups.true_values)))
    np.add.at(table, (groups.estimated[labelled], groups.true[labelled]), weight)
    overall = table.sum(axis=0) / table.sum()
    shares = (table + PRIOR_CASES * overall) / (table.sum(axis=1, keepdims=True) + PRIOR_CASES)
    return shares[groups.estimated]


def membership_weights(groups: TrueGroups, count: np.ndarray) -> np.ndarray:
    """(G, n) augmented inverse-probability membership weights for one resample.

    ``count`` is each case's multiplicity in the resample (ones for the data).
    """
    labelled = groups.labelled
    prob = membership_probabilities(groups, count)
    observed = np.zeros_like(prob)
    observed[np.flatnonzero(labelled), groups.true[labelled]] = 1.0
    scale = np.where(labelled, 1.0 / np.where(labelled, groups.inclusion, 1.0), 0.0)
    weights = prob + scale[:, None] * (observed - prob)
    return (weights * count[:, None]).T


# ---------------------------------------------------------------------------
# Resampling.


def _resampling_units(groups: TrueGroups, cluster: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(unit of each case, stratum of each unit).

    Cases: strata are estimated group x labelled, so that every replicate
    keeps the validation sample's size in each estimated group. Clusters
    (patients): a patient with any labelled image is resampled among such
    patients, the others among theirs.
    """
    labelled = groups.labelled.astype(np.int64)
    if cluster is None:
        unit = np.arange(labelled.size)
        return unit, groups.estimated * 2 + labelled
    codes, unit = np.unique(cluster, return_inverse=True)
    unit = unit.reshape(-1)
    stratum = np.zeros(codes.size, dtype=np.int64)
    np.maximum.at(stratum, unit, labelled)
    return unit, stratum


def resample_counts(rng: np.random.Generator, unit: np.ndarray, stratum: np.ndarray, n_boot: int) -> np.ndarray:
    """(B, n) multiplicity of every case: units drawn with replacement within their stratum."""
    n_units = stratum.size
    draws = np.empty((n_boot, n_units), dtype=np.int64)
    for value in np.unique(stratum):
        members = np.flatnonzero(stratum == value)
        draws[:, members] = members[rng.integers(0, members.size, size=(n_boot, members.size))]
    offsets = (np.arange(n_boot, dtype=np.int64) * n_units)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units)
    return counts[:, unit].astype(np.float64)


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
            score, positive = (model.pos_score, cases.y_pos) if target == "set" else \
                (model.proba[:, target], cases.y == target)
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


def _percentile(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 10:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _finish(statistic: Statistic, confidence: float) -> tuple[float, float, float]:
    low, high = _percentile(statistic.replicates, confidence)
    if statistic.log:
        with np.errstate(invalid="ignore", over="ignore"):
            return tuple(math.exp(v) if math.isfinite(v) else math.nan
                         for v in (statistic.estimate, low, high))  # type: ignore[return-value]
    return statistic.estimate, low, high


@dataclass
class StrataTables:
    """Rows added to an evaluation: groups, disparities, tests and what produced them."""

    groups: pd.DataFrame
    disparities: pd.DataFrame
    tests: pd.DataFrame
    config: dict[str, Any]


def _group_name(attribute: str, value: str) -> str:
    return f"{attribute}={value}"


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
    unit, stratum = _resampling_units(groups, cases.cluster)
    replicates = np.full((n_groups, len(metrics), n_boot), np.nan)
    for lo in range(0, n_boot, BLOCK):
        hi = min(n_boot, lo + BLOCK)
        counts = resample_counts(rng, unit, stratum, hi - lo)
        if basis == "labelled":
            block = counts[:, None, :] * point_weights[None, :, :]
        else:
            block = np.stack([membership_weights(groups, row) for row in counts])
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
            low, high = _percentile(replicates[g, k], confidence) if flag not in ("empty", "undefined") \
                else (math.nan, math.nan)
            rows.append({"attribute": attribute, "group": _group_name(attribute, value), "metric": metric.name,
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
    names = [_group_name(attribute, v) for v in values]
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
        tested = [g for g in range(len(values)) if flags[g, k] in ("ok", "insufficient")
                  and math.isfinite(estimates[g, k])]
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
                    p_value = float(chi2.sf(statistic, dof))
                except np.linalg.LinAlgError:
                    note = "bootstrap covariance is singular"
            else:
                note = "too few finite bootstrap replicates"
        else:
            note = "fewer than two groups to compare"
        rows.append({"metric": metric.name, "attribute": attribute, "test": "bootstrap_wald", "statistic": statistic,
                     "dof": dof, "p_value": p_value, "p_adjusted": math.nan, "method": None,
                     "n_groups": len(tested), "groups": [_group_name(attribute, values[g]) for g in tested],
                     "n_perm": None, "note": note})
    return pd.DataFrame(rows)


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
    unknown = sorted({v for v in values if v != MISSING} ^ set(error_model.groups))
    if unknown:
        raise InputError(f"the strata error model's groups {list(error_model.groups)} do not match the groups "
                         f"of {attribute_name!r} ({list(values)}): {unknown}", column="strata_error")
    order = [values.index(v) for v in error_model.groups]
    estimated = np.full(cases.n, -1, dtype=np.int64)
    for position, code in enumerate(order):
        estimated[attribute.codes == code] = position
    measured = estimated >= 0
    n_est = len(error_model.groups)
    name = attribute_name + BOUNDED_SUFFIX
    group_names = [_group_name(name, v) for v in error_model.groups]
    rng = np.random.default_rng(seed)
    unit, stratum = (np.arange(cases.n), np.where(measured, estimated, n_est)) if cases.cluster is None else \
        _cluster_units(cases.cluster)
    counts = np.vstack([np.ones((1, cases.n)), resample_counts(rng, unit, stratum, n_boot)]) if n_boot else \
        np.ones((1, cases.n))
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


def _cluster_units(cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, unit = np.unique(cluster, return_inverse=True)
    return unit.reshape(-1), np.zeros(codes.size, dtype=np.int64)


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


# ---------------------------------------------------------------------------
# Into an evaluation.


def _basis(attribute: str, estimated: set[str]) -> str:
    return "estimated" if any(member in estimated for member in attribute.split("&")) else "labelled"


def with_strata_error(
    engine: Any,
    result: Any,
    *,
    true_groups: Any,
    inclusion_prob: Any,
    strata_error: StrataErrorModel | None,
    estimated: Sequence[str] | None,
) -> Any:
    """Mark every row's basis and add the corrected or bounded true-group rows to ``result``.

    ``engine`` is the metrics engine that produced ``result`` (its validated
    cases, model output, metrics and options are reused).
    """
    cases, model, options = engine.cases, engine.models[0], engine.options
    base_names = [a.name for a in cases.attributes if len(a.members) == 1]
    if isinstance(estimated, str):
        estimated = [estimated]
    marked = {str(a) for a in (estimated or [])}
    unknown = sorted(marked - set(base_names))
    if unknown:
        raise InputError(f"names attribute(s) {unknown} that groups does not have ({base_names})",
                         column="estimated")
    tables = None
    if true_groups is not None:
        inputs = true_group_inputs(true_groups, inclusion_prob, cases)
        marked.add(inputs.attribute)
        slot = engine.references.get(inputs.attribute)
        reference = None if slot is None else engine.slots[slot].value
        tables = corrected_tables(cases, model, engine.metrics, engine.layout, inputs, n_boot=options.n_boot,
                                  confidence=options.confidence, seed=options.seed,
                                  min_group_size=options.min_group_size, min_positives=options.min_positives,
                                  n_bins=options.n_bins, reference=reference)
    elif inclusion_prob is not None:
        raise InputError("inclusion probabilities need true_groups", column="inclusion_prob")
    elif strata_error is not None:
        if not isinstance(strata_error, StrataErrorModel):
            raise InputError("must be a StrataErrorModel (e.g. StrataErrorModel.published())", column="strata_error")
        if estimated:
            target = str(next(iter(estimated)))
        elif len(base_names) == 1:
            target = base_names[0]
        else:
            raise InputError("groups has several attributes: name the estimated one with estimated=",
                             column="strata_error")
        marked.add(target)
        tables = bounded_tables(cases, model, engine.metrics, target, strata_error, n_boot=options.n_boot,
                                confidence=options.confidence, seed=options.seed, top_k=options.top_k)
    groups = result.groups.assign(basis=[_basis(a, marked) if a != "all" else "labelled"
                                         for a in result.groups["attribute"]])
    disparities = result.disparities.frame.assign(
        basis=[_basis(a, marked) for a in result.disparities.frame["attribute"]])
    tests = result.tests
    config = {**result.config, "estimated_attributes": sorted(marked)}
    if tables is not None:
        groups = pd.concat([groups, tables.groups.reindex(columns=groups.columns)], ignore_index=True)
        disparities = pd.concat([disparities, tables.disparities.reindex(columns=disparities.columns)],
                                ignore_index=True)
        if len(tables.tests) and options.tests:
            tests = pd.concat([tests, tables.tests.reindex(columns=tests.columns)], ignore_index=True)
            tests["method"] = options.p_adjust
            tests["p_adjusted"] = adjust_pvalues(tests["p_value"].to_numpy(dtype=np.float64), options.p_adjust)
        config["strata"] = tables.config
    groups["n_pos"] = pd.array([None if pd.isna(v) else int(v) for v in groups["n_pos"]], dtype="Int64")
    result.groups = groups.reset_index(drop=True)
    result.disparities.frame = disparities.reset_index(drop=True)
    result.tests = tests
    result.config = config
    return result
