"""A run folder laid out as the audit writes it, for the card tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fairderm._io import atomic_write_parquet, environment_info
from fairderm.gate import evaluate_gate, load_policy

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script>"
TONE = {  # group: (n, n_pos, accuracy, sensitivity, ece)
    "I-II": (180, 60, 0.88, 0.85, 0.04),
    "III-IV": (150, 50, 0.84, 0.80, 0.05),
    "V-VI": (40, 12, 0.70, 0.55, 0.09),
    "unknown": (6, 2, 0.67, 0.50, 0.20),
}


def _row(attribute: str, group: str, metric: str, estimate: float, n: int, n_pos: int) -> dict[str, Any]:
    half = 1.3 / np.sqrt(n)  # about a 95% interval half-width for a proportion near 0.8
    flag = "ok" if n >= 30 else "insufficient"
    return {"attribute": attribute, "group": group, "metric": metric, "estimate": estimate,
            "ci_low": max(0.0, estimate - half), "ci_high": min(1.0, estimate + half), "n": n, "n_pos": n_pos,
            "flag": flag}


def make_metrics(label: str = "female") -> dict[str, Any]:
    """metrics.json content: overall, tone, sex and tone x sex groups, disparities, tests, power."""
    rows = []
    for metric, value in (("accuracy", 0.84), ("sensitivity", 0.78), ("ece", 0.05)):
        rows.append(_row("all", "all", metric, value, 376, 124))
    for group, (n, n_pos, accuracy, sensitivity, ece) in TONE.items():
        for metric, value in (("accuracy", accuracy), ("sensitivity", sensitivity), ("ece", ece)):
            rows.append(_row("fitzpatrick_est", f"fitzpatrick_est={group}", metric, value, n, n_pos))
    for sex, n in ((label, 190), ("male", 186)):
        rows.append(_row("sex", f"sex={sex}", "accuracy", 0.84, n, 60))
    for group in ("I-II", "V-VI"):
        for sex, n in ((label, 20 if group == "V-VI" else 90), ("male", 20 if group == "V-VI" else 90)):
            rows.append(_row("fitzpatrick_est&sex", f"fitzpatrick_est={group} & sex={sex}", "accuracy",
                             0.7 if group == "V-VI" else 0.88, n, 10))
    disparities = [
        {"attribute": "fitzpatrick_est", "metric": "accuracy", "kind": "gap", "group": None,
         "estimate": 0.18, "ci_low": 0.05, "ci_high": 0.31},
        {"attribute": "fitzpatrick_est", "metric": "accuracy", "kind": "ratio", "group": None,
         "estimate": 0.80, "ci_low": 0.66, "ci_high": 0.94},
        {"attribute": "fitzpatrick_est", "metric": "accuracy", "kind": "diff_vs_ref",
         "group": "fitzpatrick_est=V-VI", "reference": "fitzpatrick_est=I-II",
         "estimate": -0.18, "ci_low": -0.31, "ci_high": -0.05},
    ]
    return {
        "groups": rows,
        "disparities": disparities,
        "tests": [{"metric": "accuracy", "attribute": "fitzpatrick_est", "test": "chi-square", "statistic": 9.1,
                   "p_value": 0.0105, "p_adjusted": 0.021, "method": "holm"}],
        "calibration": {},
        "case_mix": [{"attribute": "fitzpatrick_est", "group": "V-VI", "odds_ratio": 0.42, "ci_low": 0.2,
                      "ci_high": 0.88, "p_value": 0.02}],
        "power": [{"attribute": "fitzpatrick_est", "group": g, "metric": "accuracy", "n": n,
                   "min_detectable_difference": round(2.8 * 0.4 / np.sqrt(n), 3)}
                  for g, (n, *_rest) in TONE.items()],
        "config": {"n_boot": 2000, "ci": "bca", "seed": 0, "cluster": "patient_id", "min_group_size": 30,
                   "labels": ["nevus", "melanoma", "bcc", "seborrheic_keratosis"], "positive_label": 1,
                   "threshold": 0.5, "versions": {"numpy": np.__version__}},
    }


def _tone_frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ita = rng.uniform(-40, 60, n)
    status = np.where(np.arange(n) < 6, "abstain", "ok")
    return pd.DataFrame({
        "image_id": [f"img{i:04d}" for i in range(n)],
        "ita": ita, "ita_low": ita - 3.0, "ita_high": ita + 3.0,
        "skin_fraction": rng.uniform(0.3, 0.9, n),
        "fitzpatrick_est": pd.array(np.where(status == "ok", rng.integers(1, 7, n), None), dtype="Int8"),
        "monk_est": pd.array(rng.integers(1, 11, n), dtype="Int8"),
        "status": status, "reason": np.where(status == "ok", "", "too little skin"), "method": "fairderm",
    })


def make_run(folder: Path, *, label: str = "female", card: dict[str, Any] | None = None,
             optional: bool = True) -> Path:
    """A run folder: required metrics.json, and (``optional``) every optional file."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = make_metrics(label)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if not optional:
        return folder
    policy = load_policy(REPO_ROOT / "audits" / "policy.example.yaml")
    (folder / "gate.json").write_text(evaluate_gate(metrics, policy).to_json(), encoding="utf-8")
    (folder / "environment.json").write_text(json.dumps(environment_info()), encoding="utf-8")
    spec = {"name": "demo-erm", "description": "Demo audit", "cohort": {"path": "cohort"},
            "model": {"backend": "backbone", "model": "heads/erm"}, "card": card or {}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    n = 382
    atomic_write_parquet(folder / "tone.parquet", _tone_frame(n), metadata_json={"method": "fairderm"})
    predictions = pd.DataFrame({"image_id": [f"img{i:04d}" for i in range(n)],
                                "status": ["ok"] * 376 + ["error"] * 6})
    atomic_write_parquet(folder / "predictions.parquet", predictions, metadata_json={
        "backend": "backbone", "model": {"backend": "backbone", "model": "heads/erm", "classes": [0, 1]},
        "cohort": {"name": "synthetic-demo", "n_cases": n}, "cohort_manifest_sha256": "ab" * 32,
    })
    (folder / "tone_validation.json").write_text(json.dumps({
        "label": "fitzpatrick_group", "n": 376,
        "exact_agreement": {"estimate": 0.71, "ci_low": 0.66, "ci_high": 0.76},
        "within_one": {"estimate": 0.97, "ci_low": 0.95, "ci_high": 0.99},
        "kappa_quadratic": {"estimate": 0.74, "ci_low": 0.68, "ci_high": 0.79},
        "spearman": {"estimate": 0.78, "ci_low": 0.73, "ci_high": 0.82},
        "abstention_rate": 0.016,
    }), encoding="utf-8")
    interval = lambda e, w: {"estimate": e, "ci_low": e - w, "ci_high": e + w}  # noqa: E731
    (folder / "mitigation.json").write_text(json.dumps({"methods": {
        "erm": {"accuracy": interval(0.84, 0.03), "gap": interval(0.18, 0.1),
                "gap_diff_vs_erm": interval(0.0, 0.0)},
        "moe_parity": {"accuracy": interval(0.83, 0.03), "gap": interval(0.06, 0.05),
                       "gap_diff_vs_erm": interval(-0.12, 0.07), "groups": {"V-VI": interval(0.8, 0.1)}},
    }}), encoding="utf-8")
    return folder
