"""The engine behind :func:`evaluate` and :func:`compare`.

Order of work: validate the inputs, fix the resampling design (strata,
clusters, canonical case order), build each group's feature matrix once,
compute point estimates, stream bootstrap chunks through every group and
model, jackknife for the BCa acceleration, then assemble flags, intervals,
disparities, tests, calibration, case mix and power.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import package_versions
from fairderm._version import __version__
from fairderm.errors import InputError
from fairderm.metrics import _catalogue as cat
from fairderm.metrics._bootstrap import (
    CHUNK_ELEMENTS,
    Design,
    GroupStats,
    RankPlan,
    acceleration,
    build_design,
    interval,
    n_workers,
    run_chunks,
    run_in_threads,
)
from fairderm.metrics._casemix import CASE_MIX_COLUMNS, case_mix_adjustment
from fairderm.metrics._disparity import GroupSeries, Statistic, difference, equalized_odds, extremes, gap, log_ratio
from fairderm.metrics._inputs import Cases, ModelOutput, build_cases, model_output
from fairderm.metrics._intervals import wilson_interval
from fairderm.metrics._power import design_effect, minimum_detectable_difference
from fairderm.metrics._result import (
    CALIBRATION_COLUMNS,
    DIFFERENCE_COLUMNS,
    DISPARITY_DIFFERENCE_COLUMNS,
    DISPARITY_RECORD,
    GROUP_RECORD,
    POWER_COLUMNS,
    TEST_COLUMNS,
    ComparisonResult,
    Disparities,
    EvaluationResult,
)
from fairderm.metrics._significance import (
    P_ADJUST_METHODS,
    adjust_pvalues,
    group_range,
    permutation_pvalue,
    proportion_test,
)

ALL = "all"
#: A disparity record without its numbers, and the statistic behind them (None: not computable).
DisparityItem = tuple[dict[str, Any], Statistic | None]
#: A group estimate whose bootstrap is undefined in more than this share of
#: replicates (e.g. no positives drawn) is flagged insufficient.
MAX_UNDEFINED_SHARE = 0.01


@dataclass(frozen=True)
class Options:
    """Validated keyword options shared by evaluate() and compare()."""

    n_boot: int
    ci: str
    confidence: float
    seed: int
    threshold: float
    min_group_size: int
    min_positives: int
    top_k: int
    n_bins: int
    p_adjust: str
    n_perm: int
    workers: int
    reference: Any
    tests: bool
    case_mix: bool
    power: bool
    alpha: float = 0.05
    target_power: float = 0.8


MAX_RESAMPLES = 1_000_000
"""Bootstrap replicates or permutations at most: a typo (1e12) is refused instead of running for ever."""


def make_options(**kw: Any) -> Options:
    if kw["ci"] not in ("bca", "percentile"):
        raise InputError(f"ci must be 'bca' or 'percentile', got {kw['ci']!r}", column="ci")
    for name in ("n_boot", "n_perm", "min_group_size", "min_positives", "seed"):
        value = kw[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"must be a non-negative integer, got {value!r}", column=name)
    for name in ("n_boot", "n_perm"):
        if kw[name] > MAX_RESAMPLES:
            raise InputError(f"at most {MAX_RESAMPLES:,} resamples, got {kw[name]:,}", column=name)
    if not 0.0 < float(kw["confidence"]) < 1.0:
        raise InputError(f"must lie in (0, 1), got {kw['confidence']!r}", column="confidence")
    if not 0.0 < float(kw["threshold"]) <= 1.0:
        raise InputError(f"must lie in (0, 1], got {kw['threshold']!r}", column="threshold")
    if int(kw["top_k"]) < 1:
        raise InputError(f"must be >= 1, got {kw['top_k']!r}", column="top_k")
    if int(kw["n_bins"]) < 1:
        raise InputError(f"must be >= 1, got {kw['n_bins']!r}", column="n_bins")
    if kw["p_adjust"] not in P_ADJUST_METHODS:
        raise InputError(f"unknown p-value adjustment {kw['p_adjust']!r}; use one of {sorted(P_ADJUST_METHODS)}",
                         column="p_adjust")
    kw["workers"] = n_workers(kw.pop("n_jobs"))
    return Options(**{k: (int(v) if k in ("n_boot", "n_perm", "min_group_size", "min_positives", "seed",
                                               "top_k", "n_bins") else v) for k, v in kw.items()})


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


def _target_arrays(cases: Cases, model: ModelOutput, target: str | int) -> tuple[np.ndarray, np.ndarray]:
    if target == "set":
        return model.pos_score, cases.y_pos
    return model.proba[:, target], cases.y == target


class Engine:
    """Everything computed for one or two models on one set of cases."""

    def __init__(self, cases: Cases, models: Sequence[ModelOutput], requested: Sequence[str] | None,
                 options: Options) -> None:
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
            keys.append(_target_arrays(cases, first, self.layout.targets[0])[0])
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
        features = cat.features(self.layout, cases, model, original, edges)
        ranks, scores = [], []
        for target in self.layout.targets:
            score, positive = _target_arrays(cases, model, target)
            ranks.append(RankPlan.build(score[original], positive[original]))
            scores.append(score[original])
        return GroupStats(_rows_index(slot.rows), features, features.astype(np.float32), tuple(ranks),
                          tuple(scores))

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
            run_chunks(self.options.seed, B, self.design, self._consume, workers=self.options.workers)
        self.jack: list[list[np.ndarray | None]] = [[None] * S for _ in range(M)]
        if self.options.ci == "bca" and B:
            tasks = [lambda m=m, s=s: self._jackknife(m, s) for m in range(M) for s in range(S)]
            run_in_threads(tasks, self.options.workers)

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

    # -- assembly -----------------------------------------------------------------

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

    def group_rows(self, m: int) -> pd.DataFrame:
        rows = []
        for s, slot in enumerate(self.slots):
            for k, metric in enumerate(self.metrics):
                counts = self.counts[m][s][k]
                flag = self.flag(m, s, k)
                estimate, low, high = math.nan, math.nan, math.nan
                if flag not in ("empty", "undefined"):
                    estimate, low, high = self.finish(self.group_statistic(m, s, k))
                    low, high = self._boundary_interval(metric, counts, estimate, low, high)
                rows.append({
                    "attribute": slot.attribute, "group": slot.name, "metric": metric.name,
                    "estimate": estimate, "ci_low": low, "ci_high": high,
                    "n": slot.n if counts is None else counts.n,
                    "n_pos": None if counts is None else counts.n_pos, "flag": flag,
                })
        frame = pd.DataFrame(rows, columns=GROUP_RECORD)
        frame["n_pos"] = pd.array(frame["n_pos"].tolist(), dtype="Int64")
        return frame

    def _boundary_interval(self, metric: cat.MetricDef, counts: cat.Counts, estimate: float, low: float,
                           high: float) -> tuple[float, float]:
        """Wilson (1927) interval where a proportion is exactly 0 or 1.

        Every bootstrap replicate then equals the estimate and the bootstrap
        interval collapses to a point, which would overstate certainty.
        """
        if (metric.is_proportion and counts.trials and self.options.n_boot
                and counts.successes in (0, counts.trials)):
            wilson = wilson_interval(counts.successes, counts.trials, confidence=self.options.confidence)
            return float(wilson.low), float(wilson.high)
        return low, high

    # -- disparities ------------------------------------------------------------

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

    def disparity_statistics(self, m: int, models: Sequence[int]) -> list[DisparityItem]:
        """(record without numbers, statistic) for every disparity, for model ``m``."""
        out: list[DisparityItem] = []
        index = {metric.name: k for k, metric in enumerate(self.metrics)}
        for attribute in self.cases.attributes:
            ids = [s for s in self.attribute_slots(attribute.name) if self.slots[s].n]
            present = self.present_slots(attribute.name)
            reference = self.references.get(attribute.name)
            for k, metric in enumerate(self.metrics):
                series = self.series(m, ids, k)
                eligible = self.eligible(ids, k, models)
                out.extend(self._spread_records(attribute.name, metric, series, ids, eligible, present))
                if reference is None:
                    continue
                r = ids.index(reference)
                for i, s in enumerate(ids):
                    if s == reference:
                        continue
                    ok = i in eligible and r in eligible
                    base = {"attribute": attribute.name, "metric": metric.name, "kind": "diff_vs_ref",
                            "group": self.slots[s].name, "reference": self.slots[reference].name,
                            "flag": "ok" if ok else self._pair_flag(m, s, reference, k)}
                    defined = np.isfinite(self.estimates[m, [s, reference], k]).all()
                    out.append((base, difference(series, i, r) if defined else None))
            out.extend(self._fairness_records(attribute.name, ids, present, index, m, models))
        return out

    def _pair_flag(self, m: int, s: int, reference: int, k: int) -> str:
        for flag in (self.flag(m, s, k), self.flag(m, reference, k)):
            if flag != "ok":
                return flag
        return "insufficient"

    def _spread_records(self, attribute: str, metric: cat.MetricDef, series: GroupSeries, ids: list[int],
                        eligible: list[int], present: list[int]) -> list[DisparityItem]:
        records = []
        for kind, builder in (("gap", gap), ("ratio", log_ratio)):
            base = {"attribute": attribute, "metric": metric.name, "kind": kind, "group": None, "reference": None}
            if len(eligible) < 2:
                base["flag"] = "single_group" if len(present) < 2 else "insufficient"
                records.append((base, None))
                continue
            worst, best = extremes(series.estimates, eligible, metric.higher_is_better)
            base.update(group=self.slots[ids[worst]].name, reference=self.slots[ids[best]].name, flag="ok")
            records.append((base, builder(series, eligible)))
        return records

    def _fairness_records(self, attribute: str, ids: list[int], present: list[int], index: dict[str, int], m: int,
                          models: Sequence[int]) -> list[DisparityItem]:
        """Equalized-odds and demographic-parity differences for every event with the needed rates."""
        records = []
        events = {metric.name.partition(":")[2] for metric in self.metrics if metric.family == "sensitivity"}
        events |= {metric.name.partition(":")[2] for metric in self.metrics if metric.family == "selection_rate"}
        for suffix in sorted(events):
            tail = f":{suffix}" if suffix else ""
            sens, spec, rate = (index.get(f"{name}{tail}") for name in ("sensitivity", "specificity",
                                                                         "selection_rate"))
            if sens is not None and spec is not None:
                eligible = sorted(set(self.eligible(ids, sens, models)) & set(self.eligible(ids, spec, models)))
                base = {"attribute": attribute, "metric": f"equalized_odds{tail}", "kind": "eod",
                        "group": None, "reference": None}
                if len(eligible) < 2:
                    base["flag"] = "single_group" if len(present) < 2 else "insufficient"
                    records.append((base, None))
                else:
                    tpr, fpr = self.series(m, ids, sens), self.series(m, ids, spec)
                    statistic = equalized_odds(tpr, fpr, eligible)
                    driver, higher = (tpr, True) if gap(tpr, eligible).estimate >= gap(fpr, eligible).estimate \
                        else (fpr, True)
                    worst, best = extremes(driver.estimates, eligible, higher)
                    base.update(group=self.slots[ids[worst]].name, reference=self.slots[ids[best]].name, flag="ok")
                    records.append((base, statistic))
            if rate is not None:
                eligible = self.eligible(ids, rate, models)
                base = {"attribute": attribute, "metric": f"selection_rate{tail}", "kind": "dpd",
                        "group": None, "reference": None}
                if len(eligible) < 2:
                    base["flag"] = "single_group" if len(present) < 2 else "insufficient"
                    records.append((base, None))
                else:
                    series = self.series(m, ids, rate)
                    low, high = extremes(series.estimates, eligible, True)
                    base.update(group=self.slots[ids[low]].name, reference=self.slots[ids[high]].name, flag="ok")
                    records.append((base, gap(series, eligible)))
        return records

    def disparity_rows(self, m: int) -> pd.DataFrame:
        rows = []
        for base, statistic in self.disparity_statistics(m, [m]):
            estimate, low, high = (math.nan,) * 3 if statistic is None else self.finish(statistic)
            rows.append({**base, "estimate": estimate, "ci_low": low, "ci_high": high})
        return pd.DataFrame(rows, columns=DISPARITY_RECORD)

    # -- tests ------------------------------------------------------------------

    def test_rows(self, m: int) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        clustered = self.cases.cluster is not None
        for attribute in self.cases.attributes:
            ids = self.present_slots(attribute.name)
            permuted = []
            for k, metric in enumerate(self.metrics):
                if metric.is_proportion and not clustered:
                    counts = [self.counts[m][s][k] for s in ids]
                    result = proportion_test([c.successes for c in counts], [c.trials for c in counts],
                                             seed=self.options.seed)
                    tested = [self.slots[s].name for s, c in zip(ids, counts) if c.trials]
                    rows.append({"metric": metric.name, "attribute": attribute.name, "n_groups": len(tested),
                                 "groups": tested, "n_perm": None, **result})
                else:
                    permuted.append(k)
            if permuted:
                rows.extend(self._permutation_rows(m, attribute.name, ids, permuted))
        frame = pd.DataFrame(rows, columns=TEST_COLUMNS)
        frame["method"] = self.options.p_adjust
        frame["p_adjusted"] = adjust_pvalues(frame["p_value"].to_numpy(dtype=np.float64), self.options.p_adjust)
        return frame

    def _permutation_rows(self, m: int, attribute: str, ids: list[int], ks: list[int]) -> list[dict[str, Any]]:
        names = [self.metrics[k].name for k in ks]
        base = {"attribute": attribute, "test": "permutation", "statistic": math.nan, "dof": None,
                "p_value": math.nan, "n_groups": len(ids), "groups": [self.slots[s].name for s in ids],
                "n_perm": self.options.n_perm}
        if len(ids) < 2 or not self.options.n_perm:
            note = "fewer than two groups with cases" if len(ids) < 2 else "n_perm = 0"
            return [{**base, "metric": name, "note": note} for name in names]
        observed, permuted = self._permute(m, ids, ks)
        p = permutation_pvalue(observed, permuted)
        unit = "clusters" if self.cases.cluster is not None else "cases"
        return [{**base, "metric": name, "statistic": float(observed[i]), "p_value": float(p[i]),
                 "note": f"max-min range across groups; group labels permuted over {unit}"}
                for i, name in enumerate(names)]

    def _permute(self, m: int, ids: list[int], ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Observed and permuted max-min ranges of the metrics ``ks`` across the groups ``ids``."""
        cases, model = self.cases, self.models[m]
        rows = np.concatenate([self.slots[s].rows for s in ids])
        labels = np.repeat(np.arange(len(ids)), [self.slots[s].n for s in ids])
        # Ranked by the first AUROC score, so that its permuted numerators need no gather.
        if self.layout.targets and model.proba is not None:
            key = _target_arrays(cases, model, self.layout.targets[0])[0][self.design.order[rows]]
            order = np.lexsort((rows, key))
        else:
            order = np.argsort(rows, kind="stable")
        rows, labels = rows[order], labels[order]
        original = self.design.order[rows]
        calibration = cat.calibration_inputs(cases, model)
        edges = None if calibration is None else cat.equal_mass_edges(calibration[0][original], self.options.n_bins)
        features = cat.features(self.layout, cases, model, original, edges)
        ranks, scores = [], []
        for target in self.layout.targets:
            score, positive = _target_arrays(cases, model, target)
            ranks.append(RankPlan.build(score[original], positive[original]))
            scores.append(score[original])
        stats = GroupStats(slice(None), features, features.astype(np.float32), tuple(ranks), tuple(scores))
        if cases.cluster is not None:
            width = int(cases.cluster.max()) + 1
            unit_keys, unit_of_case = np.unique(labels * width + cases.cluster[original], return_inverse=True)
            unit_labels = unit_keys // width
            unit_of_case = unit_of_case.reshape(-1)
        else:
            unit_labels, unit_of_case = labels, None

        def ranges(case_labels: np.ndarray) -> np.ndarray:
            per_group = []
            for g in range(len(ids)):
                weights = (case_labels == g).astype(np.float32)
                lin, auc = stats.statistics(weights)
                per_group.append(self.values(lin, auc)[:, ks])
            return group_range(np.stack(per_group, axis=-1))

        observed_per_group = []
        for g in range(len(ids)):
            lin, auc = stats.statistics((labels == g).astype(np.float64)[None, :])
            observed_per_group.append(self.values(lin, auc)[:, ks])
        observed = group_range(np.stack(observed_per_group, axis=-1))[0]
        P = self.options.n_perm
        size = max(1, min(P, CHUNK_ELEMENTS // 4 // max(rows.size, 1)))
        bounds = [(lo, min(lo + size, P)) for lo in range(0, P, size)]
        seeds = np.random.SeedSequence([self.options.seed, 7919]).spawn(len(bounds))
        permuted = np.full((P, len(ks)), np.nan)

        def task(i: int) -> None:
            lo, hi = bounds[i]
            rng = np.random.default_rng(seeds[i])
            shuffled = rng.permuted(np.tile(unit_labels.astype(np.int32), (hi - lo, 1)), axis=1)
            case_labels = shuffled if unit_of_case is None else np.take(shuffled, unit_of_case, axis=1)
            permuted[lo:hi] = ranges(case_labels)

        run_in_threads([lambda i=i: task(i) for i in range(len(bounds))], self.options.workers)
        return observed, permuted

    # -- calibration, case mix, power -----------------------------------------

    def calibration_rows(self, m: int) -> pd.DataFrame:
        cases, model = self.cases, self.models[m]
        inputs = cat.calibration_inputs(cases, model)
        rows: list[dict[str, Any]] = []
        if inputs is None:
            return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)
        confidence, outcome = inputs
        kind = "positive_class" if cases.binary else "top_label"
        for s, slot in enumerate(self.slots):
            edges = self.edges.get((m, s))
            if not slot.n or edges is None:
                continue
            original = self.design.order[slot.rows]
            conf, out = confidence[original], outcome[original]
            bins = cat.bin_index(conf, edges)
            count = np.bincount(bins, minlength=self.options.n_bins)
            conf_sum = np.bincount(bins, weights=conf, minlength=self.options.n_bins)
            out_sum = np.bincount(bins, weights=out, minlength=self.options.n_bins)
            lows = np.concatenate([[conf.min()], edges])
            highs = np.concatenate([edges, [conf.max()]])
            for b in np.flatnonzero(count):
                wilson = wilson_interval(int(round(out_sum[b])), int(count[b]), confidence=self.options.confidence)
                rows.append({
                    "attribute": slot.attribute, "group": slot.name, "kind": kind, "bin": int(b),
                    "bin_low": float(lows[b]), "bin_high": float(highs[b]), "n": int(count[b]),
                    "mean_confidence": float(conf_sum[b] / count[b]), "observed": float(out_sum[b] / count[b]),
                    "observed_ci_low": float(wilson.low), "observed_ci_high": float(wilson.high),
                })
        return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)

    def case_mix_rows(self, m: int) -> pd.DataFrame:
        cases, model = self.cases, self.models[m]
        frames = []
        correct = (model.pred == cases.y).astype(np.float64)
        diagnosis = np.asarray([str(label) for label in cases.labels], dtype=object)[cases.y]
        for attribute in cases.attributes:
            if len(attribute.members) != 1 or attribute.name not in self.references:
                continue
            values = np.asarray([name.split("=", 1)[1] for name in attribute.groups], dtype=object)[attribute.codes]
            if len(set(values)) < 2:
                continue
            frames.append(case_mix_adjustment(
                correct, values, diagnosis, covariates=cases.covariates, cluster=cases.cluster,
                reference=self.slots[self.references[attribute.name]].value, attribute=attribute.name,
                confidence=self.options.confidence,
            ).assign(group=lambda f, a=attribute.name: a + "=" + f["group"],
                     reference=lambda f, a=attribute.name: a + "=" + f["reference"]))
        if not frames:
            return pd.DataFrame(columns=CASE_MIX_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def power_rows(self, m: int) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        explicit = self.options.reference is not None
        for attribute in self.cases.attributes:
            ids = self.present_slots(attribute.name)
            if len(ids) < 2:
                continue
            for k, metric in enumerate(self.metrics):
                if not metric.is_proportion:
                    continue
                parts = {s: self._case_parts(m, s, metric) for s in ids}
                for s in ids:
                    reference = self.references.get(attribute.name)
                    if explicit and reference is not None:
                        if s == reference:
                            continue
                        others, comparator = [reference], self.slots[reference].name
                    else:
                        others, comparator = [o for o in ids if o != s], "rest"
                    rows.append(self._power_row(m, s, k, metric, parts, others, comparator))
        return pd.DataFrame(rows, columns=POWER_COLUMNS)

    def _case_parts(self, m: int, s: int, metric: cat.MetricDef) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        stats = self.stats[m][s]
        successes, trials = cat.proportion_parts(metric, stats.features, self.layout, self.cases.positive)
        cluster = None
        if self.cases.cluster is not None:
            cluster = self.cases.cluster[self.design.order[self.slots[s].rows]]
        return successes, trials, cluster

    def _power_row(self, m: int, s: int, k: int, metric: cat.MetricDef, parts: dict, others: list[int],
                   comparator: str) -> dict[str, Any]:
        successes, trials, cluster = parts[s]
        other_successes = np.concatenate([parts[o][0] for o in others])
        other_trials = np.concatenate([parts[o][1] for o in others])
        n, n_other = float(trials.sum()), float(other_trials.sum())
        deff_group = deff_other = 1.0
        if cluster is not None:
            deff_group = design_effect(successes, trials, cluster)
            deff_other = design_effect(other_successes, other_trials, np.concatenate([parts[o][2] for o in others]))
        estimate = successes.sum() / n if n else math.nan
        baseline = other_successes.sum() / n_other if n_other else math.nan
        mdd = minimum_detectable_difference(n / deff_group, baseline, n_other / deff_other,
                                            alpha=self.options.alpha, power=self.options.target_power)
        increase = minimum_detectable_difference(n / deff_group, baseline, n_other / deff_other,
                                                 alpha=self.options.alpha, power=self.options.target_power,
                                                 direction="increase")
        flag = self.flag(m, s, k)
        if flag == "ok" and not np.isfinite(mdd):
            flag = "undetectable"
        return {
            "attribute": self.slots[s].attribute, "group": self.slots[s].name, "metric": metric.name,
            "comparator": comparator, "n": int(round(n)), "n_comparator": int(round(n_other)),
            "estimate": estimate, "baseline": baseline, "observed_difference": estimate - baseline,
            "mdd": mdd, "mdd_increase": increase, "design_effect": max(deff_group, deff_other),
            "alpha": self.options.alpha, "power": self.options.target_power, "flag": flag,
        }

    # -- configuration ------------------------------------------------------------

    def config(self, models: Sequence[int]) -> dict[str, Any]:
        cases, options = self.cases, self.options

        def plain(label: Any) -> Any:
            return label.item() if hasattr(label, "item") else label

        return {
            "n_cases": cases.n,
            "task": "binary" if cases.binary else "multiclass",
            "labels": [plain(label) for label in cases.labels],
            "positive_label": [plain(cases.labels[i]) for i in cases.positive] or None,
            "threshold": options.threshold,
            "y_score": self.models[models[0]].kind if len(models) == 1
            else [self.models[m].kind for m in models],
            "metrics": [metric.name for metric in self.metrics],
            "top_k": options.top_k,
            "n_bins": options.n_bins,
            "attributes": [a.name for a in cases.attributes],
            "intersections": [list(a.members) for a in cases.attributes if len(a.members) > 1],
            "reference": {a: self.slots[s].name for a, s in self.references.items()},
            "n_boot": options.n_boot,
            "ci": options.ci,
            "disparity_ci": "percentile",
            "confidence": options.confidence,
            "seed": options.seed,
            "cluster": cases.cluster_name,
            "n_clusters": None if cases.cluster is None else int(np.unique(cases.cluster).size),
            "resampling": (
                f"stratified by {' x '.join(a.name for a in cases.attributes if len(a.members) == 1) or 'nothing'}"
                + (f"; clusters ({cases.cluster_name}) resampled within strata" if cases.cluster is not None
                   else "; cases resampled within strata")
            ),
            "min_group_size": options.min_group_size,
            "min_positives": options.min_positives,
            "p_adjust": options.p_adjust,
            "n_perm": options.n_perm,
            "inputs_sha256": self.inputs_hash(models),
            "fairderm": __version__,
            "versions": package_versions(("numpy", "scipy", "pandas", "statsmodels", "scikit-learn")),
        }

    def inputs_hash(self, models: Sequence[int]) -> str:
        digest = hashlib.sha256()
        arrays = [self.cases.y] + [a.codes for a in self.cases.attributes]
        if self.cases.cluster is not None:
            arrays.append(self.cases.cluster)
        arrays.extend(self.cases.scores.values())
        for m in models:
            model = self.models[m]
            arrays.append(model.pred if model.proba is None else model.proba)
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(repr([str(label) for label in self.cases.labels]).encode())
        return digest.hexdigest()

    def result(self, m: int) -> EvaluationResult:
        options = self.options
        return EvaluationResult(
            groups=self.group_rows(m),
            disparities=Disparities(self.disparity_rows(m)),
            tests=self.test_rows(m) if options.tests else pd.DataFrame(columns=TEST_COLUMNS),
            calibration=self.calibration_rows(m),
            case_mix=self.case_mix_rows(m) if options.case_mix else pd.DataFrame(columns=CASE_MIX_COLUMNS),
            power=self.power_rows(m) if options.power else pd.DataFrame(columns=POWER_COLUMNS),
            config=self.config([m]),
        )

    # -- paired comparison ------------------------------------------------------

    def comparison(self, names: tuple[str, str]) -> ComparisonResult:
        results = {name: self.result(m) for m, name in enumerate(names)}
        rows = []
        for s, slot in enumerate(self.slots):
            for k, metric in enumerate(self.metrics):
                flags = [self.flag(m, s, k) for m in (0, 1)]
                flag = next((f for f in flags if f != "ok"), "ok")
                estimate, low, high = (math.nan,) * 3
                if all(f not in ("empty", "undefined") for f in flags):
                    estimate, low, high = self.finish(self.group_statistic(0, s, k) - self.group_statistic(1, s, k))
                rows.append({"attribute": slot.attribute, "group": slot.name, "metric": metric.name,
                             "estimate_a": self.estimates[0, s, k], "estimate_b": self.estimates[1, s, k],
                             "difference": estimate, "ci_low": low, "ci_high": high, "flag": flag})
        differences = pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
        first, second = self.disparity_statistics(0, [0, 1]), self.disparity_statistics(1, [0, 1])
        disparity_rows = []
        for (base, a), (_, b) in zip(first, second):
            # The change of a ratio is reported on the ratio scale.
            a, b = (x if x is None or not x.log else
                    Statistic(float(np.exp(x.estimate)), np.exp(x.replicates), None, x.strata, smooth=False)
                    for x in (a, b))
            estimate, low, high = (math.nan,) * 3
            if a is not None and b is not None:
                estimate, low, high = self.finish(a - b)
            disparity_rows.append({
                "attribute": base["attribute"], "metric": base["metric"], "kind": base["kind"],
                "group": base["group"] if base["kind"] == "diff_vs_ref" else None,
                "estimate_a": math.nan if a is None else float(a.estimate),
                "estimate_b": math.nan if b is None else float(b.estimate),
                "difference": estimate, "ci_low": low, "ci_high": high, "flag": base["flag"],
            })
        frame = pd.DataFrame(disparity_rows, columns=DISPARITY_DIFFERENCE_COLUMNS)
        config = {**self.config([0, 1]), "models": list(names), "difference": f"{names[0]} - {names[1]}"}
        return ComparisonResult(names, results, differences, Disparities(frame, list(DISPARITY_DIFFERENCE_COLUMNS)),
                                config)


def run_engine(y_true: Any, y_scores: Sequence[Any], groups: Any, settings: dict[str, Any]) -> Engine:
    """Validate everything, then compute; ``settings`` are evaluate()'s keyword arguments."""
    settings = dict(settings)
    case_keys = ("labels", "positive_label", "intersections", "cluster", "scores", "covariates")
    case_settings = {key: settings.pop(key) for key in case_keys}
    metrics = settings.pop("metrics")
    options = make_options(**settings)
    cases, models = prepare(y_true, y_scores, groups, threshold=options.threshold, **case_settings)
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
