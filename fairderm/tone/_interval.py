"""The skin colour's patch bootstrap and ITA's interval, with the capture's uncertainty."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from fairderm.tone import _constancy
from fairderm.tone._color import ita_degrees, lab_to_linear, linear_to_lab

if TYPE_CHECKING:
    from fairderm.tone._pipeline import ToneParameters


def patch_bootstrap_colour(
    lab: np.ndarray, healthy: np.ndarray, params: ToneParameters
) -> tuple[np.ndarray, np.ndarray]:
    """CIELAB colour of the healthy skin and its patch-bootstrap replicates, shape (3,) and (n_boot, 3).

    The image is cut into a ``patch_grid`` x ``patch_grid`` grid; each patch
    contributes the mean colour of its healthy pixels, weighted by their
    count. The skin colour is the weighted 20%-trimmed mean over patches
    (robust to a few patches of shadow or missed lesion); the replicates
    resample patches with replacement (a block bootstrap, which respects
    the spatial correlation of pixels).
    """
    grid = params.patch_grid
    height, width = healthy.shape
    rows = np.minimum(np.arange(height) * grid // height, grid - 1)
    cols = np.minimum(np.arange(width) * grid // width, grid - 1)
    patch = (rows[:, None] * grid + cols[None, :])[healthy]
    pixels = lab[healthy]
    counts = np.bincount(patch, minlength=grid * grid).astype(np.float64)
    present = counts > 0
    counts = counts[present]
    means = np.stack(
        [np.bincount(patch, weights=pixels[:, k], minlength=grid * grid)[present] for k in range(3)], axis=1
    ) / counts[:, None]
    colour = np.array([_trimmed_means(means[:, k], counts[None, :])[0] for k in range(3)])
    weights = _patch_draws(counts.size, params.n_boot, params.seed) * counts[None, :]
    replicates = np.stack([_trimmed_means(means[:, k], weights) for k in range(3)], axis=1)
    return colour, replicates


def ita_interval(replicates: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the ITA of CIELAB replicates (n, 3)."""
    low, high = np.percentile(ita_degrees(replicates[:, 0], replicates[:, 2]), [2.5, 97.5])
    return float(low), float(high)


def with_capture_uncertainty(
    replicates: np.ndarray, cast_cov: np.ndarray, exposure_sd: float, seed: int
) -> np.ndarray:
    """The replicates, each under a cast and an exposure error drawn from what is known of them.

    Replicate ``i`` is multiplied, in linear RGB, by the von Kries gains of a
    cast ``delta_i ~ N(0, cast_cov)`` (log chromaticity; a grey's luminance kept) and
    by ``2 ** e_i`` with ``e_i ~ N(0, exposure_sd^2)`` stops. The
    percentiles of their ITA then give an interval for the skin's ITA
    that carries the colour constancy's remaining uncertainty and the
    unknown exposure as well as the skin's variation across the photograph.
    """
    normal = _standard_normals(replicates.shape[0], seed)
    cast = normal[:, :2] @ np.linalg.cholesky(cast_cov + 1e-12 * np.eye(2)).T
    gains = _constancy.gains_from_cast(cast) * 2.0 ** (exposure_sd * normal[:, 2:3])
    linear = lab_to_linear(replicates) * gains
    return linear_to_lab(linear.astype(np.float32)).astype(np.float64)


@functools.lru_cache(maxsize=8)
def _standard_normals(n: int, seed: int) -> np.ndarray:
    """(n, 3) standard normal draws of the capture terms, drawn once per process (seed offset from the patches')."""
    draws = np.random.default_rng([seed, 1]).standard_normal((n, 3))
    draws.flags.writeable = False
    return draws


@functools.lru_cache(maxsize=128)
def _patch_draws(n_patches: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_patches) multinomial counts of a patch bootstrap.

    They depend only on the number of patches and the seed, so each process
    draws them once per patch count (drawing costs more than the rest of
    the bootstrap).
    """
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_patches, np.full(n_patches, 1.0 / n_patches), size=n_boot)
    draws.flags.writeable = False
    return draws


def _trimmed_means(values: np.ndarray, weights: np.ndarray, trim: float = 0.2) -> np.ndarray:
    """Weighted ``trim``-trimmed mean of ``values`` for each row of ``weights`` (vectorised over rows).

    Each value's weight is cut to the part of its cumulative-weight interval
    that falls inside [trim, 1 - trim] of the row's total.
    """
    order = np.argsort(values)
    sorted_values = values[order]
    sorted_weights = weights[:, order]
    total = sorted_weights.sum(axis=1, keepdims=True)
    upper = np.cumsum(sorted_weights, axis=1) / total
    lower = upper - sorted_weights / total
    kept = np.clip(np.minimum(upper, 1.0 - trim) - np.maximum(lower, trim), 0.0, None)
    return (kept * sorted_values).sum(axis=1) / np.maximum(kept.sum(axis=1), 1e-12)


def interval_spread(ita_low: float, ita_high: float, colour: np.ndarray) -> float:
    """Length, in CIELAB units, of the arc an ITA interval spans at the skin colour's radius.

    ITA is the angle of (b*, L* - 50); an interval of ``ita_high - ita_low``
    degrees at radius ``hypot(L* - 50, b*)`` covers this much colour.
    """
    radius = float(np.hypot(colour[0] - 50.0, colour[2]))
    return float(np.radians(ita_high - ita_low) * radius)
