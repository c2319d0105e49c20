"""The router's objectives on the shared epoch loop, for the ERM head, the router and their constrained forms.

The loop (seeding, batch order, AdamW, early stopping, the warm start's
epoch 0) is :func:`fairderm.inference.fit_epochs`, the one that also trains
:func:`fairderm.inference.train_head`; the ERM head is the same
:class:`fairderm.inference.ClassifierHead` (here unweighted, dropout
``TrainConfig.dropout``, standard deviation floored at 1e-6). What differs
lives here: each step's loss and log record, and each epoch's score.

Objectives (``objective`` argument of :func:`fit`):

``erm``
    mean cross-entropy.
``reweight``
    cross-entropy weighted so that every constraint group carries the same
    total weight (cases outside the groups keep weight 1, rescaled likewise).
``lagrangian``
    the min-max game ``min_theta max_{lambda >= 0} L(theta) + sum_k lambda_k
    (g_k(theta) - epsilon)`` (Cotter et al. 2019): each step, theta descends on
    the surrogate Lagrangian of the training batch, then the multipliers
    ascend, ``lambda_k <- clip(lambda_k + eta (g_k - epsilon), 0, lambda_max)``,
    on the exact constraint values measured on the constraint data (the
    validation split by default: the "two-dataset" scheme of Cotter et al.
    2019, which makes the constraints hold out of sample rather than on
    training data that the model may fit perfectly). With ``dual_every = m``
    the multipliers ascend after every m-th step only, by m steps' worth
    (``eta m``): for LoRA experts, whose every measurement runs the adapted
    tails over the whole validation split, this keeps the multipliers'
    progress per epoch while measuring m times less often.
``dro``
    online group DRO (Sagawa et al. 2020, Algorithm 1): group weights
    ``q_k <- q_k exp(eta_q L_k)``, renormalised, and the loss ``sum_k q_k L_k``.

The router adds the Switch load-balancing loss (Fedus et al. 2021) and the
auxiliary tone loss (soft cross-entropy against the tone probabilities).

Early stopping on the validation split, per objective: mean cross-entropy
(``erm``), group-balanced cross-entropy (``reweight``), worst-group error
(``dro``, as Sagawa et al. 2020 select models), and for ``lagrangian`` the
error plus the largest constraint violation ``max(0, max_k g_k - epsilon)``,
a hinge-penalised form of Cotter et al.'s (2019) choice of the best feasible
iterate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from fairderm.inference import ClassifierHead, fit_epochs
from fairderm.moe._constraints import ConstraintSet, group_losses
from fairderm.moe._model import MixtureOfExperts, RouterOutput, load_balancing_loss, router_output

Objective = Literal["erm", "reweight", "lagrangian", "dro"]


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run (defaults are the documented ones)."""

    model_config = ConfigDict(extra="forbid")

    n_experts: int = Field(8, ge=1, description="Number of experts K.")
    top_k: int = Field(2, ge=1, description="Experts each case is routed to.")
    bottleneck: int = Field(64, ge=1, description="Inner width of each expert.")
    tone_input: bool = Field(True, description="Router sees the tone probabilities.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on features and experts.")
    constraint: Literal["loss", "eo"] = Field("loss", description="Constraint family (lagrangian).")
    epsilon: float = Field(0.02, ge=0.0, description="Allowed constraint slack.")
    constraint_data: Literal["val", "train"] = Field(
        "val", description="Data on which the multipliers measure the constraints."
    )
    lr: float = Field(1e-3, gt=0.0, description="AdamW learning rate of the router.")
    head_lr: float = Field(3e-3, gt=0.0, description="AdamW learning rate of the linear heads.")
    weight_decay: float = Field(1e-4, ge=0.0, description="AdamW weight decay.")
    batch_size: int = Field(256, ge=1, description="Training batch size.")
    max_epochs: int = Field(200, ge=1, description="Upper bound on epochs.")
    min_epochs: int = Field(10, ge=1, description="Epochs before early stopping may stop.")
    patience: int = Field(20, ge=1, description="Epochs without improvement before stopping.")
    dual_lr: float = Field(0.5, gt=0.0, description="Step size of the multipliers' ascent.")
    dual_every: int = Field(
        1, ge=1, description="Steps between the multipliers' ascents (each ascends dual_every times as far)."
    )
    multiplier_max: float = Field(10.0, gt=0.0, description="Upper clip of each multiplier.")
    dro_step: float = Field(0.1, gt=0.0, description="Step size eta_q of group DRO.")
    load_balance_weight: float = Field(0.01, ge=0.0, description="Switch loss weight alpha.")
    tone_weight: float = Field(0.1, ge=0.0, description="Weight of the auxiliary tone loss.")
    warm_start: bool = Field(
        True, description="Routers start from the trained ERM head (train_router), epoch 0 competing in early stopping."
    )
    seed: int = Field(0, description="Seed of initialisation, dropout and batch order.")
    lora_rank: int = Field(8, ge=1, description="LoRA experts: rank r of every adapter.")
    lora_alpha: float = Field(16.0, gt=0.0, description="LoRA experts: scaling alpha (the update is alpha/r B A).")
    lora_tail_blocks: int = Field(
        1, ge=1, le=16, description="LoRA experts on EfficientNet-Lite0: last blocks adapted (with the head)."
    )
    image_size: int | None = Field(
        None, ge=16, description="LoRA experts: input size in pixels (default: the backbone's own, 224 for "
        "EfficientNet-Lite0)."
    )


