"""Acceptance runs of the fairness-aware router (issue 6), reproducible from scratch.

Synthetic run: ``fairderm cohort synth --n 1500 --tone-weights
0.3,0.3,0.15,0.15,0.05,0.05 --eval-tone-weights 1,1,1,1,1,1`` (seed 0): the
training split (60%) has the tone imbalance, the validation and test splits
(20% each) are drawn tone-balanced so that the darkest group has ~85 held-out
cases rather than ~28 (``--eval-tone-weights train`` draws them with the
training mix, as the issue's example command does). Then ``fairderm tone
estimate`` and ``fairderm router train`` with the default settings; groups
are the estimated Fitzpatrick groups I-II / III-IV / V-VI. The criteria
checked: the parity-constrained router (``moe_parity``) cuts the
worst-to-best group accuracy gap by at least 50% of ERM's, keeps overall
accuracy within 2 points of ERM's, and the 95% paired bootstrap interval of
the gap change excludes 0.

``--split-seeds`` repeats the synthetic run on re-drawn patient-grouped
splits of the same cohort (the manifest's split removed, so the router draws
its own), to show how much the verdict depends on which 20% is held out.

``--train-subsamples K --train-size M`` separates the router's effect from
the noise of a small test split: on a larger cohort (e.g. ``--n 6000``, whose
tone-balanced validation and test splits hold ~1200 cases each, ~340 of them
V-VI) the router is trained K times, each on M training cases drawn without
replacement from the training split (M = 900 is the training split of the
issue's 1500-case example, with its tone imbalance), and evaluated on the
whole, unchanged validation and test splits. The mean gap change over the K
draws is the router's expected effect at that training size.

PAD run (``--pad``): the shared PAD-UFES-20 subset, imported with ``fairderm
cohort import --format pad-ufes-20``, tone estimated for the router's input,
groups from the clinic's Fitzpatrick labels I-II vs III-IV (the 4 V-VI images
and those without a label train but are outside the constraints), for
malignant vs benign and for the 6 diagnoses.

Every stage is timed; the PAD stages include feature extraction (the cache
lives in the work folder, so a second run reuses it: pass a fresh ``--work``
to time from scratch). A tone table in the work folder is reused only if
the current estimator version wrote it.

Usage::

    python benchmarks/router_acceptance.py                          # synthetic run
    python benchmarks/router_acceptance.py --pad                    # + PAD, both tasks
    python benchmarks/router_acceptance.py --split-seeds 1,2,3,4    # + re-drawn splits
    python benchmarks/router_acceptance.py --learnability           # + how much of the gap is closable
    python benchmarks/router_acceptance.py --work /tmp/acc6000 --n 6000 --train-subsamples 5   # effect vs noise
    python benchmarks/router_acceptance.py --work /tmp/acc --n-boot 2000 --json results.json
    python benchmarks/router_acceptance.py --experts lora           # LoRA experts on the backbone's last block
    python benchmarks/router_acceptance.py --work /tmp/acc6000 --n 6000 --train-subsamples 5 --draws-only --experts lora

LoRA runs skip the epsilon sweep of the frontier (each point retrains the
adapters: ``--sweep`` asks for it); ``--draws-only`` skips the router trained
on the whole large cohort, which the five-draw table does not use.
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
from fairderm.moe import pool_mitigation_reports
from fairderm.moe import train_router as _train_router

# set by main(): options every router run of this script gets (--views, --experts)
RUN_OPTIONS: dict[str, Any] = {}


def run_folder(out: Path) -> Path:
    """Where this run's router for ``out`` goes: ``out``, or ``<out>-lora`` for LoRA experts."""
    experts = RUN_OPTIONS["experts"]
    return out if experts == "frozen" else out.with_name(f"{out.name}-{experts}")


def train_router(cohort, out: Path, **options):
    """fairderm.moe.train_router with this run's --views and --experts and the work folder's feature cache.

    Routers with LoRA experts go to ``<folder>-lora``, beside the frozen ones.
    """
    experts = RUN_OPTIONS["experts"]
    return _train_router(cohort, run_folder(out), cache_dir=RUN_OPTIONS["cache_dir"], views=RUN_OPTIONS["views"],
                         experts=experts, stage=lambda name: print(f"  [{time.strftime('%H:%M:%S')}] {name}",
                                                                   flush=True), **options)

TONE_WEIGHTS = (0.3, 0.3, 0.15, 0.15, 0.05, 0.05)
SYNTH_WHITE = 0.65
"""Reflectance of the synthetic rulers and paper, told to the tone estimator (its default, 0.85, is real paper's)."""
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


