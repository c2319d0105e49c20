"""Disparity metrics with honest uncertainty.

:func:`evaluate` computes, for every group of every attribute (and their
intersections), classification metrics with bootstrap intervals, the
disparities between groups with intervals from the same replicates,
tests of any difference across groups with multiplicity control,
reliability-curve data, case-mix-adjusted odds ratios and the minimum
detectable difference. :func:`compare` does the same for two models on the
same cases with paired intervals of every difference.

Conventions
-----------
Group names
    ``<attribute>=<value>``, e.g. ``fitzpatrick_est=V-VI``; an intersection
    joins its parts with `` & `` in the order the attributes were listed,
    e.g. ``fitzpatrick_est=V-VI & sex=female``, and its attribute name joins
    the attribute names with ``&`` (``fitzpatrick_est&sex``). The row over
    all cases has group and attribute ``all``. Cases with a missing value
    (None, NaN, NA) form the group ``<attribute>=missing``. Groups are listed
    in category order (pandas Categorical) or sorted by value; categories
    without cases are listed with flag ``empty``.
Metric names
    ``accuracy``, ``balanced_accuracy``, ``top_k_accuracy`` (k = ``top_k``),
    ``sensitivity``, ``specificity``, ``ppv``, ``npv``, ``f1``,
    ``selection_rate``, ``f1_macro``, ``auroc``, ``auroc_macro``, ``brier``,
    ``ece`` and ``mean_score:<column>`` for each column of ``scores=``.
    Binary tasks and multiclass tasks with ``positive_label`` (e.g. the
    malignant classes) evaluate the rate metrics and ``auroc`` on the positive
    event: its score is the (summed) positive-class probability, decided at
    ``threshold``. Multiclass tasks without a positive event give the rate
    metrics one-vs-rest per class (``sensitivity:melanoma``), ``f1`` gives
    per-class F1 and ``f1_macro``, and ``auroc`` is the one-vs-rest macro
    average (``auroc_macro`` when a positive event takes ``auroc``).
    ``ece`` uses equal-mass bins (positive-class probability vs outcome for
    binary, top-label confidence vs correctness for multiclass); ``brier`` is
    the mean squared error of the positive-class probability (binary) or the
    sum over classes (multiclass, Brier 1950).
Flags
    ``ok``; ``insufficient`` (fewer than ``min_group_size`` cases, fewer
    than ``min_positives`` in the metric's denominator -- positives for
    sensitivity/F1/AUROC, negatives for specificity/AUROC, predicted positives
    for PPV, predicted negatives for NPV, the rarest class for balanced
    accuracy -- or the metric undefined in over 1% of bootstrap replicates);
    ``undefined`` (the metric does not exist here, e.g. AUROC of a group with
    one class: the estimate is NaN); ``empty`` (no cases); ``missing_value``
    (the group of cases with a missing attribute). Only ``ok`` groups are
    ranked as worst or best and enter gaps and ratios; no group is dropped.
Intervals
    Stratified bootstrap (every cell of the crossed attributes keeps its
    size), resampling whole clusters within cells when ``cluster`` is given;
    percentile or BCa (Efron 1987) with the jackknife acceleration over the
    resampling units. Disparities come from the same replicates as the group
    estimates; ratios use the log scale. Maxima and minima over groups (gap,
    ratio, ``eod``, ``dpd``) always get percentile intervals: the BCa bias
    correction misfires on them (simulated coverage 86-90%, percentile
    94-97%; ``benchmarks/coverage.py``). A proportion of exactly 0 or 1,
    where every replicate is equal, gets the Wilson (1927) interval.
"""

from __future__ import annotations

from fairderm.metrics._api import compare, evaluate
from fairderm.metrics._casemix import case_mix_adjustment
from fairderm.metrics._catalogue import SCORE_METRICS, metric_name_problem
from fairderm.metrics._groups import DisparityRow, GroupKey, GroupRow, insufficient_reason, reasons_by_metric
from fairderm.metrics._intervals import Interval, newcombe_interval, wilson_interval
from fairderm.metrics._options import EvaluationOptions
from fairderm.metrics._power import minimum_detectable_difference
from fairderm.metrics._result import ComparisonResult, Disparities, EvaluationResult, Summary, read_metrics
from fairderm.metrics._significance import adjust_pvalues
from fairderm.metrics._strata import StrataErrorModel

__all__ = [
    "SCORE_METRICS",
    "ComparisonResult",
    "Disparities",
    "DisparityRow",
    "EvaluationOptions",
    "EvaluationResult",
    "GroupKey",
    "GroupRow",
    "Interval",
    "StrataErrorModel",
    "Summary",
    "adjust_pvalues",
    "case_mix_adjustment",
    "compare",
    "evaluate",
    "insufficient_reason",
    "metric_name_problem",
    "minimum_detectable_difference",
    "newcombe_interval",
    "read_metrics",
    "reasons_by_metric",
    "wilson_interval",
]
