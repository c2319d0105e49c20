"""Bootstrap speed: fairderm.metrics.evaluate against fairlearn's MetricFrame(n_boot=...).

Same inputs (100k cases, 6 groups, binary), same 10 metrics (accuracy,
balanced accuracy, sensitivity, specificity, PPV, NPV, F1, AUROC, Brier,
ECE with 10 equal-mass bins), both run side by side in this process.

fairderm runs at B = 2000 (BCa and percentile). fairlearn resamples one
replicate at a time and takes seconds per replicate at this size, so it runs
at a small B and its time is extrapolated linearly to B = 2000:
t(2000) = t(0) + 2000 (t(B) - t(0)) / B, where t(0) is MetricFrame without
bootstrap. The directly measured ratio at the small B is printed too.

Usage::

    python benchmarks/bootstrap_speed.py                 # n=100000, B=2000, fairlearn B=10
    python benchmarks/bootstrap_speed.py --n 20000 --fairlearn-boot 20
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn import metrics as skm

from fairderm.metrics import evaluate

METRICS = ["accuracy", "balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "auroc", "brier",
           "ece"]
N_BINS = 10


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = rng.choice(["I", "II", "III", "IV", "V", "VI"], size=n, p=[0.1, 0.3, 0.3, 0.15, 0.1, 0.05])
    y = (rng.random(n) < 0.3).astype(np.int64)
    score = 1.0 / (1.0 + np.exp(-rng.normal(np.where(y == 1, 1.0, -1.0), 1.2)))
    return y, score, group


def _ece(y_true, y_pred, score):
    edges = np.quantile(score, np.linspace(0.0, 1.0, N_BINS + 1)[1:-1])
    bins = np.searchsorted(edges, score, side="right")
    return np.abs(np.bincount(bins, weights=score - y_true, minlength=N_BINS)).sum() / len(y_true)


def _auroc(y_true, y_pred, score):
    return skm.roc_auc_score(y_true, score)


def _brier(y_true, y_pred, score):
    return skm.brier_score_loss(y_true, score)


def _npv(y_true, y_pred):
    return skm.precision_score(1 - np.asarray(y_true), 1 - np.asarray(y_pred))


def fairlearn_frame(y: np.ndarray, score: np.ndarray, group: np.ndarray, n_boot: int | None):
    from fairlearn.metrics import MetricFrame, true_negative_rate

    functions = {
        "accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
        "sensitivity": skm.recall_score, "specificity": true_negative_rate, "ppv": skm.precision_score,
        "npv": _npv, "f1": skm.f1_score, "auroc": _auroc, "brier": _brier, "ece": _ece,
    }
    per_case = {"score": score}
    return MetricFrame(
        metrics=functions, y_true=y, y_pred=(score >= 0.5).astype(np.int64), sensitive_features=group,
        sample_params={name: per_case for name in ("auroc", "brier", "ece")},
        n_boot=n_boot, ci_quantiles=[0.025, 0.975] if n_boot else None, random_state=0 if n_boot else None,
    )


def run_fairderm(y, score, group, n_boot: int, ci: str, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all threads)."""
    started, cpu = time.perf_counter(), time.process_time()
    evaluate(y, score, {"fitzpatrick": group}, metrics=METRICS, n_boot=n_boot, ci=ci, n_bins=N_BINS,
             tests=False, case_mix=False, power=False, workers=workers)
    return time.perf_counter() - started, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--fairlearn-boot", type=int, default=10, help="0 skips fairlearn")
    parser.add_argument("--jobs", type=int, default=2, help="threads for fairderm (2 cores in the target)")
    args = parser.parse_args(argv)
    y, score, group = make_data(args.n)
    print(f"{args.n} cases, 6 groups, {len(METRICS)} metrics ({', '.join(METRICS)})")
    print(f"cores available: {len(os.sched_getaffinity(0))}; load average before: "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} (shared machine: timings are noisy)\n")
    run_fairderm(y[:2000], score[:2000], group[:2000], 50, "bca", args.jobs)  # warm-up (imports)

    # CPU seconds are printed beside wall time: on a loaded machine they show what the
    # work costs (on 2 idle cores with 2 threads, wall time ~ CPU time / 2).
    times = {}
    for ci in ("bca", "percentile"):
        wall, cpu = run_fairderm(y, score, group, args.boot, ci, args.jobs)
        times[ci] = wall
        print(f"fairderm  B={args.boot:<5} {ci:<10} {wall:8.2f} s wall, {cpu:8.2f} s CPU ({args.jobs} threads)")
    if not args.fairlearn_boot:
        return 0
    small, _ = run_fairderm(y, score, group, args.fairlearn_boot, "percentile", args.jobs)
    print(f"fairderm  B={args.fairlearn_boot:<5} percentile {small:8.2f} s wall")

    started = time.perf_counter()
    fairlearn_frame(y, score, group, None)
    base = time.perf_counter() - started
    started = time.perf_counter()
    fairlearn_frame(y, score, group, args.fairlearn_boot)
    booted = time.perf_counter() - started
    per_replicate = max(booted - base, 0.0) / args.fairlearn_boot
    extrapolated = base + args.boot * per_replicate
    print(f"fairlearn B=0     (no bootstrap) {base:8.2f} s")
    print(f"fairlearn B={args.fairlearn_boot:<5} measured   {booted:8.2f} s  ({per_replicate:.2f} s per replicate)")
    print(f"fairlearn B={args.boot:<5} extrapolated linearly from B={args.fairlearn_boot}: {extrapolated:8.1f} s\n")
    print(f"ratio at B={args.boot} (fairlearn extrapolated / fairderm BCa): {extrapolated / times['bca']:8.1f}x")
    print(f"ratio at B={args.boot} (fairlearn extrapolated / fairderm percentile): "
          f"{extrapolated / times['percentile']:8.1f}x")
    print(f"ratio at B={args.fairlearn_boot} measured (fairlearn / fairderm percentile): {booted / small:8.1f}x")
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
