"""The one ERM head and the one epoch loop that trains it, the router and its constrained forms.

:class:`ClassifierHead` standardises features (the training set's mean and
a floored standard deviation, stored as buffers so that a head is
self-contained), drops some out, and applies a linear layer (multinomial
logistic regression) or a one-hidden-layer MLP; its logits are divided by
a temperature (1 while training, then fitted on validation:
:mod:`fairderm.inference._temperature`). :func:`train_head` trains it with
class weights; :mod:`fairderm.moe` trains the same class, unweighted or with
its fairness objectives, as the router's ERM baseline and warm start.

:func:`fit_epochs` owns the mechanics both share: seeding, the batch order,
AdamW, epochs, the validation score per epoch, keeping the best state, and
early stopping (``patience`` epochs without a score lower than the best by
more than ``tolerance``, not before ``min_epochs``), optionally with the
untrained model competing as epoch 0 (a warm start that training must beat).
What a step minimises and how an epoch is scored come from the caller, an
:class:`EpochObjective`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import nn

from fairderm.errors import InputError
from fairderm.inference._efficientnet import FEATURE_DIM

HeadKind = Literal["linear", "mlp"]


class ClassifierHead(nn.Module):
    """Standardise features, drop out, then a linear layer or a one-hidden-layer MLP; divide by a temperature.

    Parameters
    ----------
    n_classes
        Number of classes.
    kind
        ``"linear"`` or ``"mlp"`` (``hidden`` units, ReLU, dropout).
    n_features
        Feature size (the bundled backbone's 1280 by default).
    hidden
        Width of the MLP's hidden layer.
    dropout
        Dropout on the standardised features (and the hidden layer).

    ``forward(features, tone=None)`` gives the logits; ``tone`` is accepted
    and ignored, so that the head is called like the router's models.
    """

    def __init__(
        self, n_classes: int, kind: HeadKind = "linear", *, n_features: int = FEATURE_DIM, hidden: int = 256,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise InputError(f"unknown head {kind!r}; use 'linear' or 'mlp'", column="head")
        self.kind = kind
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("temperature", torch.ones(()))
        self.dropout = nn.Dropout(dropout)
        width = n_features
        self.hidden: nn.Sequential | None = None
        if kind == "mlp":
            self.hidden = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout))
            width = hidden
        self.head = nn.Linear(width, n_classes)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor, *, floor: float = 1e-6) -> None:
        """Store the training features' mean and standard deviation, the latter at least ``floor``."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.clamp(std, min=floor))

    def forward(self, features: torch.Tensor, tone: torch.Tensor | None = None) -> torch.Tensor:
        h = self.dropout((features - self.feature_mean) / self.feature_std)
        if self.hidden is not None:
            h = self.hidden(h)
        return self.head(h) / self.temperature


def upgrade_head_state(state: dict[str, torch.Tensor], kind: HeadKind) -> dict[str, torch.Tensor]:
    """Rename the keys of a ``fairderm.head/1`` state (``layers.<i>.*``) to the current layout.

    Version 1 kept the head's layers in one ``nn.Sequential``: ``[dropout,
    linear]`` or ``[dropout, linear, relu, dropout, linear]``.
    """
    renames = {"layers.1.": "head."} if kind == "linear" else {"layers.1.": "hidden.0.", "layers.4.": "head."}
    upgraded = {}
    for key, value in state.items():
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old):]
        upgraded[key] = value
    return upgraded


class EpochObjective(Protocol):
    """What :func:`fit_epochs` asks its caller: the loss of a step and the score of an epoch."""

    def step_loss(self, model: nn.Module, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """The loss to descend on for the training cases ``index`` (the model is in training mode)."""

    def after_step(self, model: nn.Module, index: torch.Tensor, loss: torch.Tensor) -> None:
        """Called after the optimiser's step on ``index`` (e.g. a dual ascent, a log record)."""

    def validate(self, model: nn.Module, epoch: int) -> tuple[float, dict[str, Any]]:
        """The epoch's validation score (lower is better) and its history record (eval mode, no gradient)."""


@dataclass
class EpochFit:
    """What :func:`fit_epochs` gives.

    Attributes
    ----------
    model
        The best epoch's model, in eval mode.
    best_epoch, best_score
        The selected epoch (0: the untrained model, when it competes) and its score.
    epochs_run
        Training epochs run.
    history
        :meth:`EpochObjective.validate`'s records, one per scored epoch.
    """

    model: nn.Module
    best_epoch: int
    best_score: float
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)


def fit_epochs(
    build: Callable[[], nn.Module],
    objective: EpochObjective,
    n_train: int,
    *,
    seed: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    tolerance: float,
    min_epochs: int = 1,
    epoch_zero: bool = False,
) -> EpochFit:
    """Train ``build()``'s model by AdamW on shuffled batches of ``n_train`` cases, keeping its best epoch.

    Parameters
    ----------
    build
        Makes the model, after the global seed is set (so its initialisation is seeded).
    objective
        The loss of each step and the score of each epoch.
    n_train
        Number of training cases; batches are positions ``0..n_train-1``.
    seed
        Seeds the initialisation, dropout (the global generator) and the batch order (its own).
    lr, weight_decay, batch_size
        AdamW settings, over the parameters that require a gradient.
    max_epochs, patience, tolerance, min_epochs
        An epoch is the best so far when its score is lower than the best by
        more than ``tolerance``; training stops at an epoch of at least
        ``min_epochs`` that is ``patience`` epochs past the best.
    epoch_zero
        Score the model before any step as epoch 0, competing with the
        trained epochs (a warm start is kept unless training beats it).
    """
    torch.manual_seed(seed)
    batch_order = torch.Generator().manual_seed(seed)
    model = build()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history: list[dict[str, Any]] = []

    def score(epoch: int) -> bool:
        """Validate ``epoch``, record it; whether it is the best so far."""
        nonlocal best
        model.eval()
        with torch.no_grad():
            value, record = objective.validate(model, epoch)
        history.append(record)
        if best is None or value < best[0] - tolerance:
            best = (value, epoch, copy.deepcopy(model.state_dict()))
            return True
        return False

    if epoch_zero:
        score(0)
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(n_train, generator=batch_order)
        for start in range(0, n_train, batch_size):
            index = order[start : start + batch_size]
            loss = objective.step_loss(model, index, epoch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            objective.after_step(model, index, loss)
        improved = score(epoch)
        assert best is not None  # set by the first score
        if not improved and epoch >= min_epochs and epoch - best[1] >= patience:
            break
    assert best is not None  # max_epochs >= 1 or epoch 0 was scored
    model.load_state_dict(best[2])
    model.eval()
    return EpochFit(model=model, best_epoch=best[1], best_score=best[0], epochs_run=epoch, history=history)