@dataclass
class SplitArrays:
    """One split's tensors.

    ``groups`` holds constraint-group indices, -1 for cases outside every group.
    """

    features: torch.Tensor
    tone: torch.Tensor
    y: torch.Tensor
    groups: torch.Tensor

    @classmethod
    def from_numpy(
        cls, features: np.ndarray, tone: np.ndarray, y: np.ndarray, groups: np.ndarray
    ) -> SplitArrays:
        return cls(
            torch.as_tensor(np.asarray(features, dtype=np.float32)),
            torch.as_tensor(np.asarray(tone, dtype=np.float32)),
            torch.as_tensor(np.asarray(y, dtype=np.int64)),
            torch.as_tensor(np.asarray(groups, dtype=np.int64)),
        )

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class FitResult:
    """A trained model and what happened while training it.

    Attributes
    ----------
    model
        The selected (early-stopped) model, in eval mode.
    best_epoch, epochs_run
        Selected epoch (1-based) and epochs trained.
    history
        One record per epoch (validation loss, error, score, worst-group error).
    multipliers
        Multipliers (``lagrangian``) or group weights (``dro``) at the selected
        epoch, one per constraint or group; empty otherwise.
    final_multipliers
        The same after the last step (they differ when early stopping
        selected an earlier epoch, e.g. the warm start's epoch 0).
    constraint_names
        Names aligned with ``multipliers``.
    """

    model: torch.nn.Module
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    multipliers: np.ndarray = field(default_factory=lambda: np.zeros(0))
    constraint_names: list[str] = field(default_factory=list)
    final_multipliers: np.ndarray = field(default_factory=lambda: np.zeros(0))


def build_model(
    architecture: Literal["linear", "moe"],
    n_features: int,
    n_classes: int,
    n_tone: int,
    config: TrainConfig,
) -> torch.nn.Module:
    """A fresh linear head or router for the given sizes."""
    if architecture == "linear":
        return ClassifierHead(n_classes, "linear", n_features=n_features, dropout=config.dropout)
    return MixtureOfExperts(
        n_features,
        n_classes,
        n_tone,
        n_experts=config.n_experts,
        top_k=config.top_k,
        bottleneck=config.bottleneck,
        tone_input=config.tone_input,
        dropout=config.dropout,
    )


def group_balanced_weights(groups: np.ndarray) -> np.ndarray:
    """Weights giving every constraint group the same total weight, mean 1.

    Cases outside every group (-1) form one more block, weighted as a group.
    """
    groups = np.asarray(groups)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights * (len(groups) / weights.sum())


