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

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from threadpoolctl import threadpool_limits

from fairderm.metrics._casemix import case_mix_adjustment
from fairderm.metrics._catalogue import SCORE_METRICS, metric_name_problem
from fairderm.metrics._evaluate import run_engine
from fairderm.metrics._intervals import Interval, newcombe_interval, wilson_interval
from fairderm.metrics._power import minimum_detectable_difference
from fairderm.metrics._result import ComparisonResult, Disparities, EvaluationResult
from fairderm.metrics._significance import adjust_pvalues
from fairderm.metrics._strata import StrataErrorModel, with_strata_error

#: evaluate()'s arguments about estimated strata (not engine options; compare() does not take them).
_STRATA_KEYS = ("true_groups", "inclusion_prob", "strata_error", "estimated")

__all__ = [
    "SCORE_METRICS",
    "ComparisonResult",
    "Disparities",
    "EvaluationResult",
    "Interval",
    "StrataErrorModel",
    "adjust_pvalues",
    "case_mix_adjustment",
    "compare",
    "evaluate",
    "metric_name_problem",
    "minimum_detectable_difference",
    "newcombe_interval",
    "paired_evaluate",
    "wilson_interval",
]


def evaluate(
    y_true: Any,
    y_score: Any,
    groups: Any = None,
    *,
    labels: Sequence[Any] | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    ci: str = "bca",
    confidence: float = 0.95,
    cluster: Any = None,
    seed: int = 0,
    threshold: float = 0.5,
    positive_label: Any = None,
    min_group_size: int = 30,
    min_positives: int = 10,
    reference: str | Mapping[str, str] | None = None,
    intersections: str | Sequence[Sequence[str]] | None = None,
    scores: Mapping[str, Any] | Any = None,
    covariates: Any = None,
    top_k: int = 2,
    n_bins: int = 10,
    p_adjust: str = "holm",
    n_perm: int = 1000,
    tests: bool = True,
    case_mix: bool = True,
    power: bool = True,
    n_jobs: int | None = None,
    true_groups: Any = None,
    inclusion_prob: Any = None,
    strata_error: StrataErrorModel | None = None,
    estimated: Sequence[str] | None = None,
) -> EvaluationResult:
    """Per-group metrics, disparities and their uncertainty for one model.

    Parameters
    ----------
    y_true
        True label of every case.
    y_score
        (n, K) class probabilities in ``labels`` order (array, or DataFrame
        with columns ``<label>`` or ``prob_<label>``); for a binary task also
        a 1-d float positive-class score; or 1-d hard labels (any non-float
        dtype), which leaves out the score metrics (AUROC, Brier, ECE,
        top-k).
    groups
        One attribute array, a dict ``{attribute: array}`` or a DataFrame of
        attribute columns; None evaluates all cases only.
    labels
        The label set in order; default the column names of a probability
        DataFrame, else the sorted labels seen.
    metrics
        Metric names (see the module docstring); default all that apply.
    n_boot
        Bootstrap replicates B (0: point estimates only).
    ci
        ``bca`` or ``percentile``.
    confidence
        Two-sided coverage of every interval.
    cluster
        Patient or lesion id per case: the bootstrap, the jackknife, the
        permutation tests and the case-mix standard errors then treat a
        cluster as the unit.
    seed
        Seed of every random draw; equal inputs and seed give equal results.
    threshold
        Decision threshold on the positive-event score.
    positive_label
        Positive label (binary; default the second label) or positive labels
        (multiclass, e.g. the malignant classes).
    min_group_size, min_positives
        Small-sample rules of the ``insufficient`` flag.
    reference
        Reference group for ``diff_vs_ref`` and case mix: a value, a full group
        name, or ``{attribute: value}``; default the largest group. Given
        explicitly, it is also the comparator of the power analysis (else the
        rest of the cases).
    intersections
        ``"all"`` (all attributes crossed) or a list of attribute lists.
    scores
        Per-case score columns ``{name: array}`` (NaN = not rated), reported as
        ``mean_score:<name>``.
    covariates
        DataFrame of case-mix covariates (age, sex, body site...).
    top_k
        k of ``top_k_accuracy``.
    n_bins
        Equal-mass bins of ECE and of the reliability curves.
    p_adjust
        ``holm`` (confirmatory), ``fdr_bh`` (exploratory), ``bonferroni`` or
        ``none``.
    n_perm
        Permutations per permutation test.
    tests, case_mix, power
        Whether to compute these tables.
    n_jobs
        Threads for the bootstrap (default: available cores, at most 4).
    true_groups
        The true group of a validation sample of cases (missing elsewhere)
        for an attribute whose groups are estimated: an array when ``groups``
        has one attribute, else ``{attribute: array}``. Adds the attribute
        ``<attribute>:true`` with metrics, disparities and tests per *true*
        group that carry the estimate's error and the validation sample's
        uncertainty (basis ``corrected``; ``labelled`` when every case is
        labelled, then the labels are used directly). See
        :mod:`fairderm.metrics._strata` for the estimator and its assumption.
    inclusion_prob
        Each labelled case's probability of having been drawn into the
        validation sample (``fairderm tone label`` records it); default: the
        labelled share of its estimated group (labelled at random within
        estimated group).
    strata_error
        Without ``true_groups``: an error model of the estimated attribute
        (:class:`StrataErrorModel`, e.g. ``StrataErrorModel.published()``).
        Adds ``<attribute>:bounds`` with the range of every rate metric and
        gap consistent with the data and the model (basis ``bounded``:
        ``estimate`` is null, ``bound_low``/``bound_high`` the identified
        range, ``ci_low``/``ci_high`` the range widened for sampling error).
        The error model names the attribute through ``estimated`` (its first
        entry) or, with one attribute, applies to it.
    estimated
        Attributes whose values are estimates (rows get basis ``estimated``,
        others ``labelled``); default the attribute named by
        ``true_groups`` / ``strata_error``.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    fairderm.errors.InputError
        On NaN/inf or out-of-range probabilities, rows not summing to 1,
        labels outside the label set, mismatched lengths, unknown metrics or
        options; the message names the argument and row.
    """
    settings = {key: value for key, value in locals().items()
                if key not in ("y_true", "y_score", "groups", *_STRATA_KEYS)}
    # One BLAS thread: the engine's products are small, and it runs its own threads.
    with threadpool_limits(limits=1, user_api="blas"):
        engine = run_engine(y_true, [y_score], groups, settings)
        return with_strata_error(engine, engine.result(0), true_groups=true_groups, inclusion_prob=inclusion_prob,
                                 strata_error=strata_error, estimated=estimated)


