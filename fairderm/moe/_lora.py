"""LoRA experts: K peft adapters on the last layers of a frozen backbone, routed per image.

With ``experts="lora"`` the router's experts are low-rank adapters (Hu et
al. 2022, "LoRA: Low-rank adaptation of large language models", ICLR) on
the backbone itself instead of bottleneck layers on its pooled features.
The backbone is cut in two: a frozen *trunk* run once per image (its output
is the experts' input) and a *tail* (the last EfficientNet-Lite0 blocks and
head, or a whole transformers vision model) that each expert runs with its
own adapter::

    b      = tail(a)                               pooled features, adapters off (computed once per image)
    h      = (b - mean) / std
    r      = W_img h + W_tone p ; g = top-k(softmax(r)), renormalised
    z      = (sum_{e : g_e > 0} g_e tail_e(a) - mean) / std
    logits = (W_cls z + c) / (T exp(p . delta))

peft starts each adapter's up-projection at zero, so an untrained mixture is
exactly the linear head on ``h``: it warm-starts from the ERM head like the
bottleneck router and the same objectives (load balancing, tone loss,
Lagrangian, group DRO) train it. Only the experts chosen for some case of
a batch run. The K adapted tails are copies of one tail sharing its frozen
weights, so only the adapters are new memory.

Training and prediction feed the mixture *rows*
(:meth:`LoraBackbone.expert_rows`): the tail's input flattened, with the
frozen tail's pooled output ``b`` beside it. ``b`` never changes, so it is
computed once per image instead of once per image, step and validation pass
(a third of every forward pass), and the training loop indexes one tensor.
"""

from __future__ import annotations

import copy
import importlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fairderm._extras import MissingExtraError
from fairderm.errors import FairdermError, InputError
from fairderm.inference import (
    BACKBONE_NAME,
    BACKBONE_PIXEL_MEAN,
    BACKBONE_PIXEL_STD,
    BACKBONE_PREPROCESSING,
    Backbone,
    EfficientNetLite0,
    load_backbone,
    pretrained_load_errors,
)
from fairderm.moe._model import RouterOutput, route

EXPERT_KINDS: tuple[str, ...] = ("frozen", "lora")
# attention query and value projections, under the names transformers' vision models give them
TRANSFORMERS_TARGETS: tuple[tuple[str, ...], ...] = (("query", "value"), ("q_proj", "v_proj"), ("q", "v"))
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def require_peft() -> ModuleType:
    """Return the ``peft`` module, or raise a one-line error naming the extra that installs it."""
    try:
        return importlib.import_module("peft")
    except ImportError:
        raise FairdermError(
            "LoRA experts need the peft package: pip install 'fairderm[torch]'"
        ) from None


def _plain_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A 1x1, stride-1 convolution as a plain ``nn.Conv2d`` sharing its parameters.

    peft rebuilds a target's adapter layers with the target's own class, and
    the backbone's TensorFlow-padding class has another constructor; for a
    1x1 stride-1 convolution the two compute the same thing.
    """
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=conv.bias is not None)
    plain.weight = conv.weight
    plain.bias = conv.bias
    return plain


class EfficientNetTail(nn.Module):
    """The last blocks and the head of EfficientNet-Lite0: trunk activations -> 1280 pooled features."""

    def __init__(self, backbone: EfficientNetLite0, first_block: int) -> None:
        super().__init__()
        blocks = list(backbone.blocks)[first_block:]
        for block in blocks:
            if block.expand is not None:
                block.expand = _plain_conv(block.expand)
            block.project = _plain_conv(block.project)
        self.blocks = nn.Sequential(*blocks)
        self.head = _plain_conv(backbone.head)

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.head(self.blocks(activations))).mean(dim=(2, 3))

    def target_modules(self) -> list[str]:
        """The 1x1 convolutions (expansion, projection, head) that carry the adapters."""
        return [name for name, module in self.named_modules() if isinstance(module, nn.Conv2d)
                and module.kernel_size == (1, 1)]


class TransformersTail(nn.Module):
    """A transformers vision model as a tail: pixels -> its pooled output (else mean of the last hidden state)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        leaves = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
        self.targets = next((pair for pair in TRANSFORMERS_TARGETS if set(pair) <= leaves), ())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        outputs = self.model(pixel_values=pixels)
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        hidden = outputs.last_hidden_state
        return hidden.mean(dim=1) if hidden.dim() == 3 else hidden.mean(dim=(2, 3))

    def target_modules(self) -> list[str]:
        """The attention's query and value projections (the names depend on the model's family)."""
        return list(self.targets)


