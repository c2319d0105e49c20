"""Colour arithmetic: fast sRGB -> CIELAB, ITA, and nearest reference colour by CIEDE2000.

The conversion follows IEC 61966-2-1 (sRGB transfer curve and primaries) and
CIE 15:2004 (CIELAB, D65 white, 2-degree observer), the same constants as
:func:`skimage.color.rgb2lab`, but it linearises 8-bit values with a
256-entry lookup table and works in float32, which makes it several times
faster on the small images the estimator works on
(``benchmarks/tone_speed.py`` times both; ``tests/tone/test_scales.py`` checks
they agree).
"""

from __future__ import annotations

import numpy as np

SRGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
"""Linear sRGB -> CIE XYZ, D65 (IEC 61966-2-1)."""
LUMINANCE_WEIGHTS = SRGB_TO_XYZ[1]
"""Weights of linear R, G, B in the luminance Y."""
# D65 reference white, 2-degree observer (as in scikit-image).
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
# Rows divided by the white, so that X/Xn, Y/Yn, Z/Zn come out of one product.
_LINEAR_TO_XYZN = (SRGB_TO_XYZ / D65_WHITE[:, None]).astype(np.float32)

_DELTA = 6.0 / 29.0
_DELTA_CUBE = _DELTA**3
_LINEAR_SLOPE = 1.0 / (3.0 * _DELTA**2)


def _srgb_decode(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve inverted: encoded [0, 1] -> linear [0, 1]."""
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _srgb_encode(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve: linear [0, 1] -> encoded [0, 1]."""
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


# Linear value of each 8-bit code: one table look-up replaces a power per channel.
SRGB8_TO_LINEAR = _srgb_decode(np.arange(256) / 255.0).astype(np.float32)


def srgb8_to_linear(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB (..., 3) uint8 -> linear RGB float32 in [0, 1]."""
    return SRGB8_TO_LINEAR[rgb]


# CIELAB's f(t) tabulated on [0, 2] (gains from colour constancy can push
# X/Xn past 1). Rounding to the nearest of 2**17 entries (and float32) changes L*, a*, b*
# by less than 0.05, and a look-up costs a tenth of np.cbrt.
_F_TABLE_MAX = 2.0
_F_TABLE_SCALE = float(2**17) / _F_TABLE_MAX
_F_GRID = np.arange(2**17 + 1) / _F_TABLE_SCALE
_F_TABLE = np.where(
    _F_GRID > _DELTA_CUBE, np.cbrt(_F_GRID), _F_GRID * _LINEAR_SLOPE + 4.0 / 29.0
).astype(np.float32)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB (..., 3) -> CIELAB (..., 3) float32 under D65 (CIE 15:2004)."""
    xyz = np.asarray(linear, dtype=np.float32) @ _LINEAR_TO_XYZN.T
    np.clip(xyz, 0.0, _F_TABLE_MAX, out=xyz)
    xyz *= _F_TABLE_SCALE
    xyz += 0.5
    f = _F_TABLE[xyz.astype(np.int32)]
    lab = np.empty_like(f)
    np.multiply(f[..., 1], 116.0, out=lab[..., 0])
    lab[..., 0] -= 16.0
    np.subtract(f[..., 0], f[..., 1], out=lab[..., 1])
    lab[..., 1] *= 500.0
    np.subtract(f[..., 1], f[..., 2], out=lab[..., 2])
    lab[..., 2] *= 200.0
    return lab


def srgb8_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB (..., 3) -> CIELAB float32 (D65); matches ``skimage.color.rgb2lab``."""
    return linear_to_lab(srgb8_to_linear(rgb))


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> linear sRGB (..., 3), float64, not clipped."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyzn = np.where(f > _DELTA, f**3, (f - 4.0 / 29.0) / _LINEAR_SLOPE)
    return (xyzn * D65_WHITE) @ np.linalg.inv(SRGB_TO_XYZ).T


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> encoded sRGB in [0, 1] (float64), clipped to the gamut."""
    return _srgb_encode(lab_to_linear(lab))


def hex_to_lab(codes: list[str] | tuple[str, ...]) -> np.ndarray:
    """``['f6ede4', ...]`` -> CIELAB (n, 3) float64."""
    rgb = np.array([[int(c.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)] for c in codes])
    return linear_to_lab(srgb8_to_linear(rgb.astype(np.uint8))).astype(np.float64)


def log_chromaticity(linear: np.ndarray) -> np.ndarray:
    """(log R/G, log B/G) of linear RGB (..., 3): a diagonal cast is a translation here."""
    floor = np.maximum(linear, 1e-4)
    return np.stack([np.log(floor[..., 0] / floor[..., 1]), np.log(floor[..., 2] / floor[..., 1])], axis=-1)


def ita_degrees(lightness: np.ndarray | float, b_star: np.ndarray | float) -> np.ndarray:
    """Individual typology angle in degrees (Chardon, Cretois & Bourden 1991).

    ``ITA = arctan((L* - 50) / b*) * 180 / pi``. It is computed as
    ``atan2(L* - 50, b*)``, identical for the yellowish colours of skin
    (``b* > 0``) and continuous where ``b*`` approaches zero.
    """
    return np.degrees(np.arctan2(np.asarray(lightness) - 50.0, np.asarray(b_star)))


def nearest_by_ciede2000(lab: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Index of the nearest reference colour for each Lab colour, by CIEDE2000.

    Parameters
    ----------
    lab
        (n, 3) colours.
    references
        (k, 3) reference colours (e.g. the Monk swatches).

    Notes
    -----
    CIEDE2000 (Sharma, Wu & Dalal 2005) from
    :func:`skimage.color.deltaE_ciede2000`.
    """
    from skimage.color import deltaE_ciede2000

    lab = np.atleast_2d(np.asarray(lab, dtype=np.float64))
    refs = np.asarray(references, dtype=np.float64)
    distance = deltaE_ciede2000(lab[:, None, :], refs[None, :, :])
    return np.argmin(distance, axis=1)
