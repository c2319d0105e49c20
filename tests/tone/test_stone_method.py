"""The optional ``stone`` method (skin-tone-classifier, GPL-3.0, the ``[stone]`` extra)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fairderm.tone import estimate_tone
from tests.helpers.skin_photos import SKIN_ITA, encode, skin_photo


def test_stone_method_measures_the_skin_with_the_lesion_masked(image_cohort):
    pytest.importorskip("stone")
    cohort = image_cohort({
        "light.png": encode(Image.fromarray(skin_photo((300, 240))), "PNG"),
        "dark.jpg": encode(Image.fromarray(skin_photo((300, 240), (38.0, 12.0, 19.0))), "JPEG"),
        "grey.png": encode(Image.fromarray(skin_photo()).convert("L"), "PNG"),
    })
    frame = estimate_tone(cohort, method="stone", workers=1).set_index("image_id")
    assert frame["method"].iloc[0].startswith("stone/skin-tone-classifier;lesion-masked")
    assert frame.loc[["light", "dark"], "status"].tolist() == ["ok", "ok"]
    # the lesion is blacked out before the classifier sees the image (unmasked it reads 26.5 deg)
    assert abs(frame.loc["light", "ita"] - SKIN_ITA) < 5.0
    assert frame.loc["dark", "monk_est"] > frame.loc["light", "monk_est"]
    assert frame.loc["grey", "status"] == "abstain" and np.isnan(frame.loc["grey", "ita"])


def test_unknown_tone_method_is_rejected(image_cohort):
    from fairderm.errors import InputError

    cohort = image_cohort({"a.png": encode(Image.fromarray(skin_photo()), "PNG")})
    with pytest.raises(InputError, match="unknown tone method"):
        estimate_tone(cohort, method="palette")