@dataclass
class LoraBackbone:
    """A frozen backbone cut into trunk and tail, with the input preprocessing of both.

    Attributes
    ----------
    spec
        JSON record that rebuilds it (:func:`lora_backbone`).
    trunk
        uint8 ``(n, 3, s, s)`` pixels -> the tail's input (trunk activations
        or normalised pixels).
    tail
        The tail's input -> pooled features.
    identity
        Name and weights hash (the router config's ``backbone``).
    """

    spec: dict[str, Any]
    trunk: nn.Module
    tail: nn.Module
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.spec["image_size"])

    @torch.no_grad()
    def expert_inputs(self, pixels: torch.Tensor, *, chunk: int = 32) -> torch.Tensor:
        """uint8 pixels (any square size) -> the tail's input, resized to ``image_size`` first."""
        device = self.device
        parts = []
        for start in range(0, len(pixels), chunk):
            x = pixels[start : start + chunk].to(device).float()
            if x.shape[-1] != self.image_size:
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                                  align_corners=False)
            # channels-last, as the backbone runs for features: its depthwise convolutions run ~1.7x faster
            parts.append(self.trunk(x.contiguous(memory_format=torch.channels_last)).contiguous())
        return torch.cat(parts) if parts else torch.zeros(0)

    @cached_property
    def _layout(self) -> tuple[tuple[int, ...], int]:
        with torch.no_grad():
            inputs = self.expert_inputs(torch.zeros(1, 3, self.image_size, self.image_size))
            return tuple(inputs.shape[1:]), int(self.tail(inputs).shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The tail's input shape for one image, e.g. ``(192, 7, 7)``: EfficientNet-Lite0's last block at 224 px."""
        return self._layout[0]

    # what makes it an inference.Embedder: the rows are computed, and cached, like backbone features
    batch_size = 32
    preprocess = staticmethod(Backbone.preprocess)

    @property
    def width(self) -> int:
        """Length of one row of :meth:`expert_rows`."""
        shape, pooled = self._layout
        return int(torch.Size(shape).numel()) + pooled

    @property
    def device(self) -> torch.device:
        return next(self.trunk.parameters(), torch.zeros(())).device

    @property
    def cache_identity(self) -> dict[str, Any]:
        """What the rows depend on (their feature-cache key): the backbone, its cut, the input size, the decoding."""
        return {"lora_rows": self.spec, **self.identity, "preprocessing": BACKBONE_PREPROCESSING}

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.expert_rows(batch)

    @torch.no_grad()
    def expert_rows(self, pixels: torch.Tensor, *, chunk: int = 32) -> torch.Tensor:
        """uint8 pixels -> the mixture's rows: the tail's input, flattened, then its pooled output (no adapter)."""
        parts = []
        for start in range(0, len(pixels), chunk):
            inputs = self.expert_inputs(pixels[start : start + chunk], chunk=chunk)
            parts.append(torch.cat([inputs.flatten(1), self.tail(inputs)], dim=1))
        return torch.cat(parts) if parts else torch.zeros(0)

    def split_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of :meth:`expert_rows` -> (the tail's inputs, the pooled features)."""
        return split_rows(rows, self.input_shape)


def split_rows(rows: torch.Tensor, input_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed rows -> the tail's inputs ``(n, *input_shape)`` and the pooled features after them."""
    size = int(torch.Size(input_shape).numel())
    return rows[:, :size].reshape(len(rows), *input_shape), rows[:, size:]


class _EfficientNetTrunk(nn.Module):
    def __init__(self, backbone: EfficientNetLite0, first_block: int) -> None:
        super().__init__()
        self.stem = backbone.stem
        self.blocks = nn.Sequential(*list(backbone.blocks)[:first_block])

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = (rgb - BACKBONE_PIXEL_MEAN) / BACKBONE_PIXEL_STD
        return self.blocks(F.relu6(self.stem(x)))


class _PixelTrunk(nn.Module):
    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).reshape(1, 3, 1, 1) * 255.0)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return (rgb - self.mean) / self.std


