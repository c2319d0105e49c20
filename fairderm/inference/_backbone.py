"""The frozen backbone as a feature extractor, and its on-disk feature cache.

Features of an image depend only on the backbone weights, the preprocessing
and the image's bytes, so the cache is keyed by exactly those: a cohort that
reuses images of another (the same photos, relabelled) reuses their features.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from fairderm._io import atomic_write_bytes, sha256_file, sha256_json
from fairderm.cohort import Cohort, checked_image_path, load_cohort
from fairderm.errors import InputError
from fairderm.inference._efficientnet import (
    BACKBONE_NAME,
    FEATURE_DIM,
    INPUT_SIZE,
    PIXEL_MEAN,
    PIXEL_STD,
    bundled_weights_path,
    load_backbone,
)
from fairderm.inference._images import CaseDataset, case_loader, load_square_uint8, plan_workers

ProgressCallback = Callable[[int, int], None]

BACKBONE_PREPROCESSING: dict[str, Any] = {
    "decode": "Pillow RGB; JPEG draft mode at no less than 224 px",
    "resize": "shorter side to 224, bilinear",
    "crop": "centre 224x224",
    "normalise": "(rgb_0_255 - 127) / 128",
    "input_size": INPUT_SIZE,
    "pooling": "global average of the 1280-channel head",
}


class Embedder(Protocol):
    """What turns uint8 image batches into cached rows: :class:`Backbone`, or the LoRA experts' trunk.

    Attributes
    ----------
    device
        Where ``embed`` runs.
    batch_size
        Images per ``embed`` call.
    width
        Length of one row.
    """

    device: torch.device
    batch_size: int
    width: int

    def preprocess(self, path: Path | None) -> torch.Tensor:
        """A path -> uint8 ``(3, s, s)`` pixels (runs in DataLoader workers: must pickle)."""
        ...

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, 3, s, s)`` -> float ``(n, width)``."""
        ...


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or CUDA when available, else CPU.

    Raises
    ------
    InputError
        For a device torch does not know, or CUDA asked for where there is
        none (torch itself would fail later, at the first tensor moved there).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {str(device)!r}; e.g. cpu, cuda or cuda:0", column="device") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(device)!r} asked for, but CUDA is not available here (use cpu)",
                             column="device")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise InputError(f"device {str(device)!r} asked for, but there are {torch.cuda.device_count()} CUDA "
                             "devices", column="device")
    return chosen


class Backbone:
    """The frozen EfficientNet-Lite0 on a device, turning uint8 batches into features.

    On CUDA the copy is non-blocking (from pinned memory) and the forward
    pass runs under bf16 (or fp16) autocast; everywhere the input is
    channels-last and the pass runs under ``torch.inference_mode``.
    """

    width = FEATURE_DIM

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.model, self.weights_sha256 = load_backbone()
        self.device = pick_device(device)
        self.to(self.device)

    def to(self, device: torch.device) -> None:
        self.device = device
        self.model = self.model.to(device, memory_format=torch.channels_last)

    @property
    def batch_size(self) -> int:
        """Images per forward pass: small on CPU, where batches beyond ~16
        images fall out of cache and get slower per image; large on GPU."""
        return 128 if self.device.type == "cuda" else 16

    def identity(self) -> dict[str, Any]:
        return {
            "name": BACKBONE_NAME,
            "weights_sha256": self.weights_sha256,
            "feature_dim": FEATURE_DIM,
        }

    @staticmethod
    def preprocess(path: Path | None) -> torch.Tensor:
        return load_square_uint8(path, INPUT_SIZE)

    def _normalised(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True)
        x = x.float().sub_(PIXEL_MEAN).div_(PIXEL_STD)
        return x.contiguous(memory_format=torch.channels_last)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (n, 3, 224, 224) -> float32 (n, 1280) features on the device."""
        with torch.inference_mode():
            x = self._normalised(batch)
            if self.device.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    return self.model.features(x).float()
            return self.model.features(x)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> ImageNet logits (for checking the weights)."""
        with torch.inference_mode():
            return self.model(self._normalised(batch))


def backbone_identity() -> dict[str, Any]:
    """The bundled backbone's identity without building it (hashes the weights file)."""
    return {
        "name": BACKBONE_NAME,
        "weights_sha256": sha256_file(bundled_weights_path()),
        "feature_dim": FEATURE_DIM,
    }