def _tone(cohort_dir: Path, tone_path: Path, timer: Timer, white_reflectance: float | None = None) -> None:
    """Estimate the cohort's tone into ``tone_path``, unless the file there is by this estimator version and parameters.

    ``white_reflectance`` is told to the estimator where the white references' reflectance is known (the synthetic
    rulers and paper); ``None`` keeps the estimator's default, as for real photographs.
    """
    from fairderm._io import read_parquet_metadata
    from fairderm.tone import ESTIMATOR_VERSION, ToneParameters, estimate_tone, write_tone

    parameters = ToneParameters() if white_reflectance is None else ToneParameters(white_reflectance=white_reflectance)
    if tone_path.is_file():
        estimation = read_parquet_metadata(tone_path).get("estimation", {})
        if estimation.get("estimator") == ESTIMATOR_VERSION and estimation.get("parameters") == parameters.to_dict():
            return
    cohort = load_cohort(cohort_dir)
    timer.run("tone estimate", lambda: write_tone(tone_path, estimate_tone(cohort, parameters=parameters), cohort))


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

    def worst(record: dict[str, Any]) -> float | None:
        ranked = [v["estimate"] for v in record["groups"].values() if v.get("flag") == "ok"]
        return min(ranked) if ranked else None

    worst_erm, worst_parity = worst(erm), worst(parity)
    return {
        "gap_erm": gap_erm,
        "gap_moe_parity": gap_parity,
        "gap_reduction_share": reduction,
        "gap_cut_by_half": reduction is not None and reduction >= 0.5,
        "accuracy_change": accuracy_change,
        # the price of parity: at most 2 points below ERM (being more accurate is no failure)
        "accuracy_within_2_points": accuracy_change >= -0.02,
        "gap_change": diff,
        "paired_interval_excludes_0": diff["ci_high"] is not None and diff["ci_high"] < 0,
        "worst_group_accuracy_change": None if worst_erm is None or worst_parity is None
        else worst_parity - worst_erm,
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
    result = _result(title, evaluation, seconds)
    print("criteria:", json.dumps({k: v for k, v in result["criteria"].items() if k != "gap_change"}, default=str))
    return result


def _result(title: str, evaluation: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    """One run's record in the JSON output: its criteria, methods, constraints and mitigation report."""
    return {"title": title, "seconds": seconds, "criteria": criteria(evaluation), "methods": evaluation["methods"],
            "constraints": evaluation["constraints"]["records"], "mitigation": evaluation["mitigation"]}


def synthetic(work: Path, n: int, n_boot: int, split_seeds: list[int], constraint: str,
              eval_weights: tuple[float, ...] | None, subsamples: int = 0,
              train_size: int = 900, draws_only: bool = False) -> list[dict[str, Any]]:
    """The synthetic acceptance run (and re-drawn splits)."""
    from fairderm.cohort import synthesize_cohort, write_cohort

    timer = Timer()
    started = time.perf_counter()
    tag = _cohort_tag(eval_weights)
    cohort_dir, tone_path = work / f"synth{tag}", work / f"synth{tag}-tone.parquet"
    print(f"synthetic cohort: n={n}, tone weights {TONE_WEIGHTS} (train"
          + (")" if eval_weights is None else f"), {eval_weights} (validation and test)"))
    if not (cohort_dir / "cohort.yaml").is_file():
        timer.run("synthesise", lambda: synthesize_cohort(
            cohort_dir, n=n, seed=0, tone_weights=TONE_WEIGHTS,
            eval_tone_weights=None if eval_weights is None else list(eval_weights)))
    _tone(cohort_dir, tone_path, timer, white_reflectance=SYNTH_WHITE)
    features = _features(cohort_dir, work / "cache", timer)
    results = []
    if not draws_only:
        out = work / f"router-synth{tag}-{constraint}"
        run = timer.run("router train", lambda: train_router(
            cohort_dir, _fresh(out), tone=tone_path, features=features, n_boot=n_boot, constraint=constraint,
            sweep=None if constraint == "dro" or not RUN_OPTIONS["sweep"] else [0.0, 0.05, 0.1],
        ))
        results.append(report("synthetic, manifest split", run, time.perf_counter() - started))

    cohort = load_cohort(cohort_dir)
    for seed in split_seeds:
        # The same images and tone, the split column removed: the router draws
        # a patient-grouped split stratified by label and group with this seed.
        resplit = work / f"synth{tag}-split{seed}"
        if not (resplit / "cohort.yaml").is_file():
            spec = cohort.spec.model_copy(update={"images_root": str(cohort.images_root)})
            write_cohort(resplit, spec, cohort.manifest.drop(columns=["split"]), check_files=False)
        started = time.perf_counter()
        run = train_router(resplit, _fresh(work / f"router{tag}-split{seed}-{constraint}"), tone=tone_path,
                           features=features, n_boot=n_boot, seed=seed, constraint=constraint)
        results.append(report(f"synthetic, split seed {seed}", run, time.perf_counter() - started))
    if subsamples:
        results += train_subsamples(work, cohort, tone_path, features, tag, constraint, n_boot,
                                    subsamples, train_size)
    return results


def train_subsamples(work: Path, cohort, tone_path: Path, features: np.ndarray, tag: str, constraint: str,
                     n_boot: int, count: int, size: int) -> list[dict[str, Any]]:
    """The router trained on ``count`` draws of ``size`` training cases, evaluated on the full held-out splits."""
    from fairderm.cohort import write_cohort
    from fairderm.tone import read_tone, write_tone
    from fairderm.tone._store import align_to_cohort

    manifest = cohort.manifest
    train = np.flatnonzero(manifest["split"].eq("train").to_numpy())
    if size > train.size:
        raise SystemExit(f"--train-size {size} is more than the {train.size} training cases of the cohort")
    tone = align_to_cohort(read_tone(tone_path, cohort), cohort)
    spec = cohort.spec.model_copy(update={"images_root": str(cohort.images_root)})
    results = []
    for seed in RUN_OPTIONS.get("draw_seeds") or range(count):
        out = work / f"router{tag}-train{size}-draw{seed}-{constraint}"
        if RUN_OPTIONS.get("summarise_only"):
            results.append(_stored_draw(out, f"synthetic, {size} training cases, draw {seed}"))
            continue
        drawn = np.random.default_rng(seed).choice(train, size=size, replace=False)
        keep = np.array(manifest["split"].isin(["val", "test"]), dtype=bool)
        keep[drawn] = True
        folder = work / f"synth{tag}-train{size}-draw{seed}"
        if not (folder / "cohort.yaml").is_file():
            write_cohort(folder, spec, manifest[keep].reset_index(drop=True), check_files=False)
        subset = load_cohort(folder, check_files=False)
        subset_tone = work / f"synth{tag}-train{size}-draw{seed}-tone.parquet"
        write_tone(subset_tone, tone[keep].reset_index(drop=True), subset)  # always from the current table
        started = time.perf_counter()
        run = train_router(subset, _fresh(out), tone=subset_tone, features=features[keep], n_boot=n_boot,
                           constraint=constraint)
        results.append(report(f"synthetic, {size} training cases, draw {seed}", run, time.perf_counter() - started))
    return [*results, summarise_draws(results, size)]


def summarise_draws(results: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """Means over the draws, and their mitigation reports pooled (printed and returned)."""
    count = len(results)
    changes = np.array([r["criteria"]["gap_change"]["estimate"] for r in results])
    gaps = np.array([r["criteria"]["gap_erm"] for r in results])
    accuracy = np.array([r["criteria"]["accuracy_change"] for r in results])
    worst = np.array([r["criteria"]["worst_group_accuracy_change"] for r in results], dtype=float)
    summary = {
        "title": f"synthetic, {count} draws of {size} training cases",
        "mean_gap_erm": float(gaps.mean()),
        "mean_gap_change": float(changes.mean()),
        "sd_gap_change": float(changes.std(ddof=1)) if count > 1 else None,
        "mean_gap_reduction_share": float(-changes.mean() / gaps.mean()) if gaps.mean() else None,
        "mean_accuracy_change": float(accuracy.mean()),
        "mean_worst_group_accuracy_change": float(np.nanmean(worst)),
        "draws_meeting_all_criteria": int(sum(
            r["criteria"]["gap_cut_by_half"] and r["criteria"]["accuracy_within_2_points"]
            and r["criteria"]["paired_interval_excludes_0"] for r in results)),
    }
    print(f"\n== {summary['title']}: ERM gap {summary['mean_gap_erm']:.3f} on average, moe_parity's gap change "
          f"{summary['mean_gap_change']:+.3f} (SD {summary['sd_gap_change'] or 0:.3f} over draws), "
          f"accuracy change {summary['mean_accuracy_change']:+.3f}, worst-group accuracy change "
          f"{summary['mean_worst_group_accuracy_change']:+.3f}; "
          f"{summary['draws_meeting_all_criteria']} of {count} draws meet every criterion")
    summary["pooled_mitigation"] = pooled = pool_mitigation_reports([r["mitigation"] for r in results])
    print(f"pooled over the {count} draws (change vs ERM, mean [95% pooled interval]; ERM's worst and best groups):")
    for method, record in pooled.items():
        cells = "  ".join(
            f"{part} {t['estimate']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]"
            if t["estimate"] is not None else f"{part} n/a"
            for part, t in (("worst", record["worst_group_change"]), ("best", record["best_group_change"]),
                            ("overall", record["overall_change"]))
        )
        flag = "  LEVELLED DOWN" if record["levelled_down"] else ""
        print(f"  {method:<11} {cells}  (levelled down in {record['levelled_down_runs']} of {record['runs']}){flag}")
    return summary


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


def learnability(work: Path, eval_weights: tuple[float, ...] | None, folds: int = 5) -> dict[str, Any]:
    """How much of the tone gap any reweighting of these frozen features can close.

    Patient-grouped ``folds``-fold cross-validation over the whole synthetic
    cohort (so every dark-skin case is tested once, about three times as many
    as one test split holds) of an L2 logistic regression on the standardised
    features: plain; with group-balanced weights; with the features repeated
    for estimated V-VI cases (a separate linear expert for the darkest group,
    the most a tone-aware router can add); and balanced with that expert; and
    one trained on V-VI cases only. If a method's V-VI accuracy stays near the
    plain one, the gap is intrinsic to what the features show of dark-skin
    lesions, not a shortage of dark-skin training cases that a constraint can
    make up for.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.preprocessing import StandardScaler

    from fairderm.moe._data import prepare_dataset
    from fairderm.moe._train import group_balanced_weights
    from fairderm.tone import read_tone

    tag = _cohort_tag(eval_weights)
    cohort = load_cohort(work / f"synth{tag}")
    features = _features(work / f"synth{tag}", work / "cache", Timer())
    dataset = prepare_dataset(cohort, read_tone(work / f"synth{tag}-tone.parquet", cohort), features)
    x, y, groups = dataset.features, dataset.y, dataset.groups
    darkest = groups == dataset.group_names.index("V-VI")
    variants = {
        "plain": (x, False),
        "group-balanced": (x, True),
        "V-VI expert": (np.hstack([x, x * darkest[:, None]]), False),
        "V-VI expert, balanced": (np.hstack([x, x * darkest[:, None]]), True),
    }
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=0)
    folds_ = list(splitter.split(x, y * 10 + groups + 1, dataset.cluster))
    results: dict[str, Any] = {}
    print(f"\n== learnability: {folds}-fold patient-grouped CV, logistic regression (C=0.01) on the frozen features")
    print("cases per group:", {n: int(np.sum(groups == i)) for i, n in enumerate(dataset.group_names)})
    for name, (design, balanced) in variants.items():
        predicted = np.empty_like(y)
        for train_rows, test_rows in folds_:
            scaler = StandardScaler().fit(design[train_rows])
            weights = group_balanced_weights(groups[train_rows]) if balanced else None
            model = LogisticRegression(C=0.01, max_iter=3000).fit(
                scaler.transform(design[train_rows]), y[train_rows], sample_weight=weights)
            predicted[test_rows] = model.predict(scaler.transform(design[test_rows]))
        results[name] = _group_accuracy(predicted, y, groups, dataset.group_names)
    predicted = np.full_like(y, -1)
    for train_rows, test_rows in folds_:
        train_rows, test_rows = train_rows[darkest[train_rows]], test_rows[darkest[test_rows]]
        scaler = StandardScaler().fit(x[train_rows])
        model = LogisticRegression(C=0.01, max_iter=3000).fit(scaler.transform(x[train_rows]), y[train_rows])
        predicted[test_rows] = model.predict(scaler.transform(x[test_rows]))
    results["V-VI cases only"] = {"V-VI": float(np.mean(predicted[darkest] == y[darkest]))}
    for name, accuracy in results.items():
        print(f"  {name:<24} " + "  ".join(f"{g} {a:.3f}" for g, a in accuracy.items()))
    return {"title": "learnability", "folds": folds, "accuracy": results}


def _group_accuracy(predicted: np.ndarray, y: np.ndarray, groups: np.ndarray, names: list[str]) -> dict[str, float]:
    accuracy = {"all": float(np.mean(predicted == y))}
    accuracy.update({n: float(np.mean(predicted[groups == i] == y[groups == i])) for i, n in enumerate(names)})
    return accuracy


def _cohort_tag(eval_weights: tuple[float, ...] | None) -> str:
    """Suffix of the work folder's synthetic cohort, by its evaluation tone mix."""
    return "" if eval_weights is None else "-eval" + "_".join(f"{w:g}" for w in eval_weights)


def _stored_draw(out: Path, title: str) -> dict[str, Any]:
    """A draw's result read back from its router folder (``--summarise-only``)."""
    return _result(title, json.loads((run_folder(out) / "evaluation.json").read_text(encoding="utf-8")), None)


def _fresh(path: Path) -> Path:
    """``path``, its run's router folder (:func:`run_folder`) removed first; never another run's."""
    import shutil

    shutil.rmtree(run_folder(path), ignore_errors=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_work = Path(os.environ.get("TMPDIR", "/tmp")) / "fairderm-router-acceptance"
    parser.add_argument("--work", type=Path, default=default_work,
                        help="Work folder (cohorts, tone, feature cache, router folders); reused when present.")
    parser.add_argument("--n", type=int, default=1500, help="Synthetic cohort size.")
    parser.add_argument("--n-boot", type=int, default=2000, help="Bootstrap replicates of the evaluation.")
    parser.add_argument("--split-seeds", default="", help="Comma-separated seeds of re-drawn synthetic splits.")
    parser.add_argument("--constraint", default="loss", choices=["loss", "eo", "dro"],
                        help="moe_parity's objective (fairderm router train --constraint).")
    parser.add_argument("--eval-tone-weights", default="1,1,1,1,1,1",
                        help="Tone mix of the validation and test splits (fairderm cohort synth "
                             "--eval-tone-weights); 'train' draws them with the training mix.")
    parser.add_argument("--train-subsamples", type=int, default=0,
                        help="Also train the router on this many draws of --train-size training cases, each "
                             "evaluated on the full validation and test splits (use with a large --n).")
    parser.add_argument("--train-size", type=int, default=900,
                        help="Training cases per draw (900: the training split of a 1500-case cohort).")
    parser.add_argument("--learnability", action="store_true",
                        help="Also cross-validate linear models on the synthetic features: how much of the gap "
                             "reweighting or a dark-skin expert can close at all.")
    parser.add_argument("--views", type=int, default=7,
                        help="fairderm router train --views: most extra views per case of an under-represented "
                             "group for the constrained router (0: none, the ablation).")
    parser.add_argument("--experts", default="frozen", choices=["frozen", "lora"],
                        help="fairderm router train --experts: bottleneck experts on frozen features, or LoRA "
                             "adapters on the backbone's last block (router folders get a -lora suffix).")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="Retrain moe_parity at epsilon 0, 0.05 and 0.1 for the frontier (default: with frozen "
                             "experts only; each LoRA point retrains the adapters).")
    parser.add_argument("--draws-only", action="store_true",
                        help="With --train-subsamples: skip the router trained on the whole cohort.")
    parser.add_argument("--draw-seeds", default="",
                        help="With --train-subsamples: train only these draws (comma-separated), e.g. to run the "
                             "draws in parallel processes; then --summarise-only pools them.")
    parser.add_argument("--summarise-only", action="store_true",
                        help="With --train-subsamples: train nothing; pool the draws' router folders in --work.")
    parser.add_argument("--pad", action="store_true", help="Also run the PAD subset (both tasks).")
    parser.add_argument("--no-synthetic", action="store_true", help="Skip the synthetic run.")
    parser.add_argument("--json", type=Path, help="Write every result to this JSON file.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    RUN_OPTIONS.update(cache_dir=args.work / "cache", views=args.views, experts=args.experts,
                       sweep=args.experts == "frozen" if args.sweep is None else args.sweep,
                       draw_seeds=[int(v) for v in args.draw_seeds.split(",") if v.strip()],
                       summarise_only=args.summarise_only)
    seeds = [int(s) for s in args.split_seeds.split(",") if s.strip()]
    results: list[dict[str, Any]] = []
    if not args.no_synthetic:
        eval_weights = None if args.eval_tone_weights == "train" else tuple(
            float(w) for w in args.eval_tone_weights.split(","))
        results += synthetic(args.work, args.n, args.n_boot, seeds, args.constraint, eval_weights,
                             args.train_subsamples, args.train_size, args.draws_only)
        if args.learnability:
            results.append(learnability(args.work, eval_weights))
    if args.pad:
        results += pad(args.work, args.n_boot)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
