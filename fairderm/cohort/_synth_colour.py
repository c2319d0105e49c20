"""Colour science for the synthetic cohort: sRGB <-> CIELAB, ITA, skin and Monk colours.

Conversions follow IEC 61966-2-1 (sRGB, D65) and CIE 15:2004 (CIELAB, 2 degree
observer, D65 white), the same conventions as ``skimage.color.rgb2lab``, so
that a tone estimator reading the images measures in the frame the ground
truth is recorded in.

Skin colour per Fitzpatrick type
--------------------------------
The individual typology angle ITA = arctan((L* - 50) / b*) in degrees
(Chardon, Cretois & Hourseau 1991, Int J Cosmet Sci 13:191) sorts skin into
six categories (Chardon 1991; Del Bino et al. 2006, Pigment Cell Res 19:606;
Del Bino & Bernerd 2013, Br J Dermatol 169 Suppl 3:33): very light > 55,
light 41-55, intermediate 28-41, tan 10-28, brown -30-10, dark < -30.
The generator equates Fitzpatrick type k with the k-th category (an
approximate but common correspondence) and draws, per type, ITA inside its
category and b* around the values those studies report (about 12-13 for very
light skin rising to about 19-20 for tan and brown skin, a little lower for
the darkest skin), so that L* spans roughly 78 (type I) to 28 (type VI).
"""

from __future__ import annotations

import numpy as np

# sRGB (linear) -> CIE XYZ, D65 (IEC 61966-2-1).
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
LUMINANCE_WEIGHTS = _XYZ_FROM_RGB[1]
"""Weights of linear R, G, B in the luminance Y."""

_EPSILON = 216.0 / 24389.0  # CIE 15:2004 constants of the L* cube-root knee
_KAPPA = 24389.0 / 27.0


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer function (values in [0, 1])."""
    encoded = np.asarray(encoded, dtype=np.float64)
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer function to clipped linear values."""
    linear = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB (..., 3) -> CIELAB (..., 3), D65."""
    xyz = np.asarray(linear, dtype=np.float64) @ _XYZ_FROM_RGB.T / _D65_WHITE
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16.0) / 116.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a_star = 500.0 * (f[..., 0] - f[..., 1])
    b_star = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a_star, b_star], axis=-1)


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3), D65 -> linear sRGB (..., 3), unclipped; keeps float32 input in float32."""
    lab = np.asarray(lab)
    if lab.dtype != np.float32:
        lab = lab.astype(np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    cube = f * f * f
    relative = np.where(cube > _EPSILON, cube, (116.0 * f - 16.0) / _KAPPA)
    xyz = relative * _D65_WHITE.astype(lab.dtype)
    return xyz @ _RGB_FROM_XYZ.T.astype(lab.dtype)


def srgb8_to_lab(rgb8: np.ndarray) -> np.ndarray:
    """8-bit sRGB (..., 3) -> CIELAB."""
    return linear_to_lab(srgb_to_linear(np.asarray(rgb8, dtype=np.float64) / 255.0))


def ita_degrees(lightness: np.ndarray | float, b_star: np.ndarray | float) -> np.ndarray:
    """Individual typology angle, arctan((L* - 50) / b*) in degrees (Chardon 1991)."""
    return np.degrees(np.arctan2(np.asarray(lightness) - 50.0, np.asarray(b_star)))


# Chardon 1991 / Del Bino 2006 ITA categories, Fitzpatrick I-VI in that order.
# The open ends (above 55, below -30) are closed at values seen in
# colorimetric surveys so that L* stays inside roughly 28-78.
ITA_RANGES: tuple[tuple[float, float], ...] = (
    (55.0, 66.0), (41.0, 55.0), (28.0, 41.0), (10.0, 28.0), (-30.0, 10.0), (-55.0, -30.0),
)
# b* (yellowness) mean and spread per type, and a* (redness) mean and spread
# (Del Bino 2006 Fig. 2; Del Bino & Bernerd 2013 Table 1, rounded).
B_STAR_MEAN: tuple[float, ...] = (12.5, 14.5, 16.5, 18.5, 19.5, 17.0)
B_STAR_SD = 1.2
A_STAR_MEAN: tuple[float, ...] = (9.5, 10.0, 10.5, 11.0, 11.0, 10.0)
A_STAR_SD = 1.3

# Monk Skin Tone Scale swatches 1-10 (Monk 2019, public hex values).
MONK_HEX: tuple[str, ...] = (
    "f6ede4", "f3e7db", "f7ead0", "eadaba", "d7bd96",
    "a07e56", "825c43", "604134", "3a312a", "292420",
)
MONK_LAB: np.ndarray = srgb8_to_lab(
    np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in MONK_HEX], dtype=np.float64)
)


def nearest_monk(lab: np.ndarray) -> np.ndarray:
    """Monk tone 1-10 whose swatch is nearest in CIEDE2000 (Sharma 2005) to each colour."""
    from skimage.color import deltaE_ciede2000

    lab = np.atleast_2d(np.asarray(lab, dtype=np.float64))
    distances = deltaE_ciede2000(lab[:, None, :], MONK_LAB[None, :, :])
    return np.argmin(distances, axis=1) + 1


def darkness(ita: np.ndarray | float) -> np.ndarray:
    """0 for the lightest skin (ITA 55 and above) to 1 for dark skin (ITA -30 and below).

    Drives the tone-dependent look of lesions (erythema hidden by epidermal
    melanin, pigmented variants more common on dark skin).
    """
    return np.clip((55.0 - np.asarray(ita, dtype=np.float64)) / 85.0, 0.0, 1.0)
