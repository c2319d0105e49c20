"""The predictor interface every backend implements, and the backend registry.

A backend is a factory ``factory(model, **options) -> Predictor`` registered
under a name. Built-in backends are registered here by name and imported
only when used (so that ``transformers`` or ``vllm`` load only for the runs
that need them); ``router`` is such an entry naming :mod:`fairderm.moe`'s
factory as text, so this layer never imports a higher one, and other packages
add their own with :func:`register_backend`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fairderm._extras import import_optional
from fairderm.errors import InputError
from fairderm.inference._images import load_square_uint8

if TYPE_CHECKING:
    import torch


@dataclass
class PredictorOutput:
    """What a predictor returns for a batch of ``n`` cases.

    Attributes
    ----------
    probs
        ``(n, len(classes))`` per-class probabilities in the predictor's
        class order, or None for models that only write text.
    text
        The raw answer of each case for text models, else None.
    pred
        A class name per case for models that give a decision without
        probabilities (an imported predictions file), else None.
    status
        Per case None (fine), ``"error"`` or ``"unparseable"``; a predictor
        sets it when one case failed (a server error) without failing the batch.
    reason
        Per case why it failed, aligned with ``status``.
    extras
        Further per-case columns (``latency_s``, ``prompt_tokens``,
        ``completion_tokens``...), each a list of length ``n``.
    """

    probs: np.ndarray | None = None
    text: list[str | None] | None = None
    pred: list[str | None] | None = None
    status: list[str | None] | None = None
    reason: list[str | None] | None = None
    extras: dict[str, list[Any]] = field(default_factory=dict)


class Predictor:
    """Base class of every inference backend: a batch of images -> probabilities and/or text.

    The runner (:func:`fairderm.inference.run_inference`) drives a predictor
    in this order: :meth:`to` once with the device; then, per batch,
    :meth:`preprocess` on each image in DataLoader worker processes,
    :meth:`collate` (also in the workers) and :meth:`predict` in the main
    process; :meth:`close` at the end. :meth:`identity` and
    :meth:`preprocessing` go into the output's provenance, and a changed
    identity makes an interrupted run's shards unusable for resuming.

    Attributes
    ----------
    backend
        Registry name of the backend (``"backbone"``, ``"hf"``...).
    classes
        The model's class names, in the column order of ``probs``. They are
        mapped onto the cohort's labels (exact, case-insensitive, synonym)
        before inference; text models answer in the cohort's own labels.
    input_size
        Preferred square input size in pixels, or None (text models take the
        image file as it is).
    writes_text
        True when ``predict`` returns text to be parsed into a diagnosis.
    needs_images
        False for predictors that never read pixels (an imported file).
    gives_probabilities
        False when ``predict`` returns no ``probs`` (text models, a file of
        decisions only); the output then has no ``prob_`` columns.
    gives_predictions
        True when ``predict`` returns its own ``pred`` beside ``probs`` (an
        imported file with both columns): ``pred`` is then the model's, not
        the most probable label, and the predictions file records so.
    batch_size
        Default cases per batch; also the checkpoint interval of a run.
    """

    backend: str = ""
    classes: list[str]
    input_size: int | None = None
    writes_text: bool = False
    needs_images: bool = True
    gives_probabilities: bool = True
    gives_predictions: bool = False
    batch_size: int = 64

    def check_cases(self, image_ids: Sequence[str]) -> None:
        """Check the cohort's image ids before inference (raise InputError); default: nothing."""

    def preprocess(self, path: Path | None) -> Any:
        """Read one image for the model; runs in a DataLoader worker.

        The default decodes at ``input_size`` (JPEG draft mode), resizes the
        shorter side and centre-crops, returning a uint8 (3, s, s) tensor.
        Raise on an unreadable image: the runner records the case as an
        error and goes on.
        """
        if self.input_size is None:
            raise NotImplementedError(f"{type(self).__name__} must define preprocess()")
        return load_square_uint8(path, self.input_size)

    def collate(self, items: list[Any]) -> Any:
        """Combine preprocessed items into one batch input (default: stack tensors)."""
        import torch

        return torch.stack(items)

    def predict(self, inputs: Any, image_ids: Sequence[str]) -> PredictorOutput:
        """Predict a batch (``image_ids`` are aligned with ``inputs``)."""
        raise NotImplementedError

    def to(self, device: torch.device) -> None:
        """Move the model to ``device`` (no-op for remote or file predictors)."""

    def identity(self) -> dict[str, Any]:
        """What model this is: file hashes, or served model name and revision.

        Must be JSON-serialisable and stable across runs of the same model.
        """
        raise NotImplementedError

    def served_by(self) -> list[dict[str, Any]] | None:
        """For a served model: per server, the cases it answered in this run; None for a local model.

        Recorded in the output's provenance, never in its identity: the same
        cases answered by other servers of the same model are the same predictions.
        """
        return None

    def preprocessing(self) -> dict[str, Any]:
        """How images are prepared for the model (JSON-serialisable)."""
        return {
            "decode": "Pillow; JPEG draft mode at no less than input_size",
            "resize": "shorter side to input_size, bilinear",
            "crop": "centre square input_size",
            "input_size": self.input_size,
        }

    def close(self) -> None:
        """Release clients, event loops or GPU memory."""


