"""The per-group table and the disparity table of one model.

Every group's estimate gets its bootstrap interval (Wilson where a proportion
is exactly 0 or 1); disparities (gap, ratio, difference from the reference,
equalized odds, demographic parity) are taken over the groups flagged ``ok``
and get their intervals from the same replicates as the group estimates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fairderm.metrics import _catalogue as cat
from fairderm.metrics._disparity import GroupSeries, Statistic, difference, equalized_odds, extremes, gap, log_ratio
from fairderm.metrics._engine import Engine
from fairderm.metrics._intervals import wilson_interval
from fairderm.metrics._result import DISPARITY_RECORD, GROUP_RECORD

#: A disparity record without its numbers, and the statistic behind them (None: not computable).
DisparityItem = tuple[dict[str, Any], Statistic | None]


def group_rows(engine: Engine, m: int) -> pd.DataFrame:
    rows = []
    for s, slot in enumerate(engine.slots):
        for k, metric in enumerate(engine.metrics):
            counts = engine.counts[m][s][k]
            flag = engine.flag(m, s, k)
            estimate, low, high = math.nan, math.nan, math.nan
            if flag not in ("empty", "undefined"):
                estimate, low, high = engine.finish(engine.group_statistic(m, s, k))
                low, high = _boundary_interval(engine, metric, counts, estimate, low, high)
            rows.append({
                "attribute": slot.attribute, "group": slot.name, "metric": metric.name,
                "estimate": estimate, "ci_low": low, "ci_high": high,
                "n": slot.n if counts is None else counts.n,
                "n_pos": None if counts is None else counts.n_pos, "flag": flag,
            })
    frame = pd.DataFrame(rows, columns=GROUP_RECORD)
    frame["n_pos"] = pd.array(frame["n_pos"].tolist(), dtype="Int64")
    return frame


def _boundary_interval(engine: Engine, metric: cat.MetricDef, counts: cat.Counts, estimate: float, low: float,
                       high: float) -> tuple[float, float]:
    """Wilson (1927) interval where a proportion is exactly 0 or 1.

    Every bootstrap replicate then equals the estimate and the bootstrap
    interval collapses to a point, which would overstate certainty.
    """
    if (metric.is_proportion and counts.trials and engine.options.n_boot
            and counts.successes in (0, counts.trials)):
        wilson = wilson_interval(counts.successes, counts.trials, confidence=engine.options.confidence)
        return float(wilson.low), float(wilson.high)
    return low, high


def disparity_statistics(engine: Engine, m: int, models: Sequence[int]) -> list[DisparityItem]:
    """(record without numbers, statistic) for every disparity, for model ``m``."""
    out: list[DisparityItem] = []
    index = {metric.name: k for k, metric in enumerate(engine.metrics)}
    for attribute in engine.cases.attributes:
        ids = [s for s in engine.attribute_slots(attribute.name) if engine.slots[s].n]
        present = engine.present_slots(attribute.name)
        reference = engine.references.get(attribute.name)
        for k, metric in enumerate(engine.metrics):
            series = engine.series(m, ids, k)
            eligible = engine.eligible(ids, k, models)
            out.extend(_spread_records(engine, attribute.name, metric, series, ids, eligible, present))
            if reference is None:
                continue
            r = ids.index(reference)
            for i, s in enumerate(ids):
                if s == reference:
                    continue
                ok = i in eligible and r in eligible
                base = {"attribute": attribute.name, "metric": metric.name, "kind": "diff_vs_ref",
                        "group": engine.slots[s].name, "reference": engine.slots[reference].name,
                        "flag": "ok" if ok else _pair_flag(engine, m, s, reference, k)}
                defined = np.isfinite(engine.estimates[m, [s, reference], k]).all()
                out.append((base, difference(series, i, r) if defined else None))
        out.extend(_fairness_records(engine, attribute.name, ids, present, index, m, models))
    return out


def _pair_flag(engine: Engine, m: int, s: int, reference: int, k: int) -> str:
    for flag in (engine.flag(m, s, k), engine.flag(m, reference, k)):
        if flag != "ok":
            return flag
    return "insufficient"


def _spread_records(engine: Engine, attribute: str, metric: cat.MetricDef, series: GroupSeries, ids: list[int],
                    eligible: list[int], present: list[int]) -> list[DisparityItem]:
    records = []
    for kind, builder in (("gap", gap), ("ratio", log_ratio)):
        base = {"attribute": attribute, "metric": metric.name, "kind": kind, "group": None, "reference": None}
        if len(eligible) < 2:
            base["flag"] = "single_group" if len(present) < 2 else "insufficient"
            records.append((base, None))
            continue
        worst, best = extremes(series.estimates, eligible, metric.higher_is_better)
        base.update(group=engine.slots[ids[worst]].name, reference=engine.slots[ids[best]].name, flag="ok")
        records.append((base, builder(series, eligible)))
    return records


def _fairness_records(engine: Engine, attribute: str, ids: list[int], present: list[int], index: dict[str, int], m: int,
                      models: Sequence[int]) -> list[DisparityItem]:
    """Equalized-odds and demographic-parity differences for every event with the needed rates."""
    records = []
    events = {metric.name.partition(":")[2] for metric in engine.metrics if metric.family == "sensitivity"}
    events |= {metric.name.partition(":")[2] for metric in engine.metrics if metric.family == "selection_rate"}
    for suffix in sorted(events):
        tail = f":{suffix}" if suffix else ""
        sens, spec, rate = (index.get(f"{name}{tail}") for name in ("sensitivity", "specificity",
                                                                     "selection_rate"))
        if sens is not None and spec is not None:
            eligible = sorted(set(engine.eligible(ids, sens, models)) & set(engine.eligible(ids, spec, models)))
            base = {"attribute": attribute, "metric": f"equalized_odds{tail}", "kind": "eod",
                    "group": None, "reference": None}
            if len(eligible) < 2:
                base["flag"] = "single_group" if len(present) < 2 else "insufficient"
                records.append((base, None))
            else:
                tpr, fpr = engine.series(m, ids, sens), engine.series(m, ids, spec)
                statistic = equalized_odds(tpr, fpr, eligible)
                driver, higher = (tpr, True) if gap(tpr, eligible).estimate >= gap(fpr, eligible).estimate \
                    else (fpr, True)
                worst, best = extremes(driver.estimates, eligible, higher)
                base.update(group=engine.slots[ids[worst]].name, reference=engine.slots[ids[best]].name, flag="ok")
                records.append((base, statistic))
        if rate is not None:
            eligible = engine.eligible(ids, rate, models)
            base = {"attribute": attribute, "metric": f"selection_rate{tail}", "kind": "dpd",
                    "group": None, "reference": None}
            if len(eligible) < 2:
                base["flag"] = "single_group" if len(present) < 2 else "insufficient"
                records.append((base, None))
            else:
                series = engine.series(m, ids, rate)
                low, high = extremes(series.estimates, eligible, True)
                base.update(group=engine.slots[ids[low]].name, reference=engine.slots[ids[high]].name, flag="ok")
                records.append((base, gap(series, eligible)))
    return records


def disparity_rows(engine: Engine, m: int) -> pd.DataFrame:
    rows = []
    for base, statistic in disparity_statistics(engine, m, [m]):
        estimate, low, high = (math.nan,) * 3 if statistic is None else engine.finish(statistic)
        rows.append({**base, "estimate": estimate, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=DISPARITY_RECORD)
