"""Reliability-curve data: per group, equal-mass bins of the confidence with
the observed rate and its Wilson (1927) interval."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairderm.metrics import _catalogue as cat
from fairderm.metrics._engine import Engine
from fairderm.metrics._intervals import wilson_interval
from fairderm.metrics._result import CALIBRATION_COLUMNS


def calibration_rows(engine: Engine, m: int) -> pd.DataFrame:
    cases, model = engine.cases, engine.models[m]
    inputs = cat.calibration_inputs(cases, model)
    rows: list[dict[str, Any]] = []
    if inputs is None:
        return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)
    confidence, outcome = inputs
    kind = "positive_class" if cases.binary else "top_label"
    for s, slot in enumerate(engine.slots):
        edges = engine.edges.get((m, s))
        if not slot.n or edges is None:
            continue
        original = engine.design.order[slot.rows]
        conf, out = confidence[original], outcome[original]
        bins = cat.bin_index(conf, edges)
        count = np.bincount(bins, minlength=engine.options.n_bins)
        conf_sum = np.bincount(bins, weights=conf, minlength=engine.options.n_bins)
        out_sum = np.bincount(bins, weights=out, minlength=engine.options.n_bins)
        lows = np.concatenate([[conf.min()], edges])
        highs = np.concatenate([edges, [conf.max()]])
        for b in np.flatnonzero(count):
            wilson = wilson_interval(int(round(out_sum[b])), int(count[b]), confidence=engine.options.confidence)
            rows.append({
                "attribute": slot.attribute, "group": slot.name, "kind": kind, "bin": int(b),
                "bin_low": float(lows[b]), "bin_high": float(highs[b]), "n": int(count[b]),
                "mean_confidence": float(conf_sum[b] / count[b]), "observed": float(out_sum[b] / count[b]),
                "observed_ci_low": float(wilson.low), "observed_ci_high": float(wilson.high),
            })
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)
