"""The minimum detectable difference of every proportion metric in every
group, against the reference group or the rest of the cases, with the design
effect of clustered cases (see :mod:`fairderm.metrics._power`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fairderm.metrics import _catalogue as cat
from fairderm.metrics._engine import Engine
from fairderm.metrics._power import design_effect, minimum_detectable_difference
from fairderm.metrics._result import POWER_COLUMNS


def power_rows(engine: Engine, m: int) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    explicit = engine.options.reference is not None
    for attribute in engine.cases.attributes:
        ids = engine.present_slots(attribute.name)
        if len(ids) < 2:
            continue
        for k, metric in enumerate(engine.metrics):
            if not metric.is_proportion:
                continue
            parts = {s: _case_parts(engine, m, s, metric) for s in ids}
            for s in ids:
                reference = engine.references.get(attribute.name)
                if explicit and reference is not None:
                    if s == reference:
                        continue
                    others, comparator = [reference], engine.slots[reference].name
                else:
                    others, comparator = [o for o in ids if o != s], "rest"
                rows.append(_power_row(engine, m, s, k, metric, parts, others, comparator))
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def _case_parts(engine: Engine, m: int, s: int,
                metric: cat.MetricDef) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    stats = engine.stats[m][s]
    successes, trials = cat.proportion_parts(metric, stats.features, engine.layout, engine.cases.positive)
    cluster = None
    if engine.cases.cluster is not None:
        cluster = engine.cases.cluster[engine.design.order[engine.slots[s].rows]]
    return successes, trials, cluster


def _power_row(engine: Engine, m: int, s: int, k: int, metric: cat.MetricDef, parts: dict, others: list[int],
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
                                        alpha=engine.options.alpha, power=engine.options.target_power)
    increase = minimum_detectable_difference(n / deff_group, baseline, n_other / deff_other,
                                             alpha=engine.options.alpha, power=engine.options.target_power,
                                             direction="increase")
    flag = engine.flag(m, s, k)
    if flag == "ok" and not np.isfinite(mdd):
        flag = "undetectable"
    return {
        "attribute": engine.slots[s].attribute, "group": engine.slots[s].name, "metric": metric.name,
        "comparator": comparator, "n": int(round(n)), "n_comparator": int(round(n_other)),
        "estimate": estimate, "baseline": baseline, "observed_difference": estimate - baseline,
        "mdd": mdd, "mdd_increase": increase, "design_effect": max(deff_group, deff_other),
        "alpha": engine.options.alpha, "power": engine.options.target_power, "flag": flag,
    }
