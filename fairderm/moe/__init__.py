"""A fairness-aware mixture-of-experts router trained with parity constraints.

Public API
----------
train_router, RouterRun
    Train the constrained router and the baselines (ERM head, unconstrained
    router, fairlearn ExponentiatedGradient and ThresholdOptimizer,
    group-balanced reweighting) on the same frozen-backbone features and
    split; evaluate them with :mod:`fairderm.metrics`; write a router folder.
load_router
    Load a trained router (or a stored baseline) from its folder.
RouterPredictor
    The ``router`` inference backend (registered on import of this package),
    so that a trained router is audited like any model.
MixtureOfExperts, load_balancing_loss
    The model and the Switch load-balancing loss (Fedus et al. 2021).
ConstraintSet, TrainConfig, fit
    Constraints (group loss or equalized odds), hyper-parameters and the
    training loop (ERM, reweighting, Lagrangian, group DRO) on arrays.
tone_probabilities, tone_cut_points
    Soft Fitzpatrick-type probabilities from ITA estimates (router input).
LoraExpertMixture, lora_expert_configs
    LoRA experts on a transformers backbone (GPU and peft only).

See ``docs/router.md`` for the objective and measured results.
"""

from __future__ import annotations

from fairderm.inference import register_backend
from fairderm.moe._constraints import ConstraintSet
from fairderm.moe._lora import LoraExpertMixture, lora_expert_configs, require_lora_support
from fairderm.moe._model import LinearHead, MixtureOfExperts, load_balancing_loss
from fairderm.moe._pipeline import RouterRun, train_router
from fairderm.moe._predictor import RouterPredictor, router_predictor
from fairderm.moe._store import load_router
from fairderm.moe._train import FitResult, SplitArrays, TrainConfig, fit
from fairderm.tone._uncertainty import (
    DEFAULT_ITA_CUT_POINTS,
    group_probabilities,
    tone_cut_points,
    tone_probabilities,
)

register_backend("router", router_predictor, replace=True)

__all__ = [
    "DEFAULT_ITA_CUT_POINTS",
    "ConstraintSet",
    "FitResult",
    "LinearHead",
    "LoraExpertMixture",
    "MixtureOfExperts",
    "RouterPredictor",
    "RouterRun",
    "SplitArrays",
    "TrainConfig",
    "fit",
    "group_probabilities",
    "load_balancing_loss",
    "load_router",
    "lora_expert_configs",
    "require_lora_support",
    "router_predictor",
    "tone_cut_points",
    "tone_probabilities",
    "train_router",
]
