"""Scales and colour arithmetic, cross-checked against scikit-image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.color import deltaE_ciede2000, rgb2lab

from fairderm.errors import InputError
from fairderm.tone import (
    CHARDON_CATEGORIES,
    MONK_HEX,
    fitzpatrick_group,
    ita_degrees,
    ita_to_chardon,
    ita_to_fitzpatrick,
    lab_to_monk,
    srgb8_to_lab,
)


@pytest.mark.parametrize(
    ("ita", "expected"),
    [(70.0, 1), (55.01, 1), (55.0, 2), (41.0, 3), (28.0, 4), (19.0, 5), (10.5, 5), (10.0, 6), (-60.0, 6)],
)
def test_kinyanjui_cutpoints_55_41_28_19_10(ita, expected):
    assert ita_to_fitzpatrick([ita], "kinyanjui").iloc[0] == expected


@pytest.mark.parametrize(
    ("ita", "expected"),
    [(50.0, 1), (45.0, 2), (28.5, 2), (28.0, 3), (17.0, 4), (5.0, 5), (-19.9, 5), (-20.0, 6), (-80.0, 6)],
)
def test_groh_cutpoints_45_28_17_5_minus20(ita, expected):
    assert ita_to_fitzpatrick([ita], "groh").iloc[0] == expected


@pytest.mark.parametrize(
    ("ita", "expected"),
    [(60.0, "very light"), (55.0, "light"), (41.0, "intermediate"), (28.0, "tan"), (10.0, "brown"),
     (-29.0, "brown"), (-30.0, "dark"), (-70.0, "dark")],
)
def test_chardon_categories_and_boundaries(ita, expected):
    assert ita_to_chardon([ita]).iloc[0] == expected


def test_scales_leave_missing_ita_missing():
    ita = [np.nan, 30.0]
    assert ita_to_fitzpatrick(ita).isna().tolist() == [True, False]
    assert ita_to_chardon(ita).isna().tolist() == [True, False]
    assert lab_to_monk(np.array([[np.nan] * 3, [60.0, 10.0, 15.0]])).isna().tolist() == [True, False]


def test_unknown_fitzpatrick_scheme_is_rejected():
    with pytest.raises(InputError, match="unknown Fitzpatrick cut-point scheme"):
        ita_to_fitzpatrick([30.0], "made-up")


def test_fitzpatrick_groups_from_types():
    groups = fitzpatrick_group(pd.Series([1, 2, 3, 4, 5, 6, None], dtype="Int8"))
    assert groups.iloc[:6].tolist() == ["I-II", "I-II", "III-IV", "III-IV", "V-VI", "V-VI"]
    assert pd.isna(groups.iloc[6])


@settings(max_examples=60, deadline=None)
@given(ita=arrays(np.float64, 20, elements=st.floats(-90, 90, allow_nan=False)))
def test_scales_are_monotone_in_ita(ita):
    order = np.argsort(-ita)
    for scheme in ("groh", "kinyanjui"):
        types = ita_to_fitzpatrick(ita[order], scheme).to_numpy(dtype=int)
        assert np.all(np.diff(types) >= 0)
    chardon = ita_to_chardon(ita[order]).map(CHARDON_CATEGORIES.index).to_numpy(dtype=int)
    assert np.all(np.diff(chardon) >= 0)


def test_monk_swatches_map_to_themselves():
    swatches = np.array([[int(code[i : i + 2], 16) for i in (0, 2, 4)] for code in MONK_HEX], dtype=np.uint8)
    assert lab_to_monk(srgb8_to_lab(swatches)).tolist() == list(range(1, 11))


def test_monk_is_nearest_swatch_by_ciede2000_from_skimage():
    rng = np.random.default_rng(4)
    colours = np.column_stack([rng.uniform(15, 95, 300), rng.uniform(-2, 25, 300), rng.uniform(0, 35, 300)])
    swatches = np.array([[int(code[i : i + 2], 16) for i in (0, 2, 4)] for code in MONK_HEX], dtype=np.uint8)
    swatch_lab = rgb2lab(swatches[None].astype(np.float64) / 255.0)[0]
    distance = deltaE_ciede2000(colours[:, None, :], swatch_lab[None, :, :])
    assert lab_to_monk(colours).to_numpy(dtype=int).tolist() == (np.argmin(distance, axis=1) + 1).tolist()


def test_srgb_to_lab_matches_skimage_on_every_grey_and_random_colours():
    rng = np.random.default_rng(1)
    rgb = np.concatenate([np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1),
                          rng.integers(0, 256, size=(4000, 3), dtype=np.uint8)])
    expected = rgb2lab(rgb[None].astype(np.float64) / 255.0)[0]
    np.testing.assert_allclose(srgb8_to_lab(rgb), expected, atol=0.05)


def test_ita_formula_matches_chardon_on_skimage_lab():
    rng = np.random.default_rng(2)
    rgb = rng.integers(60, 256, size=(500, 3)).astype(np.float64) / 255.0
    lab = rgb2lab(rgb[None])[0]
    yellowish = lab[:, 2] > 1.0
    expected = np.degrees(np.arctan((lab[yellowish, 0] - 50.0) / lab[yellowish, 2]))
    np.testing.assert_allclose(ita_degrees(lab[yellowish, 0], lab[yellowish, 2]), expected, atol=1e-9)


def test_ita_examples():
    assert ita_degrees(50.0, 20.0) == pytest.approx(0.0)
    assert ita_degrees(70.0, 20.0) == pytest.approx(45.0)
    assert ita_degrees(30.0, 20.0) == pytest.approx(-45.0)
