"""Temperature scaling: the fit, and that heads and routers store and apply it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from fairderm.inference._temperature import TEMPERATURE_BOUNDS, fit_temperature, mean_nll


def _sampled(true_temperature: float, n: int = 4000, k: int = 4, seed: int = 0):
    """Logits z and labels drawn from softmax(z / T): the calibrating temperature is T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(n, k))
    probs = softmax(logits / true_temperature, axis=1)
    y = np.array([rng.choice(k, p=p) for p in probs])
    return logits, y


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature_that_generated_the_labels(true_temperature):
    logits, y = _sampled(true_temperature)
    fitted = fit_temperature(logits, y)
    assert fitted.temperature == pytest.approx(true_temperature, rel=0.1)
    assert fitted.nll_after <= fitted.nll_before + 1e-12
    assert fitted.n == len(y)


def test_overconfident_logits_get_a_temperature_above_one_and_a_lower_nll():
    logits, y = _sampled(1.0)
    fitted = fit_temperature(logits * 3.0, y)  # three times too sure
    assert fitted.temperature == pytest.approx(3.0, rel=0.1)
    assert fitted.nll_after < 0.9 * fitted.nll_before
    assert mean_nll(logits * 3.0, y, fitted.temperature) == pytest.approx(fitted.nll_after)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 60),
    k=st.integers(2, 6),
    scale=st.floats(0.01, 30.0),
    seed=st.integers(0, 2**16),
)
def test_fit_never_raises_the_nll_and_stays_in_bounds(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, size=(n, k))
    y = rng.integers(0, k, size=n)
    fitted = fit_temperature(logits, y)
    assert TEMPERATURE_BOUNDS[0] <= fitted.temperature <= TEMPERATURE_BOUNDS[1]
    assert fitted.nll_after <= fitted.nll_before + 1e-9
    # a temperature never changes a prediction
    assert (np.argmax(logits / fitted.temperature, axis=1) == np.argmax(logits, axis=1)).all()


@pytest.mark.parametrize("y", [np.array([1]), np.array([2, 2, 2])])
def test_one_case_or_one_class_keeps_temperature_one(y):
    logits = np.random.default_rng(0).normal(size=(len(y), 3))
    assert fit_temperature(logits, y).temperature == 1.0


def test_bad_shapes_and_labels_are_rejected():
    with pytest.raises(ValueError, match="logits must be"):
        fit_temperature(np.zeros((3, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="class index"):
        fit_temperature(np.zeros((2, 2)), np.array([0, 2]))


def test_classifier_head_divides_its_logits_by_its_temperature():
    from fairderm.inference import ClassifierHead

    head = ClassifierHead(3)
    head.eval()
    features = torch.randn(5, 1280)
    raw = head(features)
    head.temperature.fill_(2.0)
    assert torch.allclose(head(features), raw / 2.0)


def test_group_temperatures_find_the_group_the_model_is_overconfident_on():
    from fairderm.inference._temperature import fit_group_temperatures

    rng = np.random.default_rng(1)
    n = 3000
    logits = rng.normal(0.0, 3.0, size=(n, 4))
    group = rng.integers(0, 3, size=n)
    membership = np.eye(3)[group]
    truth = np.array([1.0, 1.0, 3.0])[group]  # labels are three times less certain in group 2
    probs = softmax(logits / truth[:, None], axis=1)
    y = np.array([rng.choice(4, p=p) for p in probs])
    fitted = fit_group_temperatures(logits, y, membership, shrinkage=0.0)
    factors = np.exp(fitted.log_adjustment)
    assert factors[2] == pytest.approx(3.0, rel=0.15)
    assert factors[:2] == pytest.approx([1.0, 1.0], abs=0.15)
    assert fitted.nll_after < fitted.nll_before
    assert fitted.n_per_group == pytest.approx(np.bincount(group, minlength=3))


def test_group_temperatures_leave_an_empty_group_at_the_global_temperature():
    from fairderm.inference._temperature import fit_group_temperatures

    logits, y = _sampled(1.0, n=500)
    membership = np.zeros((len(y), 3))
    membership[:, 0] = 1.0  # nobody in groups 1 and 2
    fitted = fit_group_temperatures(logits * 2.0, y, membership)
    assert fitted.log_adjustment[1:] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert np.exp(fitted.log_adjustment[0]) == pytest.approx(2.0, rel=0.15)
    record = fitted.to_dict(["a", "b", "c"])
    assert record["temperature_factor"]["b"] == 1.0 and record["n_val"]["a"] == 500.0


def test_group_temperatures_reject_misaligned_inputs():
    from fairderm.inference._temperature import fit_group_temperatures

    with pytest.raises(ValueError, match="one row per case"):
        fit_group_temperatures(np.zeros((3, 2)), np.zeros(3, dtype=int), np.ones((4, 1)))
