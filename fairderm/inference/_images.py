"""Image decoding at model resolution, and the DataLoader that feeds predictors.

Decoding is the CPU cost that batching cannot hide, so it runs in DataLoader
worker processes and decodes JPEGs in draft mode (the IDCT scales by 1/2,
1/4 or 1/8 while decoding, so a 3000 px photo is never fully decoded for a
224 px model). Workers hand back uint8 tensors (a quarter of float32's size
to move between processes); normalisation happens on the batch, on the
model's device.

torch is imported only where a tensor is made: without the ``torch`` extra,
models that need no tensor (a predictions file, a served model) are fed by
the same batches, built in this process.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fairderm._extras import torch_available
from fairderm._processes import default_workers
from fairderm.cohort import MAX_IMAGE_PIXELS, checked_image_path

if TYPE_CHECKING:
    import torch

_RESAMPLE = Image.Resampling.BILINEAR


def open_rgb(path: str | os.PathLike[str], min_side: int | None = None) -> Image.Image:
    """Decode an image as RGB, reduced in draft mode to no less than ``min_side``.

    Raises ``OSError``/``ValueError`` (with a readable message) when the file
    cannot be decoded or is larger than the decompression-bomb limit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"image is {width}x{height}, above the {MAX_IMAGE_PIXELS} pixel limit"
                )
            if min_side is not None and image.format == "JPEG":
                # draft keeps both sides >= the requested size
                scale = min_side / min(width, height)
                image.draft(
                    "RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
                )
            image.load()
            return image.convert("RGB")


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and crop the central square."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), _RESAMPLE, reducing_gap=None)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_uint8_chw(image: Image.Image) -> torch.Tensor:
    """HWC uint8 PIL image -> CHW uint8 tensor (contiguous)."""
    import torch

    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def load_square_uint8(path: str | os.PathLike[str], size: int) -> torch.Tensor:
    """Decode, resize the shorter side to ``size``, centre-crop: uint8 (3, size, size)."""
    return to_uint8_chw(resize_center_crop(open_rgb(path, min_side=size), size))


def describe_error(exc: BaseException, path: Path | None = None) -> str:
    """One line saying why an image could not be used (the folder left out: the row names the case)."""
    if isinstance(exc, FileNotFoundError):
        return "cannot read image: file not found"
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if path is not None:
        detail = detail.replace(str(path), Path(path).name)
    return f"cannot read image: {detail}"


@dataclass
class LoadedBatch:
    """A batch out of the DataLoader: the cases that decoded and those that did not.

    Attributes
    ----------
    positions
        Positions (in the run's case list) of the cases in ``inputs``, in order.
    inputs
        The predictor's collated inputs for those cases (``Predictor.collate``).
    failures
        ``(position, reason)`` of cases whose ``preprocess`` raised.
    """

    positions: list[int]
    inputs: Any
    failures: list[tuple[int, str]]

    def pin_memory(self) -> LoadedBatch:
        """Called by the DataLoader when ``pin_memory=True`` (CUDA only)."""
        if hasattr(self.inputs, "pin_memory"):  # a tensor (only CUDA runs pin, so torch is there)
            self.inputs = self.inputs.pin_memory()
        return self


class CaseDataset:
    """Cases (paths) -> ``(position, input or None, error or None)`` via ``preprocess``.

    A failure to read one image becomes an error item, never an exception,
    so one bad file cannot stop a run. With ``root`` (the cohort's
    ``images_root``), each path is resolved and checked inside it just before
    it is opened (:func:`fairderm.cohort.checked_image_path`): one that
    escapes is that case's error.
    """

    def __init__(
        self,
        paths: Sequence[Path | None],
        preprocess: Callable[[Path | None], Any],
        *,
        root: Path | None = None,
    ) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess
        self.root = root

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> tuple[int, Any, str | None]:
        path = self.paths[position]
        try:
            if self.root is not None and path is not None:
                path = checked_image_path(self.root, path)
            return position, self.preprocess(path), None
        except Exception as exc:  # noqa: BLE001  any decoder error is a per-case failure, reported in `reason`
            return position, None, describe_error(exc, self.paths[position])


class _Collate:
    """Collate function run in the workers: split failures off, then ``collate`` the rest."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, items: list[tuple[int, Any, str | None]]) -> LoadedBatch:
        good = [(pos, value) for pos, value, error in items if error is None]
        failures = [(pos, error) for pos, _, error in items if error is not None]
        inputs = self.collate([value for _, value in good]) if good else None
        return LoadedBatch([pos for pos, _ in good], inputs, failures)


def plan_workers(workers: int | None, device_type: str) -> int:
    """Decoding processes, and on CPU the model's threads, so that together they use every core once.

    On CPU the model gets the cores the decoders leave (``torch.set_num_threads``):
    more threads than free cores make OpenMP threads wait on each other,
    which on a busy machine made a forward pass ten times slower. Decoding
    at 224 px costs far less than the model, so a quarter of the cores (at
    most four) decode; below four cores a decoding process would idle on a
    core the model needs, so images are decoded in the main process and the
    model gets every core (on 2 cores: 1,200 images in 32 s instead of 48 s
    with one decoder and one model thread). On CUDA all cores but one decode.
    The cores are :func:`fairderm._processes.default_workers`'s.
    """
    cores = default_workers()
    if workers is None:
        if device_type == "cuda":
            workers = max(1, cores - 1)
        else:
            workers = 0 if cores < 4 else min(4, cores // 4)
    workers = max(0, int(workers))
    if device_type == "cpu" and torch_available():
        import torch

        torch.set_num_threads(max(1, cores - workers))
    return workers


def case_loader(
    dataset: CaseDataset,
    collate: Callable[[list[Any]], Any],
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool,
) -> Iterable[LoadedBatch]:
    """A DataLoader yielding :class:`LoadedBatch` in case order.

    Collation runs in the worker processes, so stacking tensors costs the
    model's process nothing; ``pin_memory`` is for CUDA's non-blocking copies.
    Without torch the same batches are built in this process (the models that
    run without torch wait on a file or a server, not on decoding).
    """
    if not torch_available():
        return _batches_in_process(dataset, _Collate(collate), batch_size)
    import torch

    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_Collate(collate),
        pin_memory=pin_memory,
        prefetch_factor=2 if workers > 0 else None,
    )


def _batches_in_process(dataset: CaseDataset, collate: _Collate, batch_size: int) -> Iterator[LoadedBatch]:
    for start in range(0, len(dataset), batch_size):
        yield collate([dataset[k] for k in range(start, min(start + batch_size, len(dataset)))])
