"""LoRA experts on a transformers vision backbone (GPU only, through peft).

With ``--backbone`` naming a local transformers vision model instead of the
bundled EfficientNet-Lite0, the experts are K LoRA adapters (Hu et al. 2022)
on the backbone itself rather than bottleneck layers on frozen features:

    b      = pooled output of the backbone with adapters disabled (no gradient)
    r      = W_img b + W_tone p ; g = top-k(softmax(r)), renormalised
    z      = sum_{e : g_e > 0} g_e * pooled(backbone with adapter e)
    logits = W_cls z

Only the adapters chosen for some case of the batch run; the router, head and
tone head are as in :class:`fairderm.moe._model.MixtureOfExperts`, so the
same objectives (load balancing, tone loss, Lagrangian or group DRO) apply.

peft and the model are imported lazily: on a machine without a CUDA GPU or
without peft, :func:`require_lora_support` raises one clear error before any
work starts.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch
from torch import nn

from fairderm.errors import FairdermError
from fairderm.moe._model import RouterOutput, route

DEFAULT_TARGET_MODULES: tuple[str, ...] = ("query", "value")


def require_lora_support(*, need_gpu: bool = True) -> ModuleType:
    """Return the ``peft`` module, or raise a one-line error saying what is missing."""
    if need_gpu and not torch.cuda.is_available():
        raise FairdermError(
            "LoRA experts fine-tune a transformers backbone and need a CUDA GPU, and none is "
            "available; on CPU use --backbone efficientnet-lite0 (bottleneck experts on cached features)"
        )
    try:
        return importlib.import_module("peft")
    except ImportError:
        raise FairdermError(
            "LoRA experts need the peft package: pip install 'fairderm[torch]'"
        ) from None


def lora_expert_configs(
    n_experts: int,
    *,
    rank: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES,
    peft_module: ModuleType | None = None,
) -> dict[str, Any]:
    """One ``peft.LoraConfig`` per expert, named ``expert_0`` ... ``expert_{K-1}``.

    Parameters
    ----------
    n_experts
        K.
    rank, alpha, dropout
        LoRA rank r, scaling alpha and dropout of every expert.
    target_modules
        Names of the backbone's linear layers that get adapters (attention
        query and value projections for ViT-style models).
    peft_module
        The peft module to use (tests pass a stand-in); default: import it.
    """
    if n_experts < 1:
        raise ValueError("n_experts must be at least 1")
    peft = peft_module or require_lora_support(need_gpu=False)
    return {
        f"expert_{e}": peft.LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=list(target_modules),
            bias="none",
        )
        for e in range(n_experts)
    }


def _pooled(outputs: Any) -> torch.Tensor:
    """A transformers vision model's pooled output, else the mean of its last hidden state."""
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    hidden = outputs.last_hidden_state
    return hidden.mean(dim=1) if hidden.dim() == 3 else hidden.mean(dim=(2, 3))


class LoraExpertMixture(nn.Module):
    """A transformers vision backbone whose experts are LoRA adapters.

    Parameters
    ----------
    backbone
        A transformers vision model (``AutoModel``) returning ``pooler_output``
        or ``last_hidden_state``.
    n_features
        Size of the pooled output.
    n_classes, n_tone
        Classes and tone-probability length.
    configs
        Adapter configs from :func:`lora_expert_configs`.
    top_k
        Experts per case.
    tone_input
        Whether the router sees the tone probabilities.
    peft_module
        The peft module (tests pass a stand-in).
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_features: int,
        n_classes: int,
        n_tone: int,
        *,
        configs: dict[str, Any],
        top_k: int = 2,
        tone_input: bool = True,
        peft_module: ModuleType | None = None,
    ) -> None:
        super().__init__()
        peft = peft_module or require_lora_support()
        names = list(configs)
        self.expert_names = names
        self.n_experts = len(names)
        self.top_k = top_k
        self.tone_input = tone_input
        self.backbone = peft.get_peft_model(backbone, configs[names[0]], adapter_name=names[0])
        for name in names[1:]:
            self.backbone.add_adapter(name, configs[name])
        self.router_image = nn.Linear(n_features, self.n_experts)
        self.router_tone = nn.Linear(n_tone, self.n_experts, bias=False) if tone_input else None
        self.head = nn.Linear(n_features, n_classes)
        self.tone_head = nn.Linear(n_features, n_tone)

    def forward(self, pixels: torch.Tensor, tone: torch.Tensor | None = None) -> RouterOutput:
        with torch.no_grad(), self.backbone.disable_adapter():
            base = _pooled(self.backbone(pixel_values=pixels))
        tone_logits = self.tone_head(base)
        router_probs, gates = route(base, tone_logits, tone, self.router_image, self.router_tone, self.top_k)
        mixed = torch.zeros_like(base)
        for e, name in enumerate(self.expert_names):
            chosen = gates[:, e] > 0
            if not bool(chosen.any()):
                continue
            self.backbone.set_adapter(name)
            expert_out = _pooled(self.backbone(pixel_values=pixels[chosen]))
            mixed = mixed.index_add(0, chosen.nonzero().squeeze(1), gates[chosen, e, None] * expert_out)
        return RouterOutput(
            logits=self.head(mixed),
            tone_logits=tone_logits,
            router_probs=router_probs,
            gates=gates,
        )
