"""Two models on the same cases: the paired differences of every group metric
and every disparity, from the very same bootstrap replicates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fairderm.metrics._assemble import config, evaluation_result
from fairderm.metrics._disparity import Statistic
from fairderm.metrics._engine import Engine
from fairderm.metrics._result import DIFFERENCE_COLUMNS, DISPARITY_DIFFERENCE_COLUMNS, ComparisonResult, Disparities
from fairderm.metrics._table_groups import disparity_statistics


def comparison(engine: Engine, names: tuple[str, str]) -> ComparisonResult:
    """Both models' results and the paired-bootstrap interval of every difference, ``names[0] - names[1]``."""
    results = {name: evaluation_result(engine, m) for m, name in enumerate(names)}
    rows = []
    for s, slot in enumerate(engine.slots):
        for k, metric in enumerate(engine.metrics):
            flags = [engine.flag(m, s, k) for m in (0, 1)]
            flag = next((f for f in flags if f != "ok"), "ok")
            estimate, low, high = (math.nan,) * 3
            if all(f not in ("empty", "undefined") for f in flags):
                estimate, low, high = engine.finish(engine.group_statistic(0, s, k) - engine.group_statistic(1, s, k))
            rows.append({"attribute": slot.attribute, "group": slot.name, "metric": metric.name,
                         "estimate_a": engine.estimates[0, s, k], "estimate_b": engine.estimates[1, s, k],
                         "difference": estimate, "ci_low": low, "ci_high": high, "flag": flag})
    differences = pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
    first, second = disparity_statistics(engine, 0, [0, 1]), disparity_statistics(engine, 1, [0, 1])
    disparity_rows = []
    for (base, a), (_, b) in zip(first, second):
        # The change of a ratio is reported on the ratio scale.
        a, b = (x if x is None or not x.log else
                Statistic(float(np.exp(x.estimate)), np.exp(x.replicates), None, x.strata, smooth=False)
                for x in (a, b))
        estimate, low, high = (math.nan,) * 3
        if a is not None and b is not None:
            estimate, low, high = engine.finish(a - b)
        disparity_rows.append({
            "attribute": base["attribute"], "metric": base["metric"], "kind": base["kind"],
            "group": base["group"] if base["kind"] == "diff_vs_ref" else None,
            "estimate_a": math.nan if a is None else float(a.estimate),
            "estimate_b": math.nan if b is None else float(b.estimate),
            "difference": estimate, "ci_low": low, "ci_high": high, "flag": base["flag"],
        })
    frame = pd.DataFrame(disparity_rows, columns=DISPARITY_DIFFERENCE_COLUMNS)
    settings = {**config(engine, [0, 1]), "models": list(names), "difference": f"{names[0]} - {names[1]}"}
    return ComparisonResult(names, results, differences, Disparities(frame, list(DISPARITY_DIFFERENCE_COLUMNS)),
                            settings)
