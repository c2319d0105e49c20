"""The metric catalogue: names, the sufficient statistics each metric needs,
and the map from (weighted) statistics to metric values.

Every metric is a function of a few weighted sums over cases (confusion counts,
Brier terms, calibration-bin residuals, score sums) plus, for AUROC, weighted
Mann-Whitney numerators. The same functions therefore serve the point
estimate (weights 1), the bootstrap (resampling counts), the jackknife
(leave-one-unit-out sums) and the permutation tests (group indicators).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fairderm.errors import InputError
from fairderm.metrics._inputs import Cases, ModelOutput

RATE_METRICS = ("sensitivity", "specificity", "ppv", "npv", "f1", "selection_rate")
SCORE_METRICS = ("auroc", "auroc_macro", "brier", "ece", "top_k_accuracy")
BASE_METRICS = (
    "accuracy", "balanced_accuracy", "top_k_accuracy", *RATE_METRICS, "f1_macro", "auroc", "auroc_macro",
    "brier", "ece",
)
MEAN_SCORE_PREFIX = "mean_score:"
LOWER_IS_BETTER = ("brier", "ece")


@dataclass(frozen=True)
class MetricDef:
    """One metric as evaluated.

    Attributes
    ----------
    name
        Its name in every output (``sensitivity``, ``sensitivity:melanoma``,
        ``mean_score:reasoning``).
    family
        ``accuracy``, ``balanced_accuracy``, ``top_k_accuracy``, one of
        :data:`RATE_METRICS`, ``f1_macro``, ``auroc``, ``brier``, ``ece`` or
        ``mean_score``.
    event
        ``"set"`` for the positive event (binary positive class or the
        positive classes together), a class code for one-vs-rest, or None.
    score
        The score column of a ``mean_score`` metric.
    """

    name: str
    family: str
    event: str | int | None = None
    score: str | None = None

    @property
    def higher_is_better(self) -> bool | None:
        if self.family in LOWER_IS_BETTER:
            return False
        if self.family == "selection_rate":
            return None
        return True

    @property
    def is_proportion(self) -> bool:
        """Whether the metric is a proportion of cases (analytic Wilson/chi-square apply)."""
        return self.family in ("accuracy", "top_k_accuracy", "selection_rate") or self.family in (
            "sensitivity", "specificity", "ppv", "npv")


@dataclass
class Layout:
    """Columns of the per-case feature matrix whose weighted sums are the statistics."""

    n_classes: int
    has_set: bool
    top_k: int | None = None
    n_bins: int | None = None
    scores: tuple[str, ...] = ()
    targets: tuple[str | int, ...] = ()
    columns: dict[str, int] = field(default_factory=dict)
    width: int = 0

    def __post_init__(self) -> None:
        cursor = 0

        def take(key: str, size: int) -> None:
            nonlocal cursor
            self.columns[key] = cursor
            cursor += size

        take("n", 1)
        take("conf", self.n_classes * self.n_classes)
        if self.has_set:
            take("set", 4)
        if self.top_k is not None:
            take("topk", 1)
        take("brier", 1)
        if self.n_bins is not None:
            take("ece", self.n_bins)
        for name in self.scores:
            take(f"score:{name}", 2)
        self.width = cursor


def metric_name_problem(name: str, labels: Sequence[str] | None = None) -> str | None:
    """Why ``name`` is not a metric name, or None when it is one; the check that needs no data.

    ``mean_score:<column>`` names are accepted here: whether the column
    exists is known only with the scores. ``labels``, when given, must hold
    the label of a per-class name (``sensitivity:melanoma``).
    """
    if name.startswith(MEAN_SCORE_PREFIX):
        return None
    base, _, label = name.partition(":")
    if base not in BASE_METRICS:
        return (f"unknown metric {name!r}; known: {', '.join(BASE_METRICS)}, '<rate>:<label>', "
                f"'{MEAN_SCORE_PREFIX}<column>'")
    if label and base not in (*RATE_METRICS, "auroc"):
        return f"metric {base!r} has no per-class form ({name!r})"
    if label and labels is not None and label not in labels:
        return f"metric {name!r} names no label of {list(labels)}"
    return None


def resolve_metrics(
    requested: Sequence[str] | None,
    cases: Cases,
    kinds: Sequence[str],
    *,
    top_k: int,
) -> list[MetricDef]:
    """Expand and validate metric names for these cases and model outputs.

    Parameters
    ----------
    requested
        Metric names, or None for the default set.
    cases
        The validated cases.
    kinds
        ``probabilities`` or ``labels`` for each model evaluated.
    top_k
        k of ``top_k_accuracy``.
    """
    hard = "labels" in kinds
    binary = cases.binary
    has_event = bool(cases.positive)
    labels = [str(label) for label in cases.labels]
    if requested is None:
        requested = list(_default_names(binary, has_event, hard))
        requested += [f"{MEAN_SCORE_PREFIX}{name}" for name in cases.scores]
    elif isinstance(requested, str):
        requested = [requested]
    out: list[MetricDef] = []
    for raw in requested:
        name = str(raw)
        if name.startswith(MEAN_SCORE_PREFIX):
            column = name[len(MEAN_SCORE_PREFIX):]
            if column not in cases.scores:
                raise InputError(f"metric {name!r} names no column of scores= (have {list(cases.scores)})",
                                 column="metrics")
            out.append(MetricDef(name, "mean_score", score=column))
            continue
        base, _, label = name.partition(":")
        problem = metric_name_problem(name, labels)
        if problem:
            raise InputError(problem, column="metrics")
        if hard and base in SCORE_METRICS:
            raise InputError(f"metric {name!r} needs class probabilities, but y_score holds hard labels",
                             column="metrics")
        if base == "top_k_accuracy" and top_k >= cases.n_classes:
            raise InputError(f"top_k_accuracy with k={top_k} needs more than {top_k} classes", column="metrics")
        if label:
            out.append(MetricDef(name, base, event=labels.index(label)))
            continue
        out.extend(_expand(base, binary, has_event, labels))
    names = [m.name for m in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"metric named twice: {', '.join(duplicated)}", column="metrics")
    if not out:
        raise InputError("no metric to compute", column="metrics")
    return out


def _default_names(binary: bool, has_event: bool, hard: bool) -> list[str]:
    if binary:
        names = ["accuracy", "balanced_accuracy", *RATE_METRICS, "auroc", "brier", "ece"]
    else:
        names = ["accuracy", "balanced_accuracy", "top_k_accuracy", "f1_macro", "auroc", "brier", "ece"]
        names += list(RATE_METRICS) if has_event else ["sensitivity"]
    return [n for n in names if not (hard and n in SCORE_METRICS)]


def _expand(base: str, binary: bool, has_event: bool, labels: list[str]) -> list[MetricDef]:
    if base in RATE_METRICS:
        if binary or has_event:
            return [MetricDef(base, base, event="set")]
        # Multiclass without a positive event: one-vs-rest for every class.
        per_class = [MetricDef(f"{base}:{label}", base, event=i) for i, label in enumerate(labels)]
        return per_class + ([MetricDef("f1_macro", "f1_macro")] if base == "f1" else [])
    if base == "auroc":
        if binary or has_event:
            return [MetricDef("auroc", "auroc", event="set")]
        return [MetricDef("auroc", "auroc", event=None)]
    if base == "auroc_macro":
        if binary:
            raise InputError("auroc_macro is for multiclass tasks; use auroc", column="metrics")
        return [MetricDef("auroc_macro", "auroc", event=None)]
    return [MetricDef(base, base)]


def auroc_targets(metrics: Sequence[MetricDef], n_classes: int) -> tuple[str | int, ...]:
    """The distinct AUROC events needed ("set" and/or class codes), in a fixed order."""
    wanted: list[str | int] = []
    for metric in metrics:
        if metric.family != "auroc":
            continue
        events = list(range(n_classes)) if metric.event is None else [metric.event]
        for event in events:
            if event not in wanted:
                wanted.append(event)
    return tuple(sorted(wanted, key=lambda e: (isinstance(e, int), e if isinstance(e, int) else -1)))


def build_layout(metrics: Sequence[MetricDef], cases: Cases, *, top_k: int, n_bins: int) -> Layout:
    families = {m.family for m in metrics}
    return Layout(
        n_classes=cases.n_classes,
        has_set=bool(cases.positive) and not cases.binary,
        top_k=top_k if "top_k_accuracy" in families else None,
        n_bins=n_bins if "ece" in families else None,
        scores=tuple(sorted({m.score for m in metrics if m.score is not None})),
        targets=auroc_targets(metrics, cases.n_classes),
    )


def calibration_inputs(cases: Cases, model: ModelOutput) -> tuple[np.ndarray, np.ndarray] | None:
    """(confidence, outcome) per case for ECE and reliability curves.

    Binary: the positive-class probability against the positive outcome.
    Multiclass: the top-label confidence against correctness of the argmax.
    """
    if model.proba is None:
        return None
    if cases.binary:
        return model.pos_score, (cases.y == cases.positive[0]).astype(np.float64)
    return model.proba.max(axis=1), (model.pred == cases.y).astype(np.float64)


def equal_mass_edges(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior edges of ``n_bins`` equal-mass bins of ``confidence`` (Naeini et al. 2015)."""
    if confidence.size == 0:
        return np.zeros(0)
    return np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])


