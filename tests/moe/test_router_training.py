"""The training loop on planted features: the Lagrangian closes a planted gap, logs its duals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairderm.moe import (
    ConstraintSet,
    MixtureOfExperts,
    SplitArrays,
    TrainConfig,
    fit,
    load_balancing_loss,
    router_output,
)
from fairderm.tone import DEFAULT_ITA_CUT_POINTS, tone_cut_points, tone_probabilities
from tests.helpers.head_features import planted_head_features
from tests.helpers.planted_router import GROUP_NAMES, Planted, planted, tone_frame

LOSS_CONSTRAINTS = ConstraintSet("loss", GROUP_NAMES)
CONFIG = TrainConfig(max_epochs=60, patience=10, batch_size=128)


def _arrays(data: Planted) -> SplitArrays:
    return SplitArrays.from_numpy(data.features, data.tone(), data.y, data.groups)


@pytest.fixture(scope="module")
def splits() -> tuple[SplitArrays, SplitArrays, SplitArrays]:
    """A real run's training size; validation and test large enough for steady group rates.

    The multipliers measure the constraints on validation (the two-dataset
    scheme): with a few dozen dark-skin validation cases they chase noise, which
    is a property of the data, not of the mechanism tested here.
    """
    return _arrays(planted(900, 1)), _arrays(planted(1500, 2)), _arrays(planted(4000, 3))


def _accuracy_and_gap(model: torch.nn.Module, data: SplitArrays) -> tuple[float, float]:
    with torch.no_grad():
        correct = (router_output(model, data.features, data.tone).logits.argmax(-1) == data.y).double()
    per_group = [float(correct[data.groups == k].mean()) for k in range(len(GROUP_NAMES))]
    return float(correct.mean()), max(per_group) - min(per_group)


def _fit(architecture: str, objective: str, splits, config: TrainConfig = CONFIG, log=None):
    train, val, _ = splits
    return fit(
        architecture, objective, train, val,
        n_classes=2, constraints=LOSS_CONSTRAINTS, config=config, log=log, method=objective,
    )


@pytest.fixture(scope="module")
def erm_gap(splits) -> tuple[float, float]:
    return _accuracy_and_gap(_fit("linear", "erm", splits).model, splits[2])


def test_erm_head_has_the_planted_gap(erm_gap) -> None:
    # The premise of the two tests below: one boundary for everyone fails the dark group.
    assert erm_gap[1] > 0.12


def test_lagrangian_router_halves_the_planted_gap_at_little_cost(splits, erm_gap) -> None:
    accuracy, gap = _accuracy_and_gap(_fit("moe", "lagrangian", splits).model, splits[2])
    assert gap < 0.5 * erm_gap[1]
    assert accuracy > erm_gap[0] - 0.03


def test_lagrangian_shrinks_the_gap_of_the_same_linear_head(splits, erm_gap) -> None:
    # Same architecture, only the objective differs: the constraints do the work.
    _, gap = _accuracy_and_gap(_fit("linear", "lagrangian", splits).model, splits[2])
    assert gap < 0.5 * erm_gap[1]


def test_group_dro_shrinks_the_planted_gap(splits, erm_gap) -> None:
    _, gap = _accuracy_and_gap(_fit("moe", "dro", splits).model, splits[2])
    assert gap < erm_gap[1]


def test_multipliers_are_logged_every_step_and_follow_dual_ascent(splits) -> None:
    records: list[dict] = []
    config = CONFIG.model_copy(update={"max_epochs": 12, "min_epochs": 12})
    result = _fit("moe", "lagrangian", splits, config, log=records.append)
    assert [r["step"] for r in records] == list(range(len(records)))
    assert len(records) == 12 * int(np.ceil(900 / config.batch_size))
    previous = dict.fromkeys(GROUP_NAMES, 0.0)
    for record in records:
        assert set(record["constraints"]) == set(record["multipliers"]) == set(GROUP_NAMES)
        assert record["epsilon"] == config.epsilon
        for group in GROUP_NAMES:
            # lambda <- clip(lambda + eta (g - epsilon), 0, lambda_max), with g measured after the step
            expected = previous[group] + config.dual_lr * (record["constraints"][group] - config.epsilon)
            expected = min(max(expected, 0.0), config.multiplier_max)
            assert record["multipliers"][group] == pytest.approx(expected, abs=1e-5)
            previous[group] = record["multipliers"][group]
    assert max(records[-1]["multipliers"].values()) > 0  # the dark group's constraint binds
    assert result.constraint_names == list(GROUP_NAMES)
    assert len(result.multipliers) == len(GROUP_NAMES)


def test_multipliers_measured_every_third_step_ascend_three_steps_worth(splits) -> None:
    records: list[dict] = []
    config = CONFIG.model_copy(update={"max_epochs": 4, "min_epochs": 4, "dual_every": 3})
    _fit("moe", "lagrangian", splits, config, log=records.append)
    measured = [r["step"] for r in records if "constraints" in r]
    assert measured == [s for s in range(len(records)) if s % 3 == 2]
    previous = dict.fromkeys(GROUP_NAMES, 0.0)
    for record in records:
        if "constraints" not in record:
            assert record["multipliers"] == previous  # no measurement, no move
            continue
        for group in GROUP_NAMES:
            expected = previous[group] + 3 * config.dual_lr * (record["constraints"][group] - config.epsilon)
            assert record["multipliers"][group] == pytest.approx(
                min(max(expected, 0.0), config.multiplier_max), abs=1e-5)
        previous = dict(record["multipliers"])
    assert max(previous.values()) > 0


def test_group_dro_logs_group_weights_that_sum_to_one(splits) -> None:
    records: list[dict] = []
    _fit("moe", "dro", splits, CONFIG.model_copy(update={"max_epochs": 3, "min_epochs": 3}), log=records.append)
    for record in records:
        assert sum(record["multipliers"].values()) == pytest.approx(1.0, abs=1e-5)


def test_training_is_deterministic_given_the_seed(splits) -> None:
    config = CONFIG.model_copy(update={"max_epochs": 5, "min_epochs": 5})
    first, second = (_fit("moe", "lagrangian", splits, config).model.state_dict() for _ in range(2))
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = _fit("moe", "lagrangian", splits, config.model_copy(update={"seed": 1})).model.state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_untrained_router_is_the_linear_head_on_standardised_features() -> None:
    model = MixtureOfExperts(8, 3, 6, n_experts=4, top_k=2, dropout=0.0).eval()
    x = torch.randn(5, 8)
    out = model(x, torch.full((5, 6), 1 / 6))
    assert torch.allclose(out.logits, model.head(x))
    assert torch.allclose(out.gates.sum(-1), torch.ones(5))
    assert int((out.gates > 0).sum(-1).max()) == 2


def test_load_balancing_loss_is_one_when_uniform_and_k_when_collapsed() -> None:
    n, k = 12, 4
    uniform = torch.full((n, k), 1 / k)
    spread = torch.zeros(n, k).scatter(1, (torch.arange(n) % k)[:, None], 1.0)
    assert float(load_balancing_loss(uniform, spread)) == pytest.approx(1.0)
    collapsed = torch.zeros(n, k)
    collapsed[:, 0] = 1.0
    assert float(load_balancing_loss(collapsed, collapsed)) == pytest.approx(k)


def test_exact_loss_constraint_is_group_error_minus_overall_error() -> None:
    y = torch.tensor([0, 0, 1, 1, 0, 1])
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 0, 0, 1])  # errors: group 0 1/3, group 1 1/2, group 2 0; overall 2/6
    logits = torch.nn.functional.one_hot(pred, 2).float()
    values = ConstraintSet("loss", ("a", "b", "c")).exact(logits, y, groups)
    assert values.tolist() == pytest.approx([1 / 3 - 1 / 3, 1 / 2 - 1 / 3, 0 - 1 / 3])


def test_constraint_of_a_group_absent_from_the_data_is_undefined() -> None:
    logits = torch.zeros(3, 2)
    values = ConstraintSet("loss", ("a", "b")).exact(logits, torch.tensor([0, 1, 0]), torch.zeros(3, dtype=torch.long))
    assert np.isnan(float(values[1]))


def test_tone_probabilities_put_mass_on_the_estimated_type() -> None:
    groups = np.array([0, 1, 2])
    frame = tone_frame(["a", "b", "c"], groups)
    frame.loc[3] = frame.loc[0]
    frame.loc[3, ["image_id", "status"]] = ["d", "abstain"]
    probs = tone_probabilities(frame)
    assert probs.sum(axis=1) == pytest.approx(np.ones(4), abs=1e-6)
    assert probs[:3].argmax(axis=1).tolist() == [1, 3, 5]  # types II, IV, VI
    assert probs[3] == pytest.approx(np.full(6, 1 / 6))


def test_tone_cut_points_follow_the_tone_tables_provenance() -> None:
    from fairderm.tone import FITZPATRICK_CUTPOINTS

    frame = tone_frame(["a"], np.array([0]))
    assert tone_cut_points(frame) == DEFAULT_ITA_CUT_POINTS
    frame.attrs["fairderm_tone"] = {"fitzpatrick_scheme": "kinyanjui", "calibration": None}
    assert tone_cut_points(frame) == tuple(FITZPATRICK_CUTPOINTS["kinyanjui"])
    fitted = [50.0, 30.0, 30.0, 0.0, -25.0]
    frame.attrs["fairderm_tone"] = {"calibration": {"scale": "fitzpatrick", "cutpoints": fitted}}
    assert tone_cut_points(frame) == tuple(fitted)
    # equal neighbours (30, 30) leave type III empty
    assert tone_probabilities(frame, cut_points=tuple(fitted))[0, 2] == 0.0


def test_tone_table_without_ita_is_rejected() -> None:
    from fairderm.errors import InputError

    with pytest.raises(InputError, match="ita"):
        tone_probabilities(pd.DataFrame({"image_id": ["a"], "status": ["ok"]}))


def test_warm_started_router_starts_as_the_erm_head_and_never_ends_worse_on_validation(splits) -> None:
    erm = _fit("linear", "erm", splits, CONFIG.model_copy(update={"max_epochs": 10})).model
    train, val, _ = splits
    result = fit(
        "moe", "erm", train, val, n_classes=2, constraints=LOSS_CONSTRAINTS,
        config=CONFIG.model_copy(update={"max_epochs": 10}), warm_start=erm,
    )
    with torch.no_grad():
        erm_loss = float(torch.nn.functional.cross_entropy(erm(val.features), val.y))
    start = result.history[0]
    assert start["epoch"] == 0
    assert start["val_loss"] == pytest.approx(erm_loss, rel=1e-5)
    assert min(h["score"] for h in result.history) <= start["score"]
    chosen = next(h for h in result.history if h["epoch"] == result.best_epoch)
    assert chosen["score"] <= start["score"]


def test_router_erm_head_is_train_heads_head_and_loop_given_its_settings() -> None:
    # Balanced classes (class weights 1) and features whose spread never meets either std floor: with
    # train_head's dropout, learning rate and weight decay the router's ERM baseline is train_head's fit.
    from fairderm.inference._head import _fit as train_head_fit

    (x_train, y_train), (x_val, y_val) = planted_head_features(90, 0), planted_head_features(45, 1)
    scale = x_train.std(0)  # every training column's spread becomes 1: no floor binds (the head standardises)

    def arrays(x: torch.Tensor, y: torch.Tensor) -> SplitArrays:
        return SplitArrays(x / scale, torch.full((len(y), 6), 1 / 6), y, torch.zeros(len(y), dtype=torch.long))

    train, val = arrays(x_train, y_train), arrays(x_val, y_val)
    config = TrainConfig(dropout=0.2, head_lr=1e-3, weight_decay=1e-2, batch_size=32, max_epochs=60, patience=4,
                         min_epochs=1, seed=4)
    router = fit("linear", "erm", train, val, n_classes=3, constraints=LOSS_CONSTRAINTS, config=config)
    head, log, best_epoch, weights = train_head_fit(
        train.features, train.y, val.features, val.y, n_classes=3, kind="linear", seed=4, max_epochs=60,
        patience=4, lr=1e-3, weight_decay=1e-2, batch_size=32,
    )
    assert torch.equal(weights, torch.ones(3))
    assert router.best_epoch > 1 and router.epochs_run < 60  # it learnt, then stopped early
    assert (router.best_epoch, router.epochs_run) == (best_epoch, len(log))
    assert [h["val_loss"] for h in router.history] == pytest.approx([r["val_loss"] for r in log], rel=1e-6)
    mine, theirs = router.model.state_dict(), head.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.allclose(mine[k], theirs[k], atol=1e-6) for k in mine)
