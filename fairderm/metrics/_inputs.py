"""Validation of the arrays handed to :func:`fairderm.metrics.evaluate`.

Everything user-supplied is checked here, once, and turned into clean integer
codes and float arrays; the kernels behind it trust what they receive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fairderm.errors import InputError

#: Allowed distance of a probability row's sum from 1.
ROW_SUM_TOLERANCE = 1e-6
#: Group value given to cases whose attribute is missing (None, NaN, NA).
MISSING = "missing"
#: Name of the one-attribute case when ``groups`` is a bare array.
DEFAULT_ATTRIBUTE = "group"


@dataclass(frozen=True)
class Attribute:
    """One grouping of the cases: a single attribute or an intersection.

    Attributes
    ----------
    name
        ``fitzpatrick_est``, or ``fitzpatrick_est&sex`` for an intersection.
    codes
        Group index of every case (into ``groups``).
    groups
        Full group names, ``fitzpatrick_est=V-VI`` or
        ``fitzpatrick_est=V-VI & sex=female``.
    missing
        Per group: True when the group collects cases whose value is missing.
    members
        The base attributes an intersection is made of (just ``(name,)``).
    """

    name: str
    codes: np.ndarray
    groups: tuple[str, ...]
    missing: tuple[bool, ...]
    members: tuple[str, ...]


@dataclass(frozen=True)
class ModelOutput:
    """One model's validated output on the cases.

    Attributes
    ----------
    kind
        ``probabilities`` or ``labels`` (hard labels: no score metrics).
    proba
        (n, K) class probabilities in label order, or None for hard labels.
    pred
        Predicted class code per case (argmax; for binary, the threshold
        decision on the positive-class score).
    pos_score
        Score of the positive event (binary: the positive class's probability;
        multiclass with positive classes: their summed probability), or None.
    pred_pos
        Predicted positive event (``pos_score >= threshold``, or the hard label
        in the positive set), or None when there is no positive event.
    """

    kind: str
    proba: np.ndarray | None
    pred: np.ndarray
    pos_score: np.ndarray | None
    pred_pos: np.ndarray | None


@dataclass(frozen=True)
class Cases:
    """Validated case-level inputs shared by every model evaluated on them."""

    n: int
    labels: tuple[Any, ...]
    y: np.ndarray
    positive: tuple[int, ...]
    attributes: tuple[Attribute, ...]
    cluster: np.ndarray | None
    cluster_name: str | None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    covariates: pd.DataFrame | None = None

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def binary(self) -> bool:
        return len(self.labels) == 2

    @property
    def y_pos(self) -> np.ndarray | None:
        if not self.positive:
            return None
        return np.isin(self.y, self.positive)


def _length(values: Any) -> int:
    return len(values) if hasattr(values, "__len__") else np.asarray(values).shape[0]


def _is_missing(values: pd.Series) -> np.ndarray:
    return values.isna().to_numpy(dtype=bool)


def _as_series(values: Any, argument: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, pd.Categorical):
        return pd.Series(values)
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        raise InputError(f"must be one-dimensional, got shape {array.shape}", column=argument)
    return pd.Series(array)


def _first_row(mask: np.ndarray) -> int:
    """1-based row number of the first True in ``mask``."""
    return int(np.flatnonzero(mask)[0]) + 1


def _check_length(values: Any, n: int, argument: str) -> None:
    length = _length(values)
    if length != n:
        raise InputError(f"has {length} entries but y_true has {n}", column=argument)


def _label_codes(values: pd.Series, labels: Sequence[Any], argument: str) -> np.ndarray:
    missing = _is_missing(values)
    if missing.any():
        raise InputError("label is missing (NaN/None)", row=_first_row(missing), column=argument)
    codes = pd.Index(list(labels), dtype=object).get_indexer(values.astype(object)).astype(np.int64)
    outside = codes < 0
    if outside.any():
        row = _first_row(outside)
        raise InputError(
            f"label {values.iloc[row - 1]!r} is not in the label set {list(labels)}", row=row, column=argument
        )
    return codes


def _probability_frame_labels(frame: pd.DataFrame) -> list[str]:
    return [str(c)[len("prob_"):] if str(c).startswith("prob_") else str(c) for c in frame.columns]


def resolve_labels(y_true: pd.Series, y_score: Any, labels: Sequence[Any] | None) -> tuple[Any, ...]:
    """The ordered label set: given, from probability column names, or sorted from the data."""
    if labels is not None:
        labels = list(labels)
        if len(labels) < 2:
            raise InputError(f"needs at least two labels, got {labels}", column="labels")
        if len(set(map(repr, labels))) != len(labels):
            raise InputError(f"labels must be unique, got {labels}", column="labels")
        return tuple(labels)
    if isinstance(y_score, pd.DataFrame) and y_score.shape[1] > 1:
        named = _probability_frame_labels(y_score)
        present = {str(v) for v in y_true.dropna().unique()}
        if present <= set(named):
            values = {str(v): v for v in y_true.dropna().unique()}
            return tuple(values.get(name, name) for name in named)
    observed = y_true.dropna().unique().tolist()
    if not isinstance(y_score, pd.DataFrame) and np.asarray(y_score).ndim == 1:
        score = np.asarray(y_score)
        if score.dtype.kind not in "fc":
            observed += pd.Series(score).dropna().unique().tolist()
    try:
        found = sorted(set(observed))
    except TypeError:  # mixed types: order by their text
        found = sorted(set(observed), key=str)
    width = _score_width(y_score)
    if width is not None and width != len(found):
        raise InputError(
            f"y_score has {width} probability columns but y_true holds {len(found)} distinct labels; "
            "pass labels= in column order",
            column="labels",
        )
    if len(found) < 2:
        raise InputError(
            f"y_true holds one label only ({found}); pass labels= to say what the other classes are",
            column="labels",
        )
    return tuple(found)


def _score_width(y_score: Any) -> int | None:
    if isinstance(y_score, pd.DataFrame):
        return y_score.shape[1] if y_score.shape[1] > 1 else None
    shape = np.shape(y_score)
    return shape[1] if len(shape) == 2 and shape[1] > 1 else None


def resolve_positive(labels: Sequence[Any], positive_label: Any) -> tuple[int, ...]:
    """Codes of the positive classes (binary default: the second label)."""
    if positive_label is None:
        return (1,) if len(labels) == 2 else ()
    wanted = list(positive_label) if isinstance(positive_label, (list, tuple, set, frozenset)) else [positive_label]
    codes = []
    for value in wanted:
        matches = [i for i, label in enumerate(labels) if label == value or str(label) == str(value)]
        if not matches:
            raise InputError(f"positive label {value!r} is not in the label set {list(labels)}",
                             column="positive_label")
        codes.append(matches[0])
    codes = sorted(set(codes))
    if len(codes) == len(labels):
        raise InputError("every label is positive; nothing is negative", column="positive_label")
    if len(labels) == 2 and len(codes) != 1:
        raise InputError("a binary task has one positive label", column="positive_label")
    return tuple(codes)


def _check_probabilities(proba: np.ndarray, argument: str) -> None:
    finite = np.isfinite(proba)
    if not finite.all():
        row = _first_row(~finite.all(axis=1) if finite.ndim == 2 else ~finite)
        raise InputError("probability is NaN or infinite", row=row, column=argument)
    outside = (proba < -ROW_SUM_TOLERANCE) | (proba > 1 + ROW_SUM_TOLERANCE)
    if outside.any():
        row = _first_row(outside.any(axis=1) if outside.ndim == 2 else outside)
        value = proba[row - 1]
        raise InputError(f"probability outside [0, 1]: {value}", row=row, column=argument)
    if proba.ndim == 2:
        off = np.abs(proba.sum(axis=1) - 1.0) > ROW_SUM_TOLERANCE
        if off.any():
            row = _first_row(off)
            raise InputError(
                f"class probabilities sum to {proba[row - 1].sum():.9g}, not 1 (tolerance {ROW_SUM_TOLERANCE:g})",
                row=row,
                column=argument,
            )


def model_output(
    y_score: Any,
    cases: Cases,
    *,
    threshold: float,
    argument: str = "y_score",
) -> ModelOutput:
    """Validate one model's ``y_score`` against the cases.

    ``y_score`` may be (n, K) class probabilities (array, or a DataFrame whose
    columns are the labels or ``prob_<label>``), a 1-d float positive-class
    score (binary only), or 1-d hard labels (any non-float dtype).
    """
    n, labels = cases.n, cases.labels
    _check_length(y_score, n, argument)
    if isinstance(y_score, pd.DataFrame):
        if y_score.shape[1] == 1:
            y_score = y_score.iloc[:, 0]
        else:
            named = _probability_frame_labels(y_score)
            wanted = [str(label) for label in labels]
            if sorted(named) != sorted(wanted):
                raise InputError(f"probability columns {named} do not match the labels {wanted}", column=argument)
            y_score = y_score.iloc[:, [named.index(w) for w in wanted]].to_numpy(dtype=np.float64)
    if isinstance(y_score, (pd.Series, pd.Categorical)):
        series = _as_series(y_score, argument)
        if series.dtype.kind in "fc":
            return _score_output(series.to_numpy(dtype=np.float64), cases, threshold, argument)
        return _label_output(series, cases, argument)
    array = np.asarray(y_score)
    if array.ndim == 1:
        if array.dtype.kind in "fc":
            return _score_output(array.astype(np.float64), cases, threshold, argument)
        return _label_output(pd.Series(array, dtype=object), cases, argument)
    if array.ndim != 2:
        raise InputError(f"must be 1-d or (n, classes), got shape {array.shape}", column=argument)
    if array.shape[1] != len(labels):
        raise InputError(f"has {array.shape[1]} probability columns for {len(labels)} labels {list(labels)}",
                         column=argument)
    try:
        array = array.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError("probabilities must be numbers", column=argument) from None
    _check_probabilities(array, argument)
    array = np.clip(array, 0.0, 1.0)
    if cases.binary:
        pos_score = array[:, cases.positive[0]]
        pred_pos = pos_score >= threshold
        pred = np.where(pred_pos, cases.positive[0], 1 - cases.positive[0]).astype(np.int64)
        return ModelOutput("probabilities", array, pred, pos_score, pred_pos)
    pred = np.argmax(array, axis=1).astype(np.int64)
    if cases.positive:
        pos_score = np.clip(array[:, list(cases.positive)].sum(axis=1), 0.0, 1.0)
        return ModelOutput("probabilities", array, pred, pos_score, pos_score >= threshold)
    return ModelOutput("probabilities", array, pred, None, None)


def _label_output(series: pd.Series, cases: Cases, argument: str) -> ModelOutput:
    pred = _label_codes(series, cases.labels, argument)
    return ModelOutput("labels", None, pred, None, np.isin(pred, cases.positive) if cases.positive else None)


def _score_output(score: np.ndarray, cases: Cases, threshold: float, argument: str) -> ModelOutput:
    if not cases.binary:
        raise InputError(
            f"a 1-d score needs a binary task; with {cases.n_classes} labels pass (n, {cases.n_classes}) "
            "probabilities or hard labels",
            column=argument,
        )
    _check_probabilities(score, argument)
    score = np.clip(score, 0.0, 1.0)
    positive = cases.positive[0]
    proba = np.empty((score.shape[0], 2))
    proba[:, positive] = score
    proba[:, 1 - positive] = 1.0 - score
    pred_pos = score >= threshold
    pred = np.where(pred_pos, positive, 1 - positive).astype(np.int64)
    return ModelOutput("probabilities", proba, pred, score, pred_pos)


def _group_values(values: Any, name: str, n: int) -> tuple[np.ndarray, list[str], list[bool]]:
    """Codes, display values and missing-markers of one attribute (categories kept in order)."""
    _check_length(values, n, f"groups[{name}]")
    series = _as_series(values, f"groups[{name}]")
    missing = _is_missing(series)
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = list(series.cat.categories)
        codes = series.cat.codes.to_numpy().astype(np.int64)
    else:
        present = series[~missing]
        try:
            categories = sorted(present.unique().tolist())
        except TypeError:
            categories = sorted(present.unique().tolist(), key=str)
        codes = np.full(n, -1, dtype=np.int64)
        if len(categories):
            codes[~missing] = pd.Categorical(present, categories=categories).codes
    shown = [str(c) for c in categories]
    flags = [False] * len(shown)
    if missing.any():
        codes[missing] = len(shown)
        shown.append(MISSING)
        flags.append(True)
    return codes, shown, flags


def _attribute_inputs(groups: Any) -> dict[str, Any]:
    if groups is None:
        return {}
    if isinstance(groups, pd.DataFrame):
        return {str(c): groups[c] for c in groups.columns}
    if isinstance(groups, Mapping):
        return {str(k): v for k, v in groups.items()}
    name = str(groups.name) if isinstance(groups, pd.Series) and groups.name is not None else DEFAULT_ATTRIBUTE
    return {name: groups}


def build_attributes(
    groups: Any,
    n: int,
    intersections: str | Sequence[Sequence[str]] | None,
) -> tuple[Attribute, ...]:
    """Attributes (each given one, then the requested intersections) as group codes."""
    inputs = _attribute_inputs(groups)
    for name in inputs:
        if not name or "&" in name or "=" in name:
            raise InputError(f"attribute name {name!r} must be non-empty without '&' or '='", column="groups")
    base: dict[str, Attribute] = {}
    for name, values in inputs.items():
        codes, shown, flags = _group_values(values, name, n)
        base[name] = Attribute(
            name=name,
            codes=codes,
            groups=tuple(f"{name}={v}" for v in shown),
            missing=tuple(flags),
            members=(name,),
        )
    crossed: list[Attribute] = []
    if intersections == "all":
        combos = [tuple(base)] if len(base) > 1 else []
    elif intersections is None:
        combos = []
    elif isinstance(intersections, str):
        raise InputError(f"intersections must be 'all' or a list of attribute lists, got {intersections!r}",
                         column="intersections")
    else:
        combos = [tuple(combo) for combo in intersections]
    for combo in combos:
        unknown = [a for a in combo if a not in base]
        if unknown or len(combo) < 2:
            raise InputError(
                f"intersection {list(combo)} must name two or more of the attributes {list(base)}",
                column="intersections",
            )
        crossed.append(_intersection([base[a] for a in combo]))
    return tuple(base.values()) + tuple(crossed)


def _intersection(parts: list[Attribute]) -> Attribute:
    stacked = np.stack([p.codes for p in parts], axis=1)
    combos, codes = np.unique(stacked, axis=0, return_inverse=True)
    names, missing = [], []
    for combo in combos:
        names.append(" & ".join(p.groups[c] for p, c in zip(parts, combo)))
        missing.append(any(p.missing[c] for p, c in zip(parts, combo)))
    return Attribute(
        name="&".join(p.name for p in parts),
        codes=codes.reshape(-1).astype(np.int64),
        groups=tuple(names),
        missing=tuple(missing),
        members=tuple(p.name for p in parts),
    )


def cluster_codes(cluster: Any, n: int) -> tuple[np.ndarray | None, str | None]:
    """Integer codes of the cluster (patient/lesion) of every case, sorted by value."""
    if cluster is None:
        return None, None
    name = str(cluster.name) if isinstance(cluster, pd.Series) and cluster.name is not None else "cluster"
    _check_length(cluster, n, "cluster")
    series = _as_series(cluster, "cluster")
    missing = _is_missing(series)
    if missing.any():
        raise InputError("cluster id is missing (NaN/None)", row=_first_row(missing), column="cluster")
    _, codes = np.unique(series.astype(str).to_numpy(), return_inverse=True)
    return codes.reshape(-1).astype(np.int64), name


def score_columns(scores: Any, n: int) -> dict[str, np.ndarray]:
    """Per-case score columns (e.g. 0-5 ratings); NaN means 'not rated', inf is an error."""
    if scores is None:
        return {}
    if isinstance(scores, pd.DataFrame):
        items = {str(c): scores[c] for c in scores.columns}
    elif isinstance(scores, Mapping):
        items = {str(k): v for k, v in scores.items()}
    else:
        raise InputError("scores must be a mapping {name: array} or a DataFrame", column="scores")
    out = {}
    for name, values in items.items():
        _check_length(values, n, f"scores[{name}]")
        try:
            array = pd.to_numeric(_as_series(values, f"scores[{name}]"), errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InputError(f"score column is not numeric ({error})", column=f"scores[{name}]") from None
        infinite = np.isinf(array)
        if infinite.any():
            raise InputError("score is infinite", row=_first_row(infinite), column=f"scores[{name}]")
        out[name] = array
    return out


def covariate_frame(covariates: Any, n: int) -> pd.DataFrame | None:
    """Covariates for the case-mix model (numeric or categorical columns)."""
    if covariates is None:
        return None
    frame = pd.DataFrame(covariates) if not isinstance(covariates, pd.DataFrame) else covariates
    if len(frame) != n:
        raise InputError(f"has {len(frame)} rows but y_true has {n}", column="covariates")
    return frame.reset_index(drop=True)


def build_cases(
    y_true: Any,
    y_score: Any,
    groups: Any,
    *,
    labels: Sequence[Any] | None,
    positive_label: Any,
    intersections: str | Sequence[Sequence[str]] | None,
    cluster: Any,
    scores: Any,
    covariates: Any,
) -> Cases:
    """Validate the case-level inputs (everything but the model's output)."""
    series = _as_series(y_true, "y_true")
    n = len(series)
    if n == 0:
        raise InputError("no cases: y_true is empty", column="y_true")
    resolved = resolve_labels(series, y_score, labels)
    y = _label_codes(series, resolved, "y_true")
    cluster_array, cluster_name = cluster_codes(cluster, n)
    return Cases(
        n=n,
        labels=resolved,
        y=y,
        positive=resolve_positive(resolved, positive_label),
        attributes=build_attributes(groups, n, intersections),
        cluster=cluster_array,
        cluster_name=cluster_name,
        scores=score_columns(scores, n),
        covariates=covariate_frame(covariates, n),
    )
