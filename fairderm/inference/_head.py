"""Trainable heads on the frozen backbone's features, and the ``backbone`` backend.

A head is a linear layer (multinomial logistic regression) or a small MLP on
standardised 1280-d features. Training is on cached features, so it takes
seconds: a patient-grouped train/validation split (no patient on both sides),
class weights ``n / (k * n_c)`` so that rare diagnoses count as much as
common ones, early stopping on the weighted validation loss, then one
temperature fitted on the validation split (unweighted likelihood) so that
the probabilities are calibrated (class weights and early stopping on a
small split both leave them distorted); it changes no prediction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fairderm._io import atomic_output_dir, atomic_write_json, environment_info, sha256_file
from fairderm._threads import one_thread
from fairderm.cohort import Cohort, load_cohort, parse_filter
from fairderm.errors import InputError
from fairderm.inference._backbone import (
    BACKBONE_PREPROCESSING,
    Backbone,
    CachedEmbedder,
    CachedImage,
    FeatureSet,
    extract_features,
    resolve_feature_cache,
)
from fairderm.inference._efficientnet import INPUT_SIZE
from fairderm.inference._erm import ClassifierHead, HeadKind, fit_epochs, upgrade_head_state
from fairderm.inference._predictor import Predictor, PredictorOutput, reject_unknown_options
from fairderm.inference._temperature import fit_temperature

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"
# Version 2: the layers are ``hidden``/``head`` of :class:`ClassifierHead`, not one ``layers`` sequence.
HEAD_FORMAT = "fairderm.head/2"
HEAD_FORMATS = ("fairderm.head/1", HEAD_FORMAT)


@dataclass
class HeadTrainingResult:
    """A trained head: where it is, its config and its training log.

    Attributes
    ----------
    path
        The head folder (``head.safetensors`` + ``head.json``).
    config
        The contents of ``head.json``.
    """

    path: Path
    config: dict[str, Any] = field(repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    def to_frame(self) -> pd.DataFrame:
        """The per-epoch training log: ``epoch, train_loss, val_loss, val_accuracy``."""
        return pd.DataFrame(self.config["training"]["log"])

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), **self.config}

    def summary(self) -> str:
        t = self.config["training"]
        return (
            f"head {self.config['head']['kind']} -> {self.path}\n"
            f"classes: {', '.join(self.classes)} (label column '{self.config['label_column']}')\n"
            f"train {t['n_train']} / val {t['n_val']} images ({t['split_method']}); "
            f"best epoch {t['best_epoch']} of {t['epochs_run']}; "
            f"val loss {t['best_val_loss']:.4f}, val accuracy {t['val_accuracy']:.3f}, "
            f"val balanced accuracy {t['val_balanced_accuracy']:.3f}"
        )


def _select_rows(manifest: pd.DataFrame, train_filter: str | None) -> np.ndarray:
    if not train_filter:
        return np.ones(len(manifest), dtype=bool)
    try:
        kept = parse_filter(train_filter).mask(manifest)
    except InputError as exc:
        raise InputError(
            f"invalid filter expression {train_filter!r}: {exc.reason}", column="train_filter"
        ) from None
    if not kept.any():
        raise InputError(f"filter {train_filter!r} keeps no rows", column="train_filter")
    return kept


def _train_val_split(
    rows: pd.DataFrame, *, seed: int, val_fraction: float, filtered: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions (in ``rows``) of train and validation cases, and how they were chosen."""
    split = rows["split"] if "split" in rows.columns else None
    if split is not None and (split == "train").any() and (split == "val").any():
        return (
            np.flatnonzero((split == "train").to_numpy()),
            np.flatnonzero((split == "val").to_numpy()),
            "manifest split column (train/val)",
        )
    candidates = np.arange(len(rows))
    if split is not None and not filtered:
        # The test split is held out for evaluation unless the user's filter says otherwise.
        candidates = np.flatnonzero((split != "test").fillna(True).to_numpy())
    if "patient_id" in rows.columns:
        groups = rows["patient_id"].astype("string").fillna(rows["image_id"].astype("string"))
        group_kind = "patient_id"
    else:
        groups = rows["image_id"].astype("string")
        group_kind = "image_id (no patient_id column)"
    groups = groups.to_numpy()[candidates]
    unique = pd.unique(groups)
    if len(unique) < 2:
        raise InputError("need at least two patients to split train and validation sets")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(unique)
    n_val = min(len(unique) - 1, max(1, round(len(unique) * val_fraction)))
    val_groups = set(shuffled[:n_val].tolist())
    is_val = np.array([g in val_groups for g in groups])
    return (
        candidates[~is_val],
        candidates[is_val],
        f"grouped shuffle split by {group_kind}, val {val_fraction:.0%}",
    )


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    recalls = [float(np.mean(pred[y == c] == c)) for c in range(k) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


@dataclass
class _ClassWeightedLoss:
    """Class-weighted cross-entropy: the step loss, and the validation loss that selects the epoch."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    loss_fn: nn.CrossEntropyLoss
    total: float = 0.0

    def step_loss(self, model: nn.Module, index: torch.Tensor, epoch: int) -> torch.Tensor:
        return self.loss_fn(model(self.x_train[index]), self.y_train[index])

    def after_step(self, model: nn.Module, index: torch.Tensor, loss: torch.Tensor) -> None:
        self.total += float(loss.detach()) * len(index)

    def validate(self, model: nn.Module, epoch: int) -> tuple[float, dict[str, Any]]:
        val_logits = model(self.x_val)
        val_loss = float(self.loss_fn(val_logits, self.y_val))
        record = {
            "epoch": epoch,
            "train_loss": self.total / len(self.y_train),
            "val_loss": val_loss,
            "val_accuracy": float((val_logits.argmax(1) == self.y_val).float().mean()),
        }
        self.total = 0.0
        return val_loss, record


def _fit(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    n_classes: int,
    kind: HeadKind,
    seed: int,
    max_epochs: int,
    patience: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
) -> tuple[ClassifierHead, list[dict[str, float]], int, torch.Tensor]:
    counts = torch.bincount(y_train, minlength=n_classes).float()
    weights = len(y_train) / (n_classes * counts.clamp(min=1))

    def build() -> ClassifierHead:
        model = ClassifierHead(n_classes, kind)
        # ReLU6 features are sparse: many are ~0 on the training set. A floor on
        # the scale keeps such a feature from exploding when it fires at test time.
        std = x_train.std(0)
        model.set_standardisation(x_train.mean(0), std, floor=max(float(std.mean()) * 0.5, 1e-4))
        return model

    objective = _ClassWeightedLoss(x_train, y_train, x_val, y_val, nn.CrossEntropyLoss(weight=weights))
    fitted = fit_epochs(build, objective, len(y_train), seed=seed, lr=lr, weight_decay=weight_decay,
                        batch_size=batch_size, max_epochs=max_epochs, patience=patience, tolerance=1e-6)
    assert isinstance(fitted.model, ClassifierHead)
    return fitted.model, fitted.history, fitted.best_epoch, weights


def _training_rows(
    cohort: Cohort, label: str, train_filter: str | None, *, seed: int, val_fraction: float
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str, list[str], list[str]]:
    """The labelled rows, their train and validation positions, the split's method, the classes, and
    the classes seen only in validation (their rows left out)."""
    manifest = cohort.manifest
    if label not in manifest.columns:
        raise InputError(
            f"label column {label!r} not in the manifest",
            source=str(cohort.manifest_path),
            column=label,
        )
    selected = _select_rows(manifest, train_filter)
    rows = manifest[selected & manifest[label].notna().to_numpy()].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"no rows with a value in column {label!r}", column=label)
    train_pos, val_pos, split_method = _train_val_split(
        rows, seed=seed, val_fraction=val_fraction, filtered=bool(train_filter)
    )
    targets = rows[label].astype(str).to_numpy()
    present = set(targets[train_pos].tolist())
    if label == "label":
        classes = [c for c in cohort.spec.labels if c in present]
    else:
        classes = sorted(present)
    if len(classes) < 2:
        raise InputError(
            f"the training rows hold fewer than two classes of {label!r}: {classes}", column=label
        )
    unseen = sorted(set(targets[val_pos].tolist()) - set(classes))
    if unseen:
        # A class present only in validation cannot be learnt; leave those rows out, say so in the log.
        val_pos = val_pos[~np.isin(targets[val_pos], unseen)]
    if len(val_pos) == 0:
        raise InputError("the validation split is empty; give more patients or a different filter")
    return rows, train_pos, val_pos, split_method, classes, unseen


def train_head(
    cohort: Cohort | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    label: str = "label",
    train_filter: str | None = None,
    seed: int = 0,
    head: HeadKind = "linear",
    cache_dir: str | os.PathLike[str] | None = None,
    features: FeatureSet | None = None,
    val_fraction: float = 0.2,
    max_epochs: int = 300,
    patience: int = 20,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    batch_size: int = 128,
    workers: int | None = None,
    progress: Any = None,
) -> HeadTrainingResult:
    """Train a linear or MLP head on the frozen backbone's cached features.

    Parameters
    ----------
    cohort
        Cohort (or folder) to train on.
    out
        New head folder (must not exist or be empty); written atomically.
    label
        Manifest column holding the target (``label``: the diagnosis; any
        other column, e.g. a binary ``malignant``, works too).
    train_filter
        A filter (:func:`fairderm.cohort.parse_filter`) selecting the manifest
        rows to use, e.g. ``"split == 'train'"`` or ``"fitzpatrick_group != 'V-VI'"``.
    seed
        Seeds the split, the initialisation and the batch order.
    head
        ``"linear"`` or ``"mlp"`` (one hidden layer of 256, ReLU, dropout).
    cache_dir
        Feature cache root (see :func:`extract_features`).
    features
        Precomputed features of ``cohort`` (skips extraction).
    val_fraction
        Share of patients held out for validation when the manifest has no
        ``split`` column with both ``train`` and ``val`` rows.
    max_epochs, patience
        Early stopping: stop after ``patience`` epochs without a lower
        weighted validation loss; the best epoch's weights are kept.
    lr, weight_decay, batch_size
        AdamW settings.
    workers, progress
        Passed to :func:`extract_features`.

    Returns
    -------
    HeadTrainingResult
    """
    if not isinstance(cohort, Cohort):
        cohort = load_cohort(cohort)
    if head not in ("linear", "mlp"):
        raise InputError(f"unknown head {head!r}; use 'linear' or 'mlp'", column="head")
    rows, train_pos, val_pos, split_method, classes, unseen = _training_rows(
        cohort, label, train_filter, seed=seed, val_fraction=val_fraction
    )
    targets = rows[label].astype(str).to_numpy()

    if features is None:
        features = extract_features(cohort, cache_dir=cache_dir, workers=workers, progress=progress)
    index_of = {image_id: i for i, image_id in enumerate(features.image_ids)}
    used_ids = rows["image_id"].astype(str).to_numpy()
    missing = [i for i in used_ids if i not in index_of]
    if missing:
        raise InputError(f"features lack image {missing[0]!r}", column="image_id")
    failed = [i for i in used_ids[np.concatenate([train_pos, val_pos])] if i in features.errors]
    if failed:
        raise InputError(
            f"image {failed[0]!r} could not be read: {features.errors[failed[0]]}", column="image"
        )
    matrix = torch.from_numpy(features.features[[index_of[i] for i in used_ids]])
    class_index = {c: k for k, c in enumerate(classes)}
    y = torch.tensor([class_index.get(t, -1) for t in targets])

    with one_thread():
        model, log, best_epoch, class_weights = _fit(
            matrix[train_pos],
            y[train_pos],
            matrix[val_pos],
            y[val_pos],
            n_classes=len(classes),
            kind=head,
            seed=seed,
            max_epochs=max_epochs,
            patience=patience,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
        )
        with torch.no_grad():
            val_logits = model(matrix[val_pos]).numpy()
        calibration = fit_temperature(val_logits, y[val_pos].numpy())
        model.temperature.fill_(calibration.temperature)
    config = _head_config(
        cohort, features, rows, train_pos, val_pos, classes, unseen, targets, class_weights, log,
        label=label, head=head, train_filter=train_filter, seed=seed, split_method=split_method, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs, patience=patience,
        best_epoch=best_epoch, val_logits=val_logits, y_val=y[val_pos].numpy(), calibration=calibration.to_dict(),
    )
    out = Path(out)
    with atomic_output_dir(out) as staging:
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / HEAD_WEIGHTS)
        )
        atomic_write_json(staging / HEAD_CONFIG, config)
    return HeadTrainingResult(out, config)


def _head_config(
    cohort: Cohort, features: FeatureSet, rows: pd.DataFrame, train_pos: np.ndarray, val_pos: np.ndarray,
    classes: list[str], unseen: list[str], targets: np.ndarray, class_weights: torch.Tensor,
    log: list[dict[str, float]], *, label: str, head: HeadKind, train_filter: str | None, seed: int,
    split_method: str, lr: float, weight_decay: float, batch_size: int, max_epochs: int, patience: int,
    best_epoch: int, val_logits: np.ndarray, y_val: np.ndarray, calibration: dict[str, Any],
) -> dict[str, Any]:
    """The head folder's ``head.json``: classes, backbone, split, training record and calibration."""
    val_pred = val_logits.argmax(1)
    patients_both = 0
    if "patient_id" in rows.columns:
        patients_both = len(
            set(rows["patient_id"].iloc[train_pos].dropna())
            & set(rows["patient_id"].iloc[val_pos].dropna())
        )
    return {
        "format": HEAD_FORMAT,
        "classes": classes,
        "label_column": label,
        "head": {"kind": head, "hidden": 256 if head == "mlp" else None, "dropout": 0.2},
        "backbone": {**features.backbone},
        "preprocessing": BACKBONE_PREPROCESSING,
        "input_size": INPUT_SIZE,
        "train_filter": train_filter,
        "seed": seed,
        "cohort": {
            "name": cohort.spec.name,
            "manifest_sha256": cohort.manifest_sha256(),
            "n_rows": len(cohort.manifest),
        },
        "training": {
            "split_method": split_method,
            "n_train": len(train_pos),
            "n_val": len(val_pos),
            "patients_in_train_and_val": patients_both,
            "classes_only_in_validation": unseen,
            "class_counts_train": {c: int((targets[train_pos] == c).sum()) for c in classes},
            "class_weights": {c: round(float(w), 6) for c, w in zip(classes, class_weights)},
            "optimiser": {
                "name": "AdamW",
                "lr": lr,
                "weight_decay": weight_decay,
                "batch_size": batch_size,
            },
            "max_epochs": max_epochs,
            "patience": patience,
            "epochs_run": len(log),
            "best_epoch": best_epoch,
            "best_val_loss": min(row["val_loss"] for row in log),
            "val_accuracy": float(np.mean(val_pred == y_val)),
            "val_balanced_accuracy": _balanced_accuracy(y_val, val_pred, len(classes)),
            "log": log,
        },
        "calibration": calibration,
        "environment": environment_info(),
    }


def load_head(path: str | os.PathLike[str]) -> tuple[ClassifierHead, dict[str, Any]]:
    """Load a head folder written by :func:`train_head`: the module (eval mode) and its config."""
    import json

    path = Path(path)
    config_path, weights_path = path / HEAD_CONFIG, path / HEAD_WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise InputError(
            f"not a head folder: needs {HEAD_CONFIG} and {HEAD_WEIGHTS}", source=str(path)
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc}", source=str(config_path)) from None
    if config.get("format") not in HEAD_FORMATS:
        raise InputError(
            f"unsupported head format {config.get('format')!r}",
            source=str(config_path),
            column="format",
        )
    head_cfg = config.get("head", {})
    kind = head_cfg.get("kind", "linear")
    model = ClassifierHead(len(config["classes"]), kind, hidden=head_cfg.get("hidden") or 256)
    try:
        state = load_file(str(weights_path))
        if config["format"] != HEAD_FORMAT:
            state = upgrade_head_state(state, kind)
        # heads saved before temperature scaling have none: they are uncalibrated (T = 1)
        state.setdefault("temperature", torch.ones(()))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError) as exc:
        raise InputError(
            f"head weights do not load: {str(exc).splitlines()[0]}", source=str(weights_path)
        ) from None
    model.eval()
    return model, config


