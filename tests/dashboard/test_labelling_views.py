"""The labelling page's pieces: keys for every scale, and the zoom on healthy skin."""

from __future__ import annotations

import numpy as np
import pytest

from fairderm.dashboard.labelling_views import answer_buttons, healthy_skin_zoom, zoom_window
from fairderm.tone import CANNOT_TELL
from fairderm.tone._labels import scale_values


@pytest.mark.parametrize("scale", ["fitzpatrick", "fitzpatrick_group", "monk"])
def test_every_answer_has_its_own_key_and_cannot_tell_is_x(scale: str) -> None:
    buttons = answer_buttons(scale, scale_values(scale))
    assert [b.value for b in buttons] == [*scale_values(scale), CANNOT_TELL]
    assert len({b.key for b in buttons}) == len(buttons)
    assert buttons[-1].key == "X"
    assert all(b.key not in ("C", "R") for b in buttons)  # reserved by Streamlit


def test_monk_ten_is_key_zero() -> None:
    assert {b.value: b.key for b in answer_buttons("monk", scale_values("monk"))}["10"] == "0"


def test_zoom_window_finds_the_densest_square() -> None:
    weight = np.zeros((60, 80), dtype=bool)
    weight[35:55, 5:25] = True
    assert zoom_window(weight, 20) == (35, 5)


def test_zoom_falls_back_to_the_side_away_from_the_lesion_then_the_centre() -> None:
    rgb = np.zeros((90, 90, 3), dtype=np.uint8)
    none = np.zeros((90, 90), dtype=bool)
    lesion = np.zeros((90, 90), dtype=bool)
    lesion[:, :60] = True
    crop, caption = healthy_skin_zoom(rgb, none, lesion)
    assert crop.shape[:2] == (30, 30) and "away from the lesion" in caption
    crop, caption = healthy_skin_zoom(rgb, none, None)
    assert crop.shape[:2] == (30, 30) and "centre" in caption
    healthy = none.copy()
    healthy[60:, 60:] = True
    rgb[60:, 60:] = 200
    crop, caption = healthy_skin_zoom(rgb, healthy, lesion)
    assert "healthy skin" in caption and (crop == 200).all()
