"""Acceptance runs of the fairness-aware router (issue 6), reproducible from scratch.

Synthetic run: ``fairderm cohort synth --n 1500 --tone-weights
0.3,0.3,0.15,0.15,0.05,0.05`` (seed 0), ``fairderm tone estimate``, then
``fairderm router train`` with the default settings; groups are the estimated
Fitzpatrick groups I-II / III-IV / V-VI. The criteria checked: the
parity-constrained router (``moe_parity``) cuts the worst-to-best group
accuracy gap by at least 50% of ERM's, keeps overall accuracy within 2 points
of ERM's, and the 95% paired bootstrap interval of the gap change excludes 0.

``--split-seeds`` repeats the synthetic run on re-drawn patient-grouped
splits of the same cohort (the manifest's split removed, so the router draws
its own), to show how much the verdict depends on which 20% is held out.

PAD run (``--pad``): the shared PAD-UFES-20 subset, imported with ``fairderm
cohort import --format pad-ufes-20``, tone estimated for the router's input,
groups from the clinic's Fitzpatrick labels I-II vs III-IV (the 4 V-VI images
and those without a label train but are outside the constraints), for
malignant vs benign and for the 6 diagnoses.

Every stage is timed; the PAD stages include feature extraction (the cache
lives in the work folder, so a second run reuses it: pass a fresh ``--work``
to time from scratch).

Usage::

    python benchmarks/router_acceptance.py                          # synthetic run
    python benchmarks/router_acceptance.py --pad                    # + PAD, both tasks
    python benchmarks/router_acceptance.py --split-seeds 1,2,3,4    # + re-drawn splits
    python benchmarks/router_acceptance.py --work /tmp/acc --n-boot 2000 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from fairderm.cohort import load_cohort
from fairderm.moe import train_router

TONE_WEIGHTS = (0.3, 0.3, 0.15, 0.15, 0.05, 0.05)
PAD_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "pad-ufes-20-subset"


class Timer:
    """Wall time of named stages."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, work):
        started = time.perf_counter()
        result = work()
        self.seconds[name] = round(time.perf_counter() - started, 1)
        print(f"  {name}: {self.seconds[name]:.1f} s", flush=True)
        return result


def _tone(cohort_dir: Path, tone_path: Path, timer: Timer) -> None:
    from fairderm.tone import estimate_tone, write_tone

    if tone_path.is_file():
        return
    cohort = load_cohort(cohort_dir)
    timer.run("tone estimate", lambda: write_tone(tone_path, estimate_tone(cohort), cohort))


def _features(cohort_dir: Path, cache: Path, timer: Timer) -> np.ndarray:
    from fairderm.inference import extract_features

    cohort = load_cohort(cohort_dir)
    return timer.run("backbone features", lambda: extract_features(cohort, cache_dir=cache).features)


