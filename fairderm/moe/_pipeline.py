"""``fairderm router train``: features -> router and baselines -> evaluation -> router folder.

Every method sees the same backbone features and the same patient-grouped
train/validation/test split; the validation split drives early stopping (all
torch methods), the multipliers (``moe_parity`` with ``constraint_data="val"``)
and ThresholdOptimizer's fit; the test split is touched only by the final
evaluation.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairderm._io import (
    atomic_output_dir,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    environment_info,
    json_safe,
    sha256_file,
    to_json_text,
)
from fairderm._threads import one_thread
from fairderm.cohort import Cohort, load_cohort
from fairderm.errors import InputError
from fairderm.inference._backbone import DIHEDRAL_VIEWS
from fairderm.inference._temperature import fit_group_temperatures, fit_temperature
from fairderm.moe._baselines import exponentiated_gradient, threshold_optimizer
from fairderm.moe._constraints import ConstraintSet
from fairderm.moe._data import RouterDataset, balanced_view_counts, prepare_dataset
from fairderm.moe._evaluate import evaluate_methods, point_accuracy
from fairderm.moe._frontier import FRONTIER_COLUMNS, frontier_figure_html, frontier_row
from fairderm.moe._store import (
    ROUTER_CONFIG,
    ROUTER_FORMAT,
    ROUTER_WEIGHTS,
    architecture_of,
    save_weights,
)
from fairderm.moe._train import FitResult, SplitArrays, TrainConfig, fit, predict_logits
from fairderm.tone._uncertainty import FITZPATRICK_TYPE_NAMES

DEFAULT_BACKBONE = "efficientnet-lite0"
CONSTRAINTS: tuple[str, ...] = ("loss", "eo", "dro")
METHODS: tuple[str, ...] = ("erm", "moe", "moe_parity", "expgrad", "threshold", "reweight")
TORCH_METHODS: tuple[str, ...] = ("erm", "moe", "reweight")

StageCallback = Callable[[str], None]
FeatureProgress = Callable[[int, int], None]


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

        def fmt(t: dict[str, Any]) -> str:
            if t["estimate"] is None:
                return "n/a"
            low = "?" if t["ci_low"] is None else f"{t['ci_low']:.3f}"
            high = "?" if t["ci_high"] is None else f"{t['ci_high']:.3f}"
            return f"{t['estimate']:.3f} [{low}, {high}]"

        config = self.evaluation["config"]
        lines = [
            f"Router run in {self.out} ({self.seconds:.0f} s); held-out split: {config['n_cases']} cases, "
            f"groups from {config['group_attribute']}, {config['ci']} intervals, B={config['n_boot']}",
            f"{'method':<11} {'accuracy':<24} {'gap (best - worst)':<24} {'gap - ERM gap (paired)':<24}",
        ]
        for method, record in self.evaluation["methods"].items():
            lines.append(
                f"{method:<11} {fmt(record['accuracy']):<24} {fmt(record['gap']):<24} "
                f"{fmt(record['gap_diff_vs_erm']):<24}"
            )
        lines.append(self.evaluation.get("verdict", ""))
        return "\n".join(lines)


def _check_options(
    constraint: str, epsilon: float, sweep: list[float] | None, experts: int, top_k: int, n_boot: int, views: int
) -> None:
    if constraint not in CONSTRAINTS:
        raise InputError(f"constraint must be one of {list(CONSTRAINTS)}, got {constraint!r}", column="--constraint")
    if not np.isfinite(epsilon) or epsilon < 0:
        raise InputError(f"epsilon must be a number >= 0, got {epsilon}", column="--epsilon")
    for value in sweep or []:
        if not np.isfinite(value) or value < 0:
            raise InputError(f"sweep values must be numbers >= 0, got {value}", column="--sweep")
    if experts < 1:
        raise InputError(f"need at least one expert, got {experts}", column="--experts")
    if not 1 <= top_k <= experts:
        raise InputError(f"top-k must be between 1 and the number of experts ({experts}), got {top_k}",
                         column="--top-k")
    if n_boot < 1:
        raise InputError(f"n-boot must be at least 1, got {n_boot}", column="--n-boot")
    if not 0 <= views <= len(DIHEDRAL_VIEWS):
        raise InputError(f"views must be between 0 and {len(DIHEDRAL_VIEWS)}, got {views}", column="--views")


def _split_arrays(dataset: RouterDataset, split: str) -> SplitArrays:
    rows = dataset.subset(split)
    return SplitArrays.from_numpy(dataset.features[rows], dataset.tone[rows], dataset.y[rows], dataset.groups[rows])


def _calibrate(model: torch.nn.Module, val: SplitArrays) -> dict[str, Any]:
    """Fit the model's temperature on the validation split and set it (models without one: untouched).

    Selection and constraints have already used the uncalibrated logits;
    the temperature changes no arg-max, only how sure the probabilities are.
    """
    if not isinstance(getattr(model, "temperature", None), torch.Tensor):
        return {"method": "none", "temperature": 1.0}
    model.temperature.fill_(1.0)
    tone_aware = isinstance(getattr(model, "tone_log_temperature", None), torch.Tensor)
    if tone_aware:
        model.tone_log_temperature.zero_()
    logits = predict_logits(model, val.features, val.tone).double().numpy()
    fitted = fit_temperature(logits, val.y.numpy())
    model.temperature.fill_(fitted.temperature)
    record: dict[str, Any] = fitted.to_dict()
    if tone_aware:
        # the router sees tone, so it can also be calibrated within tone groups
        # (Pleiss et al. 2017): a factor per Fitzpatrick type, shrunk to 1
        per_type = fit_group_temperatures(logits / fitted.temperature, val.y.numpy(), val.tone.double().numpy())
        model.tone_log_temperature.copy_(torch.as_tensor(per_type.log_adjustment, dtype=torch.float32))
        record["within_tone"] = per_type.to_dict(list(FITZPATRICK_TYPE_NAMES))
    return record


def _probs(model: torch.nn.Module, arrays: SplitArrays) -> np.ndarray:
    return torch.softmax(predict_logits(model, arrays.features, arrays.tone), dim=-1).double().numpy()


def _constraint_report(
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


def _verdict(evaluation: dict[str, Any]) -> str:
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


def train_router(
    cohort: Cohort | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tone: str | os.PathLike[str] | None = None,
    backbone: str = DEFAULT_BACKBONE,
    constraint: str = "loss",
    epsilon: float = 0.02,
    group_column: str | None = None,
    groups: list[str] | None = None,
    label: str = "label",
    positive_classes: list[str] | None = None,
    experts: int = 8,
    top_k: int = 2,
    tone_input: bool = True,
    views: int = 7,
    sweep: list[float] | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    min_group_size: int = 20,
    ci: str = "percentile",
    cache_dir: str | os.PathLike[str] | None = None,
    features: np.ndarray | None = None,
    train_config: dict[str, Any] | None = None,
    stage: StageCallback | None = None,
    feature_progress: FeatureProgress | None = None,
) -> RouterRun:
    """Train the parity-constrained router and every baseline, evaluate, write ROUTER_DIR.

    Parameters
    ----------
    cohort
        Cohort (or its folder).
    out
        New router folder.
    tone
        Tone table of the cohort (``fairderm tone estimate``): router input and
        default groups.
    backbone
        ``efficientnet-lite0`` (bundled, frozen, cached features), or a local
        transformers vision model for LoRA experts (GPU and peft only).
    constraint
        ``loss`` (group error parity), ``eo`` (equalized odds) or ``dro``
        (group DRO instead of constraints).
    epsilon
        Constraint slack, in rate units (0.02 = 2 points).
    group_column
        Manifest column with the groups (default: estimated tone group).
    groups
        Restrict the constraint groups to these values.
    label, positive_classes
        Label column; positive classes for a binary task.
    experts, top_k, tone_input
        Router architecture.
    views
        Most turned or mirrored views added per training case of an
        under-represented group when training ``moe_parity`` and the sweep
        (:func:`~fairderm.moe._data.balanced_view_counts`; 0: none). Their
        features come from the cohort's images (cached like the plain ones).
    sweep
        Epsilons of the accuracy-versus-gap frontier.
    seed
        Seed of the split (when generated), training and bootstrap.
    n_boot, min_group_size, ci
        Bootstrap replicates, small-group rule and interval method of the
        evaluation.
    cache_dir
        Feature cache root (default ``$FAIRDERM_CACHE`` or ``~/.cache/fairderm``).
    features
        Precomputed ``(n, d)`` features in manifest order (skips extraction).
    train_config
        Overrides of :class:`~fairderm.moe._train.TrainConfig` fields
        (``max_epochs``, ``lr``, ...).
    stage, feature_progress
        Callbacks: a stage name as work starts; ``(done, total)`` during
        feature extraction.

    Returns
    -------
    RouterRun
    """
    started = time.perf_counter()
    say = stage or (lambda _name: None)
    _check_options(constraint, epsilon, sweep, experts, top_k, n_boot, views)
    if not isinstance(cohort, Cohort):
        cohort = load_cohort(cohort)
    tone_frame = None
    if tone is not None:
        from fairderm.tone import read_tone

        tone_frame = read_tone(tone, cohort)
    if backbone != DEFAULT_BACKBONE:
        from fairderm.moe._lora import require_lora_support

        require_lora_support()
        raise InputError(
            f"backbone {backbone!r}: LoRA-expert training runs only through fairderm.moe.LoraExpertMixture "
            "in Python for now; the command trains on efficientnet-lite0 features",
            column="--backbone",
        )

    backbone_identity: dict[str, Any]
    if features is None:
        from fairderm.inference import extract_features

        say("extracting backbone features")
        feature_set = extract_features(cohort, cache_dir=cache_dir, progress=feature_progress)
        features, backbone_identity = feature_set.features, dict(feature_set.backbone)
    else:
        from fairderm.inference._backbone import feature_identity

        backbone_identity = feature_identity()
    if features.shape[0] != len(cohort):
        raise InputError(f"features have {features.shape[0]} rows, the cohort {len(cohort)}", column="features")

    with one_thread():
        dataset = prepare_dataset(
            cohort, tone_frame, features, label_column=label, positive_classes=positive_classes,
            group_column=group_column, group_values=groups, seed=seed, tone_source=str(tone),
        )
    # outside one_thread: the backbone computing the views wants every core
    viewed_train, views_record = _training_views(
        cohort, dataset, views, cache_dir=cache_dir, say=say, progress=feature_progress
    )

    with one_thread():
        overrides = {"n_experts": experts, "top_k": top_k, "tone_input": tone_input, "seed": seed, "epsilon": epsilon}
        overrides["constraint"] = "eo" if constraint == "eo" else "loss"
        config = TrainConfig(**{**(train_config or {}), **overrides})
        n_classes = len(dataset.classes)
        constraint_set = _constraint_set(dataset, config.constraint)
        train, val, test = (_split_arrays(dataset, s) for s in ("train", "val", "test"))
        log: list[dict[str, Any]] = []

        fits: dict[str, FitResult] = {}

        def run(architecture: str, objective: str, method: str, cfg: TrainConfig,
                data: SplitArrays = train) -> FitResult:
            say(f"training {method}")
            warm = fits["erm"].model if architecture == "moe" and cfg.warm_start else None
            return fit(architecture, objective, data, val, n_classes=n_classes, constraints=constraint_set,
                       config=cfg, log=log.append, method=method, warm_start=warm)

        # the fairness-aware router (and its sweep) also trains on the views
        parity_train = train if viewed_train is None else _concat(train, viewed_train)

        fits["erm"] = run("linear", "erm", "erm", config)
        fits["reweight"] = run("linear", "reweight", "reweight", config)
        fits["moe"] = run("moe", "erm", "moe", config)
        parity_objective = "dro" if constraint == "dro" else "lagrangian"
        fits["moe_parity"] = run("moe", parity_objective, "moe_parity", config, parity_train)

        calibration = {name: _calibrate(result.model, val) for name, result in fits.items()}
        probs_val = {name: _probs(result.model, val) for name, result in fits.items()}
        probs_test = {name: _probs(result.model, test) for name, result in fits.items()}
        group_labels = dataset.group_labels()
        train_rows, val_rows, test_rows = (dataset.subset(s) for s in ("train", "val", "test"))
        notes: list[str] = []
        if views_record["failed"]:
            first = next(iter(views_record["failed"].items()))
            notes.append(f"views: {len(views_record['failed'])} images could not be read, so moe_parity trained "
                         f"without their views (first: {first[0]}: {first[1]})")

        say("training expgrad")
        eval_rows = val_rows | test_rows
        expgrad = exponentiated_gradient(
            dataset.features[train_rows], dataset.y[train_rows], group_labels[train_rows],
            dataset.features[eval_rows], n_classes=n_classes, constraint=config.constraint, epsilon=epsilon,
            fallback=np.full((int(eval_rows.sum()), n_classes), 1.0 / n_classes), seed=seed,
        )
        position = np.flatnonzero(eval_rows)
        probs_val["expgrad"] = expgrad.probs[np.isin(position, np.flatnonzero(val_rows))]
        probs_test["expgrad"] = expgrad.probs[np.isin(position, np.flatnonzero(test_rows))]
        notes += [f"expgrad: {n}" for n in expgrad.notes]

        say("fitting threshold")
        threshold = threshold_optimizer(
            probs_val["erm"], dataset.y[val_rows], group_labels[val_rows],
            np.concatenate([probs_val["erm"], probs_test["erm"]]),
            np.concatenate([group_labels[val_rows], group_labels[test_rows]]),
            n_classes=n_classes, seed=seed,
        )
        probs_val["threshold"] = threshold.probs[: int(val_rows.sum())]
        probs_test["threshold"] = threshold.probs[int(val_rows.sum()):]
        notes += [f"threshold: {n}" for n in threshold.notes]

        say("evaluating")
        ordered = {name: probs_test[name] for name in METHODS}
        evaluation = evaluate_methods(dataset, ordered, n_boot=n_boot, seed=seed, ci=ci, min_group_size=min_group_size)
        constraints_report = _constraint_report(
            fits["moe_parity"], constraint_set, parity_objective, epsilon, val, test
        )

        frontier_rows = [
            frontier_row(name, epsilon if name in ("moe_parity", "expgrad") else None,
                         evaluation["methods"][name], point_accuracy(dataset, probs_val[name], "val"))
            for name in METHODS
            if not (name == "moe_parity" and parity_objective == "dro")
        ]
        for value in sorted(set(sweep or [])):
            if parity_objective == "lagrangian" and value == epsilon:
                continue
            swept = run("moe", "lagrangian", f"moe_parity@{value:g}", config.model_copy(update={"epsilon": value}),
                        parity_train)
            _calibrate(swept.model, val)
            sweep_probs = _probs(swept.model, test)
            record = evaluate_methods(
                dataset, {"erm": probs_test["erm"], "moe_parity": sweep_probs},
                n_boot=n_boot, seed=seed, ci=ci, min_group_size=min_group_size,
            )["methods"]["moe_parity"]
            val_point = point_accuracy(dataset, _probs(swept.model, val), "val")
            frontier_rows.append(frontier_row("moe_parity", value, record, val_point))
        frontier = pd.DataFrame(frontier_rows, columns=FRONTIER_COLUMNS).sort_values(
            ["method", "epsilon"], na_position="first", kind="stable"
        ).reset_index(drop=True)

        evaluation["verdict"] = _verdict(evaluation)
        evaluation["constraints"] = {"split": "val", "objective": parity_objective, "records": constraints_report}
        evaluation["frontier"] = frontier.to_dict(orient="records")
        evaluation["dataset"] = {
            "n": len(dataset.y),
            "classes": dataset.classes,
            "task": dataset.task,
            "positive_classes": dataset.positive_classes,
            "label_column": dataset.label_column,
            "group_source": dataset.group_source,
            "groups": dataset.group_names,
            "group_counts": dataset.group_counts(),
            "split_source": dataset.split_source,
            "excluded": dataset.excluded,
        }
        evaluation["training"] = {
            name: {
                "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
                "final_val": next(h for h in r.history if h["epoch"] == r.best_epoch),
            }
            for name, r in fits.items()
        }
        evaluation["views"] = views_record
        evaluation["calibration"] = calibration
        evaluation["notes"] = notes

    inputs = {
        "cohort": str(cohort.root),
        "manifest_sha256": cohort.manifest_sha256(),
        "tone": None if tone is None else str(tone),
        "tone_sha256": None if tone is None else sha256_file(tone),
    }
    router_config = {
        "format": ROUTER_FORMAT,
        "method": "moe_parity",
        "objective": parity_objective,
        "constraint": constraint,
        "epsilon": epsilon,
        "architecture": architecture_of(fits["moe_parity"].model),
        "classes": dataset.classes,
        "task": dataset.task,
        "positive_classes": dataset.positive_classes,
        "label_column": dataset.label_column,
        "groups": {"source": dataset.group_source, "names": dataset.group_names},
        "tone_input": {
            "enabled": tone_input,
            "ita_cut_points": list(dataset.tone_cut_points),
            "mapping": "ITA ~ N(ita, (ita_high - ita_low) / 3.92) integrated over the cut points; "
            "abstain/error -> uniform",
        },
        "backbone": backbone_identity,
        "training": config.model_dump(),
        "views": views_record,
        "models": {
            name: {"weights": f"models/{name}.safetensors", "architecture": architecture_of(fits[name].model)}
            for name in TORCH_METHODS
        },
        "inputs": inputs,
        "seed": seed,
        "environment": environment_info(),
    }
    evaluation["inputs"] = inputs
    evaluation = json_safe(evaluation)

    say("writing")
    with atomic_output_dir(out) as staging:
        save_weights(fits["moe_parity"].model, staging / ROUTER_WEIGHTS)
        for name in TORCH_METHODS:
            save_weights(fits[name].model, staging / "models" / f"{name}.safetensors")
        atomic_write_json(staging / ROUTER_CONFIG, router_config)
        atomic_write_json(staging / "evaluation.json", evaluation)
        atomic_write_json(staging / "constraints.json", evaluation["constraints"])
        atomic_write_text(staging / "training_log.jsonl", "".join(json.dumps(r) + "\n" for r in log))
        atomic_write_text(staging / "frontier.csv", frontier.to_csv(index=False))
        atomic_write_text(
            staging / "frontier.html",
            frontier_figure_html(frontier, title=f"Accuracy vs tone-group gap ({cohort.spec.name})"),
        )
        atomic_write_parquet(
            staging / "predictions.parquet",
            _predictions_frame(dataset, probs_val, probs_test),
            metadata_json={"router": ROUTER_FORMAT, "inputs": inputs},
        )
    return RouterRun(
        out=Path(out),
        evaluation=evaluation,
        constraints=constraints_report,
        frontier=frontier,
        seconds=round(time.perf_counter() - started, 1),
        notes=notes,
    )


def _training_views(
    cohort: Cohort,
    dataset: RouterDataset,
    max_views: int,
    *,
    cache_dir: str | os.PathLike[str] | None,
    say: StageCallback,
    progress: FeatureProgress | None,
) -> tuple[SplitArrays | None, dict[str, Any]]:
    """Features of the turned and mirrored views that the constrained router adds to its training split.

    With ~90 dark-skin training cases the router fits them within a few
    epochs, and the training surrogate its multipliers scale vanishes while
    the held-out error does not (docs/router.md). Each under-represented
    group's cases get :func:`balanced_view_counts` extra views: the same
    label, tone and group, different backbone features. Views of images
    that cannot be read are left out and counted.
    """
    rows = np.flatnonzero(dataset.subset("train"))
    per_group = balanced_view_counts(dataset.groups[rows], len(dataset.group_names), max_views)
    counts = np.where(dataset.groups[rows] >= 0, per_group[np.maximum(dataset.groups[rows], 0)], 0)
    record: dict[str, Any] = {
        "max_views": max_views,
        "per_case": dict(zip(dataset.group_names, per_group.tolist(), strict=True)),
        "views": list(DIHEDRAL_VIEWS[: int(per_group.max(initial=0))]),
        "methods": ["moe_parity"],
        "rows_added": 0,
        "failed": {},
    }
    wanted = counts > 0
    if not wanted.any():
        return None, record
    from fairderm.inference import extract_view_features

    say("extracting view features")
    position = {image_id: k for k, image_id in enumerate(cohort.manifest["image_id"].astype(str))}
    chosen = rows[wanted]
    features, failed = extract_view_features(
        cohort, [position[str(i)] for i in dataset.image_ids[chosen]], counts[wanted].tolist(),
        cache_dir=cache_dir, progress=progress,
    )
    usable = np.isfinite(features).all(axis=2)  # (case, view): NaN beyond a case's count or if it failed
    case, view = np.nonzero(usable)
    source = chosen[case]
    record["rows_added"] = len(case)
    record["failed"] = failed
    viewed = SplitArrays.from_numpy(
        features[case, view], dataset.tone[source], dataset.y[source], dataset.groups[source]
    )
    return viewed, record


def _concat(first: SplitArrays, second: SplitArrays) -> SplitArrays:
    return SplitArrays(
        *(torch.cat([getattr(first, name), getattr(second, name)]) for name in ("features", "tone", "y", "groups"))
    )


def _constraint_set(dataset: RouterDataset, family: str) -> ConstraintSet:
    if family == "loss":
        return ConstraintSet("loss", tuple(dataset.group_names))
    index = (1,) if dataset.task == "binary" else tuple(range(len(dataset.classes)))
    return ConstraintSet("eo", tuple(dataset.group_names), index, tuple(dataset.classes[i] for i in index))


def _predictions_frame(
    dataset: RouterDataset, probs_val: dict[str, np.ndarray], probs_test: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Long table: one row per method and validation/test case, with class probabilities."""
    frames = []
    group_labels = dataset.group_labels()
    for split, probs in (("val", probs_val), ("test", probs_test)):
        rows = dataset.subset(split)
        for method in METHODS:
            p = probs[method]
            frame = pd.DataFrame(
                {
                    "image_id": dataset.image_ids[rows],
                    "split": split,
                    "method": method,
                    "group": group_labels[rows],
                    "label": np.asarray(dataset.classes, dtype=object)[dataset.y[rows]],
                    "pred": np.asarray(dataset.classes, dtype=object)[p.argmax(axis=1)],
                }
            )
            for k, name in enumerate(dataset.classes):
                frame[f"prob_{name}"] = p[:, k]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
