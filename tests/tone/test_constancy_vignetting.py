"""White references under colour casts, and vignetting, on drawn photographs of known skin colour."""

from __future__ import annotations

import numpy as np
import pytest

from fairderm.errors import InputError
from fairderm.tone import ToneParameters
from fairderm.tone._color import _srgb_encode, srgb8_to_linear
from fairderm.tone._constancy import (
    LOCUS_DIRECTION,
    WHITE_REFLECTANCE,
    cast_prior_covariance,
    expected_skin_chromaticity,
    planckian_log_chromaticity,
    skin_prior_cast,
)
from fairderm.tone._pipeline import analyse_rgb
from fairderm.tone._vignetting import radial_falloff, vignetting_strength
from tests.helpers.skin_photos import SKIN_ITA, skin_photo

TUNGSTEN = np.array([1.268, 0.961, 0.596])
"""Gains of a strong tungsten cast (R up, B down), luminance kept."""


def _with_ruler(rgb: np.ndarray, *, reflectance: float = 0.65, rows: int = 14) -> np.ndarray:
    """Linear image with a neutral ruler along the top edge: tick marks every 6 px, a soft shadow below."""
    linear = srgb8_to_linear(rgb).astype(np.float64)
    linear[:rows] = reflectance
    linear[: rows // 2, ::6] = 0.05
    linear[: rows // 2, 1::6] = 0.05
    linear[rows : rows + 2] *= 0.8
    return linear


def _photograph(linear: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """8-bit sRGB of a linear scene seen under per-channel ``gains`` (none: daylight)."""
    seen = linear if gains is None else linear * gains
    return np.round(_srgb_encode(np.clip(seen, 0.0, 1.0)) * 255).astype(np.uint8)


def test_a_ruler_under_tungsten_light_is_used_as_the_white_reference():
    scene = _with_ruler(skin_photo((160, 120)))
    tone = analyse_rgb(_photograph(scene, TUNGSTEN), None, ToneParameters(white_reflectance=0.65))
    uncorrected = analyse_rgb(_photograph(scene, TUNGSTEN), None, ToneParameters(constancy="none"))
    assert tone.status == "ok"
    assert tone.constancy == "white-reference"
    assert abs(tone.ita - SKIN_ITA) < 3.0
    assert abs(uncorrected.ita - SKIN_ITA) > 3 * abs(tone.ita - SKIN_ITA)


def test_the_same_ruler_in_daylight_leaves_the_colour_alone():
    tone = analyse_rgb(_photograph(_with_ruler(skin_photo((160, 120)))), None, ToneParameters(white_reflectance=0.65))
    assert tone.constancy == "white-reference"
    assert abs(tone.exposure_correction) < 0.05
    assert abs(tone.ita - SKIN_ITA) < 2.0


@pytest.mark.parametrize("stops", [-0.7, 0.15])
def test_a_white_reference_sets_the_exposure_of_a_mis_exposed_photograph(stops):
    """A ruler of the default reflectance, under- or over-exposed (not so far that it clips): the white brings the
    skin back."""
    scene = _with_ruler(skin_photo((160, 120)), reflectance=WHITE_REFLECTANCE)
    photo = _photograph(scene * 2.0**stops)
    tone = analyse_rgb(photo, None, ToneParameters())
    without_white = analyse_rgb(photo, None, ToneParameters(constancy="skin-prior"))
    assert tone.constancy == "white-reference"
    assert tone.exposure_correction == pytest.approx(-stops, abs=0.05)
    assert without_white.exposure_correction == 0.0
    assert abs(tone.ita - SKIN_ITA) < 2.0
    assert abs(without_white.ita - SKIN_ITA) > 4 * abs(tone.ita - SKIN_ITA)


def test_the_white_references_exposure_correction_is_clamped_to_one_stop():
    scene = _with_ruler(skin_photo((160, 120)), reflectance=WHITE_REFLECTANCE)
    tone = analyse_rgb(_photograph(scene * 2.0**-1.3), None, ToneParameters())
    assert tone.constancy == "white-reference"
    assert tone.exposure_correction == pytest.approx(1.0)


def test_pale_skin_at_the_edge_is_not_taken_for_a_white_reference():
    # a band of bright, less saturated skin (a quarter of the way to white)
    # entering the frame from its edge, with a sharp step: still skin
    linear = srgb8_to_linear(skin_photo((160, 120))).astype(np.float64)
    linear[:16] = 0.75 * linear[:16] + 0.25 * 0.9
    tone = analyse_rgb(_photograph(linear), None, ToneParameters())
    assert tone.constancy != "white-reference"


def test_the_planckian_locus_runs_from_warm_to_cool_through_daylight():
    tungsten, daylight, north_sky = (planckian_log_chromaticity(t) for t in (2856.0, 6504.0, 10000.0))
    assert tungsten[0] > 0.5 and tungsten[1] < -1.0  # incandescent light: red up, blue down
    assert north_sky[0] < 0 < north_sky[1]
    assert np.hypot(*daylight) < 0.1  # D65 lies just off the locus at its temperature
    warm = (tungsten - north_sky) / np.linalg.norm(tungsten - north_sky)
    assert np.isclose(np.linalg.norm(LOCUS_DIRECTION), 1.0)
    assert float(warm @ LOCUS_DIRECTION) > np.cos(np.radians(3.0))
    with pytest.raises(ValueError, match="1667-25000 K"):
        planckian_log_chromaticity(1000.0)


def test_the_cast_prior_lets_a_colour_temperature_error_through_more_than_a_tint():
    covariance = cast_prior_covariance(0.4, 0.2)
    tint = np.array([-LOCUS_DIRECTION[1], LOCUS_DIRECTION[0]])
    assert np.isclose(LOCUS_DIRECTION @ covariance @ LOCUS_DIRECTION, 0.16)
    assert np.isclose(tint @ covariance @ tint, 0.04)
    # the same size of cast, along the locus and across it, on skin of L* 62:
    # the posterior recovers more of the warm cast than of the tint
    lightness = 62.0
    recovered = {}
    for name, direction in (("warm", LOCUS_DIRECTION), ("tint", tint)):
        cast = 0.3 * direction
        observed = expected_skin_chromaticity(lightness) + cast
        mean, posterior = skin_prior_cast(observed, lightness, cast_cov=covariance, lightness_sd=6.0)
        recovered[name] = float(mean @ direction) / 0.3
        assert np.all(np.linalg.eigvalsh(posterior) > 0)
        assert np.all(np.linalg.eigvalsh(covariance - posterior) > -1e-12)  # the skin only adds information
    assert 0.5 < recovered["tint"] < recovered["warm"] < 1.0


def test_cast_prior_settings_are_checked():
    with pytest.raises(InputError, match="cast_locus_sd"):
        ToneParameters(cast_locus_sd=0.0)
    with pytest.raises(InputError, match="cast_tint_sd"):
        ToneParameters(cast_tint_sd=3.0)


@pytest.mark.parametrize("reflectance", [0.0, 1.2, float("nan")])
def test_a_white_reflectance_outside_0_05_to_1_is_rejected(reflectance):
    with pytest.raises(InputError, match=r"white_reflectance must be 0\.05-1"):
        ToneParameters(white_reflectance=reflectance)


def test_vignetting_strength_recovers_a_radial_falloff_beside_shading_across_a_limb():
    shape = (96, 128)
    x = (np.arange(shape[1]) - (shape[1] - 1) / 2) / (shape[1] / 2)
    shading = np.broadcast_to(1.0 - 0.1 * x**2, shape)  # a limb seen from the front: darker at its sides, along x only
    healthy = np.ones(shape, dtype=bool)
    healthy[30:66, 44:84] = False  # the lesion
    for strength in (0.0, 0.15, 0.35):
        alone = np.repeat((0.3 * radial_falloff(shape, strength))[..., None], 3, axis=2)
        assert vignetting_strength(alone, healthy) == pytest.approx(strength, abs=1e-6)
        # shading times falloff has a small quartic term that a quadratic fit cannot separate
        shaded = alone * shading[..., None]
        assert vignetting_strength(shaded, healthy) == pytest.approx(strength, abs=0.02)


def test_vignetting_fit_agrees_with_a_direct_least_squares_fit():
    rng = np.random.default_rng(5)
    shape = (40, 56)
    linear = rng.uniform(0.05, 0.6, size=(*shape, 3))
    healthy = rng.random(shape) < 0.6
    ys, xs = np.nonzero(healthy)
    y = (ys - (shape[0] - 1) / 2) / (shape[0] / 2)
    x = (xs - (shape[1] - 1) / 2) / (shape[1] / 2)
    design = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
    luminance = linear[healthy] @ np.array([0.212671, 0.715160, 0.072169])
    coef = np.linalg.lstsq(design, luminance, rcond=None)[0]
    quadratic = np.array([[coef[3], coef[5] / 2], [coef[5] / 2, coef[4]]])
    expected = -2.0 * np.linalg.eigvalsh(quadratic)[-1] / coef[0]
    assert vignetting_strength(linear, healthy) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_vignetted_skin_is_measured_at_the_level_of_the_frame_centre():
    linear = srgb8_to_linear(skin_photo((160, 120))).astype(np.float64)
    darkened = _photograph(linear * radial_falloff(linear.shape[:2], 0.3)[..., None])
    corrected = analyse_rgb(darkened, None, ToneParameters())
    plain = analyse_rgb(darkened, None, ToneParameters(vignetting_correction=False))
    assert abs(corrected.ita - SKIN_ITA) < 1.5
    assert abs(plain.ita - SKIN_ITA) > 2 * abs(corrected.ita - SKIN_ITA)
