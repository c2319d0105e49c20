"""Temperature scaling: one scalar that calibrates a classifier's probabilities.

A network trained to minimise cross-entropy and stopped early on a small
validation set is usually over-confident: its softmax probabilities are
sharper than its accuracy warrants (Guo et al. 2017, "On calibration of
modern neural networks"). Dividing the logits by one temperature ``T > 0``,
fitted by maximum likelihood on held-out cases, fixes most of that without
changing any prediction: the arg-max, hence accuracy and every group's
accuracy, is the same for every ``T``.

The trained heads (``fairderm infer --backend backbone``) and every torch
model of the router fit ``T`` on their validation split and keep it as a
buffer, so that the probabilities they write are the calibrated ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_softmax

TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)
"""Search interval of ``T`` (and bound of each group factor)."""


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it did to the held-out negative log-likelihood.

    Attributes
    ----------
    temperature
        ``T``; probabilities are ``softmax(logits / T)``.
    nll_before, nll_after
        Mean negative log-likelihood of the held-out cases at ``T = 1`` and at ``T``.
    n
        Held-out cases the fit used.
    """

    temperature: float
    nll_before: float
    nll_after: float
    n: int

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "method": "temperature scaling (Guo et al. 2017), fitted on the validation split",
            "temperature": round(self.temperature, 6),
            "val_nll_before": round(self.nll_before, 6),
            "val_nll_after": round(self.nll_after, 6),
            "n_val": self.n,
        }


def mean_nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` at the true classes."""
    log_probs = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-log_probs[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> TemperatureFit:
    """The ``T`` minimising the mean NLL of ``softmax(logits / T)`` on ``(logits, y)``.

    ``logits`` is ``(n, k)``, ``y`` the class index per row (``0 <= y < k``).
    A single case, or cases all of one class, carry no information about
    calibration beyond "be sure": the fit then keeps ``T = 1`` rather than
    run to a bound.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(y):
        raise ValueError(f"logits must be (n, k) with n = len(y); got {logits.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ValueError("class index out of range")
    before = mean_nll(logits, y) if len(y) else float("nan")
    if len(y) < 2 or len(np.unique(y)) < 2 or not np.isfinite(logits).all():
        return TemperatureFit(1.0, before, before, len(y))
    low, high = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    result = minimize_scalar(
        lambda log_t: mean_nll(logits, y, float(np.exp(log_t))),
        bounds=(low, high), method="bounded", options={"xatol": 1e-4},
    )
    temperature = float(np.exp(result.x))
    after = mean_nll(logits, y, temperature)
    if after > before:  # never worse than no scaling on the data it was fitted on
        return TemperatureFit(1.0, before, before, len(y))
    return TemperatureFit(temperature, before, after, len(y))


@dataclass(frozen=True)
class GroupTemperatureFit:
    """Per-group log-temperature adjustments on top of a global temperature.

    Attributes
    ----------
    log_adjustment
        ``delta_j`` per group (a case with membership ``p`` is divided by
        ``T * exp(p @ delta)``).
    nll_before, nll_after
        Mean held-out NLL with the global temperature alone and with the adjustments.
    n_per_group
        Soft count of held-out cases per group (sum of memberships).
    shrinkage
        Weight of the ridge penalty pulling every ``delta_j`` to 0.
    """

    log_adjustment: np.ndarray
    nll_before: float
    nll_after: float
    n_per_group: np.ndarray
    shrinkage: float

    def to_dict(self, names: list[str] | None = None) -> dict[str, object]:
        names = names or [str(j) for j in range(len(self.log_adjustment))]
        return {
            "method": "temperature per group (calibration within groups), ridge-shrunk to the global one",
            "temperature_factor": {
                n: round(float(np.exp(d)), 6) for n, d in zip(names, self.log_adjustment, strict=True)
            },
            "n_val": {n: round(float(c), 2) for n, c in zip(names, self.n_per_group, strict=True)},
            "val_nll_before": round(self.nll_before, 6),
            "val_nll_after": round(self.nll_after, 6),
            "shrinkage": self.shrinkage,
        }


def fit_group_temperatures(
    logits: np.ndarray, y: np.ndarray, membership: np.ndarray, *, shrinkage: float = 5.0
) -> GroupTemperatureFit:
    """Calibration within groups: one log-temperature adjustment per group, fitted on held-out cases.

    ``logits`` are already divided by the global temperature; ``membership``
    is ``(n, g)`` with rows summing to 1 (soft membership, e.g. the tone
    probabilities a router reads). Minimises the summed NLL of
    ``softmax(logits / exp(membership @ delta))`` plus ``shrinkage * sum(delta**2)``,
    so a group with few held-out cases stays near the global temperature.
    A model that is as sure on a group it serves worse (over-confident on
    dark skin, say) gets a larger temperature there; no prediction changes.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    membership = np.asarray(membership, dtype=np.float64)
    if membership.shape[0] != len(y) or logits.shape[0] != len(y):
        raise ValueError("logits, y and membership need one row per case")
    n_groups = membership.shape[1]
    rows = np.arange(len(y))
    before = mean_nll(logits, y) if len(y) else float("nan")

    def objective(delta: np.ndarray) -> tuple[float, np.ndarray]:
        scaled = logits / np.exp(membership @ delta)[:, None]
        log_probs = log_softmax(scaled, axis=1)
        nll = -log_probs[rows, y]
        # d nll_i / d log(scale_i) = z_y - E_p[z], with z the scaled logits and p their softmax
        per_case = scaled[rows, y] - (np.exp(log_probs) * scaled).sum(axis=1)
        grad = membership.T @ per_case + 2 * shrinkage * delta
        return float(nll.sum() + shrinkage * np.sum(delta**2)), grad

    if len(y) < 2 or not np.isfinite(logits).all():
        delta = np.zeros(n_groups)
    else:
        bound = np.log(TEMPERATURE_BOUNDS[1])
        delta = minimize(objective, np.zeros(n_groups), jac=True, method="L-BFGS-B",
                         bounds=[(-bound, bound)] * n_groups).x
    after = mean_nll(logits / np.exp(membership @ delta)[:, None], y) if len(y) else before
    return GroupTemperatureFit(delta, before, after, membership.sum(axis=0), shrinkage)
