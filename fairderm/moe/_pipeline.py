"""``fairderm router train``: features -> router and baselines -> evaluation -> router folder.

Every method sees the same backbone and the same patient-grouped
train/validation/test split; the validation split drives early stopping (all
torch methods), the multipliers (``moe_parity`` with ``constraint_data="val"``)
and ThresholdOptimizer's fit; the test split is touched only by the final
evaluation. The routers' experts are bottleneck layers on the frozen pooled
features (``experts="frozen"``) or LoRA adapters on the backbone's last
layers (``experts="lora"``, :mod:`fairderm.moe._lora`).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
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
)
from fairderm._threads import one_thread
from fairderm.cohort import Cohort, load_cohort
from fairderm.errors import InputError
from fairderm.inference import BACKBONE_NAME, DIHEDRAL_VIEWS
from fairderm.moe._data import RouterDataset, balanced_view_counts, prepare_dataset
from fairderm.moe._evaluate import evaluate_methods
from fairderm.moe._frontier import frontier_figure_html
from fairderm.moe._lora import (
    EXPERT_KINDS,
    LoraBackbone,
    LoraExpertMixture,
    check_lora_options,
    lora_backbone,
    require_peft,
)
from fairderm.moe._methods import METHODS, TORCH_METHODS, MethodInputs, TrainedMethods, train_methods
from fairderm.moe._methods import frontier as build_frontier
from fairderm.moe._report import RouterRun, constraint_report, mitigation_report, verdict
from fairderm.moe._store import ROUTER_CONFIG, ROUTER_FORMAT, save_router_model, stored_architecture
from fairderm.moe._train import SplitArrays, TrainConfig

DEFAULT_BACKBONE = BACKBONE_NAME
CONSTRAINTS: tuple[str, ...] = ("loss", "eo", "dro")
DEFAULT_EXPERTS = {"frozen": 8, "lora": 4}
# LoRA experts run the backbone's tail per case and epoch: fewer, smaller-batch epochs on CPU
LORA_TRAINING: dict[str, Any] = {"max_epochs": 20, "patience": 5, "batch_size": 256, "dual_every": 4}

StageCallback = Callable[[str], None]
FeatureProgress = Callable[[int, int], None]


def train_router(
    cohort: Cohort | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tone: str | os.PathLike[str] | None = None,
    backbone: str = DEFAULT_BACKBONE,
    experts: str = "frozen",
    constraint: str = "loss",
    epsilon: float = 0.02,
    group_column: str | None = None,
    groups: list[str] | None = None,
    label: str = "label",
    positive_classes: list[str] | None = None,
    n_experts: int | None = None,
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
        ``efficientnet-lite0`` (bundled), or a local transformers vision
        model folder (LoRA experts only; never downloaded).
    experts
        ``frozen``: bottleneck experts on cached frozen features; ``lora``:
        K peft LoRA adapters on the backbone's last layers (needs peft).
    constraint
        ``loss`` (group error parity), ``eo`` (equalized odds) or ``dro``
        (group DRO instead of constraints).
    epsilon
        Constraint slack, in rate units (0.02 = 2 points).
    group_column, groups
        Manifest column with the groups (default: estimated tone group);
        the groups to constrain (default: all).
    label, positive_classes
        Label column; positive classes for a binary task.
    n_experts, top_k, tone_input
        Router architecture (K: default 8 bottleneck or 4 LoRA experts, at
        least 2 for LoRA).
    views
        Most turned or mirrored views added per training case of an
        under-represented group when training ``moe_parity`` and the sweep
        (:func:`~fairderm.moe._data.balanced_view_counts`; 0: none). Their
        features come from the cohort's images (cached like the plain ones).
    sweep, seed
        Epsilons of the accuracy-versus-gap frontier; seed of the split
        (when generated), training and bootstrap.
    n_boot, min_group_size, ci
        Bootstrap replicates, small-group rule and interval method of the
        evaluation.
    cache_dir, features
        Feature cache root (default ``$FAIRDERM_CACHE`` or ``~/.cache/fairderm``);
        precomputed ``(n, d)`` features in manifest order (skip extraction).
    train_config
        Overrides of :class:`~fairderm.moe.TrainConfig` fields
        (``max_epochs``, ``lr``, ``lora_rank``, ``image_size``, ...).
    stage, feature_progress
        Callbacks: a stage name as work starts; ``(done, total)`` during
        feature extraction.
    """
    started = time.perf_counter()
    say = stage or (lambda _name: None)
    n_experts = n_experts if n_experts is not None else DEFAULT_EXPERTS.get(experts, 8)
    _check_options(constraint, epsilon, sweep, n_experts, top_k, n_boot, views, experts, backbone)
    config, head_config = _training_config(experts, train_config, n_experts=n_experts, top_k=top_k,
                                           tone_input=tone_input, seed=seed, epsilon=epsilon, constraint=constraint)
    cohort, tone_frame, lora = _load_inputs(cohort, tone, experts, backbone, config, say)
    features, backbone_identity = _pooled_features(cohort, lora, features, cache_dir, say, feature_progress)

    with one_thread():
        dataset = prepare_dataset(
            cohort, tone_frame, features, label_column=label, positive_classes=positive_classes,
            group_column=group_column, group_values=groups, seed=seed, tone_source=str(tone),
        )
    # outside one_thread: the backbone computing the views wants every core
    inputs, views_record = _method_inputs(cohort, dataset, lora, config, views, cache_dir=cache_dir, say=say,
                                          progress=feature_progress)
    with one_thread(), warnings.catch_warnings():
        # scikit-learn's StratifiedGroupKFold warns when a stratum has fewer members than folds; the split's
        # group counts are in evaluation.json
        warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
        trained = train_methods(inputs, config, constraint=constraint, epsilon=epsilon, seed=seed, say=say,
                                head_config=head_config)
        say("evaluating")
        evaluation = evaluate_methods(dataset, {name: trained.probs_test[name] for name in METHODS}, n_boot=n_boot,
                                      seed=seed, ci=ci, min_group_size=min_group_size)
        frontier = build_frontier(inputs, trained, evaluation, config, epsilon=epsilon, sweep=sweep, n_boot=n_boot,
                                  seed=seed, ci=ci, min_group_size=min_group_size)
    _complete_evaluation(evaluation, dataset, inputs, trained, frontier, views_record, epsilon)
    inputs_record = {
        "cohort": str(cohort.root), "manifest_sha256": cohort.manifest_sha256(),
        "tone": None if tone is None else str(tone), "tone_sha256": None if tone is None else sha256_file(tone),
    }
    router_config = _router_config(dataset, trained, lora, config, head_config, experts=experts, constraint=constraint,
                                   epsilon=epsilon, tone_input=tone_input, backbone_identity=backbone_identity,
                                   views_record=views_record, inputs_record=inputs_record, seed=seed)
    evaluation = json_safe({**evaluation, "inputs": inputs_record})
    say("writing")
    _write_router_folder(Path(out), cohort, dataset, trained, evaluation, frontier, router_config)
    return RouterRun(out=Path(out), evaluation=evaluation, constraints=evaluation["constraints"]["records"],
                     frontier=frontier, seconds=round(time.perf_counter() - started, 1), notes=trained.notes)


