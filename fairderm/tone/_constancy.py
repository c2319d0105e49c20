"""Colour constancy: estimate the illuminant and undo it with per-channel gains (von Kries).

Sources of evidence, combined in ``auto`` mode:

1. a **white reference** in the picture (paper, a ruler, a label): a large,
   bright, flat, unsaturated region that is not skin and enters the frame
   from its edge. Its linear RGB is the illuminant, up to a scale; it is
   used only if neutralising it leaves the skin a plausible skin colour
   (:func:`white_fits_skin`). Its luminance also sets the exposure
   (:func:`exposure_from_white`): a white of known reflectance should read
   that reflectance.
2. the **skin as memory colour** (:func:`skin_prior_cast`): healthy skin's
   chromaticity given its L* is known from colorimetric surveys, so its
   deviation from that prior, shrunk by a prior on the cast, estimates the
   cast (a Gaussian form of colour by correlation). With a white
   reference the two are precision-weighted.

The grey-world family of van de Weijer, Gevers & Gijsenij (2007)
(:func:`grey_world_family`: shades of grey, Finlayson & Trezzi 2004;
grey-edge) is kept for comparison only: a dermatology close-up is mostly
skin, and skin is not grey, so grey-world would turn the skin itself grey
(``benchmarks/tone_accuracy.py`` measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from fairderm.tone._color import LUMINANCE_WEIGHTS, SRGB_TO_XYZ, lab_to_linear, log_chromaticity
from fairderm.tone._skin import box_mean, channel_max, dilate


@dataclass(frozen=True)
class Illuminant:
    """An illuminant estimate: per-channel gains, where they came from, and how uncertain they are.

    ``gains`` undo the cast and, when a white reference set it, the
    exposure (``exposure_stops``).

    ``cast_cov`` is the covariance, in log chromaticity, of the cast that
    may remain after the gains are applied (the posterior of
    :func:`skin_prior_cast`, or the white reference's noise); ``None`` when
    the method gives none (no correction, grey-world), in which case the
    cast prior applies.
    """

    gains: np.ndarray
    source: str
    cast_cov: np.ndarray | None = None
    exposure_stops: float = 0.0
    """Exposure correction, in stops, included in ``gains`` (from a white reference; 0 without one)."""
    exposure_sd: float | None = None
    """SD, in stops, of the exposure left after the correction; None: the exposure prior applies."""

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.gains, 1.0))


NO_CORRECTION = Illuminant(gains=np.ones(3, dtype=np.float32), source="none")

WHITE_CHROMA_SD = 0.02
"""Noise of a white reference's log chromaticity as a measure of the cast (paper and rulers are not quite grey)."""

WHITE_REFLECTANCE = 0.85
"""Default luminance factor of a white reference: office paper and white plastic rulers reflect about 0.8-0.9 of the
light (paper of ISO 2470 brightness 85-95; Munsell N9-N9.5 is 0.79-0.88)."""

WHITE_EXPOSURE_SD = 0.2
"""SD, in stops, of the exposure a white reference sets: whites of unknown make reflect 0.65-0.92 (half a stop), and the
reference may be lit a little differently from the skin. The interval carries this instead of the exposure prior
when it is smaller."""

MAX_WHITE_EXPOSURE_STOPS = 1.0
"""A white reference may correct the exposure by at most this many stops either way: a white that reads further off is
more likely in shadow, angled to the light or not white than the photograph that far off."""


def exposure_from_white(
    white_luminance: float, reflectance: float = WHITE_REFLECTANCE, max_stops: float = MAX_WHITE_EXPOSURE_STOPS
) -> float:
    """Exposure correction, in stops, that brings a white reference's luminance to its reflectance.

    A diffuse white of luminance factor ``reflectance`` lit like the skin
    reads ``Y = reflectance`` in linear sRGB when the photograph is exposed
    so that a perfect diffuser reads 1 (the exposure the skin's CIELAB
    assumes). Reading ``white_luminance`` instead, the photograph is off by
    ``log2(reflectance / white_luminance)`` stops, clamped to ``max_stops``
    either way.
    """
    if not white_luminance > 0:
        return 0.0
    return float(np.clip(np.log2(reflectance / white_luminance), -max_stops, max_stops))


def gains_from_white(white_linear: np.ndarray) -> np.ndarray:
    """Gains that map a white of linear RGB ``white_linear`` to neutral grey.

    The green channel (which dominates luminance) keeps its level, so that
    the correction changes chromaticity, not exposure.
    """
    white = np.maximum(np.asarray(white_linear, dtype=np.float64), 1e-6)
    return (white[1] / white).astype(np.float32)


def minkowski_mean(values: np.ndarray, p: float) -> np.ndarray:
    """Minkowski p-mean per channel of an (n, 3) array (Finlayson & Trezzi 2004)."""
    values = np.abs(values.astype(np.float64))
    return np.power(np.mean(np.power(values, p), axis=0), 1.0 / p)


def find_white_reference(
    lab: np.ndarray,
    linear: np.ndarray,
    candidate: np.ndarray,
    skin_colour: np.ndarray,
    *,
    min_area_fraction: float = 0.01,
    step: float = 8.0,
    bright_step: float = 10.0,
    max_cast: float = 0.8,
) -> np.ndarray:
    """Mask of a white reference (paper, ruler, label), or an empty mask.

    A white reference is brighter than the skin by ``bright_step`` L* units
    (and above L* 60), not clipped in any channel, of a chromaticity that a
    cast could give a neutral surface (within ``max_cast`` of neutral in log
    chromaticity) and that the skin's does not explain (below: so that a
    pale, over-exposed patch of skin is not taken for paper), flat among its
    bright neighbours (so that the ticks and digits of a ruler do not count
    as texture), a connected region of at least ``min_area_fraction`` of the
    image that touches the frame's edge, and brighter by ``step`` L* units
    than the darker quarter of the pixels 2-6 px outside it.
    """
    lightness = lab[..., 0]
    empty = np.zeros(candidate.shape, dtype=bool)
    bright = (
        candidate
        & (lightness > max(60.0, float(skin_colour[0]) + bright_step))
        & (channel_max(linear) < 0.97)
    )
    if bright.sum() < min_area_fraction * bright.size:
        return empty  # most photographs: nothing bright enough, no chromaticity needed
    # In log chromaticity a cast is a translation: a white shows the cast
    # itself, the skin the cast plus the skin's own chromaticity (the prior
    # mean at its L*). So a white lies more than half the skin's own
    # chromaticity away from the skin, and within about a third of it from
    # the cast the skin implies, whatever the cast. (A limit on CIELAB chroma
    # would reject whites under tungsten light, as saturated as pale skin in
    # daylight, and accept pale, over-exposed skin.)
    own_chroma = expected_skin_chromaticity(float(skin_colour[0]))
    own = float(np.hypot(*own_chroma))
    skin_chroma = log_chromaticity(lab_to_linear(np.asarray(skin_colour, dtype=np.float64)))
    implied_cast = skin_chroma - own_chroma
    pixel_chroma = log_chromaticity(linear[bright])
    white_like = (
        (np.hypot(*pixel_chroma.T) < max_cast)  # a chromaticity a cast could give a neutral surface
        & (np.hypot(*(pixel_chroma - skin_chroma).T) > 0.5 * own)
        & (np.hypot(*(pixel_chroma - implied_cast).T) < 0.35 * own)
    )
    bright[bright] = white_like
    if bright.sum() < min_area_fraction * bright.size:
        return empty
    # Flatness among the bright neighbours only: the tick marks and digits of
    # a ruler do not make its body look textured, while glare on skin varies
    # smoothly everywhere.
    weight = box_mean(bright.astype(np.float32), 2)
    masked = np.where(bright, lightness, 0.0).astype(np.float32)
    mean = box_mean(masked, 2) / np.maximum(weight, 1e-6)
    square = box_mean(masked * masked, 2) / np.maximum(weight, 1e-6)
    local_sd = np.sqrt(np.maximum(square - mean * mean, 0.0))
    mask = bright & (local_sd < 2.5) & (weight >= 0.7)
    if mask.sum() < min_area_fraction * mask.size:
        return empty
    labels, count = ndi.label(mask)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    areas[0] = 0
    # Rulers, paper and labels enter the frame from its edge and end in a
    # sharp step; a bright flat patch inside the frame, or one that fades
    # into the skin, is more often scale, scar, glare or overexposed skin.
    edge = np.zeros_like(mask)
    edge[:2, :] = edge[-2:, :] = edge[:, :2] = edge[:, -2:] = True
    touches_edge = np.bincount(labels[edge], minlength=count + 1) > 0
    keep = (areas >= min_area_fraction * mask.size) & touches_edge
    keep[0] = False
    for index in np.flatnonzero(keep):
        region = labels == index
        near = dilate(region, 1)
        band = dilate(region, 6) & ~near
        if not band.any() or np.median(lightness[region]) - np.percentile(lightness[band], 25) < step:
            keep[index] = False
    return keep[labels]


def gains_from_cast(cast: np.ndarray) -> np.ndarray:
    """Per-channel gains that undo a cast given in log chromaticity, keeping a grey's luminance Y.

    ``cast`` is (2,) or (..., 2); the gains are (3,) or (..., 3).
    """
    cast = np.asarray(cast, dtype=np.float64)
    gains = np.stack([np.exp(-cast[..., 0]), np.ones(cast.shape[:-1]), np.exp(-cast[..., 1])], axis=-1)
    return (gains / (gains @ LUMINANCE_WEIGHTS)[..., None]).astype(np.float32)


def planckian_log_chromaticity(temperature: float) -> np.ndarray:
    """Log chromaticity (log R/G, log B/G, linear sRGB) of a black body at ``temperature`` kelvin.

    The chromaticity (x, y) is the cubic-spline approximation of the
    Planckian locus by Kim et al. (2002; US patent 7,024,034), valid from
    1667 K to 25000 K; it is taken to XYZ at unit luminance and to linear
    sRGB. D65 (6504 K, slightly off the locus) comes out near (0.06, 0.05).
    """
    t = float(temperature)
    if not 1667.0 <= t <= 25000.0:
        raise ValueError(f"the Planckian locus approximation covers 1667-25000 K, not {t:g} K")
    if t <= 4000.0:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222.0:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000.0:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    xyz = np.array([x / y, 1.0, (1.0 - x - y) / y])
    return log_chromaticity(np.linalg.solve(SRGB_TO_XYZ, xyz))


def _locus_direction() -> np.ndarray:
    """Unit direction of the Planckian locus in log chromaticity, from cool to warm (2500-10000 K).

    In log chromaticity the locus is nearly straight (under Wien's
    approximation it is exactly a line in 1/T): its principal direction over
    evenly spaced reciprocal temperatures, signed so that warm light (red up,
    blue down) is positive.
    """
    points = np.array([planckian_log_chromaticity(1e6 / mired) for mired in np.linspace(100.0, 400.0, 31)])
    centred = points - points.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    return direction if direction[0] > 0 else -direction


LOCUS_DIRECTION = _locus_direction()
"""Unit vector of the Planckian locus in log chromaticity (warm positive), about (0.49, -0.87)."""


def cast_prior_covariance(locus_sd: float, tint_sd: float) -> np.ndarray:
    """Prior covariance of the cast left after the camera's white balance, in log chromaticity.

    Light sources lie near the Planckian (black-body) and daylight loci, so
    a camera's white-balance error is mostly a wrong colour temperature
    (along the locus: warm-cool, ``locus_sd``) and less often a tint across
    it (green-magenta, as under some fluorescent and LED lamps, ``tint_sd``).
    Along the locus 0.7 log-chromaticity units are 100 mired (e.g. 5000 K
    to 10000 K).
    """
    along = np.outer(LOCUS_DIRECTION, LOCUS_DIRECTION)
    return locus_sd**2 * along + tint_sd**2 * (np.eye(2) - along)


# Mean b* of skin per ITA category (very light ... dark), at the category
# centres, from colorimetric surveys (Del Bino et al. 2006, Fig. 2; Del Bino &
# Bernerd 2013, Table 1): yellowness rises from the lightest skin to tan and
# brown skin and falls a little for the darkest.
_PRIOR_ITA_CENTRES = (-42.5, -10.0, 19.0, 34.5, 48.0, 60.5)
_PRIOR_B_MEANS = (17.0, 19.5, 18.5, 16.5, 14.5, 12.5)
_PRIOR_B_SD = 2.0
_PRIOR_A_MEAN = 10.5
_PRIOR_A_SD = 2.0


def _skin_prior() -> tuple[np.ndarray, np.ndarray]:
    """Healthy-skin log chromaticity under D65 as a function of L*: coefficients and residual covariance.

    Skin colours are laid on a fixed grid (no randomness): ITA from -55 to 66
    degrees, b* around the survey means above (SD 2), a* ~ N(10.5, 2), L*
    from ITA and b*. The chromaticity is regressed on (1, L/100, (L/100)^2)
    with Gaussian weights; the residual covariance is the prior's spread.
    Conditioning on L* matters because darker skin is more saturated, and a
    luminance-preserving cast leaves L* almost unchanged.
    """
    ita_degrees = np.linspace(-55.0, 66.0, 61)
    z = np.linspace(-2.5, 2.5, 11)
    weight_z = np.exp(-0.5 * z**2)
    t, zb, za = np.meshgrid(ita_degrees, z, z, indexing="ij")
    wb, wa = np.meshgrid(weight_z, weight_z, indexing="ij")
    b_star = np.interp(t, _PRIOR_ITA_CENTRES, _PRIOR_B_MEANS) + _PRIOR_B_SD * zb
    a_star = _PRIOR_A_MEAN + _PRIOR_A_SD * za
    lightness = 50.0 + b_star * np.tan(np.radians(t))
    keep = (lightness > 15.0) & (lightness < 90.0)
    lab = np.stack([lightness[keep], a_star[keep], b_star[keep]], axis=-1)
    chroma = log_chromaticity(lab_to_linear(lab))
    weights = np.broadcast_to(wb * wa, t.shape)[keep]
    weights = weights / weights.sum()
    design = _lightness_design(lab[:, 0])
    root = np.sqrt(weights)[:, None]
    coefficients = np.linalg.lstsq(design * root, chroma * root, rcond=None)[0]
    residual = chroma - design @ coefficients
    return coefficients, (residual * weights[:, None]).T @ residual


def _lightness_design(lightness: np.ndarray | float) -> np.ndarray:
    scaled = np.clip(np.asarray(lightness, dtype=np.float64), 15.0, 90.0) / 100.0
    return np.stack([np.ones_like(scaled), scaled, scaled**2], axis=-1)


SKIN_CHROMA_COEFFICIENTS, SKIN_CHROMA_COV = _skin_prior()


def expected_skin_chromaticity(lightness: float) -> np.ndarray:
    """Prior mean of healthy-skin log chromaticity at lightness L* (under D65)."""
    return _lightness_design(lightness) @ SKIN_CHROMA_COEFFICIENTS


def skin_chroma_covariance(skin_lightness: float, lightness_sd: float) -> np.ndarray:
    """Prior covariance of skin log chromaticity at an observed L* known to within ``lightness_sd``.

    The observed L* carries the exposure error of the photograph; its
    uncertainty spreads the prior along the skin locus (the derivative of
    :func:`expected_skin_chromaticity`).
    """
    slope = (expected_skin_chromaticity(skin_lightness + 1.0) - expected_skin_chromaticity(skin_lightness - 1.0)) / 2
    return SKIN_CHROMA_COV + np.outer(slope, slope) * lightness_sd**2


def skin_prior_cast(
    skin_chroma: np.ndarray,
    skin_lightness: float,
    *,
    cast_cov: np.ndarray,
    lightness_sd: float,
    white_chroma: np.ndarray | None = None,
    white_sd: float = WHITE_CHROMA_SD,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and covariance of the cast (log chromaticity) from the skin and an optional white.

    A Gaussian form of colour by correlation (Finlayson, Hordley & Hubel
    2001) with skin as the memory colour (Bianco & Schettini 2012): the
    observed skin chromaticity is the skin's own (prior mean
    :func:`expected_skin_chromaticity` at the observed L*, covariance
    :func:`skin_chroma_covariance`) plus the cast (prior N(0,
    ``cast_cov``), :func:`cast_prior_covariance`); a white reference, when present, observes the cast
    directly with noise ``white_sd``. The combination is precision-weighted;
    the covariance is what the ITA interval propagates.
    """
    skin_precision = np.linalg.inv(skin_chroma_covariance(skin_lightness, lightness_sd))
    precision = np.linalg.inv(cast_cov) + skin_precision
    information = skin_precision @ (np.asarray(skin_chroma) - expected_skin_chromaticity(skin_lightness))
    if white_chroma is not None:
        precision = precision + np.eye(2) / white_sd**2
        information = information + np.asarray(white_chroma) / white_sd**2
    covariance = np.linalg.inv(precision)
    return covariance @ information, covariance


def white_fits_skin(
    white_chroma: np.ndarray,
    skin_chroma: np.ndarray,
    skin_lightness: float,
    *,
    lightness_sd: float,
    max_sd: float = 4.0,
) -> bool:
    """Whether neutralising ``white_chroma`` leaves the skin a plausible skin colour.

    A pale patch of skin mistaken for a white reference would make the
    corrected skin grey: its Mahalanobis distance from the prior (with the
    cast prior's spread added) then exceeds ``max_sd``.
    """
    residual = np.asarray(skin_chroma) - np.asarray(white_chroma) - expected_skin_chromaticity(skin_lightness)
    covariance = skin_chroma_covariance(skin_lightness, lightness_sd)
    return float(residual @ np.linalg.solve(covariance, residual)) <= max_sd**2


def grey_world_family(linear: np.ndarray, valid: np.ndarray, *, p: float, derivative: int) -> np.ndarray:
    """Illuminant (linear RGB) of the grey-world family (van de Weijer, Gevers & Gijsenij 2007).

    ``derivative=0`` is shades of grey (Minkowski ``p``-mean of the pixels,
    Finlayson & Trezzi 2004); ``derivative=1`` is first-order grey-edge
    (Minkowski mean of the gradient magnitude after Gaussian smoothing,
    sigma 1).
    """
    if derivative == 0:
        values = linear[valid]
    else:
        smooth = ndi.gaussian_filter(linear, sigma=(1.0, 1.0, 0.0))
        gy, gx = np.gradient(smooth, axis=(0, 1))
        values = np.hypot(gx, gy)[valid]
    estimate = minkowski_mean(values, p)
    return np.maximum(estimate, 1e-6)
