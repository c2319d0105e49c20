"""Groups as structured keys, and the typed rows of a metrics result.

A group is a :class:`GroupKey` (attribute -> value); its ``str()`` is the
canonical name that ``metrics.json`` stores (``fitzpatrick_est=V-VI & sex=female``,
``all`` for every case). :class:`GroupRow` and :class:`DisparityRow` are one
row of the groups and disparities tables, as :class:`EvaluationResult` hands
them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fairderm.errors import InputError

#: The group of every case, and the attribute of its rows.
ALL = "all"
_PART_SEPARATOR = " & "
_ATTRIBUTE_SEPARATOR = "&"


@dataclass(frozen=True)
class GroupKey(Mapping[str, str]):
    """A group as attribute -> value, in the attributes' order (``{}`` is every case, ``all``).

    Its text is the group's name in ``metrics.json``: ``fitzpatrick_est=V-VI``
    for one attribute, ``fitzpatrick_est=V-VI & sex=female`` for an
    intersection, ``all`` for the empty key; :meth:`parse` reads it back.
    Attribute names hold neither ``&`` nor ``=`` (the metrics engine refuses
    them), so the name is unambiguous whenever no value holds ``" & "``.
    """

    parts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> GroupKey:
        """A key from attribute -> value pairs (values as text)."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return cls(tuple((str(attribute), str(value)) for attribute, value in items))

    @classmethod
    def parse(cls, name: str) -> GroupKey:
        """The key of a group name as ``metrics.json`` writes it (``a=x & b=y``, or ``all``).

        Raises
        ------
        InputError
            When a part of the name is not ``attribute=value``.
        """
        text = str(name)
        if text == ALL:
            return cls()
        parts = []
        for part in text.split(_PART_SEPARATOR):
            attribute, sep, value = part.partition("=")
            if not sep or not attribute.strip():
                raise InputError(f"group {text!r} is not 'attribute=value' (parts joined by ' & ') nor 'all'",
                                 column="group")
            parts.append((attribute.strip(), value))
        return cls(tuple(parts))

    @classmethod
    def coerce(cls, group: GroupKey | Mapping[str, Any] | str) -> GroupKey:
        """``group`` as a key: a key as is, a mapping by :meth:`of`, a name by :meth:`parse`."""
        if isinstance(group, GroupKey):
            return group
        if isinstance(group, Mapping):
            return cls.of(group)
        return cls.parse(group)

    @property
    def attribute(self) -> str:
        """The attribute the group belongs to: ``a&b`` for an intersection, ``all`` for every case."""
        return _ATTRIBUTE_SEPARATOR.join(a for a, _ in self.parts) if self.parts else ALL

    @property
    def label(self) -> str:
        """Short display name: the value for one attribute, the full name otherwise."""
        return self.parts[0][1] if len(self.parts) == 1 else str(self)

    def __getitem__(self, attribute: str) -> str:
        for name, value in self.parts:
            if name == attribute:
                return value
        raise KeyError(attribute)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    def __str__(self) -> str:
        return _PART_SEPARATOR.join(f"{a}={v}" for a, v in self.parts) if self.parts else ALL

    def __repr__(self) -> str:
        return f"GroupKey({str(self)!r})"


def _optional_float(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _optional_int(value: Any) -> int | None:
    number = _optional_float(value)
    return None if number is None else int(round(number))


def optional_text(value: Any) -> str | None:
    return None if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)


@dataclass(frozen=True)
class GroupRow:
    """One metric in one group: the estimate, its interval and what it rests on.

    ``basis`` says how the group is known (``labelled``, ``estimated``,
    ``corrected``, ``bounded``); a bounded row has no estimate and its range
    in ``ci_low``/``ci_high`` (and ``bound_low``/``bound_high``). Undefined
    numbers (null in ``metrics.json``) are None.
    """

    key: GroupKey
    attribute: str
    metric: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    n_pos: int | None
    flag: str
    basis: str | None = None
    bound_low: float | None = None
    bound_high: float | None = None

    @property
    def label(self) -> str:
        """The group's short name (see :attr:`GroupKey.label`)."""
        return self.key.label