def compare(
    y_true: Any,
    y_score_a: Any,
    y_score_b: Any,
    groups: Any = None,
    *,
    names: tuple[str, str] = ("a", "b"),
    **options: Any,
) -> ComparisonResult:
    """Two models on the same cases: each evaluated, and every difference
    (per-group metric, gap, ratio, ...) with a paired-bootstrap interval.

    Both models are scored on the very same bootstrap replicates, so the
    interval of ``a - b`` reflects the pairing (it is usually much narrower
    than the two separate intervals suggest). Gaps and ratios are taken over
    the groups flagged ``ok`` for both models.

    Parameters
    ----------
    y_true, groups
        As in :func:`evaluate`.
    y_score_a, y_score_b
        The two models' outputs, each in any form :func:`evaluate` accepts.
    names
        Labels of the two models; differences are ``names[0] - names[1]``.
    **options
        Any keyword argument of :func:`evaluate` (``n_boot``, ``ci``,
        ``cluster``, ``seed``, ...), with the same defaults.

    Returns
    -------
    ComparisonResult
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError("names must be two distinct model names")
    defaults = {
        key: parameter.default for key, parameter in inspect.signature(evaluate).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and key not in _STRATA_KEYS
    }
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"compare() got unexpected keyword argument(s) {unknown}")
    with threadpool_limits(limits=1, user_api="blas"):
        engine = run_engine(y_true, [y_score_a, y_score_b], groups, {**defaults, **options})
        return engine.comparison((str(names[0]), str(names[1])))


#: Alias of :func:`compare`.
paired_evaluate = compare
