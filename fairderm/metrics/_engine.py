"""The engine behind :func:`evaluate` and :func:`compare`: validated cases and
model outputs, the resampling design, every group's point estimates, bootstrap
replicates and jackknife, and the flag and interval of each.

Order of work: fix the resampling design (strata, clusters, canonical case
order), build each group's feature matrix once, compute point estimates,
stream bootstrap chunks through every group and model, then jackknife for the
BCa acceleration. The tables are assembled from the engine by
:mod:`~fairderm.metrics._table_groups`, :mod:`~fairderm.metrics._table_tests`,
:mod:`~fairderm.metrics._table_calibration`, :mod:`~fairderm.metrics._table_case_mix`,
:mod:`~fairderm.metrics._table_power`, :mod:`~fairderm.metrics._assemble` and
:mod:`~fairderm.metrics._comparison`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairderm.errors import InputError
from fairderm.metrics import _catalogue as cat
from fairderm.metrics._bootstrap import (
    Design,
    GroupStats,
    RankPlan,
    acceleration,
    build_design,
    interval,
    run_chunks,
    run_in_threads,
)
from fairderm.metrics._disparity import GroupSeries, Statistic
from fairderm.metrics._inputs import Cases, ModelOutput, build_cases, model_output
from fairderm.metrics._options import EvaluationOptions

ALL = "all"
#: A group estimate whose bootstrap is undefined in more than this share of
#: replicates (e.g. no positives drawn) is flagged insufficient.
MAX_UNDEFINED_SHARE = 0.01


@dataclass
class Slot:
    """A group of cases evaluated together ('all', or one group of one attribute)."""

    attribute: str
    name: str
    value: str
    rows: np.ndarray
    missing: bool
    unit_ids: np.ndarray
    unit_local: np.ndarray

    @property
    def n(self) -> int:
        return int(self.rows.size)


def _rows_index(rows: np.ndarray) -> slice | np.ndarray:
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def target_arrays(cases: Cases, model: ModelOutput, target: str | int) -> tuple[np.ndarray, np.ndarray]:
    """(score, is positive) per case of one AUROC target: the positive event (``set``) or a class index."""
    if target == "set":
        return model.pos_score, cases.y_pos
    return model.proba[:, target], cases.y == target


def build_group_stats(cases: Cases, model: ModelOutput, layout: cat.Layout, original: np.ndarray,
                      edges: np.ndarray | None, rows: slice | np.ndarray) -> GroupStats:
    """Feature matrix and AUROC rank plans of the cases ``original`` (input order), placed at ``rows``."""
    features = cat.features(layout, cases, model, original, edges)
    ranks, scores = [], []
    for target in layout.targets:
        score, positive = target_arrays(cases, model, target)
        ranks.append(RankPlan.build(score[original], positive[original]))
        scores.append(score[original])
    return GroupStats(rows, features, features.astype(np.float32), tuple(ranks), tuple(scores))


class Engine:
    """Everything computed for one or two models on one set of cases."""

    def __init__(self, cases: Cases, models: Sequence[ModelOutput], requested: Sequence[str] | None,
                 options: EvaluationOptions) -> None:
        self.cases, self.models, self.options = cases, list(models), options
        self.metrics = cat.resolve_metrics(requested, cases, [m.kind for m in models], top_k=options.top_k)
        self.layout = cat.build_layout(self.metrics, cases, top_k=options.top_k, n_bins=options.n_bins)
        self.design = self._design()
        self.slots = self._slots()
        self.references = self._references()
        self.edges: dict[tuple[int, int], np.ndarray | None] = {}
        self.stats = [[self._group_stats(m, s) for s in range(len(self.slots))] for m in range(len(self.models))]

    # -- set-up ---------------------------------------------------------------

    def _design(self) -> Design:
        cases = self.cases
        base = [a for a in cases.attributes if len(a.members) == 1]
        strata = np.stack([a.codes for a in base], axis=1) if base else np.zeros((cases.n, 0), dtype=np.int64)
        # Content keys put cases in an order fixed by their values, not by the input rows;
        # the first key (the first AUROC score) leaves single-cell groups already ranked.
        keys: list[np.ndarray] = []
        first = self.models[0]
        if first.proba is not None and self.layout.targets:
            keys.append(target_arrays(cases, first, self.layout.targets[0])[0])
        keys.append(cases.y)
        for model in self.models:
            if model.proba is not None:
                keys.extend(model.proba.T)
            keys.append(model.pred)
        keys.extend(np.nan_to_num(v, nan=-np.inf) for v in cases.scores.values())
        return build_design(strata, keys, cases.cluster)

    def _slots(self) -> list[Slot]:
        design = self.design
        slots = [self._slot(ALL, ALL, ALL, np.arange(design.n), False)]
        for attribute in self.cases.attributes:
            codes = attribute.codes[design.order]
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(attribute.groups) + 1))
            for g, name in enumerate(attribute.groups):
                rows = np.sort(order[bounds[g]:bounds[g + 1]])
                value = " & ".join(part.split("=", 1)[1] for part in name.split(" & "))
                slots.append(self._slot(attribute.name, name, value, rows, attribute.missing[g]))
        return slots

    def _slot(self, attribute: str, name: str, value: str, rows: np.ndarray, missing: bool) -> Slot:
        unit_ids, unit_local = np.unique(self.design.unit[rows], return_inverse=True)
        return Slot(attribute, name, value, rows, missing, unit_ids, unit_local.reshape(-1))

    def attribute_slots(self, attribute: str) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.attribute == attribute]

    def present_slots(self, attribute: str) -> list[int]:
        """The attribute's groups that have cases and a known value."""
        return [i for i in self.attribute_slots(attribute) if self.slots[i].n and not self.slots[i].missing]

    def _references(self) -> dict[str, int]:
        wanted = self.options.reference
        out = {}
        for attribute in self.cases.attributes:
            ids = self.present_slots(attribute.name)
            if not ids:
                continue
            value = wanted.get(attribute.name) if isinstance(wanted, Mapping) else wanted
            if value is None:
                out[attribute.name] = max(ids, key=lambda i: (self.slots[i].n, -i))
                continue
            matches = [i for i in self.attribute_slots(attribute.name)
                       if str(value) in (self.slots[i].name, self.slots[i].value)]
            if not matches:
                if isinstance(wanted, Mapping):
                    raise InputError(f"reference {value!r} is not a group of {attribute.name!r} "
                                     f"({[self.slots[i].value for i in ids]})", column="reference")
                out[attribute.name] = max(ids, key=lambda i: (self.slots[i].n, -i))
                continue
            out[attribute.name] = matches[0]
        if isinstance(wanted, Mapping):
            unknown = [k for k in wanted if k not in {a.name for a in self.cases.attributes}]
            if unknown:
                raise InputError(f"reference names unknown attribute(s) {unknown}", column="reference")
        elif wanted is not None and not any(
            str(wanted) in (self.slots[i].name, self.slots[i].value) for i in range(1, len(self.slots))
        ):
            raise InputError(f"reference {wanted!r} is not a group of any attribute", column="reference")
        return out

    def _group_stats(self, m: int, s: int) -> GroupStats | None:
        slot, model, cases = self.slots[s], self.models[m], self.cases
        if not slot.n:
            return None
        original = self.design.order[slot.rows]
        edges = None
        calibration = cat.calibration_inputs(cases, model)
        if calibration is not None:
            edges = cat.equal_mass_edges(calibration[0][original], self.options.n_bins)
        self.edges[(m, s)] = edges
        return build_group_stats(cases, model, self.layout, original, edges, _rows_index(slot.rows))

    # -- computation ------------------------------------------------------------

    def values(self, lin: np.ndarray, auc: np.ndarray) -> np.ndarray:
        """(rows, K) metric values."""
        positive = self.cases.positive
        return np.stack([cat.metric_values(metric, lin, auc, self.layout, positive) for metric in self.metrics],
                        axis=1)

    def run(self) -> None:
        M, S, K, B = len(self.models), len(self.slots), len(self.metrics), self.options.n_boot
        self.estimates = np.full((M, S, K), np.nan)
        self.counts: list[list[list[cat.Counts | None]]] = [[[None] * K for _ in range(S)] for _ in range(M)]
        for m in range(M):
            for s in range(S):
                stats = self.stats[m][s]
                if stats is None:
                    continue
                lin, auc = stats.point()
                self.estimates[m, s] = self.values(lin, auc)[0]
                for k, metric in enumerate(self.metrics):
                    self.counts[m][s][k] = cat.metric_counts(metric, lin[0], self.layout, self.cases.positive)
        self.replicates = np.full((M, S, K, B), np.nan)
        if B:
            run_chunks(self.options.seed, B, self.design, self._consume, workers=self.options.threads)
        self.jack: list[list[np.ndarray | None]] = [[None] * S for _ in range(M)]
        if self.options.ci == "bca" and B:
            tasks = [lambda m=m, s=s: self._jackknife(m, s) for m in range(M) for s in range(S)]
            run_in_threads(tasks, self.options.threads)

    def _consume(self, weights: np.ndarray, lo: int, hi: int) -> None:
        for m, row in enumerate(self.stats):
            for s, stats in enumerate(row):
                if stats is not None:
                    lin, auc = stats.statistics(weights)
                    self.replicates[m, s, :, lo:hi] = self.values(lin, auc).T

    def _jackknife(self, m: int, s: int) -> None:
        stats, slot = self.stats[m][s], self.slots[s]
        if stats is None or slot.unit_ids.size < 2:
            return
        lin, auc = stats.jackknife(slot.unit_local, slot.unit_ids.size)
        self.jack[m][s] = self.values(lin, auc)

    # -- intervals and flags --------------------------------------------------------

    def strata(self, s: int) -> np.ndarray:
        return self.design.unit_cell[self.slots[s].unit_ids]

    def group_statistic(self, m: int, s: int, k: int) -> Statistic:
        jack = self.jack[m][s]
        return Statistic(float(self.estimates[m, s, k]), self.replicates[m, s, k],
                         None if jack is None else jack[:, k], self.strata(s))

    def finish(self, statistic: Statistic) -> tuple[float, float, float]:
        """(estimate, ci_low, ci_high), back on the natural scale for log statistics."""
        method = self.options.ci if statistic.smooth else "percentile"
        accel = 0.0
        if method == "bca" and statistic.jack is not None and statistic.strata is not None:
            accel = acceleration(statistic.jack, statistic.strata)
        low, high = interval(statistic.replicates, statistic.estimate, method=method,
                             confidence=self.options.confidence, accel=accel)
        if statistic.log:
            with np.errstate(invalid="ignore"):
                return tuple(float(np.exp(v)) if not math.isnan(v) else math.nan
                             for v in (statistic.estimate, low, high))  # type: ignore[return-value]
        return statistic.estimate, low, high

    def flag(self, m: int, s: int, k: int) -> str:
        slot, counts = self.slots[s], self.counts[m][s][k]
        if counts is None or counts.n == 0:
            return "empty"
        if not np.isfinite(self.estimates[m, s, k]):
            return "undefined"
        options = self.options
        valid = np.isfinite(self.replicates[m, s, k]).sum()
        if (counts.n < options.min_group_size
                or (counts.support is not None and counts.support < options.min_positives)
                or (options.n_boot and valid < (1.0 - MAX_UNDEFINED_SHARE) * options.n_boot)):
            return "insufficient"
        return "missing_value" if slot.missing else "ok"

    # -- what the tables read -------------------------------------------------

    def series(self, m: int, ids: list[int], k: int) -> GroupSeries:
        sizes = [self.slots[s].unit_ids.size for s in ids]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        slices = [slice(int(offsets[i]), int(offsets[i + 1])) for i in range(len(ids))]
        strata = np.concatenate([self.strata(s) for s in ids]) if ids else np.zeros(0, dtype=np.int64)
        jack = [None if self.jack[m][s] is None else self.jack[m][s][:, k] for s in ids]
        return GroupSeries(self.estimates[m, ids, k], self.replicates[m, ids, k], jack, slices,
                           strata if self.options.ci == "bca" else None)

    def eligible(self, ids: list[int], k: int, models: Sequence[int]) -> list[int]:
        """Positions (in ``ids``) of groups that may be ranked: flagged ok in every model."""
        return [i for i, s in enumerate(ids) if all(self.flag(m, s, k) == "ok" for m in models)]