class BackbonePredictor(Predictor):
    """The frozen EfficientNet-Lite0 plus a trained head (``--backend backbone``)."""

    backend = "backbone"
    input_size = INPUT_SIZE
    batch_size = 64

    def __init__(
        self,
        head_dir: str | os.PathLike[str],
        device: str | torch.device | None = None,
        feature_cache: bool | str | os.PathLike[str] | None = True,
    ) -> None:
        self.head_dir = Path(head_dir)
        self.head, self.config = load_head(self.head_dir)
        self.backbone = Backbone(device)
        self.embedder = CachedEmbedder(self.backbone, resolve_feature_cache(feature_cache))
        expected = self.config.get("backbone", {}).get("weights_sha256")
        if expected != self.backbone.weights_sha256:
            raise InputError(
                f"head was trained on backbone weights {str(expected)[:12]}, "
                f"installed weights are {self.backbone.weights_sha256[:12]}",
                source=str(self.head_dir),
            )
        self.classes = list(self.config["classes"])
        self.head.to(self.backbone.device)
        self.batch_size = self.backbone.batch_size

    def to(self, device: torch.device) -> None:
        self.backbone.to(device)
        self.head.to(device)
        self.batch_size = self.backbone.batch_size

    def preprocess(self, path: Path | None) -> CachedImage:
        return self.embedder.preprocess(path)

    def collate(self, items: list[CachedImage]) -> list[CachedImage]:
        return CachedEmbedder.collate(items)

    def predict(self, inputs: list[CachedImage], image_ids: Sequence[str]) -> PredictorOutput:
        with torch.inference_mode():
            logits = self.head(self.embedder.embed(inputs))
            probs = torch.softmax(logits.float(), dim=1)
        return PredictorOutput(probs=probs.cpu().numpy())

    def close(self) -> None:
        self.embedder.close()

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "backbone",
            "model": str(self.head_dir),
            "backbone": self.backbone.identity(),
            "files": {
                name: sha256_file(self.head_dir / name) for name in (HEAD_WEIGHTS, HEAD_CONFIG)
            },
            "classes": self.classes,
            "label_column": self.config.get("label_column"),
        }

    def preprocessing(self) -> dict[str, Any]:
        return dict(BACKBONE_PREPROCESSING)


def backbone_predictor(
    model: str | os.PathLike[str] | None, *, device: Any = None, labels: Any = None, **options: Any
) -> BackbonePredictor:
    """Factory of the ``backbone`` backend: ``model`` is a head folder from ``fairderm head train``.

    Option ``feature_cache``: reuse backbone features cached by image hash
    (true, the default: the default cache; false: off; or a cache folder).
    """
    reject_unknown_options(options, ["feature_cache"], "backbone")
    if model is None:
        raise InputError(
            "--backend backbone needs --model HEAD_DIR (train one with: fairderm head train)"
        )
    return BackbonePredictor(model, device=device, **options)
