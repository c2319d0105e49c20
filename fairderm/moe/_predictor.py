"""The ``router`` inference backend: a trained router audited like any model.

``fairderm infer COHORT --backend router --model ROUTER_DIR`` runs the frozen
backbone on each image and the router on its features. The router's tone
input comes from a tone table of the audited cohort when one is given
(backend option ``tone=TONE.parquet``, the same soft Fitzpatrick probabilities
as in training) and otherwise from the router's own tone head, which was
trained to predict those probabilities from the image.
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
from fairderm.inference import Predictor, PredictorOutput
from fairderm.inference._backbone import (
    BACKBONE_PREPROCESSING,
    Backbone,
    CachedEmbedder,
    CachedImage,
    resolve_feature_cache,
)
from fairderm.inference._efficientnet import INPUT_SIZE
from fairderm.inference._predictor import reject_unknown_options
from fairderm.moe._store import ROUTER_CONFIG, ROUTER_WEIGHTS, load_router
from fairderm.tone._uncertainty import tone_probabilities

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
    input_size = INPUT_SIZE
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
        self.backbone = Backbone(device)
        self.embedder = CachedEmbedder(self.backbone, resolve_feature_cache(feature_cache))
        expected = self.config.get("backbone", {}).get("weights_sha256")
        if expected != self.backbone.weights_sha256:
            raise InputError(
                f"router was trained on backbone weights {str(expected)[:12]}, "
                f"installed weights are {self.backbone.weights_sha256[:12]}",
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
        self.model.to(self.backbone.device)

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
        self.backbone.to(device)
        self.model.to(device)

    def preprocess(self, path: Path | None) -> CachedImage:
        return self.embedder.preprocess(path)

    def collate(self, items: list[CachedImage]) -> list[CachedImage]:
        return CachedEmbedder.collate(items)

    def close(self) -> None:
        self.embedder.close()

    def predict(self, inputs: list[CachedImage], image_ids: Sequence[str]) -> PredictorOutput:
        with torch.inference_mode():
            features = self.embedder.embed(inputs).float()
            tone = None
            if self._tone_by_id is not None:
                tone = torch.as_tensor(
                    np.stack([self._tone_by_id[i] for i in image_ids]), device=features.device
                )
            logits = self.model(features, tone).logits
            probs = torch.softmax(logits.float(), dim=1)
        return PredictorOutput(probs=probs.cpu().numpy())

    def identity(self) -> dict[str, Any]:
        files = [ROUTER_CONFIG, ROUTER_WEIGHTS]
        if self.method != "moe_parity":
            files.append(self.config["models"][self.method]["weights"])
        return {
            "backend": "router",
            "model": str(self.router_dir),
            "method": self.method,
            "backbone": self.backbone.identity(),
            "files": {name: sha256_file(self.router_dir / name) for name in files},
            "classes": self.classes,
            "label_column": self.config.get("label_column"),
            "tone_input": "tone file" if self.tone_path is not None else "tone head",
            "tone_sha256": sha256_file(self.tone_path) if self.tone_path is not None else None,
        }

    def preprocessing(self) -> dict[str, Any]:
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