def bin_index(confidence: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, confidence, side="right")


def features(
    layout: Layout,
    cases: Cases,
    model: ModelOutput,
    rows: np.ndarray,
    edges: np.ndarray | None,
    *,
    dtype: type = np.float64,
) -> np.ndarray:
    """Per-case feature matrix (len(rows), layout.width) for the given case rows."""
    y, pred = cases.y[rows], model.pred[rows]
    K = layout.n_classes
    out = np.zeros((rows.size, layout.width), dtype=dtype)
    at = layout.columns
    out[:, at["n"]] = 1.0
    out[np.arange(rows.size), at["conf"] + y * K + pred] = 1.0
    if layout.has_set:
        y_pos = np.isin(y, cases.positive)
        out[np.arange(rows.size), at["set"] + 2 * y_pos + model.pred_pos[rows]] = 1.0
    if model.proba is not None:
        proba = model.proba[rows]
        if layout.top_k is not None:
            true_p = proba[np.arange(rows.size), y]
            out[:, at["topk"]] = (proba > true_p[:, None]).sum(axis=1) < layout.top_k
        if K == 2:
            positive = cases.positive[0]
            out[:, at["brier"]] = (proba[:, positive] - (y == positive)) ** 2
        else:
            onehot = np.zeros_like(proba)
            onehot[np.arange(rows.size), y] = 1.0
            out[:, at["brier"]] = ((proba - onehot) ** 2).sum(axis=1)
        if layout.n_bins is not None and edges is not None:
            confidence, outcome = calibration_inputs(cases, model)
            bins = bin_index(confidence[rows], edges)
            out[np.arange(rows.size), at["ece"] + bins] = confidence[rows] - outcome[rows]
    for name in layout.scores:
        values = cases.scores[name][rows]
        rated = ~np.isnan(values)
        out[:, at[f"score:{name}"]] = np.where(rated, values, 0.0)
        out[:, at[f"score:{name}"] + 1] = rated
    return out


