"""The exposure prior against real photographs re-exposed by half a stop (fast benchmarks/tone_exposure.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairderm.tone import ToneParameters
from fairderm.tone._color import _srgb_encode, srgb8_to_linear
from fairderm.tone._constancy import cast_prior_covariance, gains_from_cast
from fairderm.tone._decode import decode_image
from fairderm.tone._pipeline import analyse_rgb


def _reexposed(rgb: np.ndarray, stops: float, cast: np.ndarray) -> np.ndarray:
    """8-bit sRGB re-exposed in linear light (decode, scale, clip, encode) under a white-balance shift ``cast``."""
    linear = srgb8_to_linear(rgb).astype(np.float64) * 2.0**stops * gains_from_cast(-cast)
    return np.round(_srgb_encode(np.clip(linear, 0.0, 1.0)) * 255.0).astype(np.uint8)


@pytest.fixture(scope="module")
def pad_photos(pad_subset) -> list[np.ndarray]:
    labels = pd.read_csv(pad_subset / "labels.csv")
    return [decode_image(pad_subset / path, ToneParameters().working_size).rgb for path in labels["image"][:8]]


def _covered(photos: list[np.ndarray], params: ToneParameters) -> tuple[np.ndarray, np.ndarray]:
    """Per measured photograph and re-exposure (-0.5, +0.5 stop, a random white-balance shift each), the shift of
    ITA and whether the original's interval holds the re-exposed estimate."""
    casts = np.random.default_rng(0).multivariate_normal(np.zeros(2), cast_prior_covariance(0.15, 0.075), len(photos))
    shifts, covered = [], []
    for rgb, cast in zip(photos, casts):
        original = analyse_rgb(rgb, None, params)
        for stops in (-0.5, 0.5):
            changed = analyse_rgb(_reexposed(rgb, stops, cast), None, params)
            if original.status == "ok" and changed.status == "ok":
                shifts.append(np.sign(stops) * (changed.ita - original.ita))
                covered.append(original.ita_low <= changed.ita <= original.ita_high)
    return np.asarray(shifts), np.asarray(covered)


def test_half_a_stop_moves_ita_the_way_of_the_exposure(pad_photos):
    shifts, _ = _covered(pad_photos, ToneParameters())
    assert len(shifts) >= 10
    assert np.all(shifts > 5.0)  # darker reads darker, brighter lighter, by degrees, not fractions of one


def test_the_default_exposure_prior_covers_half_a_stop_where_a_third_of_a_stop_did_not(pad_photos):
    _, covered = _covered(pad_photos, ToneParameters())
    _, covered_before = _covered(pad_photos, ToneParameters(exposure_sd=0.17))
    assert covered.mean() >= 0.9
    assert covered_before.mean() < 0.5
