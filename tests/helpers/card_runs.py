"""A run folder laid out as the audit writes it, for the card tests."""

from __future__ import annotations

import copy
import functools
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
TONE_SIZES = {"I-II": 180, "III-IV": 150, "V-VI": 40, "unknown": 6}


@functools.cache
def engine_metrics(label: str = "female") -> dict[str, Any]:
    """Real ``fairderm.metrics.evaluate(...).to_dict()`` output for a simulated binary classifier.

    Tone groups as the audit forms them (``unknown``: the tone estimate
    abstained), sex with ``label`` as one value, their intersection, patient
    clusters; the model is worse on V-VI. B = 200 keeps the tests fast.
    """
    from fairderm.metrics import evaluate

    rng = np.random.default_rng(0)
    tone = np.concatenate([np.full(n, group) for group, n in TONE_SIZES.items()])
    sex = rng.choice([label, "male"], len(tone))
    p = np.where(rng.random(len(tone)) < 0.5, 0.85, 0.15)
    y = (rng.random(len(tone)) < p).astype(int)
    score = np.where((tone == "V-VI") & (rng.random(len(tone)) < 0.3), 1 - p, p)
    patients = np.arange(len(tone)) // 2
    result = evaluate(y, score, {"fitzpatrick_est": tone, "sex": sex}, n_boot=200, seed=0, cluster=patients,
                      metrics=["accuracy", "sensitivity", "specificity", "auroc", "ece"],
                      intersections=[("fitzpatrick_est", "sex")])
    return json.loads(json.dumps(result.to_dict()))


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
    metrics = copy.deepcopy(engine_metrics(label))
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if not optional:
        return folder
    policy = load_policy(REPO_ROOT / "audits" / "policy.example.yaml")
    (folder / "gate.json").write_text(evaluate_gate(metrics, policy).to_json(), encoding="utf-8")
    (folder / "environment.json").write_text(json.dumps(environment_info()), encoding="utf-8")
    spec = {"name": "demo-erm", "description": "Demo audit", "cohort": {"path": "cohort"},
            "model": {"backend": "backbone", "model": "heads/erm"}, "card": card or {}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    n = sum(TONE_SIZES.values())
    atomic_write_parquet(folder / "tone.parquet", _tone_frame(n), metadata_json={"method": "fairderm"})
    predictions = pd.DataFrame({"image_id": [f"img{i:04d}" for i in range(n)],
                                "status": ["ok"] * (n - 6) + ["error"] * 6})
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
    }, "views": {"max_views": 7, "per_case": {"I-II": 0, "III-IV": 4, "V-VI": 6}, "rows_added": 1098,
                 "methods": ["moe_parity"], "failed": {}},
        "mitigation": {
            "moe_parity": {"worst_group": "V-VI", "worst_group_change": interval(0.08, 0.05),
                           "best_group": "I-II", "best_group_change": interval(-0.01, 0.03),
                           "overall_change": interval(0.01, 0.02), "levelled_down": False},
            "reweight": {"worst_group": "V-VI", "worst_group_change": interval(0.05, 0.04),
                         "best_group": "I-II", "best_group_change": interval(-0.1, 0.05),
                         "overall_change": interval(-0.03, 0.02), "levelled_down": True},
        },
        "baselines": {"threshold": {"fits": 4, "failed": 1, "fallback_classes": {
            "melanoma": "ThresholdOptimizer failed: Degenerate labels for sensitive feature value (none)"}}},
        "dataset": {"split_source": "manifest+val",
                    "split_note": "the cohort's split has no val: a quarter of the training patients became val"},
    }), encoding="utf-8")
    return folder
