"""What a router run says: the run object, the verdict, the constraints, and each method as a mitigation.

A fairness mitigation is read as Zietlow et al. (2022, "Leveling down in
computer vision: Pareto inefficiencies in fair deep classifiers", CVPR) and
Zong et al. (2023, "MEDFAIR: Benchmarking fairness for medical imaging",
ICLR) read them: did the worst group gain, and was that gain paid by the
best group (levelling down) or by overall accuracy? Each change is the
method's accuracy minus ERM's on the same held-out cases with a paired
bootstrap interval (the same replicates). The worst and best groups are
ERM's (the groups a mitigation is meant to help and must not hurt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import to_json_text
from fairderm.moe._constraints import ConstraintSet
from fairderm.moe._train import FitResult, SplitArrays, predict_logits

Z_95 = 1.959963984540054


@dataclass
class RouterRun:
    """The outcome of :func:`train_router`.

    Attributes
    ----------
    out
        The router folder.
    evaluation
        Contents of ``evaluation.json``.
    constraints
        Constraint satisfaction of ``moe_parity`` on validation (one record
        per constraint: group, value, epsilon, multiplier, satisfied, n) and
        the same constraint measured on test.
    frontier
        The epsilon sweep and the baselines (columns :data:`FRONTIER_COLUMNS`).
    seconds
        Wall time, feature extraction included.
    """

    out: Path
    evaluation: dict[str, Any]
    constraints: list[dict[str, Any]]
    frontier: pd.DataFrame
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per method and group (``all`` for overall, ``gap``, ``gap_diff_vs_erm``)."""
        rows = []
        for method, record in self.evaluation["methods"].items():
            rows.append({"method": method, "group": "all", **record["accuracy"]})
            for group, values in record["groups"].items():
                interval = {k: values[k] for k in ("estimate", "ci_low", "ci_high")}
                rows.append({"method": method, "group": group, **interval})
            rows.append({"method": method, "group": "gap", **record["gap"]})
            rows.append({"method": method, "group": "gap_diff_vs_erm", **record["gap_diff_vs_erm"]})
        return pd.DataFrame(rows, columns=["method", "group", "estimate", "ci_low", "ci_high"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "evaluation": self.evaluation,
            "constraints": self.constraints,
            "frontier": self.frontier.to_dict(orient="records"),
            "seconds": self.seconds,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return to_json_text(self.to_dict())

    def summary(self) -> str:
        """A plain-text table of accuracy, gap and gap change vs ERM per method."""

        config = self.evaluation["config"]
        lines = [
            f"Router run in {self.out} ({self.seconds:.0f} s); held-out split: {config['n_cases']} cases, "
            f"groups from {config['group_attribute']}, {config['ci']} intervals, B={config['n_boot']}",
            f"{'method':<11} {'accuracy':<24} {'gap (best - worst)':<24} {'gap - ERM gap (paired)':<24}",
        ]
        for method, record in self.evaluation["methods"].items():
            lines.append(
                f"{method:<11} {format_interval(record['accuracy']):<24} {format_interval(record['gap']):<24} "
                f"{format_interval(record['gap_diff_vs_erm']):<24}"
            )
        mitigation = self.evaluation.get("mitigation")
        if mitigation:
            first = next(iter(mitigation.values()))
            lines.append(f"As mitigations (change vs ERM, paired): worst group {first['worst_group']}, "
                         f"best group {first['best_group']}")
            lines += mitigation_table(mitigation)
        lines.append(self.evaluation.get("verdict", ""))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def constraint_report(
    result: FitResult,
    constraints: ConstraintSet,
    objective: str,
    epsilon: float,
    val: SplitArrays,
    test: SplitArrays,
) -> list[dict[str, Any]]:
    """Per-constraint value on validation (and test), epsilon, multiplier, satisfied.

    ``multiplier`` is the selected epoch's (0 when early stopping kept the
    warm start), ``multiplier_final`` the last step's.
    """
    val_values = constraints.exact(predict_logits(result.model, val.features, val.tone), val.y, val.groups)
    test_values = constraints.exact(predict_logits(result.model, test.features, test.tone), test.y, test.groups)
    multipliers = dict(zip(result.constraint_names, result.multipliers.tolist(), strict=True))
    final = dict(zip(result.constraint_names, result.final_multipliers.tolist(), strict=True))
    report = []
    for index, (name, group) in enumerate(zip(constraints.names, constraints.groups_of, strict=True)):
        group_index = constraints.group_names.index(group)
        value = float(val_values[index])
        report.append(
            {
                "constraint": name,
                "group": group,
                "value": None if np.isnan(value) else value,
                "epsilon": epsilon,
                "multiplier": multipliers.get(name if objective == "lagrangian" else group),
                "multiplier_final": final.get(name if objective == "lagrangian" else group),
                "selected_epoch": result.best_epoch,
                "multiplier_kind": "lagrange" if objective == "lagrangian" else "group_dro_weight",
                "satisfied": None if np.isnan(value) else bool(value <= epsilon + 1e-12),
                "n_val": int((val.groups == group_index).sum()),
                "test_value": None if np.isnan(float(test_values[index])) else float(test_values[index]),
                "n_test": int((test.groups == group_index).sum()),
            }
        )
    return report


def verdict(evaluation: dict[str, Any]) -> str:
    """The headline in words: did the constrained router change the gap, at what cost."""
    erm, parity = evaluation["methods"]["erm"], evaluation["methods"]["moe_parity"]
    diff, gap_erm = parity["gap_diff_vs_erm"], erm["gap"]["estimate"]
    unranked = evaluation["config"].get("unranked_groups") or {}
    caveat = (
        " Not in the gap (fewer than min_group_size held-out cases): "
        + ", ".join(f"{g} (n={n})" for g, n in unranked.items())
        + "."
        if unranked
        else ""
    )
    if diff["estimate"] is None or gap_erm is None:
        return "moe_parity vs ERM: the gap could not be estimated (fewer than two groups flagged ok)." + caveat
    if diff["ci_high"] is not None and diff["ci_high"] < 0:
        change = "a significant reduction"
    elif diff["ci_low"] is not None and diff["ci_low"] > 0:
        change = "a significant increase"
    else:
        change = "no significant change"
    relative = ""
    if gap_erm > 0:
        share = -diff["estimate"] / gap_erm
        relative = f" (the gap {'shrank' if share >= 0 else 'grew'} by {abs(share):.0%} of ERM's {gap_erm:.3f})"
    accuracy = parity["accuracy"]["estimate"] - erm["accuracy"]["estimate"]
    return (
        f"moe_parity vs ERM: gap change {diff['estimate']:+.3f} [{diff['ci_low']:.3f}, {diff['ci_high']:.3f}]"
        f"{relative}, {change}; accuracy change {accuracy:+.3f}." + caveat
    )


def mitigation_report(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every method against ERM: worst group's, best group's and overall accuracy change, levelling down.

    Parameters
    ----------
    evaluation
        ``evaluation.json``'s content (each method's ``vs_erm`` paired changes
        and ERM's ranked groups).

    Returns
    -------
    dict
        Method -> ``{"worst_group", "worst_group_change", "best_group",
        "best_group_change", "overall_change", "levelled_down"}``; each change
        a triple (estimate, ci_low, ci_high); ``levelled_down`` is true when
        the best group's whole interval lies below 0.
    """
    erm = evaluation["methods"]["erm"]
    ranked = {g: v["estimate"] for g, v in erm["groups"].items() if v["flag"] == "ok" and v["estimate"] is not None}
    worst = min(ranked, key=ranked.get) if ranked else None
    best = max(ranked, key=ranked.get) if ranked else None
    empty = {"estimate": None, "ci_low": None, "ci_high": None}
    report = {}
    for method, record in evaluation["methods"].items():
        if method == "erm":
            continue
        changes = record.get("vs_erm", {"overall": empty, "groups": {}})
        best_change = changes["groups"].get(best, empty) if best else empty
        report[method] = {
            "worst_group": worst,
            "worst_group_change": changes["groups"].get(worst, empty) if worst else empty,
            "best_group": best,
            "best_group_change": best_change,
            "overall_change": changes["overall"],
            "levelled_down": best_change["ci_high"] is not None and best_change["ci_high"] < 0,
        }
    return report


def _pooled(triples: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean change over independent runs, its 95% interval from each run's interval as a normal one."""
    usable = [t for t in triples if None not in (t["estimate"], t["ci_low"], t["ci_high"])]
    if not usable:
        return {"estimate": None, "ci_low": None, "ci_high": None, "runs": 0}
    estimate = float(np.mean([t["estimate"] for t in usable]))
    se = math.sqrt(sum(((t["ci_high"] - t["ci_low"]) / (2 * Z_95)) ** 2 for t in usable)) / len(usable)
    return {"estimate": estimate, "ci_low": estimate - Z_95 * se, "ci_high": estimate + Z_95 * se,
            "runs": len(usable)}


def pool_mitigation_reports(reports: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """:func:`mitigation_report` pooled over runs (e.g. five draws): mean changes with pooled intervals.

    Each run's interval is read as a normal one (half-width / 1.96 = its
    standard error); runs are independent draws, so the mean's standard
    error is ``sqrt(sum se_i^2) / k``. ``levelled_down`` is true when the
    pooled best-group interval lies below 0; ``levelled_down_runs`` counts
    the runs flagged on their own.
    """
    methods = sorted({m for report in reports for m in report})
    pooled = {}
    for method in methods:
        runs = [report[method] for report in reports if method in report]
        best = _pooled([r["best_group_change"] for r in runs])
        pooled[method] = {
            "worst_group_change": _pooled([r["worst_group_change"] for r in runs]),
            "best_group_change": best,
            "overall_change": _pooled([r["overall_change"] for r in runs]),
            "levelled_down": best["ci_high"] is not None and best["ci_high"] < 0,
            "levelled_down_runs": int(sum(r["levelled_down"] for r in runs)),
            "runs": len(runs),
        }
    return pooled


def format_interval(t: dict[str, Any], *, signed: bool = False) -> str:
    """``0.812 [0.790, 0.834]`` (or, ``signed``, ``+0.012 [-0.010, +0.034]`` for a change), or ``n/a``."""
    if t["estimate"] is None:
        return "n/a"
    spec = "+.3f" if signed else ".3f"
    low = "?" if t["ci_low"] is None else format(t["ci_low"], spec)
    high = "?" if t["ci_high"] is None else format(t["ci_high"], spec)
    return f"{format(t['estimate'], spec)} [{low}, {high}]"


def format_change(t: dict[str, Any]) -> str:
    """A change with its interval, signed: ``+0.012 [-0.010, +0.034]``, or ``n/a``."""
    return format_interval(t, signed=True)


def mitigation_table(report: dict[str, dict[str, Any]]) -> list[str]:
    """Plain-text lines of :func:`mitigation_report` (or the pooled form)."""
    lines = [f"{'method':<11} {'worst group change':<26} {'best group change':<26} {'overall change':<26}"]
    for method, record in report.items():
        flag = "  levelled down" if record["levelled_down"] else ""
        lines.append(
            f"{method:<11} {format_change(record['worst_group_change']):<26} "
            f"{format_change(record['best_group_change']):<26} {format_change(record['overall_change']):<26}{flag}"
        )
    return lines