def _load_inputs(
    cohort: Cohort | str | os.PathLike[str], tone: str | os.PathLike[str] | None, experts: str, backbone: str,
    config: TrainConfig, say: StageCallback,
) -> tuple[Cohort, pd.DataFrame | None, LoraBackbone | None]:
    """The cohort, its tone table (or None) and, for LoRA experts, the backbone cut into trunk and tail."""
    if not isinstance(cohort, Cohort):
        cohort = load_cohort(cohort)
    tone_frame = None
    if tone is not None:
        from fairderm.tone import read_tone

        tone_frame = read_tone(tone, cohort)
    lora = None
    if experts == "lora":
        say("loading the backbone")
        lora = lora_backbone(backbone, tail_blocks=config.lora_tail_blocks, image_size=config.image_size)
    return cohort, tone_frame, lora


def _router_config(
    dataset: RouterDataset, trained: TrainedMethods, lora: LoraBackbone | None, config: TrainConfig,
    head_config: TrainConfig, *, experts: str, constraint: str, epsilon: float, tone_input: bool,
    backbone_identity: dict[str, Any], views_record: dict[str, Any], inputs_record: dict[str, Any], seed: int,
) -> dict[str, Any]:
    """The router folder's ``config.json``: what rebuilds each stored model and what it was trained on."""
    return {
        "format": ROUTER_FORMAT, "method": "moe_parity", "experts": experts, "objective": trained.parity_objective,
        "constraint": constraint, "epsilon": epsilon,
        "architecture": stored_architecture(trained.fits["moe_parity"].model, lora),
        "classes": dataset.classes, "task": dataset.task, "positive_classes": dataset.positive_classes,
        "label_column": dataset.label_column, "groups": {"source": dataset.group_source, "names": dataset.group_names},
        "tone_input": {
            "enabled": tone_input,
            "ita_cut_points": list(dataset.tone_cut_points),
            "mapping": "ITA ~ N(ita, (ita_high - ita_low) / 3.92) integrated over the cut points; "
            "abstain/error -> uniform",
        },
        "backbone": backbone_identity, "training": config.model_dump(), "views": views_record,
        # the linear heads' schedule where it differs (LoRA runs shorten the routers' only)
        **({"head_training": head_config.model_dump()} if head_config != config else {}),
        "models": {
            name: {"weights": f"models/{name}.safetensors",
                   "architecture": stored_architecture(trained.fits[name].model, lora)}
            for name in TORCH_METHODS
        },
        "inputs": inputs_record, "seed": seed, "environment": environment_info(),
    }