BackendFactory = Callable[..., Predictor]

# name -> "module:function" for built-ins (imported on first use) or a callable.
_BUILTINS: dict[str, str] = {
    "backbone": "fairderm.inference._head:backbone_predictor",
    "hf": "fairderm.inference._classifiers:hf_predictor",
    "torch": "fairderm.inference._classifiers:torch_predictor",
    "openai": "fairderm.inference._openai:openai_predictor",
    "vllm": "fairderm.inference._vllm:vllm_predictor",
    "file": "fairderm.inference._file:file_predictor",
    # a higher layer's backend, named here as text and imported only when a run asks for it
    "router": "fairderm.moe:router_predictor",
}
_REGISTRY: dict[str, BackendFactory | str] = dict(_BUILTINS)


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Register a backend factory under ``name``.

    Parameters
    ----------
    name
        The ``--backend`` name.
    factory
        ``factory(model, **options) -> Predictor``. The runner always passes
        ``labels`` (the cohort's label set) and ``device`` among the options;
        a factory should reject options it does not know with
        :class:`~fairderm.InputError`.
    replace
        Allow replacing an existing registration (a built-in included).
    """
    if not name or not name.replace("-", "_").isidentifier():
        raise ValueError(f"invalid backend name {name!r}")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not factory:
        raise ValueError(f"backend {name!r} is already registered")
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    """Names of the registered backends."""
    return sorted(_REGISTRY)


def _resolve(name: str) -> BackendFactory:
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InputError(f"unknown backend {name!r} (available: {', '.join(available_backends())})")
    if isinstance(entry, str):
        module_name, function = entry.split(":")
        try:
            module = import_optional(module_name, f"backend {name!r}")
        except ImportError as exc:  # not a missing extra (that is a MissingExtraError naming it)
            raise InputError(f"backend {name!r} needs {module_name}, which cannot be imported: {exc}") from None
        entry = getattr(module, function)
        _REGISTRY[name] = entry
    return entry


def load_predictor(backend: str, model: str | Path | None = None, **options: Any) -> Predictor:
    """Build the predictor of a registered backend.

    Parameters
    ----------
    backend
        Registry name (see :func:`available_backends`).
    model
        Path or name of the model, as the backend understands it.
    **options
        Backend options (``labels`` and ``device`` are passed by the runner).
    """
    predictor = _resolve(backend)(model, **options)
    if not isinstance(predictor, Predictor):
        raise TypeError(f"backend {backend!r} returned {type(predictor).__name__}, not a Predictor")
    predictor.backend = predictor.backend or backend
    return predictor


def raise_at_first_row(
    bad: Any, message: Callable[[int], str], *, source: str, column: str
) -> None:
    """Raise InputError naming the first row (0-based position -> 1-based row) where ``bad`` is true.

    ``message(position)`` builds the text for that row.
    """
    positions = np.flatnonzero(np.asarray(bad, dtype=bool))
    if len(positions):
        first = int(positions[0])
        raise InputError(message(first), source=source, row=first + 1, column=column)


def reject_unknown_options(options: dict[str, Any], known: Sequence[str], backend: str) -> None:
    """Raise InputError naming options a backend does not take."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(
            f"backend {backend!r} does not take options {unknown} (it takes {sorted(known)})"
        )