def run_engine(
    y_true: Any,
    y_scores: Sequence[Any],
    groups: Any,
    *,
    options: EvaluationOptions,
    metrics: Sequence[str] | None,
    labels: Sequence[Any] | None,
    positive_label: Any,
    intersections: Any,
    cluster: Any,
    scores: Any,
    covariates: Any,
) -> Engine:
    """Validate the inputs, then compute every estimate, replicate and jackknife value."""
    cases, models = prepare(y_true, y_scores, groups, labels=labels, positive_label=positive_label,
                            intersections=intersections, cluster=cluster, scores=scores, covariates=covariates,
                            threshold=options.threshold)
    engine = Engine(cases, models, metrics, options)
    engine.run()
    return engine


def prepare(
    y_true: Any,
    y_scores: Sequence[Any],
    groups: Any,
    *,
    labels: Sequence[Any] | None,
    positive_label: Any,
    intersections: Any,
    cluster: Any,
    scores: Any,
    covariates: Any,
    threshold: float,
) -> tuple[Cases, list[ModelOutput]]:
    cases = build_cases(
        y_true, y_scores[0], groups, labels=labels, positive_label=positive_label, intersections=intersections,
        cluster=cluster, scores=scores, covariates=covariates,
    )
    arguments = ["y_score"] if len(y_scores) == 1 else ["y_score_a", "y_score_b"]
    models = [model_output(score, cases, threshold=threshold, argument=arg) for score, arg in zip(y_scores, arguments)]
    return cases, models
