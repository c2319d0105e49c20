"""The fast binary filters of the skin mask agree with scipy.ndimage."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from fairderm.tone._skin import channel_max, channel_min, dilate, erode, fill_holes

masks = arrays(bool, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.booleans())


@settings(max_examples=80, deadline=None)
@given(mask=masks, radius=st.integers(0, 11))
def test_dilate_and_erode_match_scipy_square_filters(mask, radius):
    size = 2 * radius + 1
    np.testing.assert_array_equal(dilate(mask, radius), ndi.maximum_filter(mask, size=size))
    np.testing.assert_array_equal(erode(mask, radius), ndi.minimum_filter(mask, size=size))


@settings(max_examples=80, deadline=None)
@given(mask=masks)
def test_fill_holes_matches_scipy(mask):
    np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))


def test_channel_extremes_match_numpy():
    rgb = np.random.default_rng(0).integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    np.testing.assert_array_equal(channel_max(rgb), rgb.max(axis=-1))
    np.testing.assert_array_equal(channel_min(rgb), rgb.min(axis=-1))


@settings(max_examples=60, deadline=None)
@given(image=arrays(np.float32, st.tuples(st.integers(3, 30), st.integers(3, 30)),
                    elements=st.floats(-50, 100, width=32)), radius=st.integers(1, 3))
def test_box_mean_and_grey_closing_match_scipy(image, radius):
    from fairderm.tone._skin import _square_filter, box_mean

    size = 2 * radius + 1
    np.testing.assert_allclose(box_mean(image, radius), ndi.uniform_filter(image, size), atol=1e-3)
    closed = _square_filter(_square_filter(image, radius, np.maximum), radius, np.minimum)
    np.testing.assert_array_equal(closed, ndi.grey_closing(image, size=(size, size)))
