"""The router: a mixture of bottleneck experts over frozen backbone features.

Architecture (after SkinGPT-R1's fairness-aware mixture of experts, here on
one pooled feature vector per image rather than on patches)::

    h      = (x - mean) / std                      standardised backbone features
    t      = W_tone_head h + c                     auxiliary tone head (logits)
    p      = tone probabilities (estimated), or softmax(t) when none are given
    r      = W_img h + W_tone p                    router logits
    pi     = softmax(r)                            router probabilities over K experts
    g      = top-k of pi, renormalised             sparse gates (Shazeer et al. 2017)
    E_e(h) = U_e GELU(D_e h)                        bottleneck expert e (d -> b -> d)
    z      = h + sum_e g_e E_e(h)                  residual mixture
    logits = (W_cls z + b) / (T exp(p . delta))    diagnosis head; T = 1 and delta = 0 in
                                                   training, then fitted on validation:
                                                   calibration overall and within tone groups

Training feeds the estimated tone probabilities (from the tone file) to the
router and teaches the tone head to predict them from the image, so that a
trained router also runs on images without a tone estimate, routing on its own
predicted tone as SkinGPT-R1 does.

The up-projections ``U_e`` start at zero, so an untrained router is exactly a
linear head on the standardised features: training can only add to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class RouterOutput:
    """What one forward pass of :class:`MixtureOfExperts` gives.

    Attributes
    ----------
    logits
        Class logits, ``(n, n_classes)``.
    tone_logits
        Auxiliary tone-head logits, ``(n, n_tone)``.
    router_probs
        Dense router probabilities ``pi``, ``(n, n_experts)``.
    gates
        Sparse top-k gates ``g`` (rows sum to 1), ``(n, n_experts)``.
    """

    logits: torch.Tensor
    tone_logits: torch.Tensor
    router_probs: torch.Tensor
    gates: torch.Tensor


def route(
    h: torch.Tensor,
    tone_logits: torch.Tensor,
    tone: torch.Tensor | None,
    router_image: nn.Linear,
    router_tone: nn.Linear | None,
    top_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Router probabilities softmax(W_img h + W_skin p_skin) and the renormalised top-k gates.

    ``tone=None`` routes on the tone head's own prediction (detached, so
    routing does not train the tone head); ``router_tone=None`` routes on
    the image alone. Gates are zero outside each case's top-k experts.
    """
    router_logits = router_image(h)
    if router_tone is not None:
        if tone is None:
            tone = torch.softmax(tone_logits, dim=-1).detach()
        router_logits = router_logits + router_tone(tone)
    router_probs = torch.softmax(router_logits, dim=-1)
    top_values, top_index = torch.topk(router_probs, top_k, dim=-1)
    gates = torch.zeros_like(router_probs).scatter(-1, top_index, top_values / top_values.sum(dim=-1, keepdim=True))
    return router_probs, gates


class MixtureOfExperts(nn.Module):
    """K bottleneck experts with a top-k router that can see skin tone.

    Parameters
    ----------
    n_features
        Backbone feature size (1280 for EfficientNet-Lite0).
    n_classes
        Number of diagnoses (or 2 for a binary task).
    n_tone
        Length of the tone-probability vector (6 Fitzpatrick types).
    n_experts, top_k, bottleneck
        K, the number of experts each case is routed to, and the experts'
        inner width.
    tone_input
        Whether the router sees the tone probabilities (``False`` routes on the
        image alone).
    dropout
        Dropout on the standardised features and inside the experts.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        n_tone: int,
        *,
        n_experts: int = 8,
        top_k: int = 2,
        bottleneck: int = 64,
        tone_input: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in 1..{n_experts}, got {top_k}")
        self.n_experts = n_experts
        self.top_k = top_k
        self.tone_input = tone_input
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("temperature", torch.ones(()))
        # calibration within tone groups: log-factor per Fitzpatrick type, mixed by p
        self.register_buffer("tone_log_temperature", torch.zeros(n_tone))
        self.router_image = nn.Linear(n_features, n_experts)
        self.router_tone = nn.Linear(n_tone, n_experts, bias=False) if tone_input else None
        scale = n_features**-0.5
        self.expert_down = nn.Parameter(torch.randn(n_experts, n_features, bottleneck) * scale)
        self.expert_down_bias = nn.Parameter(torch.zeros(n_experts, bottleneck))
        self.expert_up = nn.Parameter(torch.zeros(n_experts, bottleneck, n_features))
        self.head = nn.Linear(n_features, n_classes)
        self.tone_head = nn.Linear(n_features, n_tone)
        self.dropout = nn.Dropout(dropout)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training features' mean and standard deviation."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.clamp(std, min=1e-6))

    def forward(self, features: torch.Tensor, tone: torch.Tensor | None = None) -> RouterOutput:
        """Route and classify; ``tone=None`` routes on the tone head's own prediction."""
        h = self.dropout((features - self.feature_mean) / self.feature_std)
        tone_logits = self.tone_head(h)
        # the tone the router routes on and the calibration reads: the estimate, else the tone head's
        p = tone if tone is not None else torch.softmax(tone_logits, dim=-1).detach()
        router_probs, gates = route(h, tone_logits, p, self.router_image, self.router_tone, self.top_k)
        # K is small (8): computing every expert densely and masking by the
        # gates is faster on CPU than gathering per-case expert weights.
        inner = F.gelu(torch.einsum("nd,edb->neb", h, self.expert_down) + self.expert_down_bias)
        expert_out = torch.einsum("neb,ebd->ned", self.dropout(inner), self.expert_up)
        z = h + torch.einsum("ne,ned->nd", gates, expert_out)
        scale = self.temperature * torch.exp(p @ self.tone_log_temperature)
        return RouterOutput(
            logits=self.head(z) / scale[:, None],
            tone_logits=tone_logits,
            router_probs=router_probs,
            gates=gates,
        )


def router_output(model: nn.Module, features: torch.Tensor, tone: torch.Tensor | None = None) -> RouterOutput:
    """Call ``model`` as the router's loop does: a router's own output, or a head's logits with no routing.

    The ERM baseline is :class:`fairderm.inference.ClassifierHead`, which
    gives bare logits; its router probabilities, gates and tone logits are
    empty (width 0), so that the router's extra losses leave it alone.
    """
    out = model(features, tone)
    if isinstance(out, RouterOutput):
        return out
    empty = out.new_zeros((out.shape[0], 0))
    return RouterOutput(logits=out, tone_logits=empty, router_probs=empty, gates=empty)


def load_balancing_loss(router_probs: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """Switch Transformer auxiliary load-balancing loss (Fedus et al. 2021, eq. 4).

    ``K * sum_e f_e * P_e`` where ``f_e`` is the fraction of routing slots sent
    to expert ``e`` (for top-k routing each case fills k slots) and ``P_e`` the
    mean router probability of ``e``. It equals 1 under perfectly uniform
    routing and grows as routing collapses onto few experts; only ``P_e``
    carries a gradient (``f_e`` counts discrete choices).
    """
    if router_probs.shape[1] == 0:
        return router_probs.new_zeros(())
    n_experts = router_probs.shape[1]
    dispatched = (gates > 0).float()
    fraction = dispatched.sum(dim=0) / dispatched.sum().clamp(min=1.0)
    mean_prob = router_probs.mean(dim=0)
    return n_experts * torch.sum(fraction * mean_prob)
