"""Image classifiers from disk: a transformers model folder, or a PyTorch module + weights.

``--backend hf --model DIR``: a folder saved with ``save_pretrained`` (an
``AutoModelForImageClassification`` and its image processor); classes come
from ``config.id2label``. Loaded with ``local_files_only=True``: nothing is
downloaded.

``--backend torch --model DIR``: a folder holding ``model.json``::

    {"architecture": "efficientnet_lite0",  # a registered architecture
     "kwargs": {},
     "weights": "model.safetensors",        # or a .pt/.pth state dict, inside DIR
     "classes": ["nevus", "melanoma", ...],
     "input_size": 224,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
     "output": "logits"}                    # or "probabilities"

Weights load with safetensors, or ``torch.load(weights_only=True)`` (never
arbitrary pickles). The folder never names code: its architecture is a
registered one, or the user's own class given with the backend option
``architecture`` (``--architecture module:Class``), which runs the user's
code (see :mod:`fairderm.inference._architectures`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairderm._extras import MissingExtraError
from fairderm._io import sha256_file
from fairderm.errors import InputError
from fairderm.inference._architectures import (
    Architecture,
    folder_architecture,
    model_folder_file,
    user_architecture,
)
from fairderm.inference._backbone import pick_device
from fairderm.inference._images import open_rgb, resize_center_crop, to_uint8_chw
from fairderm.inference._predictor import Predictor, PredictorOutput, reject_unknown_options


@contextlib.contextmanager
def pretrained_load_errors(folder: Path) -> Iterator[None]:
    """Around ``from_pretrained`` of a local folder: its refusals and failures as one-line errors naming it.

    ``from_pretrained`` must be called with ``local_files_only=True`` and
    ``trust_remote_code=False``: a model folder describes, it never runs code.
    """
    try:
        yield
    except pickle.UnpicklingError:
        # torch.load(weights_only=True) refused the weights: they hold pickled objects, maybe code
        raise InputError(
            "refused: the weights hold pickled objects that a weights-only load does not run "
            "(convert them to safetensors)",
            source=str(folder),
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot load the model: {str(exc).splitlines()[0]}", source=str(folder)) from None


def folder_identity(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in a model folder (relative names), hidden ones left out.

    Every file, not only known weight and config suffixes: whatever a loader
    reads (weights, config, labels, tokenizer, remote code) is in it.
    Loaders never read hidden files (:func:`model_folder_file` refuses them).
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[relative.as_posix()] = sha256_file(path)
    return files


class _TorchRunner:
    """Device placement and the fast forward path shared by local classifiers."""

    model: torch.nn.Module
    device: torch.device

    def _place(self, device: torch.device) -> None:
        self.device = device
        self.model = self.model.to(device)
        try:
            self.model = self.model.to(memory_format=torch.channels_last)
        except (RuntimeError, TypeError):  # a model without 4-d weights: keep its layout
            pass

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.device.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    return self._call(x).float()
            return self._call(x).float()

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class HFImageClassifier(_TorchRunner, Predictor):
    """A transformers image classifier from a local folder (``--backend hf``)."""

    backend = "hf"
    batch_size = 64

    def __init__(self, folder: str | os.PathLike[str], device: torch.device) -> None:
        try:
            from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification
        except ImportError as exc:
            raise MissingExtraError("backend 'hf'", "hf") from exc
        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise InputError(
                "not a transformers model folder (config.json missing)", source=str(self.folder)
            )
        with pretrained_load_errors(self.folder):
            # Never the model folder's own Python (trust_remote_code): a model folder describes, it does not
            # run code. A custom model is loaded by the user's code: the torch backend's --architecture.
            config = AutoConfig.from_pretrained(self.folder, local_files_only=True, trust_remote_code=False)
            self.model = AutoModelForImageClassification.from_pretrained(
                self.folder, local_files_only=True, trust_remote_code=False
            ).eval()
            self.processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True)
        id2label = {int(k): str(v) for k, v in config.id2label.items()}
        self.classes = [id2label[k] for k in sorted(id2label)]
        self.multi_label = config.problem_type == "multi_label_classification"
        self.input_size = self._input_size(config)
        self._place(device)

    def _input_size(self, config: Any) -> int:
        size = getattr(self.processor, "size", None) or {}
        if isinstance(size, dict):
            for key in ("shortest_edge", "height"):
                if size.get(key):
                    return int(size[key])
        crop = getattr(self.processor, "crop_size", None) or {}
        if isinstance(crop, dict) and crop.get("height"):
            return int(crop["height"])
        return int(getattr(config, "image_size", 224) or 224)

    def to(self, device: torch.device) -> None:
        self._place(device)

    def preprocess(self, path: Path | None) -> torch.Tensor:
        image = open_rgb(path, min_side=self.input_size)
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits

    def predict(self, inputs: torch.Tensor, image_ids: Sequence[str]) -> PredictorOutput:
        logits = self._forward(inputs)
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)
        return PredictorOutput(probs=probs.cpu().numpy())

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "hf",
            "model": str(self.folder),
            "files": folder_identity(self.folder),
            "classes": self.classes,
        }

    def preprocessing(self) -> dict[str, Any]:
        return {
            "decode": f"Pillow RGB; JPEG draft mode at no less than {self.input_size} px",
            "processor": type(self.processor).__name__,
            "processor_config": self.processor.to_dict(),
        }


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  weights_only refuses pickled code: say so
        raise InputError(
            f"cannot load weights safely (weights_only=True): {str(exc).splitlines()[0]}",
            source=str(path),
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError("expected a state dict (name -> tensor)", source=str(path))
    return state


class TorchCheckpointClassifier(_TorchRunner, Predictor):
    """A PyTorch module built from ``model.json`` and loaded from safe weights (``--backend torch``)."""

    backend = "torch"
    batch_size = 64

    def __init__(
        self, folder: str | os.PathLike[str], device: torch.device, architecture: str | None = None
    ) -> None:
        self.folder = Path(folder)
        spec_path = self.folder / "model.json" if self.folder.is_dir() else self.folder
        if not spec_path.is_file():
            raise InputError(
                "needs a folder with model.json (see docs/inference.md)", source=str(self.folder)
            )
        self.folder = spec_path.parent
        try:
            self.spec = json.loads(spec_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc}", source=str(spec_path)) from None
        if not isinstance(self.spec, dict):
            raise InputError("must hold a JSON object", source=str(spec_path))
        required = ("weights", "classes") if architecture else ("architecture", "weights", "classes")
        for key in required:
            if key not in self.spec:
                raise InputError(f"required key missing: {key}", source=str(spec_path), column=key)
        self.classes = [str(c) for c in self.spec["classes"]]
        self.input_size = int(self.spec.get("input_size", 224))
        self.mean = torch.tensor(
            self.spec.get("mean", [0.485, 0.456, 0.406]), dtype=torch.float32
        ).view(1, 3, 1, 1)
        self.std = torch.tensor(
            self.spec.get("std", [0.229, 0.224, 0.225]), dtype=torch.float32
        ).view(1, 3, 1, 1)
        self.output = self.spec.get("output", "logits")
        if self.output not in ("logits", "probabilities"):
            raise InputError(
                "output must be 'logits' or 'probabilities'", source=str(spec_path), column="output"
            )
        self.weights_path = model_folder_file(
            self.folder, self.spec["weights"], config=spec_path, key="weights"
        )
        # the folder only names a registered architecture; the user's own code comes from the user
        self.architecture: Architecture = (
            user_architecture(architecture)
            if architecture
            else folder_architecture(self.spec["architecture"], source=str(spec_path))
        )
        self.model = self.architecture.build(self.spec.get("kwargs", {}), source=str(spec_path))
        try:
            self.model.load_state_dict(_load_state_dict(self.weights_path), strict=True)
        except RuntimeError as exc:
            raise InputError(
                f"weights do not fit the architecture: {str(exc).splitlines()[0]}",
                source=str(self.weights_path),
            ) from None
        self.model.eval()
        self._place(device)

    def to(self, device: torch.device) -> None:
        self._place(device)

    def preprocess(self, path: Path | None) -> torch.Tensor:
        return to_uint8_chw(
            resize_center_crop(open_rgb(path, min_side=self.input_size), self.input_size)
        )

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() / 255.0 - self.mean.to(x.device)) / self.std.to(x.device)
        return self.model(x.contiguous(memory_format=torch.channels_last))

    def predict(self, inputs: torch.Tensor, image_ids: Sequence[str]) -> PredictorOutput:
        out = self._forward(inputs)
        probs = torch.softmax(out, dim=1) if self.output == "logits" and out.ndim == 2 else out
        return PredictorOutput(probs=np.asarray(probs.cpu().numpy(), dtype=np.float64))

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "torch",
            "model": str(self.folder),
            "files": folder_identity(self.folder),
            "architecture": self.architecture.name,
            "architecture_origin": self.architecture.origin,
            "architecture_sha256": self.architecture.source_sha256,
            "classes": self.classes,
        }

    def preprocessing(self) -> dict[str, Any]:
        return {
            **super().preprocessing(),
            "normalise": {
                "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist(),
                "scale": "1/255",
            },
        }


def hf_predictor(
    model: str | os.PathLike[str] | None, *, labels: Any = None, device: Any = None, **options: Any
) -> HFImageClassifier:
    """Factory of the ``hf`` backend (no options).

    The model folder's own code (transformers' ``trust_remote_code``) is never
    run: for a custom architecture, use the torch backend with
    ``--architecture`` (your code, named by you).
    """
    if "trust_remote_code" in options:
        raise InputError("backend 'hf' never runs a model folder's own code (trust_remote_code); for a custom "
                         "architecture use --backend torch with --architecture module:Class (your code)")
    reject_unknown_options(options, [], "hf")
    if model is None:
        raise InputError("backend 'hf' needs a model: the folder save_pretrained() wrote", column="model")
    return HFImageClassifier(model, pick_device(device))


def torch_predictor(
    model: str | os.PathLike[str] | None, *, labels: Any = None, device: Any = None, **options: Any
) -> TorchCheckpointClassifier:
    """Factory of the ``torch`` backend (option: ``architecture``, the user's ``module:Class``; runs that code)."""
    reject_unknown_options(options, ["architecture"], "torch")
    if model is None:
        raise InputError("backend 'torch' needs a model: a folder with model.json and the weights", column="model")
    architecture = options.get("architecture")
    return TorchCheckpointClassifier(
        model, pick_device(device), str(architecture) if architecture else None
    )
