"""A fairness-aware mixture-of-experts router trained with parity constraints.

Public API
----------
train_router, RouterRun
    Train the constrained router and the baselines (ERM head, unconstrained
    router, fairlearn ExponentiatedGradient and ThresholdOptimizer,
    group-balanced reweighting) on the same backbone features and split;
    evaluate them with :mod:`fairderm.metrics`; write a router folder. The
    experts are bottleneck layers on frozen features (``experts="frozen"``)
    or LoRA adapters on the backbone's last layers (``experts="lora"``).
load_router, router_output
    Load a trained router (or a stored baseline) from its folder; call any
    of its models alike (the ERM head's logits come without routing).
RouterPredictor, router_predictor
    The ``router`` inference backend (an entry of the inference backend
    registry, imported on first use), so that a trained router is audited
    like any model.
MixtureOfExperts, load_balancing_loss
    The bottleneck router and the Switch load-balancing loss (Fedus et al.
    2021). The ERM head is :class:`fairderm.inference.ClassifierHead`, the
    head ``train_head`` trains, and every model here is trained by
    :func:`fairderm.inference.fit_epochs`.
LoraExpertMixture, lora_backbone, LoraBackbone, require_peft, EXPERT_KINDS
    LoRA experts (peft) on the bundled EfficientNet-Lite0 or a local
    transformers vision model folder.
ConstraintSet, TrainConfig, fit, FitResult, SplitArrays
    Constraints (group loss or equalized odds), hyper-parameters and the
    objectives (ERM, reweighting, Lagrangian, group DRO) on arrays.
mitigation_report, pool_mitigation_reports
    Each method judged as a mitigation against ERM (worst and best group's
    accuracy change with paired intervals, levelling down flagged), per run
    and pooled over runs.

Tone probabilities (the router's tone input) are :mod:`fairderm.tone`'s
``tone_probabilities``. See ``docs/router.md`` for the objective and
measured results.
"""

from __future__ import annotations

from fairderm.moe._constraints import ConstraintSet
from fairderm.moe._lora import EXPERT_KINDS, LoraBackbone, LoraExpertMixture, lora_backbone, require_peft
from fairderm.moe._model import MixtureOfExperts, load_balancing_loss, router_output
from fairderm.moe._pipeline import RouterRun, train_router
from fairderm.moe._predictor import RouterPredictor, router_predictor
from fairderm.moe._report import mitigation_report, pool_mitigation_reports
from fairderm.moe._store import load_router
from fairderm.moe._train import FitResult, SplitArrays, TrainConfig, fit

__all__ = [
    "EXPERT_KINDS",
    "ConstraintSet",
    "FitResult",
    "LoraBackbone",
    "LoraExpertMixture",
    "MixtureOfExperts",
    "RouterPredictor",
    "RouterRun",
    "SplitArrays",
    "TrainConfig",
    "fit",
    "load_balancing_loss",
    "load_router",
    "lora_backbone",
    "mitigation_report",
    "pool_mitigation_reports",
    "require_peft",
    "router_output",
    "router_predictor",
    "train_router",
]
