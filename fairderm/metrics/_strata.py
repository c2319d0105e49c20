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
    shares weighted by ``1 / pi`` (:func:`fairderm.metrics._strata_correct.membership_probabilities`); ``R_i``
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

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fairderm.errors import InputError
from fairderm.metrics._significance import adjust_pvalues
from fairderm.metrics._strata_bounds import bounded_tables
from fairderm.metrics._strata_correct import corrected_tables
from fairderm.metrics._strata_inputs import StrataErrorModel, true_group_inputs

__all__ = ["StrataErrorModel", "with_strata_error"]


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