def fit(
    architecture: Literal["linear", "moe"] | Callable[[], torch.nn.Module],
    objective: Objective,
    train: SplitArrays,
    val: SplitArrays,
    *,
    n_classes: int,
    constraints: ConstraintSet,
    config: TrainConfig,
    log: Callable[[dict[str, Any]], None] | None = None,
    method: str = "",
    warm_start: torch.nn.Module | None = None,
) -> FitResult:
    """Train one model with early stopping on ``val``.

    Parameters
    ----------
    architecture
        ``linear`` (the ERM head), ``moe`` (the router), or a factory of a
        module with the same call signature (the LoRA experts).
    objective
        ``erm``, ``reweight``, ``lagrangian`` or ``dro`` (see the module docs).
    train, val
        Training and validation tensors; ``val`` is used for early stopping and,
        with ``constraint_data="val"``, by the multipliers.
    n_classes
        Number of classes.
    constraints
        Constraint groups (and classes, for ``eo``).
    config
        Hyper-parameters.
    log
        Called once per optimisation step with a JSON-safe record (step,
        epoch, losses, and for ``lagrangian``/``dro`` each constraint's value and
        multiplier).
    method
        Name written into each log record.
    warm_start
        A trained linear :class:`~fairderm.inference.ClassifierHead` whose standardisation and head the new
        router starts from. The experts' up-projections start at zero, so
        the router starts as exactly that head, and its state before any
        step competes in early stopping as epoch 0: training can only keep
        or improve the validation score of the head it started from.
    """
    duals = _Duals.start(objective, train, val, constraints, config)
    steps = _RouterObjective(train, val, duals, constraints, config, method, log)
    fitted = fit_epochs(
        lambda: _initial_model(architecture, train, n_classes, config, warm_start), steps, len(train),
        seed=config.seed, lr=config.head_lr if architecture == "linear" else config.lr,
        weight_decay=config.weight_decay, batch_size=config.batch_size, max_epochs=config.max_epochs,
        patience=config.patience, min_epochs=config.min_epochs, tolerance=1e-9, epoch_zero=warm_start is not None,
    )
    names = constraints.names if objective == "lagrangian" else (
        list(constraints.group_names) if objective == "dro" else []
    )
    return FitResult(
        model=fitted.model,
        best_epoch=fitted.best_epoch,
        epochs_run=fitted.epochs_run,
        history=fitted.history,
        multipliers=steps.selected[fitted.best_epoch].numpy().astype(float),
        constraint_names=names,
        final_multipliers=duals.selected().numpy().astype(float),
    )


def _initial_model(
    architecture: Literal["linear", "moe"] | Callable[[], torch.nn.Module],
    train: SplitArrays,
    n_classes: int,
    config: TrainConfig,
    warm_start: torch.nn.Module | None,
) -> torch.nn.Module:
    """A fresh model (standardised on the training features), or the factory's, warm-started when asked."""
    if callable(architecture):
        model = architecture()
    else:
        model = build_model(architecture, train.features.shape[1], n_classes, train.tone.shape[1], config)
        model.set_standardisation(train.features.mean(0), train.features.std(0))
    if warm_start is not None:
        model.feature_mean.copy_(warm_start.feature_mean)
        model.feature_std.copy_(warm_start.feature_std)
        model.head.load_state_dict(warm_start.head.state_dict())
    return model


