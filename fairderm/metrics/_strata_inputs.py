"""Inputs of the estimated-strata analyses: the strata error model and the validated true groups.

See :mod:`fairderm.metrics._strata` for the methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm.errors import InputError
from fairderm.metrics._bootstrap import build_design, draw_weights
from fairderm.metrics._inputs import Cases

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




@dataclass
class StrataTables:
    """Rows added to an evaluation: groups, disparities, tests and what produced them."""

    groups: pd.DataFrame
    disparities: pd.DataFrame
    tests: pd.DataFrame
    config: dict[str, Any]


def group_name(attribute: str, value: str) -> str:
    """``<attribute>=<value>``, the metrics engine's group naming."""
    return f"{attribute}={value}"


def resample_counts(rng: np.random.Generator, strata: np.ndarray, cluster: np.ndarray | None,
                    n_boot: int) -> np.ndarray:
    """(B, n) multiplicity of every case, in input order: the metrics engine's stratified bootstrap.

    Cases (or, with ``cluster``, whole clusters) are drawn with replacement
    within each value of ``strata`` (:func:`fairderm.metrics._bootstrap.draw_weights`);
    a cluster's cases must share a stratum.
    """
    design = build_design(strata.reshape(-1, 1), [], cluster)
    counts = np.empty((n_boot, strata.size))
    counts[:, design.order] = draw_weights(rng, design, n_boot)
    return counts