def lora_backbone(name: str, *, tail_blocks: int = 1, image_size: int | None = None) -> LoraBackbone:
    """The bundled EfficientNet-Lite0 (``efficientnet-lite0``) or a local transformers vision model folder.

    Parameters
    ----------
    name
        ``efficientnet-lite0`` or the path of a folder written by
        ``save_pretrained`` (``config.json`` and weights). Nothing is
        downloaded and no code from the folder runs (``trust_remote_code``
        stays off).
    tail_blocks
        EfficientNet-Lite0 only: how many of its last blocks (1-16) the
        adapters adapt, with the head.
    image_size
        Input size in pixels (default: 224 for EfficientNet-Lite0, the
        model config's ``image_size`` for transformers).
    """
    if name == BACKBONE_NAME:
        backbone, sha = load_backbone()
        n_blocks = len(backbone.blocks)
        if not 1 <= tail_blocks <= n_blocks:
            raise InputError(f"tail_blocks must be between 1 and {n_blocks}, got {tail_blocks}", column="tail_blocks")
        first = n_blocks - tail_blocks
        size = image_size or 224
        spec = {"kind": "efficientnet", "name": BACKBONE_NAME, "tail_blocks": tail_blocks, "image_size": size}
        trunk = _EfficientNetTrunk(backbone, first).eval().to(memory_format=torch.channels_last)
        return LoraBackbone(spec, trunk, EfficientNetTail(backbone, first).eval(),
                            {"name": BACKBONE_NAME, "weights_sha256": sha})
    return _transformers_backbone(Path(name), image_size)


def _transformers_backbone(folder: Path, image_size: int | None) -> LoraBackbone:
    if not folder.is_dir():
        raise InputError(
            f"backbone {str(folder)!r} is neither {BACKBONE_NAME!r} nor a local model folder "
            "(fairderm never downloads a model)", column="backbone",
        )
    if not (folder / "config.json").is_file():
        raise InputError("backbone folder has no config.json (a transformers save_pretrained folder)",
                         source=str(folder), column="backbone")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise InputError(f"backbone folder has no weights (none of {', '.join(WEIGHT_FILES)})",
                         source=str(folder), column="backbone")
    try:
        from transformers import AutoModel
    except ImportError as exc:
        raise MissingExtraError("a transformers backbone", "hf") from exc

    with pretrained_load_errors(folder):
        model = AutoModel.from_pretrained(folder, local_files_only=True, trust_remote_code=False).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    size = image_size or int(getattr(model.config, "image_size", 224))
    mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    processor = folder / "preprocessor_config.json"
    if processor.is_file():
        settings = json.loads(processor.read_text(encoding="utf-8"))
        mean, std = settings.get("image_mean", mean), settings.get("image_std", std)
    from fairderm._io import sha256_file

    tail = TransformersTail(model)
    if not tail.targets:
        raise InputError("backbone has no attention query and value projections to adapt (looked for "
                         f"{', '.join('/'.join(p) for p in TRANSFORMERS_TARGETS)})", source=str(folder),
                         column="backbone")
    weights = next(folder / name for name in WEIGHT_FILES if (folder / name).is_file())
    spec = {"kind": "transformers", "name": str(folder), "image_size": size, "mean": mean, "std": std}
    identity = {"name": str(folder), "weights_sha256": sha256_file(weights), "model_type": model.config.model_type}
    return LoraBackbone(spec, _PixelTrunk(mean, std), tail, identity)