@dataclass
class _Duals:
    """The objective's state across steps: case weights, Lagrange multipliers or group-DRO weights."""

    objective: Objective
    weights: torch.Tensor
    val_weights: torch.Tensor
    multipliers: torch.Tensor
    group_weights: torch.Tensor
    dual_data: SplitArrays

    @classmethod
    def start(
        cls, objective: Objective, train: SplitArrays, val: SplitArrays, constraints: ConstraintSet,
        config: TrainConfig,
    ) -> _Duals:
        weights, val_weights = torch.ones(len(train)), torch.ones(len(val))
        if objective == "reweight":
            weights = torch.as_tensor(group_balanced_weights(train.groups.numpy()), dtype=torch.float32)
            val_weights = torch.as_tensor(group_balanced_weights(val.groups.numpy()), dtype=torch.float32)
        n_groups = len(constraints.group_names)
        return cls(
            objective, weights, val_weights,
            torch.zeros(len(constraints)) if objective == "lagrangian" else torch.zeros(0),
            torch.full((n_groups,), 1.0 / n_groups) if objective == "dro" else torch.zeros(0),
            val if config.constraint_data == "val" else train,
        )

    def selected(self) -> torch.Tensor:
        """Multipliers (``lagrangian``) or group weights (``dro``) now, as a copy."""
        return (self.multipliers if self.objective == "lagrangian" else self.group_weights).clone()


@dataclass
class _RouterObjective:
    """The router's side of :func:`fairderm.inference.fit_epochs`: step losses, dual updates, log, epoch scores.

    ``selected`` keeps the multipliers (or group weights) at each scored
    epoch, so that the selected epoch's are reported.
    """

    train: SplitArrays
    val: SplitArrays
    duals: _Duals
    constraints: ConstraintSet
    config: TrainConfig
    method: str
    log: Callable[[dict[str, Any]], None] | None
    step: int = 0
    selected: dict[int, torch.Tensor] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    task_loss: torch.Tensor | None = None

    def step_loss(self, model: torch.nn.Module, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """The batch's loss (group-DRO weights ascend first); the step's log record is started."""
        self.record = {"method": self.method, "step": self.step, "epoch": epoch}
        train, duals, constraints = self.train, self.duals, self.constraints
        out = router_output(model, train.features[index], train.tone[index])
        y, groups = train.y[index], train.groups[index]
        per_case = F.cross_entropy(out.logits, y, reduction="none")
        if duals.objective == "dro":
            losses, present = group_losses(out.logits, y, groups, len(constraints.group_names))
            # Online exponentiated-gradient ascent on the group weights
            # (Sagawa et al. 2020, Algorithm 1), only for groups in the batch.
            step_size = torch.where(present, self.config.dro_step * losses.detach(), torch.zeros_like(losses))
            weights = duals.group_weights * torch.exp(step_size)
            duals.group_weights = weights / weights.sum()
            task_loss = torch.sum(duals.group_weights * torch.where(present, losses, torch.zeros_like(losses)))
            self.record["constraints"] = _named(constraints.group_names, losses.detach())
            self.record["multipliers"] = _named(constraints.group_names, duals.group_weights)
        else:
            task_loss = torch.sum(per_case * duals.weights[index]) / duals.weights[index].sum()
        self.task_loss = task_loss
        loss = task_loss + _router_losses(model, out, train.tone[index], self.config, self.record)
        if duals.objective == "lagrangian":
            loss = loss + torch.sum(duals.multipliers * constraints.surrogate(out.logits, y, groups))
        return loss

    def after_step(self, model: torch.nn.Module, index: torch.Tensor, loss: torch.Tensor) -> None:
        """The multipliers' ascent on the exact constraints (``lagrangian``, every ``dual_every`` steps); the log."""
        duals, record = self.duals, self.record
        if duals.objective == "lagrangian":
            every = self.config.dual_every
            if (self.step + 1) % every == 0:
                exact = _exact_constraints(model, duals.dual_data, self.constraints)
                violation = torch.nan_to_num(exact - self.config.epsilon, nan=0.0)
                duals.multipliers = torch.clamp(duals.multipliers + self.config.dual_lr * every * violation, 0.0,
                                                self.config.multiplier_max)
                record["constraints"] = _named(self.constraints.names, exact)
            record["multipliers"] = _named(self.constraints.names, duals.multipliers)
            record["epsilon"] = self.config.epsilon
        assert self.task_loss is not None  # step_loss ran first
        record["loss"] = float(loss.detach())
        record["task_loss"] = float(self.task_loss.detach())
        if self.log is not None:
            self.log(record)
        self.step += 1

    def validate(self, model: torch.nn.Module, epoch: int) -> tuple[float, dict[str, Any]]:
        score, summary = _validation_score(model, self.val, self.duals.val_weights, self.duals.objective,
                                           self.constraints, self.config)
        summary.update(epoch=epoch, score=score)
        self.selected[epoch] = self.duals.selected()
        return score, summary


def _router_losses(
    model: torch.nn.Module,
    out: RouterOutput,
    tone: torch.Tensor,
    config: TrainConfig,
    record: dict[str, Any],
) -> torch.Tensor:
    """Switch load balancing plus the auxiliary tone loss (routers only, not the linear head)."""
    if out.router_probs.shape[1] == 0:
        return torch.zeros(())
    balance = load_balancing_loss(out.router_probs, out.gates)
    tone_loss = -(tone * torch.log_softmax(out.tone_logits, dim=-1)).sum(-1).mean()
    record["load_balance"] = float(balance.detach())
    record["tone_loss"] = float(tone_loss.detach())
    return config.load_balance_weight * balance + config.tone_weight * tone_loss


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, features: torch.Tensor, tone: torch.Tensor, *, chunk: int = 4096
) -> torch.Tensor:
    """Class logits in eval mode (no dropout), ``chunk`` cases at a time."""
    was_training = model.training
    model.eval()
    logits = torch.cat(
        [router_output(model, features[i : i + chunk], tone[i : i + chunk]).logits
         for i in range(0, len(features), chunk)]
    )
    model.train(was_training)
    return logits


