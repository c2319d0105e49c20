"""Analytic intervals for proportions, used as cross-checks of the bootstrap
and where the bootstrap degenerates (a proportion of exactly 0 or 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (scalars or same-shape arrays)."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    method: str
    confidence: float

    def to_dict(self) -> dict[str, object]:
        def plain(value: float | np.ndarray) -> object:
            return np.asarray(value).tolist()

        return {"estimate": plain(self.estimate), "low": plain(self.low), "high": plain(self.high),
                "method": self.method, "confidence": self.confidence}


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(ndtri(0.5 + confidence / 2.0))


def _unwrap(value: np.ndarray) -> float | np.ndarray:
    return float(value) if np.ndim(value) == 0 else value


def wilson_interval(successes: ArrayLike, n: ArrayLike, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    p~ = (p + z^2 / 2n) / (1 + z^2 / n), half-width
    z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2). NaN where n = 0.

    Parameters
    ----------
    successes, n
        Counts (broadcast together).
    confidence
        Two-sided coverage, e.g. 0.95.
    """
    x = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if np.any(x < 0) or np.any(x > m):
        raise ValueError("successes must lie in [0, n]")
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(m > 0, x / np.where(m > 0, m, 1.0), np.nan)
        denominator = 1.0 + z * z / m
        centre = (p + z * z / (2.0 * m)) / denominator
        half = z / denominator * np.sqrt(p * (1.0 - p) / m + z * z / (4.0 * m * m))
        low = np.where(m > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(m > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return Interval(_unwrap(p), _unwrap(low), _unwrap(high), "wilson", confidence)


def newcombe_interval(
    successes1: ArrayLike, n1: ArrayLike, successes2: ArrayLike, n2: ArrayLike, *, confidence: float = 0.95
) -> Interval:
    """Newcombe's hybrid score interval for p1 - p2 (Newcombe 1998, method 10).

    With Wilson limits (l1, u1), (l2, u2): d - sqrt((p1 - l1)^2 + (u2 - p2)^2)
    to d + sqrt((u1 - p1)^2 + (p2 - l2)^2).
    """
    first = wilson_interval(successes1, n1, confidence=confidence)
    second = wilson_interval(successes2, n2, confidence=confidence)
    p1, p2 = np.asarray(first.estimate), np.asarray(second.estimate)
    d = p1 - p2
    low = d - np.sqrt((p1 - first.low) ** 2 + (second.high - p2) ** 2)
    high = d + np.sqrt((first.high - p1) ** 2 + (p2 - second.low) ** 2)
    return Interval(_unwrap(d), _unwrap(low), _unwrap(high), "newcombe", confidence)
