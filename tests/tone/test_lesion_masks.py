"""Lesion masks from the cohort (``--lesion-masks``) in place of the lesion segmentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from fairderm.cohort import CohortSpec, write_cohort
from fairderm.tone import estimate_tone, measure_image, read_tone
from tests.helpers.skin_photos import SKIN_ITA, SKIN_LAB, encode, lesion_mask, make_image_cohort, skin_photo

FAINT_LESION = (SKIN_LAB[0] - 1.5, SKIN_LAB[1] + 1.0, SKIN_LAB[2])
"""A lesion hardly different from the skin: nothing stands out, so the segmentation abstains."""


def _save(path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def test_a_mask_replaces_the_segmentation_and_the_close_up_rule(tmp_path):
    photo = _save(tmp_path / "faint.png", skin_photo((160, 120), lesion_lab=FAINT_LESION))
    mask = _save(tmp_path / "mask.png", lesion_mask((160, 120)).astype(np.uint8) * 255)
    segmented = measure_image(photo)
    masked = measure_image(photo, mask=mask)
    assert segmented.status == "abstain" and "no lesion stands out" in segmented.reason
    assert masked.status == "ok", masked.reason
    assert abs(masked.ita - SKIN_ITA) < 1.5
    assert abs(masked.lesion_fraction - lesion_mask((160, 120)).mean()) < 0.01


def test_a_mask_at_another_resolution_is_reduced_to_the_photograph(tmp_path):
    photo = _save(tmp_path / "p.png", skin_photo((160, 120)))
    big_mask = np.asarray(Image.fromarray(lesion_mask((160, 120))).resize((640, 480)))
    tone = measure_image(photo, mask=_save(tmp_path / "m.png", big_mask.astype(np.uint8) * 255))
    assert tone.status == "ok"
    assert abs(tone.ita - SKIN_ITA) < 1.5


def test_a_missing_or_mismatched_mask_is_an_error_not_a_fall_back(tmp_path):
    photo = _save(tmp_path / "p.png", skin_photo((160, 120)))
    missing = measure_image(photo, mask=tmp_path / "nowhere.png")
    assert missing.status == "error" and "lesion mask not found: nowhere.png" in missing.reason
    square = _save(tmp_path / "square.png", np.zeros((100, 100), dtype=np.uint8))
    mismatched = measure_image(photo, mask=square)
    assert mismatched.status == "error"
    assert "square.png is 100x100 px, not the photograph's aspect ratio" in mismatched.reason
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert "cannot decode lesion mask broken.png" in measure_image(photo, mask=broken).reason
    lab_mask = tmp_path / "lab.tif"
    Image.new("LAB", (160, 120)).save(lab_mask)  # Pillow reads CIELAB TIFFs but cannot make them grey
    unconvertible = measure_image(photo, mask=lab_mask)
    assert unconvertible.status == "error" and "cannot convert lesion mask lab.tif (LAB)" in unconvertible.reason


def _masked_cohort(root) -> object:
    """Three photographs: a faint lesion with its mask, a dark lesion without one, a bad mask."""
    faint = skin_photo((160, 120), lesion_lab=FAINT_LESION)
    files = {
        "images/faint.png": encode(Image.fromarray(faint), "PNG"),
        "images/faint_mask.png": encode(Image.fromarray(lesion_mask((160, 120)).astype(np.uint8) * 255), "PNG"),
        "images/plain.png": encode(Image.fromarray(skin_photo((160, 120), seed=2)), "PNG"),
        "images/odd.png": encode(Image.fromarray(skin_photo((160, 120), seed=3)), "PNG"),
        "images/odd_mask.png": encode(Image.fromarray(np.zeros((50, 50), dtype=np.uint8)), "PNG"),
    }
    manifest = pd.DataFrame({
        "image_id": ["faint", "plain", "odd"],
        "image": ["images/faint.png", "images/plain.png", "images/odd.png"],
        "label": ["nevus"] * 3,
        "mask": ["images/faint_mask.png", None, "images/odd_mask.png"],
    })
    spec = CohortSpec(name="masked", labels=["nevus", "melanoma"], positive_classes=["melanoma"], synthetic=True)
    return write_cohort(root, spec, manifest, check_files=False, extra_files=files)


def test_estimate_uses_the_cohort_masks_image_by_image(tmp_path):
    cohort = _masked_cohort(tmp_path / "masked")
    frame = estimate_tone(cohort, workers=1, lesion_masks=True).set_index("image_id")
    assert frame.loc["faint", "status"] == "ok"
    assert frame.loc["plain", "status"] == "ok"  # no mask: segmented as usual
    assert frame.loc["odd", "status"] == "error" and "aspect ratio" in frame.loc["odd", "reason"]
    assert set(frame["method"]) == {"fairderm-ita/5;lesion=cohort-masks;fitzpatrick=groh"}
    assert frame.attrs["fairderm_tone"]["lesion_masks"] is True
    plain = estimate_tone(cohort, workers=1).set_index("image_id")
    assert plain.loc["faint", "status"] == "abstain"
    assert plain.loc["odd", "status"] == "ok"


def test_cli_lesion_masks_write_the_table_and_a_cohort_without_masks_is_refused(run_cli, tmp_path):
    cohort = _masked_cohort(tmp_path / "masked")
    out = tmp_path / "tone.parquet"
    result = run_cli("tone", "estimate", cohort.root, "--out", out, "--lesion-masks", "--workers", "1")
    assert result.exit_code == 0, result.stderr
    assert read_tone(out, cohort)["method"].iloc[0] == "fairderm-ita/5;lesion=cohort-masks;fitzpatrick=groh"
    bare = make_image_cohort(tmp_path / "bare", {"a.png": encode(Image.fromarray(skin_photo()), "PNG")})
    refused = run_cli("tone", "estimate", bare.root, "--out", tmp_path / "bare.parquet", "--lesion-masks")
    assert refused.exit_code == 3
    assert "no 'mask' column" in refused.stderr and "manifest.parquet" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bare.parquet").exists()