def _exact_constraints(
    model: torch.nn.Module, data: SplitArrays, constraints: ConstraintSet
) -> torch.Tensor:
    logits = predict_logits(model, data.features, data.tone)
    return constraints.exact(logits, data.y, data.groups)


def _validation_score(
    model: torch.nn.Module,
    val: SplitArrays,
    val_weights: torch.Tensor,
    objective: Objective,
    constraints: ConstraintSet,
    config: TrainConfig,
) -> tuple[float, dict[str, Any]]:
    logits = predict_logits(model, val.features, val.tone)
    per_case = F.cross_entropy(logits, val.y, reduction="none")
    error = (logits.argmax(-1) != val.y).float()
    n_groups = len(constraints.group_names)
    member = F.one_hot(val.groups.clamp(min=0), n_groups).float() * (val.groups >= 0).float()[:, None]
    counts = member.sum(0)
    group_error = (member.T @ error) / counts.clamp(min=1.0)
    worst = float(group_error[counts > 0].max()) if bool((counts > 0).any()) else float("nan")
    summary: dict[str, Any] = {
        "val_loss": float(per_case.mean()),
        "val_error": float(error.mean()),
        "val_worst_group_error": worst,
    }
    if objective == "erm":
        score = float(per_case.mean())
    elif objective == "reweight":
        score = float(torch.sum(per_case * val_weights) / val_weights.sum())
    elif objective == "dro":
        # Ties in worst-group error are common on small groups: the mean loss breaks them.
        score = worst + 1e-3 * float(per_case.mean())
    else:
        exact = constraints.exact(logits, val.y, val.groups)
        max_violation = float(torch.nan_to_num(exact - config.epsilon, nan=-math.inf).max())
        summary["val_max_violation"] = max_violation
        # Error plus the largest violation: a pure feasibility-first rule would
        # pick an early epoch where every group is equally bad (levelling down
        # through early stopping), since one error moves a 30-case group's
        # rate by more than a typical epsilon.
        score = float(error.mean()) + max(max_violation, 0.0)
    return score, summary


def _named(names: list[str] | tuple[str, ...], values: torch.Tensor) -> dict[str, float | None]:
    return {
        name: (None if math.isnan(v) else round(v, 6))
        for name, v in zip(names, values.detach().double().tolist(), strict=True)
    }
