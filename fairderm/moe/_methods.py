"""Every method of a router run trained on the same split: the torch models, the fairlearn baselines, the sweep.

The linear heads (``erm``, ``reweight``) and fairlearn's baselines see the
backbone's pooled features; the two routers (``moe``, ``moe_parity``) see
their experts' inputs: the same pooled features for bottleneck experts, the
backbone's trunk activations (or pixels) for LoRA experts. Every torch model
is temperature-scaled on validation after selection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairderm.inference import fit_group_temperatures, fit_temperature
from fairderm.moe._baselines import exponentiated_gradient, threshold_optimizer
from fairderm.moe._constraints import ConstraintSet
from fairderm.moe._data import RouterDataset
from fairderm.moe._evaluate import evaluate_methods, point_accuracy
from fairderm.moe._frontier import FRONTIER_COLUMNS, frontier_row
from fairderm.moe._train import FitResult, SplitArrays, TrainConfig, fit, predict_logits
from fairderm.tone import FITZPATRICK_TYPE_NAMES

METHODS: tuple[str, ...] = ("erm", "moe", "moe_parity", "expgrad", "threshold", "reweight")
TORCH_METHODS: tuple[str, ...] = ("erm", "moe", "reweight")
ROUTERS: tuple[str, ...] = ("moe", "moe_parity")

StageCallback = Callable[[str], None]


@dataclass
class MethodInputs:
    """What the methods train on.

    Attributes
    ----------
    dataset
        Rows, labels, groups and split.
    features
        ``train``/``val``/``test`` pooled features (linear heads, baselines).
    experts
        ``train``/``val``/``test`` inputs of the routers, and ``train_views``
        (training plus the views of under-represented groups, for
        ``moe_parity`` and the sweep).
    mixture
        Factory of a fresh LoRA router, or None for the bottleneck router.
    """

    dataset: RouterDataset
    features: dict[str, SplitArrays]
    experts: dict[str, SplitArrays]
    mixture: Callable[[], torch.nn.Module] | None = None

    def arrays(self, method: str, split: str) -> SplitArrays:
        """The arrays ``method`` reads on ``split``."""
        return (self.experts if method.startswith(ROUTERS) else self.features)[split]


@dataclass
class TrainedMethods:
    """The methods' models and held-out probabilities, and what happened on the way."""

    fits: dict[str, FitResult]
    probs_val: dict[str, np.ndarray]
    probs_test: dict[str, np.ndarray]
    calibration: dict[str, Any]
    parity_objective: str
    constraints: ConstraintSet
    log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baselines: dict[str, Any] = field(default_factory=dict)


def constraint_set(dataset: RouterDataset, family: str) -> ConstraintSet:
    """Group-loss constraints, or equalized odds over the positive class (binary) or every class."""
    if family == "loss":
        return ConstraintSet("loss", tuple(dataset.group_names))
    index = (1,) if dataset.task == "binary" else tuple(range(len(dataset.classes)))
    return ConstraintSet("eo", tuple(dataset.group_names), index, tuple(dataset.classes[i] for i in index))


def calibrate(model: torch.nn.Module, val: SplitArrays) -> dict[str, Any]:
    """Fit the model's temperature on the validation split and set it (models without one: untouched).

    Selection and constraints have already used the uncalibrated logits;
    the temperature changes no arg-max, only how sure the probabilities are.
    """
    if not isinstance(getattr(model, "temperature", None), torch.Tensor):
        return {"method": "none", "temperature": 1.0}
    model.temperature.fill_(1.0)
    tone_aware = isinstance(getattr(model, "tone_log_temperature", None), torch.Tensor)
    if tone_aware:
        model.tone_log_temperature.zero_()
    logits = predict_logits(model, val.features, val.tone).double().numpy()
    fitted = fit_temperature(logits, val.y.numpy())
    model.temperature.fill_(fitted.temperature)
    record: dict[str, Any] = fitted.to_dict()
    if tone_aware:
        # the router sees tone, so it can also be calibrated within tone groups
        # (Pleiss et al. 2017): a factor per Fitzpatrick type, shrunk to 1
        per_type = fit_group_temperatures(logits / fitted.temperature, val.y.numpy(), val.tone.double().numpy())
        model.tone_log_temperature.copy_(torch.as_tensor(per_type.log_adjustment, dtype=torch.float32))
        record["within_tone"] = per_type.to_dict(list(FITZPATRICK_TYPE_NAMES))
    return record


def probabilities(model: torch.nn.Module, arrays: SplitArrays) -> np.ndarray:
    """Class probabilities in eval mode."""
    return torch.softmax(predict_logits(model, arrays.features, arrays.tone), dim=-1).double().numpy()


def _fit_one(
    inputs: MethodInputs, method: str, objective: str, config: TrainConfig, constraints: ConstraintSet,
    log: list[dict[str, Any]], warm_start: torch.nn.Module | None, *, split: str = "train",
) -> FitResult:
    router = method.startswith(ROUTERS)
    architecture: Any = "linear" if not router else (inputs.mixture or "moe")
    return fit(architecture, objective, inputs.arrays(method, split), inputs.arrays(method, "val"),
               n_classes=len(inputs.dataset.classes), constraints=constraints, config=config, log=log.append,
               method=method, warm_start=warm_start if router and config.warm_start else None)


