"""Features of turned and mirrored views: what they are, their cache, unreadable images."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairderm.cohort import write_cohort
from fairderm.errors import InputError
from fairderm.inference import DIHEDRAL_VIEWS, extract_features, extract_view_features
from tests.helpers.lesion_cohorts import make_lesion_cohort

pytestmark = pytest.mark.slow  # a few dozen backbone passes


def _as_array(turns: int, mirrored: bool, pixels: np.ndarray) -> np.ndarray:
    return np.rot90(pixels[:, ::-1] if mirrored else pixels, turns, axes=(0, 1))


def test_each_view_is_the_features_of_that_turned_or_mirrored_photograph(tmp_path):
    """A view's features equal the plain features of a file holding the turned/mirrored image."""
    cohort = make_lesion_cohort(tmp_path / "c", n=2, size=224, fmt="png")
    pixels = np.asarray(Image.open(cohort.image_paths()[0]).convert("RGB"))
    files, rows = {}, []
    for name in DIHEDRAL_VIEWS:
        turns = int(name.rsplit("rot", 1)[1]) // 90 if "rot" in name else 0
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(_as_array(turns, name.startswith("flip"), pixels))).save(buffer, "PNG")
        files[f"images/{name}.png"] = buffer.getvalue()
        rows.append({**cohort.manifest.iloc[0].to_dict(), "image_id": name, "image": f"images/{name}.png"})
    turned = write_cohort(tmp_path / "turned", cohort.spec, pd.DataFrame(rows), extra_files=files)
    expected = extract_features(turned, cache_dir=tmp_path / "cache", workers=0).features

    views, errors = extract_view_features(cohort, [0, 1], [7, 2], cache_dir=tmp_path / "cache")
    assert errors == {}
    assert views.shape == (2, 7, 1280)
    np.testing.assert_allclose(views[0], expected, atol=2e-4)
    # the second image asked for two views only: the rest stay NaN
    assert np.isfinite(views[1, :2]).all() and np.isnan(views[1, 2:]).all()
    # no view is the plain image, and no two views are alike
    plain = extract_features(cohort, cache_dir=tmp_path / "cache", workers=0).features[0]
    distances = np.linalg.norm(np.vstack([plain, views[0]])[:, None] - np.vstack([plain, views[0]])[None], axis=2)
    assert distances[np.triu_indices(8, 1)].min() > 1e-3


def test_views_come_from_the_cache_the_second_time(tmp_path, monkeypatch):
    cohort = make_lesion_cohort(tmp_path / "c", n=3, size=64, fmt="jpg")
    first, _ = extract_view_features(cohort, [0, 2], [3, 1], cache_dir=tmp_path / "cache")

    from fairderm.inference import _backbone

    def no_backbone(*_args, **_kwargs):
        raise AssertionError("the backbone ran although every view was cached")

    monkeypatch.setattr(_backbone, "Backbone", no_backbone)
    again, _ = extract_view_features(cohort, [0, 2], [3, 1], cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(np.isnan(again), np.isnan(first))
    np.testing.assert_array_equal(again[np.isfinite(again)], first[np.isfinite(first)])


def test_an_unreadable_image_gets_nan_views_and_a_reason_while_the_rest_go_on(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "c", n=3, size=48, broken=1)
    views, errors = extract_view_features(cohort, [0, 2], [2, 2], cache_dir=tmp_path / "cache")
    assert list(errors) == ["img_0002"] and errors["img_0002"].startswith("cannot read image")
    assert np.isfinite(views[0]).all() and np.isnan(views[1]).all()


def test_more_views_than_the_square_has_are_rejected(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "c", n=1, size=48)
    with pytest.raises(InputError, match="views"):
        extract_view_features(cohort, [0], [8], cache_dir=tmp_path / "cache")
