"""Disparity statistics across the groups of one attribute, computed from the
very bootstrap replicates (and jackknife values) of the group estimates.

Kinds (the ``kind`` column):

``gap``
    max - min of the metric over the groups flagged ``ok``; ``group`` is the
    worst group and ``reference`` the best.
``ratio``
    min / max over the same groups, with its interval formed on the log
    scale and transformed back.
``diff_vs_ref``
    group - reference for every other group.
``eod``
    equalized-odds difference: the larger of the sensitivity (TPR) gap and the
    specificity gap (= FPR gap) (Hardt et al. 2016; fairlearn's
    ``equalized_odds_difference``).
``dpd``
    demographic-parity difference: the selection-rate gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Statistic:
    """A scalar statistic with its bootstrap replicates and jackknife values.

    ``jack`` and ``strata`` run over the units of the attribute's groups (or
    the group's units for a group estimate); ``log`` marks a statistic held on
    the log scale (ratios), to be exponentiated after the interval.
    ``smooth`` is False for maxima and minima over groups (gap, ratio, EOD,
    DPD): their intervals are always percentile intervals, because the bias
    correction of BCa assumes a smooth statistic and, with groups close to the
    extremes, over-corrects (simulated coverage 86-90% for BCa, 94-97% for
    the percentile interval; see ``benchmarks/coverage.py``).
    """

    estimate: float
    replicates: np.ndarray
    jack: np.ndarray | None = None
    strata: np.ndarray | None = None
    log: bool = False
    smooth: bool = True

    def __sub__(self, other: Statistic) -> Statistic:
        jack = None
        if self.jack is not None and other.jack is not None:
            jack = self.jack - other.jack
        return Statistic(self.estimate - other.estimate, self.replicates - other.replicates, jack, self.strata,
                         smooth=self.smooth and other.smooth)


@dataclass
class GroupSeries:
    """One metric over the groups of one attribute, for one model.

    ``estimates`` (G,), ``replicates`` (G, B), ``jack[g]`` the group's
    leave-one-unit-out values (aligned with ``unit_slices[g]`` of the
    attribute's unit list), ``strata`` the cell of each unit.
    """

    estimates: np.ndarray
    replicates: np.ndarray
    jack: list[np.ndarray | None]
    unit_slices: list[slice]
    strata: np.ndarray | None


def _spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, min) over the groups (last axis); NaN if any group is NaN."""
    with np.errstate(invalid="ignore"):
        return values.max(axis=-1), values.min(axis=-1)


def _jack_over_units(series: GroupSeries, eligible: Sequence[int], reduce) -> np.ndarray | None:
    """Leave-one-unit-out values of ``reduce(max, min)`` over the groups.

    Leaving out a unit changes its own group's estimate only, so each value is
    the group's jackknife value against the other groups' fixed max and min.
    """
    if series.strata is None or any(series.jack[g] is None for g in eligible):
        return None
    base = series.estimates[list(eligible)]
    out = np.full(series.strata.size, reduce(*_spread(base))[()])
    for position, g in enumerate(eligible):
        others = np.delete(base, position)
        high, low = _spread(others)
        values = series.jack[g]
        with np.errstate(invalid="ignore"):
            out[series.unit_slices[g]] = reduce(np.fmax(values, high) if np.isfinite(high) else values,
                                                np.fmin(values, low) if np.isfinite(low) else values)
    return out


def _gap(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    return high - low


def _log_ratio(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(high > 0, np.log(np.maximum(low, 0.0)) - np.log(np.where(high > 0, high, 1.0)), np.nan)


def extremes(estimates: np.ndarray, eligible: Sequence[int], higher_is_better: bool | None) -> tuple[int, int]:
    """(worst, best) group indices among the eligible ones."""
    values = estimates[list(eligible)]
    low, high = eligible[int(np.argmin(values))], eligible[int(np.argmax(values))]
    return (high, low) if higher_is_better is False else (low, high)


def gap(series: GroupSeries, eligible: Sequence[int]) -> Statistic:
    columns = list(eligible)
    estimate = float(_gap(*_spread(series.estimates[columns])))
    replicates = _gap(*_spread(series.replicates[columns].T))
    return Statistic(estimate, replicates, _jack_over_units(series, columns, _gap), series.strata, smooth=False)


def log_ratio(series: GroupSeries, eligible: Sequence[int]) -> Statistic:
    columns = list(eligible)
    estimate = float(_log_ratio(*_spread(series.estimates[columns])))
    replicates = _log_ratio(*_spread(series.replicates[columns].T))
    return Statistic(estimate, replicates, _jack_over_units(series, columns, _log_ratio), series.strata, log=True,
                     smooth=False)


def difference(series: GroupSeries, group: int, reference: int) -> Statistic:
    estimate = float(series.estimates[group] - series.estimates[reference])
    replicates = series.replicates[group] - series.replicates[reference]
    jack = None
    if series.strata is not None and series.jack[group] is not None and series.jack[reference] is not None:
        jack = np.full(series.strata.size, estimate)
        jack[series.unit_slices[group]] = series.jack[group] - series.estimates[reference]
        jack[series.unit_slices[reference]] = series.estimates[group] - series.jack[reference]
    return Statistic(estimate, replicates, jack, series.strata)


def equalized_odds(sensitivity: GroupSeries, specificity: GroupSeries, eligible: Sequence[int]) -> Statistic:
    """max(TPR gap, FPR gap); the FPR gap equals the specificity gap."""
    tpr, spec = gap(sensitivity, eligible), gap(specificity, eligible)
    jack = None
    if tpr.jack is not None and spec.jack is not None:
        jack = np.fmax(tpr.jack, spec.jack)
    with np.errstate(invalid="ignore"):
        replicates = np.maximum(tpr.replicates, spec.replicates)
    estimate = max(tpr.estimate, spec.estimate) if not (math.isnan(tpr.estimate) or math.isnan(spec.estimate)) \
        else math.nan
    return Statistic(estimate, replicates, jack, sensitivity.strata, smooth=False)
