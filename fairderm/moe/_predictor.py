"""The ``router`` inference backend: a trained router audited like any model.

``fairderm infer COHORT --backend router --model ROUTER_DIR`` runs the frozen
backbone on each image and the router on its features. The router's tone
input comes from a tone table of the audited cohort when one is given
(backend option ``tone=TONE.parquet``, the same soft Fitzpatrick probabilities
as in training) and otherwise from the router's own tone head, which was
trained to predict those probabilities from the image. A router with LoRA
experts runs its backbone's trunk on each image and its adapted tails on the
trunk's output, on CPU or CUDA alike (``device``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairderm._io import read_table, sha256_file
from fairderm.errors import InputError
from fairderm.inference import (
    BACKBONE_INPUT_SIZE,
    BACKBONE_PREPROCESSING,
    Backbone,
    CachedEmbedder,
    CachedImage,
    Predictor,
    PredictorOutput,
    reject_unknown_options,
    resolve_feature_cache,
)
from fairderm.moe._lora import LoraBackbone, backbone_from_spec
from fairderm.moe._model import router_output
from fairderm.moe._store import ROUTER_CONFIG, ROUTER_WEIGHTS, load_router
from fairderm.tone import tone_probabilities

METHODS_WITH_WEIGHTS: tuple[str, ...] = ("moe_parity", "moe", "erm", "reweight")


class RouterPredictor(Predictor):
    """Frozen EfficientNet-Lite0 features -> trained router (``--backend router``).

    Parameters
    ----------
    router_dir
        Folder written by :func:`fairderm.moe.train_router`.
    device
        Torch device (default CUDA when available).
    tone
        Optional tone table of the audited cohort; without one the router
        routes on its tone head's prediction.
    method
        ``moe_parity`` (default: the constrained router) or one of the
        folder's other stored methods (``moe``, ``erm``, ``reweight``).
    feature_cache
        Reuse backbone features cached by image hash: True (the default
        cache), False, or a cache folder (see :class:`fairderm.inference.CachedEmbedder`).
    """

    backend = "router"
    input_size = BACKBONE_INPUT_SIZE
    batch_size = 64

    def __init__(
        self,
        router_dir: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        tone: str | os.PathLike[str] | None = None,
        method: str = "moe_parity",
        feature_cache: bool | str | os.PathLike[str] | None = True,
    ) -> None:
        if method not in METHODS_WITH_WEIGHTS:
            raise InputError(f"method must be one of {list(METHODS_WITH_WEIGHTS)}, got {method!r}")
        self.router_dir = Path(router_dir)
        self.method = method
        self.model, self.config = load_router(self.router_dir, method=None if method == "moe_parity" else method)
        architecture = self.config["models"][method]["architecture"] if method != "moe_parity" else (
            self.config["architecture"])
        self.lora: LoraBackbone | None = None
        self.backbone: Backbone | None = None
        if architecture.get("kind") == "lora":
            self.lora = backbone_from_spec(architecture["backbone"])
            installed = str(self.lora.identity.get("weights_sha256"))
            self.device = torch.device(device) if device is not None else torch.device(
                "cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.backbone = Backbone(device)
            self.embedder = CachedEmbedder(self.backbone, resolve_feature_cache(feature_cache))
            installed, self.device = self.backbone.weights_sha256, self.backbone.device
        expected = self.config.get("backbone", {}).get("weights_sha256")
        if expected != installed:
            raise InputError(
                f"router was trained on backbone weights {str(expected)[:12]}, installed weights are {installed[:12]}",
                source=str(self.router_dir),
            )
        self.classes = list(self.config["classes"])
        self.tone_path = Path(tone) if tone is not None else None
        self._tone_by_id: dict[str, np.ndarray] | None = None
        if self.tone_path is not None:
            table = read_table(self.tone_path, what="tone table")
            cuts = tuple(self.config["tone_input"]["ita_cut_points"])
            probs = tone_probabilities(table, cut_points=cuts)
            self._tone_by_id = dict(zip(table["image_id"].astype(str), probs, strict=True))
        self.to(self.device)

    def check_cases(self, image_ids: Sequence[str]) -> None:
        """With a tone table, every audited image must have a tone estimate."""
        if self._tone_by_id is None:
            return
        missing = [i for i in image_ids if i not in self._tone_by_id]
        if missing:
            raise InputError(
                f"tone file does not match the cohort: {len(missing)} images have no tone estimate "
                f"(first: {missing[0]!r})",
                source=str(self.tone_path),
            )

    def to(self, device: torch.device) -> None:
        self.device = torch.device(device)
        if self.backbone is not None:
            self.backbone.to(self.device)
        if self.lora is not None:
            self.lora.trunk.to(self.device)
            self.lora.tail.to(self.device)  # computes the rows' pooled features beside the trunk
        self.model.to(self.device)

    def preprocess(self, path: Path | None) -> CachedImage | torch.Tensor:
        return Backbone.preprocess(path) if self.lora is not None else self.embedder.preprocess(path)

    def collate(self, items: list[Any]) -> list[CachedImage] | torch.Tensor:
        return torch.stack(items) if self.lora is not None else CachedEmbedder.collate(items)

    def close(self) -> None:
        if self.backbone is not None:
            self.embedder.close()

    def predict(self, inputs: list[CachedImage] | torch.Tensor, image_ids: Sequence[str]) -> PredictorOutput:
        with torch.inference_mode():
            if self.lora is not None:
                features = self.lora.expert_rows(inputs)
            else:
                features = self.embedder.embed(inputs).float()
            tone = None
            if self._tone_by_id is not None:
                tone = torch.as_tensor(
                    np.stack([self._tone_by_id[i] for i in image_ids]), device=features.device
                )
            logits = router_output(self.model, features, tone).logits
            probs = torch.softmax(logits.float(), dim=1)
        return PredictorOutput(probs=probs.cpu().numpy())

    def identity(self) -> dict[str, Any]:
        files = [ROUTER_CONFIG, ROUTER_WEIGHTS]
        if self.method != "moe_parity":
            files.append(self.config["models"][self.method]["weights"])
        if self.lora is not None:
            files += sorted(str(p.relative_to(self.router_dir)) for p in
                            (self.router_dir / "adapters" / self.method).glob("expert_*/adapter_model.safetensors"))
        return {
            "backend": "router",
            "model": str(self.router_dir),
            "method": self.method,
            "backbone": self.backbone.identity() if self.backbone is not None else dict(self.lora.identity),
            "files": {name: sha256_file(self.router_dir / name) for name in files},
            "classes": self.classes,
            "label_column": self.config.get("label_column"),
            "tone_input": "tone file" if self.tone_path is not None else "tone head",
            "tone_sha256": sha256_file(self.tone_path) if self.tone_path is not None else None,
        }

    def preprocessing(self) -> dict[str, Any]:
        if self.lora is not None:
            return {**BACKBONE_PREPROCESSING, "lora_backbone": self.lora.spec}
        return dict(BACKBONE_PREPROCESSING)


def router_predictor(
    model: str | os.PathLike[str] | None,
    *,
    device: Any = None,
    labels: Any = None,
    **options: Any,
) -> RouterPredictor:
    """Factory of the ``router`` backend; options ``tone`` (a tone table), ``method`` and ``feature_cache``."""
    reject_unknown_options(options, ["tone", "method", "feature_cache"], "router")
    if model is None:
        raise InputError("--backend router needs --model ROUTER_DIR (train one with: fairderm router train)")
    return RouterPredictor(model, device=device, **options)