@dataclass
class FeatureSet:
    """Backbone features of a cohort's images, in manifest order.

    Attributes
    ----------
    image_ids
        Image ids, in manifest order.
    features
        float32 ``(n, 1280)``; a row of NaN for an image that failed.
    errors
        ``image_id -> reason`` for images that could not be read.
    backbone
        Backbone identity (name, weights SHA-256) and preprocessing.
    cache_hits
        How many rows came from the cache.
    seconds
        Wall time of the extraction.
    """

    image_ids: list[str]
    features: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)
    backbone: dict[str, Any] = field(default_factory=dict)
    cache_hits: int = 0
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the rows with features."""
        return np.isfinite(self.features).all(axis=1)

    def to_frame(self) -> pd.DataFrame:
        """``image_id`` and ``f0000``...``f1279`` columns."""
        columns = [f"f{i:04d}" for i in range(self.features.shape[1])]
        frame = pd.DataFrame(self.features, columns=columns)
        frame.insert(0, "image_id", self.image_ids)
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": len(self),
            "n_failed": len(self.errors),
            "cache_hits": self.cache_hits,
            "seconds": self.seconds,
            "errors": dict(self.errors),
            "backbone": self.backbone,
        }

    def summary(self) -> str:
        return (
            f"FeatureSet: {len(self)} images x {self.features.shape[1]} features "
            f"({self.cache_hits} from cache, {len(self.errors)} failed) "
            f"backbone {self.backbone.get('name')} {str(self.backbone.get('weights_sha256', ''))[:12]}"
        )


def default_cache_dir() -> Path:
    """``$FAIRDERM_CACHE`` or ``$XDG_CACHE_HOME/fairderm`` (``~/.cache/fairderm``)."""
    if os.environ.get("FAIRDERM_CACHE"):
        return Path(os.environ["FAIRDERM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fairderm"


class FeatureCache:
    """Features keyed by image SHA-256 under one backbone+preprocessing key.

    Each extraction writes one ``.npz`` chunk (atomically); lookups read all
    chunks of the key, so concurrent writers never clash and a partial
    overlap between cohorts is still reused.
    """

    def __init__(self, root: Path, backbone_key: str) -> None:
        self.folder = root / "features" / backbone_key

    def load(self) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        if not self.folder.is_dir():
            return found
        for chunk in sorted(self.folder.glob("*.npz")):
            # a damaged chunk is a cache miss, never an error
            with (
                contextlib.suppress(OSError, ValueError, KeyError),
                np.load(chunk, allow_pickle=False) as data,
            ):
                for digest, row in zip(data["sha256"].tolist(), data["features"], strict=True):
                    found[digest] = row
        return found

    def store(self, digests: Sequence[str], features: np.ndarray) -> None:
        if not len(digests):
            return
        import io

        buffer = io.BytesIO()
        np.savez(
            buffer, sha256=np.asarray(digests, dtype="U64"), features=features.astype(np.float32)
        )
        name = sha256_json(sorted(digests))[:24] + ".npz"
        atomic_write_bytes(self.folder / name, buffer.getvalue())


def feature_identity(weights_sha256: str | None = None) -> dict[str, Any]:
    """What the features depend on: the backbone's identity and the preprocessing.

    ``weights_sha256`` of an already loaded backbone saves hashing the weights file again.
    """
    identity = {"name": BACKBONE_NAME, "weights_sha256": weights_sha256, "feature_dim": FEATURE_DIM}
    if weights_sha256 is None:
        identity = backbone_identity()
    return {**identity, "preprocessing": BACKBONE_PREPROCESSING}


def feature_cache_key(identity: dict[str, Any]) -> str:
    """Cache key of the features of a :func:`feature_identity`."""
    return sha256_json(identity)[:16]


def resolve_feature_cache(value: bool | str | os.PathLike[str] | None) -> Path | None:
    """The ``feature_cache`` option of the backbone-based backends as a folder, or None (off).

    True or None: the default cache (``$FAIRDERM_CACHE`` or ``~/.cache/fairderm``);
    False: no cache; a path: that cache root.
    """
    if value is None or value is True:
        return default_cache_dir()
    if value is False:
        return None
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value).expanduser()
    raise InputError(f"option feature_cache must be true, false or a folder, got {value!r}",
                     column="feature_cache")


@dataclass
class CachedImage:
    """One image for :class:`CachedEmbedder`: its file hash, and its pixels when not cached."""

    digest: str | None
    pixels: torch.Tensor | None


class CachedEmbedder:
    """Backbone features of image files for a predictor, reusing the on-disk feature cache.

    A predictor on the bundled backbone (a trained head, the router) spends
    nearly all its time in the backbone. Its features depend only on the
    image bytes, so an image whose features :func:`extract_features` (or an
    earlier audit) already cached is not decoded nor run through the model:
    the audit of a model trained on cached features costs the file hashing.
    Features the embedder computes are added to the cache when it closes.

    Parameters
    ----------
    backbone
        The backbone, on its device.
    cache_dir
        Cache root (as for :func:`extract_features`), or None to always compute.
    """

    def __init__(self, backbone: Backbone, cache_dir: str | os.PathLike[str] | None) -> None:
        self.backbone = backbone
        key = feature_cache_key(feature_identity(backbone.weights_sha256))
        self.cache = FeatureCache(Path(cache_dir), key) if cache_dir is not None else None
        self._known: dict[str, np.ndarray] = self.cache.load() if self.cache is not None else {}
        # what the decoding workers need: only which digests are cached, not the features
        self._cached_digests: frozenset[str] = frozenset(self._known)
        self._fresh: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers only preprocess: they get neither the features nor the model
        return {"cache": None, "_known": {}, "_fresh": {}, "backbone": None,
                "_cached_digests": self._cached_digests}

    def preprocess(self, path: Path | None) -> CachedImage:
        """Hash the file; decode it only when its features are not cached."""
        digest = sha256_file(path) if self.cache is not None and path is not None else None
        if digest is not None and digest in self._cached_digests:
            return CachedImage(digest, None)
        return CachedImage(digest, Backbone.preprocess(path))

    @staticmethod
    def collate(items: list[CachedImage]) -> list[CachedImage]:
        return items

    def embed(self, items: Sequence[CachedImage]) -> torch.Tensor:
        """float32 ``(n, 1280)`` features on the backbone's device, cached ones looked up."""
        rows: list[np.ndarray | None] = [
            self._known.get(item.digest) if item.pixels is None and item.digest else None for item in items
        ]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            computed = self.backbone.embed(torch.stack([items[i].pixels for i in todo]))
            computed = computed.float().cpu().numpy()
            for k, i in enumerate(todo):
                rows[i] = computed[k]
                digest = items[i].digest
                if digest is not None and self.cache is not None:
                    self._fresh[digest] = computed[k]
        stacked = np.stack(rows).astype(np.float32, copy=False)
        return torch.from_numpy(stacked).to(self.backbone.device)

    def close(self) -> None:
        """Write the features computed since the last close to the cache."""
        if self.cache is not None and self._fresh:
            self.cache.store(list(self._fresh), np.stack(list(self._fresh.values())))
            self._known.update(self._fresh)
            self._fresh = {}