# ---------------------------------------------------------------------------
# Statistics -> metric values (vectorised over the leading axis).


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def confusion(lin: np.ndarray, layout: Layout) -> np.ndarray:
    K = layout.n_classes
    start = layout.columns["conf"]
    return lin[:, start:start + K * K].reshape(-1, K, K)


def event_counts(lin: np.ndarray, layout: Layout, event: str | int, positive: Sequence[int]) -> tuple[np.ndarray, ...]:
    """(TP, FP, FN, TN) weighted counts of a binary event."""
    if event == "set" and layout.has_set:
        start = layout.columns["set"]
        tn, fp, fn, tp = (lin[:, start + i] for i in range(4))
        return tp, fp, fn, tn
    k = positive[0] if event == "set" else int(event)
    conf = confusion(lin, layout)
    tp = conf[:, k, k]
    actual = conf[:, k, :].sum(axis=1)
    predicted = conf[:, :, k].sum(axis=1)
    fn = actual - tp
    fp = predicted - tp
    tn = lin[:, layout.columns["n"]] - tp - fn - fp
    return tp, fp, fn, tn


def rate_parts(
    family: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(numerator, denominator) of a rate metric."""
    if family == "sensitivity":
        return tp, tp + fn
    if family == "specificity":
        return tn, tn + fp
    if family == "ppv":
        return tp, tp + fp
    if family == "npv":
        return tn, tn + fn
    if family == "f1":
        return 2 * tp, 2 * tp + fp + fn
    if family == "selection_rate":
        return tp + fp, tp + fp + fn + tn
    raise KeyError(family)


def metric_values(
    metric: MetricDef,
    lin: np.ndarray,
    auc: np.ndarray | None,
    layout: Layout,
    positive: Sequence[int],
) -> np.ndarray:
    """Metric value for every row of statistics (NaN where undefined)."""
    at = layout.columns
    total = lin[:, at["n"]]
    family = metric.family
    if family == "accuracy":
        conf = confusion(lin, layout)
        return _divide(np.trace(conf, axis1=1, axis2=2), total)
    if family == "balanced_accuracy":
        conf = confusion(lin, layout)
        actual = conf.sum(axis=2)
        recall = _divide(np.diagonal(conf, axis1=1, axis2=2), actual)
        with np.errstate(invalid="ignore"):
            present = actual > 0
            count = present.sum(axis=1)
            return np.where(count > 0, np.where(present, recall, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
    if family == "top_k_accuracy":
        return _divide(lin[:, at["topk"]], total)
    if family in RATE_METRICS:
        numerator, denominator = rate_parts(family, *event_counts(lin, layout, metric.event, positive))
        return _divide(numerator, denominator)
    if family == "f1_macro":
        conf = confusion(lin, layout)
        tp = np.diagonal(conf, axis1=1, axis2=2)
        actual, predicted = conf.sum(axis=2), conf.sum(axis=1)
        f1 = _divide(2 * tp, actual + predicted)
        present = (actual + predicted) > 0
        count = present.sum(axis=1)
        return np.where(count > 0, np.where(present, f1, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
    if family == "auroc":
        events = range(layout.n_classes) if metric.event is None else [metric.event]
        values = []
        for event in events:
            tp, fp, fn, tn = event_counts(lin, layout, event, positive)
            column = layout.targets.index(event)
            values.append(_divide(auc[:, column], (tp + fn) * (fp + tn)))
        if len(values) == 1:
            return values[0]
        stacked = np.stack(values, axis=1)
        with np.errstate(invalid="ignore"):
            defined = np.isfinite(stacked)
            count = defined.sum(axis=1)
            return np.where(count > 0, np.where(defined, stacked, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
    if family == "brier":
        return _divide(lin[:, at["brier"]], total)
    if family == "ece":
        start = at["ece"]
        residual = np.abs(lin[:, start:start + layout.n_bins]).sum(axis=1)
        return _divide(residual, total)
    if family == "mean_score":
        start = at[f"score:{metric.score}"]
        return _divide(lin[:, start], lin[:, start + 1])
    raise KeyError(family)


@dataclass(frozen=True)
class Counts:
    """Case counts behind one group's metric (from unweighted statistics).

    ``n`` cases used, ``n_pos`` positives of the metric's event (None when the
    metric has none), ``support`` the count the minimum-positives rule applies
    to (None when only ``n`` matters), ``successes``/``trials`` for
    proportion metrics (chi-square/Fisher tests and Wilson intervals).
    """

    n: int
    n_pos: int | None
    support: int | None
    successes: int | None = None
    trials: int | None = None


def metric_counts(metric: MetricDef, lin: np.ndarray, layout: Layout, positive: Sequence[int]) -> Counts:
    """Counts for flags and tests; ``lin`` is one row of unweighted statistics."""
    row = lin[None, :] if lin.ndim == 1 else lin
    at = layout.columns
    n = int(round(row[0, at["n"]]))
    conf = confusion(row, layout)[0]
    family = metric.family
    event = metric.event
    if event is None and positive and family not in ("mean_score",):
        event = "set"
    n_pos = None
    if event is not None and family != "mean_score":
        tp, fp, fn, tn = (int(round(v[0])) for v in event_counts(row, layout, event, positive))
        n_pos = tp + fn
    if family == "mean_score":
        rated = int(round(row[0, at[f"score:{metric.score}"] + 1]))
        return Counts(rated, None, None)
    if family == "accuracy":
        return Counts(n, n_pos, None, int(round(np.trace(conf))), n)
    if family == "top_k_accuracy":
        return Counts(n, n_pos, None, int(round(row[0, at["topk"]])), n)
    if family == "balanced_accuracy":
        return Counts(n, n_pos, int(conf.sum(axis=1).min()))
    if family in RATE_METRICS:
        tp, fp, fn, tn = (int(round(v[0])) for v in event_counts(row, layout, metric.event, positive))
        numerator, denominator = rate_parts(family, tp, fp, fn, tn)
        support = {"sensitivity": tp + fn, "specificity": tn + fp, "ppv": tp + fp, "npv": tn + fn,
                   "f1": tp + fn, "selection_rate": None}[family]
        if family == "f1":
            return Counts(n, n_pos, support)
        return Counts(n, n_pos, support, numerator, denominator)
    if family == "auroc":
        if metric.event is None:
            actual = conf.sum(axis=1)
            present = actual[actual > 0]
            return Counts(n, n_pos, int(present.min()) if present.size else 0)
        tp, fp, fn, tn = (int(round(v[0])) for v in event_counts(row, layout, metric.event, positive))
        return Counts(n, n_pos, min(tp + fn, fp + tn))
    return Counts(n, n_pos, None)


def proportion_parts(
    metric: MetricDef, lin: np.ndarray, layout: Layout, positive: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(successes, trials) per row of statistics for a proportion metric (per case when rows are cases)."""
    total = lin[:, layout.columns["n"]]
    if metric.family == "accuracy":
        return np.trace(confusion(lin, layout), axis1=1, axis2=2), total
    if metric.family == "top_k_accuracy":
        return lin[:, layout.columns["topk"]], total
    return rate_parts(metric.family, *event_counts(lin, layout, metric.event, positive))