def insufficient_reason(
    metric: str, n: int | None, n_pos: int | None, *, min_group_size: float | None, min_positives: float | None,
) -> str:
    """Why a group's ``metric`` is flagged ``insufficient``, in the words of the rule.

    The rule (see "Flags" in :mod:`fairderm.metrics`): fewer than
    ``min_group_size`` cases, fewer than ``min_positives`` in the metric's
    denominator, or the metric undefined in over 1% of bootstrap replicates.
    ``metric`` may carry its class (``sensitivity:melanoma``).
    """
    if n is not None and min_group_size is not None and n < min_group_size:
        return f"{n} {'case' if n == 1 else 'cases'} (fewer than {int(min_group_size)})"
    base = metric.partition(":")[0]
    if n is not None and n_pos is not None and min_positives is not None:
        counted = {"sensitivity": [(n_pos, "positives")], "f1": [(n_pos, "positives")],
                   "specificity": [(n - n_pos, "negatives")],
                   "auroc": [(n_pos, "positives"), (n - n_pos, "negatives")]}.get(base, [])
        short = [(count, what) for count, what in counted if count < min_positives]
        if short:
            return " and ".join(f"{count} {what}" for count, what in short) + f" (fewer than {int(min_positives)})"
    denominator = {"ppv": "predicted positives", "npv": "predicted negatives",
                   "balanced_accuracy": "cases of its rarest class", "auroc": "cases of its rarest class"}.get(base)
    undefined = "undefined in over 1% of bootstrap replicates"
    if denominator and min_positives is not None:
        return f"fewer than {int(min_positives)} {denominator}, or {undefined}"
    return undefined


def reasons_by_metric(
    rows: Iterable[Mapping[str, Any]], *, min_group_size: float | None, min_positives: float | None,
) -> dict[str, list[str]]:
    """Why each of a group's flagged metrics was not judged, grouped: reason -> its metrics, in row order.

    ``rows`` are group rows (``metric``, ``n``, ``n_pos``, ``flag``; missing
    counts as None or NaN). An ``insufficient`` row gets
    :func:`insufficient_reason`; another flag reads ``flag <name>``.
    """
    reasons: dict[str, list[str]] = {}
    for row in rows:
        if row["flag"] == "insufficient":
            reason = insufficient_reason(str(row["metric"]), _count(row.get("n")), _count(row.get("n_pos")),
                                         min_group_size=min_group_size, min_positives=min_positives)
        else:
            reason = f"flag {row['flag']}"
        reasons.setdefault(reason, []).append(str(row["metric"]))
    return reasons


def _count(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


@dataclass(frozen=True)
class DisparityRow:
    """One disparity (gap, ratio, difference from the reference, ...) of one metric over one attribute.

    ``key`` is the worst group of a gap or ratio, or the group a
    ``diff_vs_ref`` compares, and ``reference`` the best group or the
    reference (either None when ``metrics.json`` names none, or names the
    attribute as a whole).
    """

    attribute: str
    metric: str
    kind: str
    key: GroupKey | None
    reference: GroupKey | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    flag: str
    basis: str | None = None
    bound_low: float | None = None
    bound_high: float | None = None


def _key_of(value: Any, attribute: str) -> GroupKey | None:
    """A group column's key; None for a row that names no group or its attribute (the attribute as a whole)."""
    text = optional_text(value)
    if text == ALL:
        return GroupKey()
    if text is None or text in ("", attribute):
        return None
    return GroupKey.parse(text)


def group_row(record: Mapping[str, Any]) -> GroupRow:
    attribute = str(record["attribute"])
    key = _key_of(record["group"], attribute)
    if key is None:
        raise InputError(f"a {attribute!r} row of {record['metric']!r} names no group", column="group")
    return GroupRow(
        key=key, attribute=attribute, metric=str(record["metric"]),
        estimate=_optional_float(record["estimate"]), ci_low=_optional_float(record["ci_low"]),
        ci_high=_optional_float(record["ci_high"]), n=_optional_int(record["n"]),
        n_pos=_optional_int(record["n_pos"]), flag=optional_text(record["flag"]) or "ok",
        basis=optional_text(record.get("basis")), bound_low=_optional_float(record.get("bound_low")),
        bound_high=_optional_float(record.get("bound_high")),
    )


def disparity_row(record: Mapping[str, Any]) -> DisparityRow:
    attribute = str(record["attribute"])
    reference = optional_text(record.get("reference"))
    return DisparityRow(
        attribute=attribute, metric=str(record["metric"]), kind=str(record["kind"]),
        key=_key_of(record["group"], attribute),
        reference=None if reference is None else _key_of(reference, attribute),
        estimate=_optional_float(record["estimate"]), ci_low=_optional_float(record["ci_low"]),
        ci_high=_optional_float(record["ci_high"]), flag=optional_text(record.get("flag")) or "ok",
        basis=optional_text(record.get("basis")), bound_low=_optional_float(record.get("bound_low")),
        bound_high=_optional_float(record.get("bound_high")),
    )