def _hash_images(paths: Sequence[Path], root: Path) -> list[str]:
    """SHA-256 of each image, or the reason it cannot be read (``cannot read image: ...``)."""

    def digest(path: Path) -> str:
        try:
            return sha256_file(checked_image_path(root, path))
        except ValueError as exc:
            return f"cannot read image: {exc}"
        except OSError:
            return "cannot read image: file not found or unreadable"

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(digest, paths))


def embed_paths(
    backbone: Embedder,
    paths: Sequence[Path],
    *,
    root: Path | None = None,
    batch_size: int | None,
    workers: int | None,
    progress: ProgressCallback | None = None,
    done_before: int = 0,
    total: int | None = None,
    preprocess: Callable[[Path], torch.Tensor] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Features of ``paths`` (NaN rows for failures) and ``position -> reason`` errors.

    ``preprocess`` (default: the backbone's) turns a path into uint8 pixels;
    it runs in the DataLoader workers, so it must pickle. With ``root`` (a
    cohort's ``images_root``), each path is checked inside it as it is opened.
    """
    features = np.full((len(paths), backbone.width), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    loader = case_loader(
        CaseDataset(paths, preprocess or backbone.preprocess, root=root),
        torch.stack,
        batch_size=batch_size or backbone.batch_size,
        workers=plan_workers(workers, backbone.device.type),
        pin_memory=backbone.device.type == "cuda",
    )
    done = done_before
    for batch in loader:
        for position, reason in batch.failures:
            errors[position] = reason
        if batch.positions:
            features[batch.positions] = backbone.embed(batch.inputs).cpu().numpy()
        done += len(batch.positions) + len(batch.failures)
        if progress is not None:
            progress(done, total if total is not None else len(paths))
    return features, errors


def _cached_features(
    paths: Sequence[Path],
    image_ids: Sequence[str],
    cache: FeatureCache | None,
    *,
    root: Path,
    preprocess: Callable[[Path], torch.Tensor] | None,
    device: str | torch.device | None,
    batch_size: int | None,
    workers: int | None,
    progress: ProgressCallback | None,
    done_before: int = 0,
    total: int | None = None,
    embedder: Embedder | None = None,
) -> tuple[np.ndarray, dict[str, str], int]:
    """Features of ``paths`` from ``cache`` (None: no cache), the rest computed and stored.

    Returns the ``(n, width)`` features (NaN rows for failures), ``image_id ->
    reason`` for the images that failed, and how many rows came from the cache.
    ``embedder`` defaults to the backbone on ``device``, loaded only if some
    image is not cached.
    """
    total = len(paths) if total is None else total
    digests = _hash_images(paths, root)
    cached = cache.load() if cache is not None else {}
    width = FEATURE_DIM if embedder is None else embedder.width
    features = np.full((len(paths), width), np.nan, dtype=np.float32)
    errors: dict[str, str] = {}
    todo: list[int] = []
    for position, digest in enumerate(digests):
        if digest.startswith("cannot read image"):
            errors[image_ids[position]] = digest
        elif digest in cached:
            features[position] = cached[digest]
        else:
            todo.append(position)
    hits = len(paths) - len(todo) - len(errors)
    if progress is not None:
        progress(done_before + hits + len(errors), total)
    if todo:
        computed, failed = embed_paths(
            embedder or Backbone(device),
            [paths[i] for i in todo],
            root=root,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
            done_before=done_before + hits + len(errors),
            total=total,
            preprocess=preprocess,
        )
        features[todo] = computed
        for local, reason in failed.items():
            errors[image_ids[todo[local]]] = reason
        good = [k for k in range(len(todo)) if k not in failed]
        if cache is not None:
            cache.store([digests[todo[k]] for k in good], computed[good])
    return features, errors, hits


def extract_features(
    cohort: Cohort | str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    device: str | torch.device | None = None,
    use_cache: bool = True,
) -> FeatureSet:
    """1280-d features of every image of a cohort from the frozen EfficientNet-Lite0.

    Features are cached on disk by (backbone weights SHA-256, preprocessing,
    image file SHA-256), so a second call on the same images costs only the
    hashing.

    Parameters
    ----------
    cohort
        A loaded cohort or its folder.
    cache_dir
        Cache root; default ``$FAIRDERM_CACHE`` or ``~/.cache/fairderm``.
    batch_size
        Images per forward pass (default 16 on CPU, 128 on CUDA).
    workers
        DataLoader decoding processes (default: see ``plan_workers``; on CPU
        the model takes the remaining cores).
    progress
        Called as ``progress(done, total)`` after each batch.
    device
        Torch device (default: CUDA when available, else CPU).
    use_cache
        Read and write the cache (False: always recompute, write nothing).

    Returns
    -------
    FeatureSet
        Features in manifest order; unreadable images get NaN rows and an
        entry in ``errors``.
    """
    if not isinstance(cohort, Cohort):
        cohort = load_cohort(cohort)
    started = time.perf_counter()
    image_ids = cohort.manifest["image_id"].astype(str).tolist()
    identity = feature_identity()
    cache = FeatureCache(Path(cache_dir) if cache_dir else default_cache_dir(), feature_cache_key(identity))
    features, errors, hits = _cached_features(
        cohort.image_paths(), image_ids, cache if use_cache else None, root=cohort.images_root, preprocess=None,
        device=device, batch_size=batch_size, workers=workers, progress=progress,
    )
    seconds = round(time.perf_counter() - started, 3)
    return FeatureSet(image_ids, features, errors, identity, cache_hits=hits, seconds=seconds)