def train_methods(
    inputs: MethodInputs, config: TrainConfig, *, constraint: str, epsilon: float, seed: int,
    say: StageCallback, head_config: TrainConfig | None = None,
) -> TrainedMethods:
    """Train the four torch methods, calibrate them, and fit the two fairlearn baselines.

    ``head_config`` trains the linear heads (``erm``, ``reweight``; default ``config``): a LoRA run's shorter
    schedule is for its routers only.
    """
    constraints = constraint_set(inputs.dataset, config.constraint)
    parity_objective = "dro" if constraint == "dro" else "lagrangian"
    log: list[dict[str, Any]] = []
    fits: dict[str, FitResult] = {}
    for method, objective in (("erm", "erm"), ("reweight", "reweight"), ("moe", "erm"),
                              ("moe_parity", parity_objective)):
        say(f"training {method}")
        warm = fits["erm"].model if "erm" in fits else None
        chosen = config if method.startswith(ROUTERS) else (head_config or config)
        fits[method] = _fit_one(inputs, method, objective, chosen, constraints, log, warm,
                                split="train_views" if method == "moe_parity" else "train")
    calibration = {name: calibrate(r.model, inputs.arrays(name, "val")) for name, r in fits.items()}
    trained = TrainedMethods(
        fits=fits,
        probs_val={name: probabilities(r.model, inputs.arrays(name, "val")) for name, r in fits.items()},
        probs_test={name: probabilities(r.model, inputs.arrays(name, "test")) for name, r in fits.items()},
        calibration=calibration, parity_objective=parity_objective, constraints=constraints, log=log,
    )
    _fairlearn_baselines(inputs.dataset, trained, constraint=config.constraint, epsilon=epsilon, seed=seed, say=say)
    return trained


def _fairlearn_baselines(
    dataset: RouterDataset, trained: TrainedMethods, *, constraint: str, epsilon: float, seed: int,
    say: StageCallback,
) -> None:
    """ExponentiatedGradient on the features, ThresholdOptimizer on ERM's scores; per-class fallbacks recorded."""
    n_classes = len(dataset.classes)
    group_labels = dataset.group_labels()
    train_rows, val_rows, test_rows = (dataset.subset(s) for s in ("train", "val", "test"))
    say("training expgrad")
    eval_rows = val_rows | test_rows
    expgrad = exponentiated_gradient(
        dataset.features[train_rows], dataset.y[train_rows], group_labels[train_rows],
        dataset.features[eval_rows], n_classes=n_classes, constraint=constraint, epsilon=epsilon,
        fallback=np.full((int(eval_rows.sum()), n_classes), 1.0 / n_classes), seed=seed,
    )
    position = np.flatnonzero(eval_rows)
    trained.probs_val["expgrad"] = expgrad.probs[np.isin(position, np.flatnonzero(val_rows))]
    trained.probs_test["expgrad"] = expgrad.probs[np.isin(position, np.flatnonzero(test_rows))]

    say("fitting threshold")
    probs_val, probs_test = trained.probs_val["erm"], trained.probs_test["erm"]
    threshold = threshold_optimizer(
        probs_val, dataset.y[val_rows], group_labels[val_rows], np.concatenate([probs_val, probs_test]),
        np.concatenate([group_labels[val_rows], group_labels[test_rows]]), n_classes=n_classes, seed=seed,
    )
    trained.probs_val["threshold"] = threshold.probs[: int(val_rows.sum())]
    trained.probs_test["threshold"] = threshold.probs[int(val_rows.sum()):]
    for name, result in (("expgrad", expgrad), ("threshold", threshold)):
        trained.notes += [f"{name}: {n}" for n in result.notes]
        trained.baselines[name] = result.to_dict(dataset.classes)


def frontier(
    inputs: MethodInputs, trained: TrainedMethods, evaluation: dict[str, Any], config: TrainConfig, *,
    epsilon: float, sweep: list[float] | None, n_boot: int, seed: int, ci: str, min_group_size: int,
) -> pd.DataFrame:
    """Accuracy versus gap: every method at its setting, and ``moe_parity`` retrained at each swept epsilon."""
    dataset = inputs.dataset
    rows = [
        frontier_row(name, epsilon if name in ("moe_parity", "expgrad") else None, evaluation["methods"][name],
                     point_accuracy(dataset, trained.probs_val[name], "val"))
        for name in METHODS
        if not (name == "moe_parity" and trained.parity_objective == "dro")
    ]
    for value in sorted(set(sweep or [])):
        if trained.parity_objective == "lagrangian" and value == epsilon:
            continue
        swept = _fit_one(inputs, f"moe_parity@{value:g}", "lagrangian", config.model_copy(update={"epsilon": value}),
                         trained.constraints, trained.log, trained.fits["erm"].model, split="train_views")
        calibrate(swept.model, inputs.experts["val"])
        test_probs = probabilities(swept.model, inputs.experts["test"])
        swept_probs = {"erm": trained.probs_test["erm"], "moe_parity": test_probs}
        record = evaluate_methods(
            dataset, swept_probs, n_boot=n_boot, seed=seed, ci=ci, min_group_size=min_group_size,
        )["methods"]["moe_parity"]
        val_point = point_accuracy(dataset, probabilities(swept.model, inputs.experts["val"]), "val")
        rows.append(frontier_row("moe_parity", value, record, val_point))
    return pd.DataFrame(rows, columns=FRONTIER_COLUMNS).sort_values(
        ["method", "epsilon"], na_position="first", kind="stable"
    ).reset_index(drop=True)