def backbone_from_spec(spec: dict[str, Any]) -> LoraBackbone:
    """Rebuild :func:`lora_backbone`'s result from its ``spec``."""
    if spec["kind"] == "efficientnet":
        return lora_backbone(BACKBONE_NAME, tail_blocks=int(spec["tail_blocks"]), image_size=int(spec["image_size"]))
    return lora_backbone(spec["name"], image_size=int(spec["image_size"]))


class LoraExpertMixture(nn.Module):
    """K LoRA-adapted copies of a frozen tail with a top-k router that can see skin tone.

    Parameters
    ----------
    tail
        The frozen tail (:class:`EfficientNetTail` or :class:`TransformersTail`).
    n_features, n_classes, n_tone
        Pooled feature size, classes, tone-probability length.
    n_experts, top_k
        K and the experts per case.
    rank, alpha, lora_dropout
        LoRA rank r, scaling alpha and dropout of every adapter.
    tone_input
        Whether the router sees the tone probabilities.
    dropout
        Dropout on the standardised features.
    adapters
        Folders of saved adapters to load instead of fresh ones (one per expert).
    input_shape
        The tail's input shape for one image (:attr:`LoraBackbone.input_shape`):
        needed to call the mixture on packed rows.
    """

    def __init__(
        self,
        tail: nn.Module,
        n_features: int,
        n_classes: int,
        n_tone: int,
        *,
        n_experts: int = 4,
        top_k: int = 2,
        rank: int = 8,
        alpha: float = 16.0,
        lora_dropout: float = 0.0,
        tone_input: bool = True,
        dropout: float = 0.1,
        adapters: list[Path] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        peft = require_peft()
        self.input_shape = None if input_shape is None else tuple(int(n) for n in input_shape)
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in 1..{n_experts}, got {top_k}")
        self.n_experts, self.top_k, self.tone_input = n_experts, top_k, tone_input
        self.rank, self.alpha, self.lora_dropout = rank, alpha, lora_dropout
        self.tail = tail
        for parameter in tail.parameters():
            parameter.requires_grad_(False)
        config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=lora_dropout,
                                 target_modules=tail.target_modules(), bias="none")
        # the copies share the tail's frozen tensors (memo): only the adapters are new
        shared: dict[int, Any] = {id(t): t for t in [*tail.parameters(), *tail.buffers()]}
        experts = []
        for e in range(n_experts):
            copied = copy.deepcopy(tail, {**shared})
            if adapters is None:
                experts.append(peft.get_peft_model(copied, config))
            else:
                experts.append(peft.PeftModel.from_pretrained(copied, str(adapters[e])))
        self.experts = nn.ModuleList(experts)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("tone_log_temperature", torch.zeros(n_tone))
        self.router_image = nn.Linear(n_features, n_experts)
        self.router_tone = nn.Linear(n_tone, n_experts, bias=False) if tone_input else None
        self.head = nn.Linear(n_features, n_classes)
        self.tone_head = nn.Linear(n_features, n_tone)
        self.dropout = nn.Dropout(dropout)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training features' mean and standard deviation."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.clamp(std, min=1e-6))

    def train(self, mode: bool = True) -> LoraExpertMixture:
        super().train(mode)
        self.tail.eval()  # frozen, and batch statistics of the backbone must not move
        return self

    def forward(self, inputs: torch.Tensor, tone: torch.Tensor | None = None) -> RouterOutput:
        """Route and classify; ``tone=None`` routes on the tone head.

        ``inputs`` are the tail's inputs ``(n, *input_shape)``, or rows of
        :meth:`LoraBackbone.expert_rows` ``(n, d)``, which carry the frozen
        tail's output so that it is not computed again.
        """
        if inputs.dim() == 2:
            if self.input_shape is None:
                raise ValueError("packed rows need the mixture's input_shape")
            inputs, base = split_rows(inputs, self.input_shape)
        else:
            with torch.no_grad():
                base = self.tail(inputs)
        h = self.dropout((base - self.feature_mean) / self.feature_std)
        tone_logits = self.tone_head(h)
        p = tone if tone is not None else torch.softmax(tone_logits, dim=-1).detach()
        router_probs, gates = route(h, tone_logits, p, self.router_image, self.router_tone, self.top_k)
        mixed = torch.zeros_like(base)
        for e, expert in enumerate(self.experts):
            chosen = torch.nonzero(gates[:, e] > 0).squeeze(1)
            if len(chosen) == 0:
                continue
            mixed = mixed.index_add(0, chosen, gates[chosen, e, None] * expert(inputs[chosen]))
        z = self.dropout((mixed - self.feature_mean) / self.feature_std)
        scale = self.temperature * torch.exp(p @ self.tone_log_temperature)
        return RouterOutput(logits=self.head(z) / scale[:, None], tone_logits=tone_logits,
                            router_probs=router_probs, gates=gates)

    def architecture(self, backbone: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments that rebuild this mixture, with the backbone's spec."""
        return {
            "kind": "lora",
            "n_features": int(self.feature_mean.shape[0]),
            "n_classes": int(self.head.out_features),
            "n_tone": int(self.tone_head.out_features),
            "n_experts": self.n_experts,
            "top_k": self.top_k,
            "rank": self.rank,
            "alpha": self.alpha,
            "lora_dropout": self.lora_dropout,
            "tone_input": self.tone_input,
            "dropout": float(self.dropout.p),
            "backbone": backbone,
        }

    def router_state(self) -> dict[str, torch.Tensor]:
        """Everything but the tail and the adapters (those are peft adapter files)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("tail.", "experts."))}

    def save_adapters(self, folder: Path) -> list[str]:
        """Write each expert's adapter as a peft adapter folder ``folder/expert_<e>``; their relative names."""
        names = []
        for e, expert in enumerate(self.experts):
            expert.save_pretrained(str(folder / f"expert_{e}"))
            names.append(f"expert_{e}")
        return names


def load_lora_mixture(
    architecture: dict[str, Any], adapter_dirs: list[Path], state: dict[str, torch.Tensor],
    backbone: LoraBackbone | None = None,
) -> LoraExpertMixture:
    """Rebuild a trained mixture: its backbone, its peft adapter folders and the router's tensors."""
    spec = dict(architecture)
    backbone = backbone or backbone_from_spec(spec.pop("backbone"))
    spec.pop("backbone", None)
    spec.pop("kind")
    n_features, n_classes, n_tone = spec.pop("n_features"), spec.pop("n_classes"), spec.pop("n_tone")
    model = LoraExpertMixture(backbone.tail, n_features, n_classes, n_tone, adapters=adapter_dirs,
                              input_shape=backbone.input_shape, **spec)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("tail.", "experts."))]
    if missing or unexpected:
        raise RuntimeError(f"router tensors do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def check_lora_options(n_experts: int, rank: int) -> None:
    """K >= 2 (one adapter is fine-tuning, not routing) and rank >= 1, checked before any work."""
    if n_experts < 2:
        raise InputError(f"LoRA experts need n_experts >= 2, got {n_experts}", column="n_experts")
    if rank < 1:
        raise InputError(f"LoRA rank must be at least 1, got {rank}", column="lora_rank")


def adapter_folders(root: Path, names: list[str]) -> list[Path]:
    """The adapter folders a router config names, each inside ``root``."""
    folders = []
    for name in names:
        path = (root / name).resolve()
        if root.resolve() not in path.parents or not (path / "adapter_config.json").is_file():
            raise InputError(f"adapter folder {name!r} is missing or outside the router folder", source=str(root))
        folders.append(path)
    return folders
