"""The one ERM head and the one epoch loop: early stopping, epoch 0, old head folders, pinned numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fairderm.inference import ClassifierHead, fit_epochs, load_head
from fairderm.inference._head import _fit
from tests.helpers.head_features import planted_head_features


class _Scripted:
    """An objective whose validation scores are given in advance (the loop's bookkeeping alone is tested)."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.steps = 0

    def step_loss(self, model: nn.Module, index: torch.Tensor, epoch: int) -> torch.Tensor:
        return model(torch.ones(len(index), 2)).sum() * 0.0

    def after_step(self, model: nn.Module, index: torch.Tensor, loss: torch.Tensor) -> None:
        self.steps += 1

    def validate(self, model: nn.Module, epoch: int) -> tuple[float, dict[str, Any]]:
        return self.scores[epoch], {"epoch": epoch}


def _scripted_fit(scores: list[float], **settings: Any):
    objective = _Scripted(scores)
    options = {"seed": 0, "lr": 1e-3, "weight_decay": 0.0, "batch_size": 4, "max_epochs": len(scores) - 1,
               "patience": 2, "tolerance": 1e-6, **settings}
    return fit_epochs(lambda: nn.Linear(2, 2), objective, 10, **options), objective


def test_loop_stops_patience_epochs_past_the_best_and_keeps_the_best() -> None:
    # index = epoch; epoch 0 is not scored unless asked
    fitted, objective = _scripted_fit([9.0, 5.0, 4.0, 4.5, 4.0, 3.0, 1.0])
    assert (fitted.best_epoch, fitted.best_score, fitted.epochs_run) == (2, 4.0, 4)
    assert [r["epoch"] for r in fitted.history] == [1, 2, 3, 4]
    assert objective.steps == 4 * 3  # ceil(10 / 4) batches an epoch


def test_loop_does_not_stop_before_min_epochs_and_ignores_gains_within_the_tolerance() -> None:
    fitted, _ = _scripted_fit([9.0, 5.0, 5.0 - 1e-7, 6.0, 6.0, 6.0, 6.0, 6.0], min_epochs=6)
    assert (fitted.best_epoch, fitted.epochs_run) == (1, 6)


def test_epoch_zero_is_kept_when_no_trained_epoch_beats_it() -> None:
    fitted, _ = _scripted_fit([1.0, 2.0, 1.5, 3.0, 0.5], epoch_zero=True)
    assert (fitted.best_epoch, fitted.epochs_run) == (0, 2)
    assert [r["epoch"] for r in fitted.history] == [0, 1, 2]


def _v1_layers(kind: str, n_classes: int) -> nn.Sequential:
    """The layers of a ``fairderm.head/1`` head, as that version built them."""
    if kind == "linear":
        return nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, n_classes))
    return nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, n_classes))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_format_1_head_folders_load_with_their_layers_renamed(tmp_path, kind) -> None:
    torch.manual_seed(0)
    layers = _v1_layers(kind, 3).eval()
    mean, std, temperature = torch.randn(1280), torch.rand(1280) + 0.5, torch.tensor(1.7)
    state = {f"layers.{k}": v for k, v in layers.state_dict().items()}
    state.update(feature_mean=mean, feature_std=std, temperature=temperature)
    save_file(state, str(tmp_path / "head.safetensors"))
    config = {"format": "fairderm.head/1", "classes": ["a", "b", "c"],
              "head": {"kind": kind, "hidden": 16 if kind == "mlp" else None, "dropout": 0.2}}
    (tmp_path / "head.json").write_text(json.dumps(config), encoding="utf-8")
    model, _ = load_head(tmp_path)
    assert isinstance(model, ClassifierHead) and model.kind == kind
    x = torch.randn(5, 1280)
    with torch.no_grad():
        assert torch.allclose(model(x), layers((x - mean) / std) / temperature, atol=1e-6)


PINNED_ERM: dict[str, Any] = {
    "epochs": (12, 16),
    "weights": [0.6976743936538696, 1.3043478727340698, 1.25],
    "val_loss": 1.0717543363571167,
    "logits": [-0.588737, -0.278854, -0.096686, 1.869924, 0.942993, -0.312635],
}


def test_class_weighted_erm_on_the_loop_reproduces_its_numbers() -> None:
    # Pinned from train_head's loop before it moved onto fit_epochs (bit-identical then); a change
    # in seeding, batch order, the optimiser, the std floor or early stopping moves them.
    (x_train, y_train), (x_val, y_val) = planted_head_features(90, 0), planted_head_features(45, 1)
    y_train = y_train.clone()
    y_train[:20] = 0  # unequal classes: the class weights matter
    model, log, best_epoch, weights = _fit(
        x_train, y_train, x_val, y_val, n_classes=3, kind="linear", seed=4, max_epochs=60, patience=4,
        lr=1e-3, weight_decay=1e-2, batch_size=32,
    )
    assert (best_epoch, len(log)) == PINNED_ERM["epochs"]
    assert weights.tolist() == pytest.approx(PINNED_ERM["weights"], rel=1e-6)
    assert log[best_epoch - 1]["val_loss"] == pytest.approx(PINNED_ERM["val_loss"], rel=1e-4)
    with torch.no_grad():
        assert model(x_val[:2]).flatten().tolist() == pytest.approx(PINNED_ERM["logits"], abs=1e-4)

