"""A small synthetic runs folder that follows the run-folder contract (issue 7).

Used by the dashboard's tests and by ``fairderm/dashboard/screenshots.py`` when no
real audit run is at hand. The numbers are made up from a seeded simulation
(a classifier that is worse on darker skin); ``metrics.json`` comes from
:func:`fairderm.metrics.evaluate` with a small bootstrap (B=200), enough to
exercise every page.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from fairderm.cohort import CohortSpec, write_cohort
from fairderm.gate import evaluate_gate, load_policy
from fairderm.metrics import evaluate
from fairderm.runs import (
    CARD_HTML,
    CARD_JSON,
    CARD_MARKDOWN,
    ENVIRONMENT_FILE,
    EVIDENCE_FILE,
    GATE_FILE,
    METRICS_FILE,
    MITIGATION_FILE,
    PREDICTIONS_FILE,
    RUN_SPEC_FILE,
    TONE_FILE,
)

EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "audit" / "policy.example.yaml"

LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]
POSITIVE = ["melanoma", "bcc"]
GROUPS = ["I-II", "III-IV", "V-VI"]
# Mean ITA (degrees) of each Fitzpatrick type, roughly after Del Bino 2013.
_ITA_BY_TYPE = {1: 60.0, 2: 45.0, 3: 32.0, 4: 18.0, 5: -5.0, 6: -35.0}
_RGB_BY_TYPE = {1: (236, 205, 185), 2: (224, 186, 160), 3: (200, 155, 120),
                4: (170, 120, 85), 5: (120, 80, 55), 6: (80, 52, 38)}


def _png(rgb: tuple[int, int, int], rng: np.random.Generator, size: int = 64) -> bytes:
    pixels = np.clip(np.array(rgb) + rng.normal(0, 8, (size, size, 3)), 0, 255)
    yy, xx = np.mgrid[:size, :size]
    lesion = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2
    pixels[lesion] = pixels[lesion] * 0.45
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _cohort(root: Path, n: int, rng: np.random.Generator) -> pd.DataFrame:
    fitz = rng.choice(np.arange(1, 7), size=n, p=[0.2, 0.25, 0.2, 0.15, 0.12, 0.08])
    images = {f"images/img_{i:05d}.png": _png(_RGB_BY_TYPE[int(f)], rng) for i, f in enumerate(fitz)}
    manifest = pd.DataFrame({
        "image_id": [f"img_{i:05d}" for i in range(n)],
        "image": list(images),
        "label": rng.choice(LABELS, size=n, p=[0.45, 0.2, 0.2, 0.15]),
        "fitzpatrick": pd.array(fitz, dtype="Int8"),
        "sex": rng.choice(["female", "male"], size=n),
        "split": "test",
    })
    manifest["fitzpatrick_group"] = pd.cut(fitz, [0, 2, 4, 6], labels=GROUPS).astype(str)
    spec = CohortSpec(name="sample", description="Synthetic sample cohort for the dashboard.",
                      synthetic=True, labels=LABELS, positive_classes=POSITIVE,
                      attributes=["fitzpatrick_group", "sex"])
    write_cohort(root / "cohort", spec, manifest, extra_files=images)
    return manifest


def _predictions(manifest: pd.DataFrame, rng: np.random.Generator, skill: dict[str, float]) -> pd.DataFrame:
    n = len(manifest)
    truth = manifest["label"].map(LABELS.index).to_numpy()
    p_correct = manifest["fitzpatrick_group"].map(skill).to_numpy()
    correct = rng.random(n) < p_correct
    wrong = (truth + rng.integers(1, len(LABELS), n)) % len(LABELS)
    pred = np.where(correct, truth, wrong)
    logits = rng.normal(0, 1, (n, len(LABELS)))
    logits[np.arange(n), pred] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"image_id": manifest["image_id"], "status": "ok", "reason": ""})
    frame["pred"] = [LABELS[i] for i in pred]
    for j, label in enumerate(LABELS):
        frame[f"prob_{label}"] = probs[:, j]
    frame["text"] = [f"Most likely {LABELS[i]}." for i in pred]
    frame["differential"] = [", ".join(LABELS[k] for k in np.argsort(-p)[:3]) for p in probs]
    unparseable = rng.random(n) < 0.01
    frame.loc[unparseable, ["status", "reason", "pred"]] = ["unparseable", "no label in answer", None]
    return frame


def _tone(manifest: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    fitz = manifest["fitzpatrick"].astype(int).to_numpy()
    ita = np.array([_ITA_BY_TYPE[f] for f in fitz]) + rng.normal(0, 7, len(fitz))
    est = np.digitize(ita, [-30, 10, 28, 41, 55])[::1]
    est = 6 - est  # high ITA = light skin = low Fitzpatrick type
    frame = pd.DataFrame({
        "image_id": manifest["image_id"], "ita": ita, "ita_low": ita - 3, "ita_high": ita + 3,
        "skin_fraction": rng.uniform(0.3, 0.9, len(fitz)),
        "fitzpatrick_est": pd.array(est, dtype="Int8"),
        "monk_est": pd.array(np.clip(est * 10 // 6, 1, 10), dtype="Int8"),
        "status": "ok", "reason": "", "method": "fairderm",
    })
    abstain = rng.random(len(fitz)) < 0.03
    frame.loc[abstain, ["status", "reason"]] = ["abstain", "too little healthy skin"]
    frame.loc[abstain, ["ita", "ita_low", "ita_high"]] = np.nan
    frame.loc[abstain, ["fitzpatrick_est", "monk_est"]] = pd.NA
    return frame


def _metrics(manifest: pd.DataFrame, preds: pd.DataFrame, tone: pd.DataFrame) -> dict:
    """``metrics.json`` from :func:`fairderm.metrics.evaluate` on the answered cases."""
    cases = manifest.merge(preds, on="image_id").merge(tone[["image_id", "fitzpatrick_est"]], on="image_id")
    cases = cases[cases["status"] == "ok"]
    est = pd.to_numeric(cases["fitzpatrick_est"], errors="coerce")
    tone_group = pd.cut(est, [0, 2, 4, 6], labels=GROUPS).astype(object).to_numpy()
    result = evaluate(cases["label"].to_numpy(), cases[[f"prob_{label}" for label in LABELS]],
                      {"fitzpatrick_est": tone_group, "sex": cases["sex"].to_numpy()},
                      labels=LABELS, positive_label=POSITIVE, n_boot=200, ci="percentile",
                      intersections="all", covariates=cases[["sex"]], n_perm=200, seed=0)
    return result.to_dict()


def _gate(metrics: dict) -> dict:
    """``gate.json`` from :func:`fairderm.gate.evaluate_gate` with the example policy."""
    return evaluate_gate(metrics, load_policy(EXAMPLE_POLICY)).to_dict()


def _mitigation(rng: np.random.Generator) -> dict:
    methods = {}
    for name, acc, gap in [("erm", 0.78, 0.16), ("reweighting", 0.76, 0.09), ("router", 0.77, 0.04)]:
        per_group = {g: {"estimate": acc - gap * (i - 1), "ci_low": acc - gap * (i - 1) - 0.05,
                         "ci_high": acc - gap * (i - 1) + 0.05} for i, g in enumerate(GROUPS)}
        methods[name] = {"accuracy": {"estimate": acc, "ci_low": acc - 0.03, "ci_high": acc + 0.03},
                         "groups": per_group,
                         "gap": {"estimate": gap, "ci_low": max(gap - 0.04, 0), "ci_high": gap + 0.04},
                         "gap_diff_vs_erm": {"estimate": gap - 0.16, "ci_low": gap - 0.21, "ci_high": gap - 0.11}}
    change = lambda e: {"estimate": e, "ci_low": e - 0.04, "ci_high": e + 0.04}  # noqa: E731
    report = {name: {"worst_group": GROUPS[-1], "worst_group_change": change(0.16 - gap),
                     "best_group": GROUPS[0], "best_group_change": change(-drop), "overall_change": change(acc - 0.78),
                     "levelled_down": drop > 0.04}
              for name, acc, gap, drop in [("reweighting", 0.76, 0.09, 0.05), ("router", 0.77, 0.04, 0.01)]}
    baselines = {"threshold": {"fits": 2, "failed": 1, "fallback_classes": {
        "melanoma": "ThresholdOptimizer failed: Degenerate labels for sensitive feature value (none)"}}}
    return {"methods": methods, "mitigation": report, "baselines": baselines}


def _write_run(run_dir: Path, manifest: pd.DataFrame, preds: pd.DataFrame, tone: pd.DataFrame,
               *, model: str, mitigation: dict | None) -> None:
    run_dir.mkdir(parents=True)
    preds.to_parquet(run_dir / PREDICTIONS_FILE, index=False)
    tone.to_parquet(run_dir / TONE_FILE, index=False)
    metrics = _metrics(manifest, preds, tone)
    gate = _gate(metrics)
    dump = lambda name, obj: (run_dir / name).write_text(json.dumps(obj, indent=1, allow_nan=False), encoding="utf-8")  # noqa: E731
    dump(METRICS_FILE, metrics)
    dump(GATE_FILE, gate)
    card = {"model_details": {"name": model}, "gate": gate["verdict"]}
    dump(CARD_JSON, card)
    (run_dir / CARD_MARKDOWN).write_text(
        f"---\nlicense: apache-2.0\ntags: [dermatology, fairness]\n---\n# Model card: {model}\n\n"
        f"Gate verdict: **{gate['verdict']}**.\n\n## Intended use\nResearch only (sample run).\n",
        encoding="utf-8")
    (run_dir / CARD_HTML).write_text(f"<html><body><h1>Model card: {model}</h1></body></html>", encoding="utf-8")
    dump(EVIDENCE_FILE, {"files": {METRICS_FILE: "sha256:sample"}, "seeds": {"bootstrap": 0}})
    dump(ENVIRONMENT_FILE, {"python": "3.11", "platform": "sample"})
    (run_dir / RUN_SPEC_FILE).write_text(yaml.safe_dump({"name": model, "cohort": "cohort",
                                                       "model": {"backend": "file", "name": model}}))
    if mitigation is not None:
        dump(MITIGATION_FILE, mitigation)


def write_sample_runs(root: str | Path, *, n: int = 400, seed: int = 0) -> list[str]:
    """Write a cohort and two runs (ERM model, router) on it under ``root``.

    Returns the run ids (paths relative to ``root``), the ERM run first.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    manifest = _cohort(root, n, rng)
    tone = _tone(manifest, rng)
    erm = _predictions(manifest, rng, {"I-II": 0.85, "III-IV": 0.78, "V-VI": 0.6})
    router = _predictions(manifest, rng, {"I-II": 0.83, "III-IV": 0.8, "V-VI": 0.76})
    ids = ["audits/erm/runs/run-001", "audits/router/runs/run-001"]
    _write_run(root / ids[0], manifest, erm, tone, model="demo-erm", mitigation=None)
    _write_run(root / ids[1], manifest, router, tone, model="demo-router", mitigation=_mitigation(rng))
    return ids
