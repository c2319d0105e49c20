"""Hand-written metrics.json content following the contract, for the gate tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

Interval = tuple[float, float, float]


def group_row(attribute: str, group: str, metric: str, interval: Interval | None, *,
              n: int = 200, n_pos: int = 60, flag: str = "ok") -> dict[str, Any]:
    estimate, low, high = interval if interval is not None else (None, None, None)
    # an intersection's group is named in full, as the metrics engine writes it
    name = group if attribute == "all" or "=" in group else f"{attribute}={group}"
    return {"attribute": attribute, "group": name, "metric": metric, "estimate": estimate,
            "ci_low": low, "ci_high": high, "n": n, "n_pos": n_pos, "flag": flag}


def make_metrics(
    tone: dict[str, dict[str, Any]] | None = None,
    *,
    gaps: dict[str, Interval] | None = None,
    extra_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """metrics.json content for `fitzpatrick_est` groups.

    ``tone`` maps a group (I-II, ...) to ``{metric: (estimate, lo, hi), "n": n, "flag": f}``.
    """
    tone = tone if tone is not None else {
        "I-II": {"sensitivity": (0.85, 0.80, 0.90), "accuracy": (0.86, 0.82, 0.90), "ece": (0.03, 0.02, 0.05)},
        "III-IV": {"sensitivity": (0.83, 0.77, 0.88), "accuracy": (0.85, 0.81, 0.89), "ece": (0.04, 0.02, 0.06)},
        "V-VI": {"sensitivity": (0.80, 0.72, 0.87), "accuracy": (0.84, 0.78, 0.89), "ece": (0.05, 0.03, 0.08)},
    }
    gaps = gaps if gaps is not None else {"accuracy": (0.02, 0.00, 0.06)}
    rows: list[dict[str, Any]] = []
    for metric in ("sensitivity", "accuracy", "ece"):
        rows.append(group_row("all", "all", metric, (0.84, 0.81, 0.87), n=600, n_pos=180))
        for group, values in tone.items():
            rows.append(group_row("fitzpatrick_est", group, metric, values.get(metric),
                                  n=values.get("n", 200), n_pos=values.get("n_pos", 60),
                                  flag=values.get("flag", "ok")))
    rows += extra_rows or []
    disparities = [
        {"attribute": "fitzpatrick_est", "metric": metric, "kind": "gap", "group": "fitzpatrick_est",
         "estimate": est, "ci_low": low, "ci_high": high}
        for metric, (est, low, high) in gaps.items()
    ]
    disparities += [
        {"attribute": "fitzpatrick_est", "metric": "accuracy", "kind": "diff_vs_ref",
         "group": f"fitzpatrick_est={group}", "reference": "fitzpatrick_est=I-II",
         "estimate": -0.02, "ci_low": -0.08, "ci_high": 0.03}
        for group in tone if group != "I-II"
    ]
    return {
        "groups": rows,
        "disparities": disparities,
        "tests": [],
        "calibration": [],
        "case_mix": [],
        "power": [],
        "config": {"n_boot": 2000, "ci": "bca", "seed": 0, "cluster": None, "min_group_size": 30,
                   "threshold": 0.5, "versions": {"fairderm": "test"}},
    }


DEMO_POLICY: dict[str, Any] = {
    "name": "test-policy",
    "rules": [
        {"id": "worst-sensitivity", "metric": "sensitivity", "attribute": "fitzpatrick_est",
         "groups": "worst", "statistic": "ci_low", "comparator": ">=", "threshold": 0.70},
        {"id": "accuracy-gap", "metric": "accuracy", "disparity": "gap", "attribute": "fitzpatrick_est",
         "statistic": "ci_high", "comparator": "<=", "threshold": 0.10},
        {"id": "ece-each", "metric": "ece", "attribute": "fitzpatrick_est", "groups": "each",
         "comparator": "<=", "threshold": 0.10},
        {"id": "min-n", "attribute": "fitzpatrick_est", "groups": ["I-II", "III-IV", "V-VI"], "min_n": 30},
    ],
}


def write_run(folder: Path, metrics: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder


def write_policy(path: Path, policy: dict[str, Any] | str) -> Path:
    path.write_text(policy if isinstance(policy, str) else yaml.safe_dump(policy), encoding="utf-8")
    return path
