"""Router folders on disk: safetensors weights plus a JSON config.

A router folder holds ``model.safetensors`` (the parity-constrained router),
``config.json`` (architecture, classes, groups, tone mapping, backbone
identity, training settings, input hashes, environment) and, under
``models/``, the weights of the other torch-trained methods (``erm``,
``moe``, ``reweight``) with the same config keys. A router with LoRA experts
keeps its adapters as peft adapter folders, ``adapters/<method>/expert_<e>``
(``adapter_config.json`` + ``adapter_model.safetensors``), beside its
router tensors; the frozen backbone they adapt is rebuilt from the config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fairderm.errors import InputError
from fairderm.inference import ClassifierHead, model_folder_file
from fairderm.moe._lora import LoraBackbone, LoraExpertMixture, adapter_folders, load_lora_mixture
from fairderm.moe._model import MixtureOfExperts

ROUTER_WEIGHTS = "model.safetensors"
ROUTER_CONFIG = "config.json"
ROUTER_FORMAT = "fairderm-router/1"


def architecture_of(model: torch.nn.Module) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model``."""
    if isinstance(model, MixtureOfExperts):
        return {
            "kind": "moe",
            "n_features": int(model.feature_mean.shape[0]),
            "n_classes": int(model.head.out_features),
            "n_tone": int(model.tone_head.out_features),
            "n_experts": model.n_experts,
            "top_k": model.top_k,
            "bottleneck": int(model.expert_down.shape[2]),
            "tone_input": model.tone_input,
            "dropout": float(model.dropout.p),
        }
    if isinstance(model, ClassifierHead) and model.kind == "linear":
        return {
            "kind": "linear",
            "n_features": int(model.feature_mean.shape[0]),
            "n_classes": int(model.head.out_features),
            "dropout": float(model.dropout.p),
        }
    raise TypeError(f"not a router model: {type(model).__name__}")


def stored_architecture(model: torch.nn.Module, lora: LoraBackbone | None) -> dict[str, Any]:
    """:func:`architecture_of`, or a LoRA mixture's record with its backbone's spec."""
    if isinstance(model, LoraExpertMixture):
        assert lora is not None  # a LoRA mixture is only built from a LoRA backbone
        return model.architecture(lora.spec)
    return architecture_of(model)


def save_router_model(model: torch.nn.Module, folder: Path, method: str | None) -> None:
    """Write one method's model into a router folder being staged (``method=None``: the parity router).

    A LoRA mixture writes its router tensors where any model's weights go and
    its adapters under ``adapters/<method>/``.
    """
    weights = folder / ROUTER_WEIGHTS if method is None else folder / "models" / f"{method}.safetensors"
    if isinstance(model, LoraExpertMixture):
        weights.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.router_state().items()}
        save_file(state, str(weights), metadata={"format": ROUTER_FORMAT})
        model.save_adapters(folder / "adapters" / (method or "moe_parity"))
        return
    save_weights(model, weights)


def build_from_architecture(architecture: dict[str, Any]) -> torch.nn.Module:
    """Rebuild an untrained model from :func:`architecture_of`'s record."""
    spec = dict(architecture)
    kind = spec.pop("kind")
    n_features, n_classes = spec.pop("n_features"), spec.pop("n_classes")
    if kind == "moe":
        return MixtureOfExperts(n_features, n_classes, spec.pop("n_tone"), **spec)
    if kind == "linear":
        spec.pop("n_tone", None)  # recorded by folders written before the head was inference's ClassifierHead
        return ClassifierHead(n_classes, "linear", n_features=n_features, **spec)
    raise ValueError(f"unknown architecture kind {kind!r}")


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Write a model's state dict as safetensors (contiguous CPU tensors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": ROUTER_FORMAT})


def load_router(
    path: str | os.PathLike[str], *, method: str | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a trained router (or one of the folder's other methods) in eval mode.

    Parameters
    ----------
    path
        A router folder written by :func:`fairderm.moe.train_router`.
    method
        None for the parity-constrained router (``model.safetensors``), or
        ``erm``, ``moe``, ``reweight`` for ``models/<method>.safetensors``.

    Returns
    -------
    (model, config)
        The module and the folder's parsed ``config.json``.
    """
    folder = Path(path)
    config_path = folder / ROUTER_CONFIG
    if not config_path.is_file():
        raise InputError(f"not a router folder: {ROUTER_CONFIG} is missing", source=str(folder))
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", source=str(config_path)) from None
    if config.get("format") != ROUTER_FORMAT:
        raise InputError(f"not a {ROUTER_FORMAT} config", source=str(config_path), column="format")
    if method is None:
        weights_path, architecture = folder / ROUTER_WEIGHTS, config["architecture"]
    else:
        stored = config.get("models", {})
        if method not in stored:
            raise InputError(
                f"no stored weights for method {method!r} (stored: {sorted(stored)})", source=str(folder)
            )
        weights_path = model_folder_file(folder, stored[method].get("weights"), config=config_path,
                                         key=f"models.{method}.weights")
        architecture = stored[method]["architecture"]
    if architecture.get("kind") == "lora":
        names = [f"adapters/{method or 'moe_parity'}/expert_{e}" for e in range(int(architecture["n_experts"]))]
        try:
            model = load_lora_mixture(architecture, adapter_folders(folder, names), load_file(str(weights_path)))
        except (RuntimeError, OSError) as exc:
            raise InputError(f"router weights do not load: {str(exc).splitlines()[0]}",
                             source=str(weights_path)) from None
        return model, config
    model = build_from_architecture(architecture)
    try:
        state = load_file(str(weights_path))
        # routers saved before calibration have no temperatures: uncalibrated (T = 1, delta = 0)
        defaults = model.state_dict()
        for name in ("temperature", "tone_log_temperature"):
            if name in defaults:
                state.setdefault(name, defaults[name])
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError) as exc:
        raise InputError(f"router weights do not load: {str(exc).splitlines()[0]}", source=str(weights_path)) from None
    model.eval()
    return model, config