def _training_config(
    experts: str, overrides: dict[str, Any] | None, *, n_experts: int, top_k: int, tone_input: bool, seed: int,
    epsilon: float, constraint: str,
) -> tuple[TrainConfig, TrainConfig]:
    """The routers' and the linear heads' hyper-parameters: LoRA's CPU defaults (routers only) under the
    caller's overrides under the arguments.

    The linear heads (``erm``, ``reweight``) train on pooled features with every expert kind, so a LoRA run's
    ERM is the frozen run's ERM and both routers start from it. Called after :func:`_check_options`; checks
    the LoRA settings (and that peft imports) before any work.
    """
    overrides = dict(overrides or {})
    rank = overrides.get("lora_rank", 8)
    if rank < 1 or experts == "lora":
        check_lora_options(n_experts if experts == "lora" else 2, rank)
    if experts == "lora":
        require_peft()  # before any work: a missing extra fails at once
    settings = {
        **overrides, "n_experts": n_experts, "top_k": top_k, "tone_input": tone_input, "seed": seed,
        "epsilon": epsilon, "constraint": "eo" if constraint == "eo" else "loss",
    }
    base = LORA_TRAINING if experts == "lora" else {}
    return TrainConfig(**{**base, **settings}), TrainConfig(**settings)


def _check_options(
    constraint: str, epsilon: float, sweep: list[float] | None, experts: int, top_k: int, n_boot: int, views: int,
    expert_kind: str, backbone: str,
) -> None:
    if expert_kind not in EXPERT_KINDS:
        raise InputError(f"experts must be one of {list(EXPERT_KINDS)}, got {expert_kind!r}", column="experts")
    if expert_kind == "frozen" and backbone != DEFAULT_BACKBONE:
        raise InputError(f"backbone {backbone!r} is adapted by LoRA experts only: pass experts='lora'",
                         column="backbone")
    if constraint not in CONSTRAINTS:
        raise InputError(f"constraint must be one of {list(CONSTRAINTS)}, got {constraint!r}", column="constraint")
    if not np.isfinite(epsilon) or epsilon < 0:
        raise InputError(f"epsilon must be a number >= 0, got {epsilon}", column="epsilon")
    for value in sweep or []:
        if not np.isfinite(value) or value < 0:
            raise InputError(f"sweep values must be numbers >= 0, got {value}", column="sweep")
    if experts < (2 if expert_kind == "lora" else 1):
        raise InputError(f"{expert_kind} experts need n_experts >= {2 if expert_kind == 'lora' else 1}, got {experts}",
                         column="n_experts")
    if not 1 <= top_k <= experts:
        raise InputError(f"top_k must be between 1 and the number of experts ({experts}), got {top_k}",
                         column="top_k")
    if n_boot < 1:
        raise InputError(f"n_boot must be at least 1, got {n_boot}", column="n_boot")
    if not 0 <= views <= len(DIHEDRAL_VIEWS):
        raise InputError(f"views must be between 0 and {len(DIHEDRAL_VIEWS)}, got {views}", column="views")


