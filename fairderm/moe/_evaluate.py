"""Held-out evaluation of every method through :mod:`fairderm.metrics`.

Each method is compared with the ERM head on the same test cases and the same
bootstrap replicates (:func:`fairderm.metrics.compare`), which gives in one
pass its accuracy and per-group accuracy with intervals, its gap (best minus
worst group accuracy among groups flagged ``ok``, i.e. with at least
``min_group_size`` held-out cases) with an interval, and the paired interval
of its gap minus ERM's gap. Groups left out of the gap are listed in the
evaluation's ``config.unranked_groups`` and named in the verdict, never
dropped silently. Cases outside every constraint
group enter the overall accuracy and form the metrics engine's ``missing``
group, which is never ranked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fairderm.metrics import DisparityRow, EvaluationResult, GroupRow, compare, evaluate
from fairderm.moe._data import RouterDataset

REFERENCE = "erm"
TRIPLE = ("estimate", "ci_low", "ci_high")


def _triple(estimate: Any, low: Any, high: Any) -> dict[str, float | None]:
    def clean(v: Any) -> float | None:
        v = None if v is None or pd.isna(v) else float(v)
        return None if v is None or not math.isfinite(v) else v

    return {"estimate": clean(estimate), "ci_low": clean(low), "ci_high": clean(high)}


def _interval(row: GroupRow | DisparityRow) -> dict[str, float | None]:
    return _triple(row.estimate, row.ci_low, row.ci_high)


def _one(frame: pd.DataFrame) -> pd.Series | None:
    return frame.iloc[0] if len(frame) else None


def method_summary(
    result: EvaluationResult, attribute: str, gap_difference: dict[str, float | None]
) -> dict[str, Any]:
    """The evaluation.json record of one method from its metrics result."""
    try:
        overall = _interval(result.interval("accuracy"))
    except KeyError:
        overall = _triple(None, None, None)
    groups: dict[str, Any] = {
        row.label: {**_interval(row), "n": row.n, "flag": row.flag} for row in result.by_group("accuracy", attribute)
    }
    gaps = result.gap("accuracy")
    ranked = {k: v for k, v in groups.items() if v["flag"] == "ok" and v["estimate"] is not None}
    worst = min(ranked, key=lambda k: ranked[k]["estimate"]) if ranked else None
    best = max(ranked, key=lambda k: ranked[k]["estimate"]) if ranked else None
    return {
        "accuracy": overall,
        "groups": groups,
        "gap": _interval(gaps[0]) if gaps else _triple(None, None, None),
        "gap_diff_vs_erm": gap_difference,
        "worst_group": None if worst is None else {"group": worst, **{k: ranked[worst][k] for k in TRIPLE}},
        "best_group": best,
    }


def paired_changes(differences: pd.DataFrame, attribute: str) -> dict[str, Any]:
    """Accuracy minus ERM's, overall and per group, with paired-bootstrap intervals (same replicates)."""
    rows = differences[differences["metric"] == "accuracy"]
    prefix = f"{attribute}="
    overall = _one(rows[rows["group"] == "all"])
    groups = {
        row["group"][len(prefix):]: _triple(row["difference"], row["ci_low"], row["ci_high"])
        for _, row in rows[rows["group"].str.startswith(prefix)].iterrows()
    }
    return {
        "overall": _triple(None, None, None) if overall is None
        else _triple(overall["difference"], overall["ci_low"], overall["ci_high"]),
        "groups": groups,
    }


def evaluate_methods(
    dataset: RouterDataset,
    probs: dict[str, np.ndarray],
    *,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    ci: str = "percentile",
    min_group_size: int = 20,
) -> dict[str, Any]:
    """Accuracy, per-group accuracy, gap and paired gap difference vs ERM per method.

    Parameters
    ----------
    dataset
        The router's dataset (labels, groups, patient clusters, split).
    probs
        Method name -> class probabilities of the ``split`` rows (``erm``
        included).
    split
        Which split the probabilities are of.
    n_boot, seed, ci, min_group_size
        Bootstrap replicates, seed, interval method and the small-group rule,
        passed to the metrics engine.

    Returns
    -------
    dict
        ``{"methods": {name: {...}}, "config": {...}}`` in the shape of
        ``evaluation.json``.
    """
    rows = dataset.subset(split)
    classes = dataset.classes
    y_true = np.asarray(classes, dtype=object)[dataset.y[rows]]
    group_names = np.asarray([*dataset.group_names, None], dtype=object)
    group_values = group_names[np.where(dataset.groups[rows] >= 0, dataset.groups[rows], len(dataset.group_names))]
    attribute = dataset.group_source
    groups = {attribute: group_values}
    cluster = dataset.cluster[rows] if dataset.cluster is not None else None
    options: dict[str, Any] = {
        "labels": classes,
        "metrics": ["accuracy"],
        "n_boot": n_boot,
        "ci": ci,
        "cluster": cluster,
        "seed": seed,
        "min_group_size": min_group_size,
        "tests": False,
        "case_mix": False,
        "power": False,
    }
    methods: dict[str, Any] = {}
    reference = evaluate(y_true, probs[REFERENCE], groups, **options)
    methods[REFERENCE] = method_summary(reference, attribute, _triple(0.0, 0.0, 0.0))
    for name, method_probs in probs.items():
        if name == REFERENCE:
            continue
        comparison = compare(y_true, method_probs, probs[REFERENCE], groups, names=(name, REFERENCE), **options)
        diffs = comparison.disparities.to_frame()
        gap_row = _one(diffs[(diffs["metric"] == "accuracy") & (diffs["kind"] == "gap")])
        gap_difference = (
            _triple(None, None, None)
            if gap_row is None
            else _triple(gap_row["difference"], gap_row["ci_low"], gap_row["ci_high"])
        )
        methods[name] = method_summary(comparison.result_a, attribute, gap_difference)
        methods[name]["vs_erm"] = paired_changes(comparison.differences, attribute)
    reference_groups = methods[REFERENCE]["groups"]
    return {
        "methods": methods,
        "config": {
            "split": split,
            "n_cases": int(rows.sum()),
            "metric": "accuracy",
            "group_attribute": attribute,
            "reference": REFERENCE,
            "n_boot": n_boot,
            "ci": ci,
            "seed": seed,
            "min_group_size": min_group_size,
            "cluster": "patient_id" if cluster is not None else None,
            "gap": "best minus worst group accuracy over groups flagged ok",
            "gap_groups": [g for g, v in reference_groups.items() if v["flag"] == "ok"],
            # Said out loud: a group left out of the gap is usually the smallest one,
            # the one the constraints are for.
            "unranked_groups": {
                g: v["n"] for g, v in reference_groups.items() if v["flag"] != "ok" and g in dataset.group_names
            },
            "gap_diff_vs_erm": "method gap minus ERM gap, paired bootstrap (same replicates)",
            "vs_erm": "method accuracy minus ERM accuracy, overall and per group, paired bootstrap",
        },
    }


def point_accuracy(dataset: RouterDataset, probs: np.ndarray, split: str) -> dict[str, Any]:
    """Accuracy, per-group accuracy and gap without intervals (for the frontier's validation side)."""
    rows = dataset.subset(split)
    correct = probs.argmax(axis=1) == dataset.y[rows]
    groups = dataset.groups[rows]
    per_group = {
        name: float(correct[groups == k].mean()) for k, name in enumerate(dataset.group_names) if np.any(groups == k)
    }
    values = list(per_group.values())
    return {
        "accuracy": float(correct.mean()) if len(correct) else float("nan"),
        "groups": per_group,
        "gap": float(max(values) - min(values)) if values else float("nan"),
    }
