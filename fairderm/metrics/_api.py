"""The public entry points of the metrics package: :func:`evaluate` and :func:`compare`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fairderm._threads import thread_limits
from fairderm.metrics._assemble import evaluation_result
from fairderm.metrics._comparison import comparison
from fairderm.metrics._engine import run_engine
from fairderm.metrics._options import EvaluationOptions
from fairderm.metrics._result import ComparisonResult, EvaluationResult
from fairderm.metrics._strata import StrataErrorModel, with_strata_error


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
    workers: int | None = None,
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
        (n, K) class probabilities in ``labels`` order (array, or DataFrame with
        columns ``<label>`` or ``prob_<label>``); for a binary task also a 1-d
        float positive-class score; or 1-d hard labels (any non-float dtype),
        which leaves out the score metrics (AUROC, Brier, ECE, top-k).
    groups
        One attribute array, a dict ``{attribute: array}`` or a DataFrame of
        attribute columns; None evaluates all cases only.
    labels
        The label set in order; default the column names of a probability
        DataFrame, else the sorted labels seen.
    metrics
        Metric names (see the module docstring); default all that apply.
    cluster
        Patient or lesion id per case: the bootstrap, the jackknife, the
        permutation tests and the case-mix standard errors then treat a
        cluster as the unit.
    positive_label
        Positive label (binary; default the second label) or positive labels
        (multiclass, e.g. the malignant classes).
    intersections
        ``"all"`` (all attributes crossed) or a list of attribute lists.
    scores
        Per-case score columns ``{name: array}`` (NaN = not rated), reported as
        ``mean_score:<name>``.
    covariates
        DataFrame of case-mix covariates (age, sex, body site...).
    n_boot, ci, confidence, seed, threshold, min_group_size, min_positives, reference
        How to compute, validated as :class:`EvaluationOptions` (each option with its default and range there).
    top_k, n_bins, p_adjust, n_perm, tests, case_mix, power, workers
        Likewise.
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
        Adds ``<attribute>:bounds`` with the range of every rate metric and gap
        consistent with the data and the model (basis ``bounded``: ``estimate``
        is null, ``bound_low``/``bound_high`` the identified range, ``ci_low``/
        ``ci_high`` widened for sampling error). It applies to the attribute
        ``estimated`` names first, or to the only attribute.
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
        options out of range; the message names the parameter and row.
    """
    options = EvaluationOptions(n_boot=n_boot, ci=ci, confidence=confidence, seed=seed, threshold=threshold,
                                min_group_size=min_group_size, min_positives=min_positives, reference=reference,
                                top_k=top_k, n_bins=n_bins, p_adjust=p_adjust, n_perm=n_perm, tests=tests,
                                case_mix=case_mix, power=power, workers=workers)
    # One BLAS thread: the engine's products are small, and it runs its own threads.
    with thread_limits(1, "blas"):
        engine = run_engine(y_true, [y_score], groups, options=options, metrics=metrics, labels=labels,
                            positive_label=positive_label, intersections=intersections, cluster=cluster,
                            scores=scores, covariates=covariates)
        return with_strata_error(engine, evaluation_result(engine, 0), true_groups=true_groups,
                                 inclusion_prob=inclusion_prob, strata_error=strata_error, estimated=estimated)


def compare(
    y_true: Any,
    y_score_a: Any,
    y_score_b: Any,
    groups: Any = None,
    *,
    names: tuple[str, str] = ("a", "b"),
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
    workers: int | None = None,
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
    labels, metrics, cluster, positive_label, intersections, scores, covariates
        As in :func:`evaluate`.
    n_boot, ci, confidence, seed, threshold, min_group_size, min_positives, reference
        As in :func:`evaluate` (:class:`EvaluationOptions`), with the same defaults.
    top_k, n_bins, p_adjust, n_perm, tests, case_mix, power, workers
        Likewise.

    Returns
    -------
    ComparisonResult
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError("names must be two distinct model names")
    options = EvaluationOptions(n_boot=n_boot, ci=ci, confidence=confidence, seed=seed, threshold=threshold,
                                min_group_size=min_group_size, min_positives=min_positives, reference=reference,
                                top_k=top_k, n_bins=n_bins, p_adjust=p_adjust, n_perm=n_perm, tests=tests,
                                case_mix=case_mix, power=power, workers=workers)
    with thread_limits(1, "blas"):
        engine = run_engine(y_true, [y_score_a, y_score_b], groups, options=options, metrics=metrics, labels=labels,
                            positive_label=positive_label, intersections=intersections, cluster=cluster,
                            scores=scores, covariates=covariates)
        return comparison(engine, (str(names[0]), str(names[1])))
