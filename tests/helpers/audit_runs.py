"""Builders of the audit tests' small audits: a tiny cohort, a predictions file, a policy, a stand-in metrics engine.

Plain functions (the fixtures in ``tests/audit/conftest.py`` call them), so that a module-scoped fixture can
build a run too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from fairderm.cohort import CohortSpec, write_cohort
from fairderm.metrics import EvaluationResult

LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]
POSITIVE = ["melanoma", "bcc"]

POLICY = {
    "name": "test-policy",
    "rules": [
        {"id": "accuracy-floor", "metric": "accuracy", "attribute": "fitzpatrick_group", "groups": "each",
         "statistic": "estimate", "comparator": ">=", "threshold": 0.2},
    ],
}


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 120, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tiny_cohort(out: Path) -> Path:
    """90 cases of 30 patients, Fitzpatrick groups 40/30/20, split test/train, written to ``out``."""
    rng = np.random.default_rng(7)
    n = 90
    groups = np.array(["I-II"] * 40 + ["III-IV"] * 30 + ["V-VI"] * 20)
    manifest = pd.DataFrame({
        "image_id": [f"img{k:03d}" for k in range(n)],
        "image": [f"images/img{k:03d}.png" for k in range(n)],
        "label": rng.choice(LABELS, size=n),
        "patient_id": [f"p{k // 3:02d}" for k in range(n)],
        "fitzpatrick_group": groups,
        "sex": rng.choice(["female", "male"], size=n),
        "split": np.where(np.arange(n) % 5 == 0, "train", "test"),
    })
    spec = CohortSpec(name="tiny", labels=LABELS, positive_classes=POSITIVE, synthetic=True,
                      attributes=["fitzpatrick_group", "sex"])
    files = {f"images/img{k:03d}.png": _png(k) for k in range(n)}
    write_cohort(out, spec, manifest, extra_files=files)
    return out


def write_predictions(cohort_dir: Path) -> Path:
    """Class probabilities for every case of a tiny cohort, right 70% of the time: ``../model_predictions.csv``."""
    manifest = pd.read_parquet(cohort_dir / "manifest.parquet")
    rng = np.random.default_rng(11)
    probs = rng.dirichlet(np.ones(len(LABELS)), size=len(manifest))
    truth = manifest["label"].map(LABELS.index).to_numpy()
    right = rng.random(len(manifest)) < 0.7
    probs[right, truth[right]] += 2.0
    probs /= probs.sum(axis=1, keepdims=True)
    frame = pd.DataFrame(probs, columns=[f"prob_{c}" for c in LABELS])
    frame.insert(0, "image_id", manifest["image_id"])
    path = cohort_dir.parent / "model_predictions.csv"
    frame.to_csv(path, index=False)
    return path


def _accuracy_records(y_true: np.ndarray, y_pred: np.ndarray, groups: dict[str, np.ndarray],
                      n_boot: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    correct = (y_true == y_pred).astype(float)
    records = []
    partitions = [("all", "all", np.ones(len(correct), dtype=bool))]
    for attribute, values in groups.items():
        for value in sorted({str(v) for v in values}):
            partitions.append((attribute, f"{attribute}={value}", values.astype(str) == value))
    for attribute, group, mask in partitions:
        sample = correct[mask]
        boots = rng.choice(sample, size=(n_boot, len(sample))).mean(axis=1)
        records.append({
            "attribute": attribute, "group": group, "metric": "accuracy", "estimate": float(sample.mean()),
            "ci_low": float(np.quantile(boots, 0.025)), "ci_high": float(np.quantile(boots, 0.975)),
            "n": int(mask.sum()), "n_pos": int(mask.sum()), "flag": "ok" if mask.sum() >= 10 else "insufficient",
        })
    return records


def fake_compute_metrics(table: Any, spec: Any) -> EvaluationResult:
    """Accuracy per group with a percentile bootstrap: deterministic given the seed."""
    scores = np.asarray(table.y_score)
    if scores.ndim == 2:
        pred = np.asarray(table.labels, dtype=object)[scores.argmax(axis=1)]
    else:
        pred = (scores >= 0.5).astype(int) if scores.dtype.kind == "f" else scores
    records = _accuracy_records(np.asarray(table.y_true), pred, table.groups, spec.bootstrap.n_boot,
                                spec.bootstrap.seed)
    accuracies = [r["estimate"] for r in records if r["attribute"] != "all"]
    return EvaluationResult.from_dict({
        "groups": records,
        "disparities": [{"attribute": a, "metric": "accuracy", "kind": "gap", "group": "all",
                         "estimate": max(accuracies) - min(accuracies), "ci_low": 0.0, "ci_high": 1.0}
                        for a in table.groups],
        "tests": [], "calibration": [], "case_mix": [], "power": [],
        "config": {"n_boot": spec.bootstrap.n_boot, "seed": spec.bootstrap.seed, "ci": "percentile"},
    })