def criteria(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The synthetic acceptance criteria of issue 6, measured."""
    erm, parity = evaluation["methods"]["erm"], evaluation["methods"]["moe_parity"]
    gap_erm, gap_parity = erm["gap"]["estimate"], parity["gap"]["estimate"]
    diff = parity["gap_diff_vs_erm"]
    reduction = None if not gap_erm else (gap_erm - gap_parity) / gap_erm
    accuracy_change = parity["accuracy"]["estimate"] - erm["accuracy"]["estimate"]
    return {
        "gap_erm": gap_erm,
        "gap_moe_parity": gap_parity,
        "gap_reduction_share": reduction,
        "gap_cut_by_half": reduction is not None and reduction >= 0.5,
        "accuracy_change": accuracy_change,
        "accuracy_within_2_points": abs(accuracy_change) <= 0.02,
        "gap_change": diff,
        "paired_interval_excludes_0": diff["ci_high"] is not None and diff["ci_high"] < 0,
        "unranked_groups": evaluation["config"].get("unranked_groups", {}),
    }


def report(title: str, run, seconds: float) -> dict[str, Any]:
    """Print the method table, per-group accuracies, constraints and the criteria."""
    evaluation = run.evaluation
    print(f"\n== {title} ({seconds:.0f} s)")
    print(run.summary())
    print("per-group test accuracy (n):")
    for method, record in evaluation["methods"].items():
        cells = ", ".join(f"{g} {v['estimate']:.3f} (n={v['n']})" for g, v in record["groups"].items())
        print(f"  {method:<11} {cells}")
    print("constraints of moe_parity on validation (value, epsilon, multiplier):")
    for record in evaluation["constraints"]["records"]:
        value = "n/a" if record["value"] is None else f"{record['value']:+.3f}"
        print(f"  {record['constraint']:<10} {value} <= {record['epsilon']}  multiplier {record['multiplier']:.3f}"
              f"  (n_val={record['n_val']})")
    measured = criteria(evaluation)
    print("criteria:", json.dumps({k: v for k, v in measured.items() if k != "gap_change"}, default=str))
    return {"title": title, "seconds": seconds, "criteria": measured, "methods": evaluation["methods"],
            "constraints": evaluation["constraints"]["records"]}


def synthetic(work: Path, n: int, n_boot: int, split_seeds: list[int], constraint: str) -> list[dict[str, Any]]:
    """The synthetic acceptance run (and re-drawn splits)."""
    from fairderm.cohort import synthesize_cohort, write_cohort

    timer = Timer()
    started = time.perf_counter()
    cohort_dir, tone_path = work / "synth", work / "synth-tone.parquet"
    print(f"synthetic cohort: n={n}, tone weights {TONE_WEIGHTS}")
    if not (cohort_dir / "cohort.yaml").is_file():
        timer.run("synthesise", lambda: synthesize_cohort(cohort_dir, n=n, seed=0, tone_weights=TONE_WEIGHTS))
    _tone(cohort_dir, tone_path, timer)
    features = _features(cohort_dir, work / "cache", timer)
    out = work / f"router-synth-{constraint}"
    run = timer.run("router train", lambda: train_router(
        cohort_dir, _fresh(out), tone=tone_path, features=features, n_boot=n_boot, constraint=constraint,
        sweep=None if constraint == "dro" else [0.0, 0.05, 0.1],
    ))
    results = [report("synthetic, manifest split", run, time.perf_counter() - started)]

    cohort = load_cohort(cohort_dir)
    for seed in split_seeds:
        # The same images and tone, the split column removed: the router draws
        # a patient-grouped split stratified by label and group with this seed.
        resplit = work / f"synth-split{seed}"
        if not (resplit / "cohort.yaml").is_file():
            spec = cohort.spec.model_copy(update={"images_root": str(cohort.images_root)})
            write_cohort(resplit, spec, cohort.manifest.drop(columns=["split"]), check_files=False)
        started = time.perf_counter()
        run = train_router(resplit, _fresh(work / f"router-split{seed}-{constraint}"), tone=tone_path,
                           features=features, n_boot=n_boot, seed=seed, constraint=constraint)
        results.append(report(f"synthetic, split seed {seed}", run, time.perf_counter() - started))
    return results


def pad(work: Path, n_boot: int) -> list[dict[str, Any]]:
    """Both PAD tasks, groups from the clinic's Fitzpatrick labels."""
    from fairderm.cohort import import_cohort

    if not (PAD_SUBSET / "labels.csv").is_file():
        print(f"PAD subset not found at {PAD_SUBSET}: skipped")
        return []
    timer = Timer()
    started = time.perf_counter()
    cohort_dir, tone_path = work / "pad", work / "pad-tone.parquet"
    if not (cohort_dir / "cohort.yaml").is_file():
        timer.run("import", lambda: import_cohort("pad-ufes-20", PAD_SUBSET / "labels.csv", PAD_SUBSET, cohort_dir))
    _tone(cohort_dir, tone_path, timer)
    features = _features(cohort_dir, work / "cache", timer)
    cohort = load_cohort(cohort_dir)
    results = []
    for task, positives in (("malignant vs benign", list(cohort.spec.positive_classes)), ("6 diagnoses", None)):
        out = work / ("router-pad-binary" if positives else "router-pad-6")
        run = timer.run(f"router train ({task})", lambda positives=positives, out=out: train_router(
            cohort, _fresh(out), tone=tone_path, features=features, group_column="fitzpatrick_group",
            groups=["I-II", "III-IV"], positive_classes=positives, n_boot=n_boot,
        ))
        results.append(report(f"PAD subset, {task}", run, time.perf_counter() - started))
    total = time.perf_counter() - started
    print(f"\nPAD total wall time (import, tone, features, both tasks): {total:.0f} s")
    results.append({"title": "PAD total", "seconds": total, "stages": timer.seconds})
    return results


def _fresh(path: Path) -> Path:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "fairderm-router-acceptance",
                        help="Work folder (cohorts, tone, feature cache, router folders); reused when present.")
    parser.add_argument("--n", type=int, default=1500, help="Synthetic cohort size.")
    parser.add_argument("--n-boot", type=int, default=2000, help="Bootstrap replicates of the evaluation.")
    parser.add_argument("--split-seeds", default="", help="Comma-separated seeds of re-drawn synthetic splits.")
    parser.add_argument("--constraint", default="loss", choices=["loss", "eo", "dro"],
                        help="moe_parity's objective (fairderm router train --constraint).")
    parser.add_argument("--pad", action="store_true", help="Also run the PAD subset (both tasks).")
    parser.add_argument("--no-synthetic", action="store_true", help="Skip the synthetic run.")
    parser.add_argument("--json", type=Path, help="Write every result to this JSON file.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.split_seeds.split(",") if s.strip()]
    results: list[dict[str, Any]] = []
    if not args.no_synthetic:
        results += synthetic(args.work, args.n, args.n_boot, seeds, args.constraint)
    if args.pad:
        results += pad(args.work, args.n_boot)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