def _pooled_features(
    cohort: Cohort, lora: LoraBackbone | None, features: np.ndarray | None,
    cache_dir: str | os.PathLike[str] | None, say: StageCallback, progress: FeatureProgress | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The backbone's pooled features of every image (NaN rows: unreadable) and the backbone's identity."""
    from fairderm.inference import extract_features, feature_identity

    if lora is not None and lora.spec["kind"] == "transformers":
        if features is None:
            say("extracting backbone features")
            positions = list(range(len(cohort)))
            # unreadable images stay NaN and prepare_dataset leaves them out, as with cached features
            plain = _expert_inputs(cohort, positions, [0] * len(positions), lora, cache_dir, progress)[0][:, 0]
            readable = np.isfinite(plain).all(axis=1)
            pooled = lora.split_rows(torch.as_tensor(plain[readable]))[1].numpy()
            features = np.full((len(cohort), pooled.shape[1]), np.nan, dtype=np.float32)
            features[readable] = pooled
        identity = dict(lora.identity)
    elif features is None:
        say("extracting backbone features")
        feature_set = extract_features(cohort, cache_dir=cache_dir, progress=progress)
        features, identity = feature_set.features, dict(feature_set.backbone)
    else:
        identity = feature_identity()
    if features.shape[0] != len(cohort):
        raise InputError(f"features have {features.shape[0]} rows, the cohort {len(cohort)}", column="features")
    return np.asarray(features, dtype=np.float32), identity


def _expert_inputs(
    cohort: Cohort, positions: list[int], n_views: list[int], lora: LoraBackbone,
    cache_dir: str | os.PathLike[str] | None, progress: FeatureProgress | None,
) -> tuple[np.ndarray, dict[str, str]]:
    """The LoRA mixture's rows (:meth:`LoraBackbone.expert_rows`) of each image at manifest ``positions``
    (index 0) and of its first views.

    Returns float32 ``(len(positions), 1 + max(n_views), d)``, NaN beyond an
    image's count and for unreadable images, and ``image_id -> reason``. The
    rows of the bundled backbone are cached like its features (a second run
    on the same images reads them); a transformers tail's input is the
    pixels, cheaper to decode again than to store.
    """
    from fairderm.inference import extract_view_features

    return extract_view_features(
        cohort, positions, n_views, cache_dir=cache_dir, progress=progress, embedder=lora,
        identity=lora.cache_identity, with_plain=True, use_cache=lora.spec["kind"] == "efficientnet",
    )


def _method_inputs(
    cohort: Cohort, dataset: RouterDataset, lora: LoraBackbone | None, config: TrainConfig, max_views: int, *,
    cache_dir: str | os.PathLike[str] | None, say: StageCallback, progress: FeatureProgress | None,
) -> tuple[MethodInputs, dict[str, Any]]:
    """The methods' arrays: pooled features per split, the routers' inputs, the views of small groups."""
    features = {s: _split_arrays(dataset, s, dataset.features) for s in ("train", "val", "test")}
    train_rows = np.flatnonzero(dataset.subset("train"))
    per_group = balanced_view_counts(dataset.groups[train_rows], len(dataset.group_names), max_views)
    counts = np.where(dataset.groups[train_rows] >= 0, per_group[np.maximum(dataset.groups[train_rows], 0)], 0)
    record: dict[str, Any] = {
        "max_views": max_views, "per_case": dict(zip(dataset.group_names, per_group.tolist(), strict=True)),
        "views": list(DIHEDRAL_VIEWS[: int(per_group.max(initial=0))]), "methods": ["moe_parity"],
        "rows_added": 0, "failed": {},
    }
    if lora is None:
        viewed = _feature_views(cohort, dataset, train_rows, counts, record, cache_dir, say, progress)
        train_views = features["train"] if viewed is None else _concat(features["train"], viewed)
        experts = {**features, "train_views": train_views}
        return MethodInputs(dataset, features, experts), record

    say("computing the LoRA experts' inputs")
    position = {image_id: k for k, image_id in enumerate(cohort.manifest["image_id"].astype(str))}
    all_counts = np.zeros(len(dataset.y), dtype=int)
    all_counts[train_rows] = counts
    values, failed = _expert_inputs(cohort, [position[i] for i in dataset.image_ids], all_counts.tolist(), lora,
                                    cache_dir, progress)
    if failed:
        first = next(iter(failed.items()))
        raise InputError(f"{len(failed)} images could be read for features but not for the LoRA experts "
                         f"(first: {first[0]}: {first[1]})", source=str(cohort.root))
    plain = values[:, 0]
    experts = {s: _split_arrays(dataset, s, plain) for s in ("train", "val", "test")}
    case, view = np.nonzero(np.isfinite(values[:, 1:]).all(axis=2))  # (case, view): NaN beyond a case's count
    record["rows_added"] = len(case)
    viewed = SplitArrays.from_numpy(values[case, view + 1], dataset.tone[case], dataset.y[case], dataset.groups[case])
    experts["train_views"] = _concat(experts["train"], viewed)
    n_features = dataset.features.shape[1]

    def mixture() -> LoraExpertMixture:
        model = LoraExpertMixture(
            lora.tail, n_features, len(dataset.classes), dataset.tone.shape[1], n_experts=config.n_experts,
            top_k=config.top_k, rank=config.lora_rank, alpha=config.lora_alpha, tone_input=config.tone_input,
            dropout=config.dropout, input_shape=lora.input_shape,
        )
        model.set_standardisation(features["train"].features.mean(0), features["train"].features.std(0))
        return model

    return MethodInputs(dataset, features, experts, mixture), record


def _feature_views(
    cohort: Cohort, dataset: RouterDataset, rows: np.ndarray, counts: np.ndarray, record: dict[str, Any],
    cache_dir: str | os.PathLike[str] | None, say: StageCallback, progress: FeatureProgress | None,
) -> SplitArrays | None:
    """Pooled features of the turned and mirrored views that the constrained router adds to its training split.

    With ~90 dark-skin training cases the router fits them within a few
    epochs, and the training surrogate its multipliers scale vanishes while
    the held-out error does not (docs/router.md). Each under-represented
    group's cases get :func:`balanced_view_counts` extra views: the same
    label, tone and group, different backbone features. Views of images
    that cannot be read are left out and counted.
    """
    wanted = counts > 0
    if not wanted.any():
        return None
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
    return SplitArrays.from_numpy(features[case, view], dataset.tone[source], dataset.y[source], dataset.groups[source])


def _split_arrays(dataset: RouterDataset, split: str, values: np.ndarray) -> SplitArrays:
    rows = dataset.subset(split)
    return SplitArrays.from_numpy(values[rows], dataset.tone[rows], dataset.y[rows], dataset.groups[rows])


def _concat(first: SplitArrays, second: SplitArrays) -> SplitArrays:
    return SplitArrays(
        *(torch.cat([getattr(first, name), getattr(second, name)]) for name in ("features", "tone", "y", "groups"))
    )


def _complete_evaluation(
    evaluation: dict[str, Any], dataset: RouterDataset, inputs: MethodInputs, trained: TrainedMethods,
    frontier: pd.DataFrame, views_record: dict[str, Any], epsilon: float,
) -> None:
    """Add the verdict, constraints, mitigation report, dataset, training and notes to ``evaluation``."""
    if views_record["failed"]:
        first = next(iter(views_record["failed"].items()))
        trained.notes.append(f"views: {len(views_record['failed'])} images could not be read, so moe_parity trained "
                             f"without their views (first: {first[0]}: {first[1]})")
    if dataset.split_note:
        trained.notes.append(f"split: {dataset.split_note}")
    for name, record in trained.baselines.items():
        if record["failed"]:
            trained.notes.append(f"{name}: fell back to the ERM head's score for {record['failed']} of "
                                 f"{record['fits']} classes ({', '.join(record['fallback_classes'])})")
    records = constraint_report(trained.fits["moe_parity"], trained.constraints, trained.parity_objective, epsilon,
                                inputs.experts["val"], inputs.experts["test"])
    evaluation["verdict"] = verdict(evaluation)
    evaluation["mitigation"] = mitigation_report(evaluation)
    evaluation["baselines"] = trained.baselines
    evaluation["constraints"] = {"split": "val", "objective": trained.parity_objective, "records": records}
    evaluation["frontier"] = frontier.to_dict(orient="records")
    evaluation["dataset"] = {
        "n": len(dataset.y), "classes": dataset.classes, "task": dataset.task,
        "positive_classes": dataset.positive_classes, "label_column": dataset.label_column,
        "group_source": dataset.group_source, "groups": dataset.group_names, "group_counts": dataset.group_counts(),
        "split_source": dataset.split_source, "split_note": dataset.split_note, "excluded": dataset.excluded,
    }
    evaluation["training"] = {
        name: {"best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
               "final_val": next(h for h in r.history if h["epoch"] == r.best_epoch)}
        for name, r in trained.fits.items()
    }
    evaluation["views"] = views_record
    evaluation["calibration"] = trained.calibration
    evaluation["notes"] = trained.notes


def _write_router_folder(
    out: Path, cohort: Cohort, dataset: RouterDataset, trained: TrainedMethods, evaluation: dict[str, Any],
    frontier: pd.DataFrame, router_config: dict[str, Any],
) -> None:
    with atomic_output_dir(out) as staging:
        save_router_model(trained.fits["moe_parity"].model, staging, None)
        for name in TORCH_METHODS:
            save_router_model(trained.fits[name].model, staging, name)
        atomic_write_json(staging / ROUTER_CONFIG, router_config)
        atomic_write_json(staging / "evaluation.json", evaluation)
        atomic_write_json(staging / "constraints.json", evaluation["constraints"])
        atomic_write_text(staging / "training_log.jsonl", "".join(json.dumps(r) + "\n" for r in trained.log))
        atomic_write_text(staging / "frontier.csv", frontier.to_csv(index=False))
        atomic_write_text(
            staging / "frontier.html",
            frontier_figure_html(frontier, title=f"Accuracy vs tone-group gap ({cohort.spec.name})"),
        )
        atomic_write_parquet(
            staging / "predictions.parquet",
            _predictions_frame(dataset, trained.probs_val, trained.probs_test),
            metadata_json={"router": ROUTER_FORMAT, "inputs": evaluation["inputs"]},
        )


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
