"""Vignetting: a radial falloff of the skin's linear intensity, measured and undone."""

from __future__ import annotations

import numpy as np

from fairderm.tone import _skin
from fairderm.tone._color import LUMINANCE_WEIGHTS

# Vignetting strengths below this are not corrected; above this, not believed.
MIN_VIGNETTING = 0.02
MAX_VIGNETTING = 0.6


def vignetting_strength(linear: np.ndarray, healthy: np.ndarray) -> float:
    """Strength ``v`` of a radial falloff ``1 - v r^2`` of the skin's linear intensity (may be negative).

    The skin's luminance Y is fitted by least squares with a quadratic
    surface over the healthy pixels (x, y in [-1, 1]). A falloff of linear
    intensity is exactly quadratic in Y (it would only be approximately so
    in L*). The quadratic part is the sum of an isotropic falloff
    (vignetting, lens and flash) and of shading across a limb or trunk,
    which darkens along one direction only (rank one), so the larger
    eigenvalue of the quadratic form is the isotropic part alone:
    ``Y0 (1 - v (x^2 + y^2) / 2)`` gives ``v = -2 lambda / Y0`` (r = 0 at
    the centre, 1 at the corners). Returns 0 when the skin does not span
    the frame.
    """
    x_axis, y_axis = _skin.frame_axes(healthy.shape)
    columns, rows = healthy.any(axis=0), healthy.any(axis=1)
    if np.ptp(x_axis[columns]) < 0.5 or np.ptp(y_axis[rows]) < 0.5:
        return 0.0
    # The normal equations need sums of x^i y^j (i + j <= 4) over the healthy
    # pixels and of Y x^i y^j (i + j <= 2): two small matrix products with
    # Vandermonde matrices instead of a design matrix over every pixel.
    vx = np.vander(x_axis, 5, increasing=True)
    vy = np.vander(y_axis, 5, increasing=True)
    mask = healthy.astype(np.float64)
    luminance = np.where(healthy, linear @ LUMINANCE_WEIGHTS, 0.0)
    power = vy.T @ mask @ vx  # power[j, i] = sum of x^i y^j
    weighted = vy[:, :3].T @ luminance @ vx[:, :3]
    terms = ((0, 0), (1, 0), (0, 1), (2, 0), (0, 2), (1, 1))  # (i, j): 1, x, y, x^2, y^2, xy
    gram = np.array([[power[j1 + j2, i1 + i2] for i2, j2 in terms] for i1, j1 in terms])
    moment = np.array([weighted[j, i] for i, j in terms])
    coef = np.linalg.solve(gram + 1e-6 * np.eye(6), moment)
    quadratic = np.array([[coef[3], coef[5] / 2], [coef[5] / 2, coef[4]]])
    isotropic = float(np.linalg.eigvalsh(quadratic)[-1])
    return -2.0 * isotropic / max(float(coef[0]), 1e-3)


def radial_falloff(shape: tuple[int, int], strength: float) -> np.ndarray:
    """The falloff ``1 - strength r^2`` over a frame (r = 0 at the centre, 1 at the corners)."""
    return (1.0 - strength * _skin.centre_distance(shape) ** 2).astype(np.float32)


def undo_vignetting(linear: np.ndarray, healthy: np.ndarray, done: float) -> float:
    """The further vignetting to undo once ``done`` has been divided out (0 if negligible).

    Dividing by the falloff brings the skin to the level at the centre of
    the frame, while one-directional shading stays in (the trimmed mean
    averages it out). The residual may be negative (the first estimate was
    too strong), but the total falloff at the corners stays within
    ``[1 - 0.6, 1]``.
    """
    residual = vignetting_strength(linear, healthy)
    if abs(residual) <= MIN_VIGNETTING:
        return 0.0
    low = 1.0 - 1.0 / (1.0 - done)  # total corner factor back to 1
    high = 1.0 - (1.0 - MAX_VIGNETTING) / (1.0 - done)
    return float(np.clip(residual, low, high))
