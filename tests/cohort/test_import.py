"""Cohort import: each dataset format, and every bad input the foundation issue names.

Bad inputs go through ``--format csv`` and through dataset formats; each must
give a one-line error naming the row and column, a non-zero exit, and leave no
output folder (not even a partial one) behind.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairderm.cohort import describe_cohort, import_cohort, load_cohort


def _jpeg_bytes(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(80, 220, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """An images folder with img0.jpg..img5.jpg (valid) in two sub-folders."""
    root = tmp_path / "images"
    for i in range(6):
        folder = root / ("part_1" if i < 3 else "part_2")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i}.jpg").write_bytes(_jpeg_bytes(i))
    return root


def _csv_rows(images: Path) -> pd.DataFrame:
    return pd.DataFrame({
        "image_id": [f"case{i}" for i in range(6)],
        "image": [f"part_{1 if i < 3 else 2}/img{i}.jpg" for i in range(6)],
        "label": ["nevus", "melanoma", "nevus", "bcc", "nevus", "melanoma"],
        "patient_id": ["p1", "p1", "p2", "p3", "p3", "p4"],
        "fitzpatrick": ["1", "2", "", "4", "5", "6"],
        "sex": ["female", "male", "female", "", "male", "female"],
    })


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _assert_clean_failure(result, out: Path, *, row: int | None, column: str | None, words: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert message.startswith("error:")
    if row is not None:
        assert f"row {row}" in message, message
    if column is not None:
        assert f"column '{column}'" in message, message
    assert words in message, message
    assert not out.exists()
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


# --------------------------------------------------------------------------- happy paths


def test_csv_import_keeps_images_in_place_and_extra_columns(tmp_path, images, run_cli):
    frame = _csv_rows(images)
    frame["my_score"] = ["1", "2", "3", "4", "5", "6"]
    meta = _write(frame, tmp_path / "meta.csv")
    out = tmp_path / "cohort"
    result = run_cli("cohort", "import", "--format", "csv", "--metadata", meta, "--images", images, "--out", out)
    assert result.exit_code == 0, result.stderr
    cohort = load_cohort(out, check_files=True)
    assert cohort.images_root.resolve() == images.resolve()
    assert list(cohort.manifest["image_id"]) == [f"case{i}" for i in range(6)]
    assert cohort.manifest["fitzpatrick"].isna().sum() == 1
    assert str(cohort.manifest["fitzpatrick"].dtype) == "Int8"
    assert "my_score" in cohort.manifest.columns
    assert cohort.spec.labels == ["bcc", "melanoma", "nevus"]
    assert not (out / "images").exists()


def test_csv_import_applies_column_map(tmp_path, images, run_cli):
    frame = _csv_rows(images).rename(columns={"image_id": "id", "image": "file", "label": "dx"})
    meta = _write(frame, tmp_path / "meta.csv")
    out = tmp_path / "cohort"
    result = run_cli("cohort", "import", "--format", "csv", "--metadata", meta, "--images", images,
                     "--out", out, "--map", "id=image_id", "--map", "file=image", "--map", "dx=label",
                     "--positive-classes", "melanoma,bcc")
    assert result.exit_code == 0, result.stderr
    cohort = load_cohort(out)
    assert cohort.spec.positive_classes == ["melanoma", "bcc"]
    assert len(cohort) == 6


def test_pad_ufes_shared_subset_counts_match_its_readme(tmp_path, pad_subset, run_cli):
    out = tmp_path / "pad"
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", pad_subset / "labels.csv",
                     "--images", pad_subset, "--out", out)
    assert result.exit_code == 0, result.stderr
    description = describe_cohort(load_cohort(out))
    assert description.n_images == 745
    assert description.tone_totals("fitzpatrick") == {
        "1": 50, "2": 256, "3": 132, "4": 27, "5": 3, "6": 1, "missing": 276}
    assert description.patients["n_patients"] == pd.read_csv(pad_subset / "labels.csv")["patient_id"].nunique()
    described = run_cli("cohort", "describe", out)
    assert described.exit_code == 0
    assert "745 images" in described.stdout
    for count in ("50", "256", "132", "27", "276"):
        assert count in described.stdout


def test_pad_ufes_original_metadata_layout(tmp_path, images):
    meta = pd.DataFrame({
        "patient_id": ["PAT_1", "PAT_1", "PAT_2"],
        "lesion_id": ["1", "2", "3"],
        "fitspatrick": ["2", "", "3"],
        "region": ["FACE", "ARM", "BACK"],
        "gender": ["FEMALE", "", "MALE"],
        "age": ["55", "55", "70"],
        "diagnostic": ["BCC", "NEV", "MEL"],
        "img_id": ["img0.jpg", "img3.jpg", "img5.jpg"],
        "biopsed": ["True", "False", "True"],
    })
    cohort = import_cohort("pad-ufes-20", _write(meta, tmp_path / "metadata.csv"), images, tmp_path / "c")
    assert list(cohort.manifest["image"]) == ["part_1/img0.jpg", "part_2/img3.jpg", "part_2/img5.jpg"]
    assert cohort.spec.positive_classes == ["BCC", "MEL"]
    assert list(cohort.manifest["fitzpatrick_group"].fillna("?")) == ["I-II", "?", "III-IV"]
    assert cohort.manifest["body_site"].iloc[0] == "face"


def test_ddi_maps_skin_tone_codes_to_fitzpatrick_groups(tmp_path, images):
    meta = pd.DataFrame({
        "DDI_ID": ["1", "2", "3"],
        "DDI_file": ["img0.jpg", "img1.jpg", "img4.jpg"],
        "skin_tone": ["12", "34", "56"],
        "malignant": ["True", "False", "True"],
        "disease": ["melanoma-in-situ", "verruca-vulgaris", "basal-cell-carcinoma"],
    })
    cohort = import_cohort("ddi", _write(meta, tmp_path / "ddi_metadata.csv"), images, tmp_path / "c")
    assert list(cohort.manifest["fitzpatrick_group"]) == ["I-II", "III-IV", "V-VI"]
    assert list(cohort.manifest["label"]) == ["malignant", "benign", "malignant"]
    assert cohort.spec.positive_classes == ["malignant"]
    assert "diagnosis" in cohort.manifest.columns


def test_fitzpatrick17k_unknown_scale_becomes_missing_with_a_note(tmp_path, images):
    for i in range(3):
        (images / f"hash{i}.jpg").write_bytes(_jpeg_bytes(10 + i))
    meta = pd.DataFrame({
        "md5hash": ["hash0", "hash1", "hash2"],
        "fitzpatrick_scale": ["3", "-1", "6"],
        "fitzpatrick_centaur": ["3", "2", "6"],
        "label": ["psoriasis", "melanoma", "lichen planus"],
        "nine_partition_label": ["inflammatory", "malignant melanoma", "inflammatory"],
        "three_partition_label": ["non-neoplastic", "malignant", "non-neoplastic"],
        "qc": ["", "", ""],
        "url": ["u", "u", "u"],
        "url_alphanum": ["u", "u", "u"],
    })
    cohort = import_cohort("fitzpatrick17k", _write(meta, tmp_path / "fitzpatrick17k.csv"), images,
                           tmp_path / "c")
    assert cohort.manifest["fitzpatrick"].isna().tolist() == [False, True, False]
    assert cohort.spec.positive_classes == ["malignant"]
    assert any("-1" in note for note in cohort.spec.notes)


def test_isic_roman_fitzpatrick_types(tmp_path, images):
    for i in range(2):
        (images / f"ISIC_000000{i}.jpg").write_bytes(_jpeg_bytes(20 + i))
    meta = pd.DataFrame({
        "isic_id": ["ISIC_0000000", "ISIC_0000001"],
        "diagnosis": ["melanoma", "nevus"],
        "fitzpatrick_skin_type": ["II", "V"],
        "age_approx": ["45", ""],
        "sex": ["male", "female"],
        "anatom_site_general": ["posterior torso", "lower extremity"],
        "patient_id": ["IP_1", "IP_2"],
        "copyright_license": ["CC-BY", "CC-0"],
    })
    cohort = import_cohort("isic", _write(meta, tmp_path / "metadata.csv"), images, tmp_path / "c")
    assert cohort.manifest["fitzpatrick"].tolist() == [2, 5]
    assert cohort.spec.positive_classes == ["melanoma"]


def test_pad_ufes_keeps_a_split_column(tmp_path, images):
    meta = pd.DataFrame({
        "image": ["part_1/img0.jpg", "part_1/img1.jpg", "part_2/img3.jpg"],
        "patient_id": ["PAT_1", "PAT_1", "PAT_2"],
        "diagnostic": ["BCC", "NEV", "MEL"],
        "fitzpatrick": ["2", "", "3"],
        "split": ["train", "val", "test"],
        "clinic": ["a", "b", "c"],
    })
    cohort = import_cohort("pad-ufes-20", _write(meta, tmp_path / "labels.csv"), images, tmp_path / "c")
    assert cohort.manifest["split"].tolist() == ["train", "val", "test"]
    assert cohort.manifest["clinic"].tolist() == ["a", "b", "c"]


def test_csv_without_positive_classes_says_so_in_notes_and_console(tmp_path, images, run_cli):
    meta = _write(_csv_rows(images), tmp_path / "meta.csv")
    out = tmp_path / "cohort"
    result = run_cli("cohort", "import", "--format", "csv", "--metadata", meta, "--images", images, "--out", out)
    assert result.exit_code == 0, result.stderr
    cohort = load_cohort(out)
    assert cohort.spec.positive_classes == []
    note = next(note for note in cohort.spec.notes if "no positive classes" in note)
    assert "--positive-classes" in note
    assert "no positive classes" in result.stdout


def test_csv_with_positive_classes_has_no_such_note(tmp_path, images):
    meta = _write(_csv_rows(images), tmp_path / "meta.csv")
    cohort = import_cohort("csv", meta, images, tmp_path / "c", positive_classes=["melanoma"])
    assert not any("no positive classes" in note for note in cohort.spec.notes)


@pytest.mark.parametrize(("column", "values", "positives"), [
    ("diagnosis_3", ["Melanoma Invasive", "Nevus", "Squamous cell carcinoma, Invasive"],
     ["Melanoma Invasive", "Squamous cell carcinoma, Invasive"]),
    ("diagnosis_3", ["Melanoma in situ", "Solar or actinic keratosis", "Basal cell carcinoma"],
     ["Basal cell carcinoma", "Melanoma in situ"]),
    ("diagnosis_3", ["Melanoma, NOS", "Seborrheic keratosis", "Squamous cell carcinoma in situ"],
     ["Melanoma, NOS", "Squamous cell carcinoma in situ"]),
    ("diagnosis_2", ["Malignant melanocytic proliferations (Melanoma)", "Benign melanocytic proliferations",
                     "Malignant adnexal epithelial proliferations - Follicular"],
     ["Malignant adnexal epithelial proliferations - Follicular",
      "Malignant melanocytic proliferations (Melanoma)"]),
    ("diagnosis_1", ["Malignant", "Benign", "Indeterminate"], ["Malignant"]),
])
def test_isic_current_diagnosis_wordings_are_positive(tmp_path, images, column, values, positives):
    for i in range(3):
        (images / f"ISIC_000000{i}.jpg").write_bytes(_jpeg_bytes(30 + i))
    meta = pd.DataFrame({"isic_id": [f"ISIC_000000{i}" for i in range(3)], column: values})
    cohort = import_cohort("isic", _write(meta, tmp_path / "metadata.csv"), images, tmp_path / "c")
    assert sorted(cohort.spec.positive_classes) == sorted(positives)


def test_scin_expands_cases_to_images_and_merges_labels(tmp_path, images):
    cases = pd.DataFrame({
        "case_id": ["-100", "-200", "-300"],
        "image_1_path": ["dataset/images/img0.jpg", "dataset/images/img2.jpg", "dataset/images/img4.jpg"],
        "image_2_path": ["dataset/images/img1.jpg", "", ""],
        "image_3_path": ["", "", ""],
        "sex_at_birth": ["FEMALE", "MALE", "FEMALE"],
        "fitzpatrick_skin_type": ["FST2", "FST5", "NONE_SELECTED"],
        "body_parts_arm": ["YES", "", ""],
        "body_parts_face": ["", "YES", ""],
        "age_group": ["AGE_18_TO_29", "AGE_30_TO_39", "AGE_40_TO_49"],
    })
    labels = pd.DataFrame({
        "case_id": ["-100", "-200", "-300"],
        "weighted_skin_condition_label": ["{'Eczema': 0.6, 'Psoriasis': 0.4}", "{'Acne': 1.0}", ""],
        "dermatologist_fitzpatrick_skin_type_label_1": ["FST2", "FST6", "NONE_IDENTIFIED"],
        "monk_skin_tone_label_us": ["3.0", "9.0", ""],
    })
    _write(labels, tmp_path / "scin_labels.csv")
    cohort = import_cohort("scin", _write(cases, tmp_path / "scin_cases.csv"), images, tmp_path / "c")
    manifest = cohort.manifest
    assert manifest["image_id"].tolist() == ["-100_1", "-100_2", "-200_1"]
    assert manifest["label"].tolist() == ["Eczema", "Eczema", "Acne"]
    assert manifest["patient_id"].tolist() == ["-100", "-100", "-200"]
    assert manifest["monk"].tolist() == [3, 3, 9]
    assert manifest["fitzpatrick"].tolist() == [2, 2, 6]
    assert manifest["body_site"].tolist() == ["arm", "arm", "face"]
    assert any("skipped 1 images" in note for note in cohort.spec.notes)


# --------------------------------------------------------------------------- bad inputs


@pytest.fixture
def csv_case(tmp_path, images):
    """Build a csv-format import whose row 3 is altered by a test."""

    def make(**row3: str) -> list[object]:
        frame = _csv_rows(images)
        for column, value in row3.items():
            frame.loc[2, column] = value
        meta = _write(frame, tmp_path / "meta.csv")
        return ["cohort", "import", "--format", "csv", "--metadata", meta, "--images", images,
                "--out", tmp_path / "out"]

    return make


def test_csv_image_path_with_dotdot_escaping_images_root_is_rejected(tmp_path, csv_case, run_cli):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(_jpeg_bytes(99))
    result = run_cli(*csv_case(image="../secret.jpg"))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="image", words="escapes images_root")


def test_csv_absolute_image_path_is_rejected(tmp_path, images, csv_case, run_cli):
    result = run_cli(*csv_case(image=str(images / "part_1" / "img0.jpg")))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="image", words="absolute path")


def test_csv_symlink_pointing_outside_images_root_is_rejected(tmp_path, images, csv_case, run_cli):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(_jpeg_bytes(98))
    os.symlink(outside, images / "link.jpg")
    result = run_cli(*csv_case(image="link.jpg"))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="image", words="escapes images_root")


def test_csv_missing_image_file_is_rejected(tmp_path, csv_case, run_cli):
    result = run_cli(*csv_case(image="part_1/nothing.jpg"))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="image", words="file not found")


def test_csv_zero_byte_image_is_rejected(tmp_path, images, csv_case, run_cli):
    (images / "empty.jpg").write_bytes(b"")
    result = run_cli(*csv_case(image="empty.jpg"))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="image", words="0 bytes")


def test_csv_truncated_jpeg_is_rejected(tmp_path, images, csv_case, run_cli):
    data = _jpeg_bytes(7, size=128)
    (images / "cut.jpg").write_bytes(data[: len(data) // 2])
    result = run_cli(*csv_case(image="cut.jpg"))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="image", words="cannot decode")


def test_csv_duplicate_image_id_is_rejected(tmp_path, csv_case, run_cli):
    result = run_cli(*csv_case(image_id="case0"))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="image_id", words="duplicate image_id")


@pytest.mark.parametrize("value", ["7", "0"])
def test_csv_fitzpatrick_out_of_range_is_rejected(tmp_path, csv_case, run_cli, value):
    result = run_cli(*csv_case(fitzpatrick=value))
    _assert_clean_failure(result, tmp_path / "out", row=3, column="fitzpatrick", words="Fitzpatrick type")


def test_csv_metadata_lacking_label_column_is_rejected(tmp_path, images, run_cli):
    meta = _write(_csv_rows(images).drop(columns=["label"]), tmp_path / "meta.csv")
    result = run_cli("cohort", "import", "--format", "csv", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=None, column="label", words="required column missing")


def test_unknown_format_is_rejected(tmp_path, images, run_cli):
    meta = _write(_csv_rows(images), tmp_path / "meta.csv")
    result = run_cli("cohort", "import", "--format", "ham10000", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=None, column="--format", words="unknown format")


def test_existing_non_empty_out_is_rejected_and_left_untouched(tmp_path, images, run_cli):
    meta = _write(_csv_rows(images), tmp_path / "meta.csv")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("cohort", "import", "--format", "csv", "--metadata", meta, "--images", images, "--out", out)
    assert result.exit_code != 0
    assert "not empty" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_missing_metadata_file_is_rejected(tmp_path, images, run_cli):
    result = run_cli("cohort", "import", "--format", "csv", "--metadata", tmp_path / "nope.csv",
                     "--images", images, "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=None, column=None, words="not found")


# The same failures through the dataset formats: errors name the source file's own column.


def _pad_meta(tmp_path: Path, **row2: str) -> Path:
    frame = pd.DataFrame({
        "patient_id": ["PAT_1", "PAT_2", "PAT_3"],
        "lesion_id": ["1", "2", "3"],
        "fitspatrick": ["2", "3", "4"],
        "diagnostic": ["BCC", "NEV", "MEL"],
        "img_id": ["img0.jpg", "img1.jpg", "img2.jpg"],
    })
    for column, value in row2.items():
        frame.loc[1, column] = value
    return _write(frame, tmp_path / "metadata.csv")


@pytest.mark.parametrize("value", ["7", "0"])
def test_pad_fitzpatrick_out_of_range_names_source_column(tmp_path, images, run_cli, value):
    meta = _pad_meta(tmp_path, fitspatrick=value)
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="fitspatrick", words="Fitzpatrick type")


def test_pad_missing_image_names_img_id(tmp_path, images, run_cli):
    meta = _pad_meta(tmp_path, img_id="img_absent.png")
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="img_id", words="file not found")


def test_pad_duplicate_image_is_rejected(tmp_path, images, run_cli):
    meta = _pad_meta(tmp_path, img_id="img0.jpg")
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="img_id", words="duplicate image_id")


def test_pad_truncated_and_empty_images_are_rejected(tmp_path, images, run_cli):
    data = _jpeg_bytes(3, size=128)
    (images / "cut.jpg").write_bytes(data[:300])
    meta = _pad_meta(tmp_path, img_id="cut.jpg")
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="img_id", words="cannot decode")
    (images / "zero.jpg").write_bytes(b"")
    meta = _pad_meta(tmp_path, img_id="zero.jpg")
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="img_id", words="0 bytes")


def test_pad_shared_layout_path_escape_names_image_column(tmp_path, images, run_cli):
    frame = pd.DataFrame({"image": ["part_1/img0.jpg", "../../etc/passwd"], "diagnostic": ["BCC", "NEV"],
                          "img_id": ["a.png", "b.png"]})
    meta = _write(frame, tmp_path / "labels.csv")
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="image", words="escapes images_root")


def test_pad_lacking_diagnostic_column_is_rejected(tmp_path, images, run_cli):
    meta = _write(pd.DataFrame({"img_id": ["img0.jpg"], "patient_id": ["P"]}), tmp_path / "metadata.csv")
    result = run_cli("cohort", "import", "--format", "pad-ufes-20", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=None, column="diagnostic",
                          words="required column missing")


def test_ddi_unknown_skin_tone_code_is_rejected(tmp_path, images, run_cli):
    meta = _write(pd.DataFrame({"DDI_ID": ["1", "2"], "DDI_file": ["img0.jpg", "img1.jpg"],
                                "skin_tone": ["12", "78"], "malignant": ["True", "False"]}),
                  tmp_path / "ddi_metadata.csv")
    result = run_cli("cohort", "import", "--format", "ddi", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="skin_tone", words="unknown value")


def test_ddi_lacking_skin_tone_column_is_rejected(tmp_path, images, run_cli):
    meta = _write(pd.DataFrame({"DDI_file": ["img0.jpg"], "malignant": ["True"]}), tmp_path / "ddi.csv")
    result = run_cli("cohort", "import", "--format", "ddi", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=None, column="skin_tone",
                          words="required column missing")


def test_fitzpatrick17k_scale_seven_is_rejected(tmp_path, images, run_cli):
    (images / "h1.jpg").write_bytes(_jpeg_bytes(41))
    (images / "h2.jpg").write_bytes(_jpeg_bytes(42))
    meta = _write(pd.DataFrame({"md5hash": ["h1", "h2"], "fitzpatrick_scale": ["2", "7"],
                                "label": ["a", "b"], "three_partition_label": ["benign", "malignant"]}),
                  tmp_path / "fitzpatrick17k.csv")
    result = run_cli("cohort", "import", "--format", "fitzpatrick17k", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="fitzpatrick_scale", words="Fitzpatrick type")


def test_isic_duplicate_isic_id_is_rejected(tmp_path, images, run_cli):
    (images / "ISIC_1.jpg").write_bytes(_jpeg_bytes(51))
    meta = _write(pd.DataFrame({"isic_id": ["ISIC_1", "ISIC_1"], "diagnosis": ["nevus", "melanoma"]}),
                  tmp_path / "metadata.csv")
    result = run_cli("cohort", "import", "--format", "isic", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="isic_id", words="duplicate image_id")


def test_scin_missing_image_names_the_case_row(tmp_path, images, run_cli):
    cases = pd.DataFrame({"case_id": ["-1", "-2"], "image_1_path": ["x/img0.jpg", "x/absent.png"],
                          "weighted_skin_condition_label": ["{'Acne': 1.0}", "{'Eczema': 1.0}"]})
    meta = _write(cases, tmp_path / "scin_cases.csv")
    result = run_cli("cohort", "import", "--format", "scin", "--metadata", meta, "--images", images,
                     "--out", tmp_path / "out")
    _assert_clean_failure(result, tmp_path / "out", row=2, column="image_1_path", words="file not found")


def test_validate_reports_an_image_deleted_after_import(tmp_path, images, run_cli):
    meta = _write(_csv_rows(images), tmp_path / "meta.csv")
    out = tmp_path / "cohort"
    assert run_cli("cohort", "import", "--format", "csv", "--metadata", meta, "--images", images,
                   "--out", out).exit_code == 0
    assert run_cli("cohort", "validate", out).exit_code == 0
    (images / "part_2" / "img4.jpg").unlink()
    result = run_cli("cohort", "validate", out)
    assert result.exit_code == 3
    assert "row 5" in result.stderr and "column 'image'" in result.stderr and "file not found" in result.stderr


def test_describe_on_a_folder_without_cohort_yaml_fails_cleanly(tmp_path, run_cli):
    result = run_cli("cohort", "describe", tmp_path)
    assert result.exit_code == 3
    assert "cohort.yaml is missing" in result.stderr


def test_describe_writes_json(tmp_path, images, run_cli):
    meta = _write(_csv_rows(images), tmp_path / "meta.csv")
    out = tmp_path / "cohort"
    run_cli("cohort", "import", "--format", "csv", "--metadata", meta, "--images", images, "--out", out)
    result = run_cli("cohort", "describe", out, "--json", tmp_path / "d.json")
    assert result.exit_code == 0
    import json

    described = json.loads((tmp_path / "d.json").read_text())
    assert described["tone_totals"]["fitzpatrick"] == {"1": 1, "2": 1, "4": 1, "5": 1, "6": 1, "missing": 1}
    assert described["patients"]["n_patients"] == 4
    assert described["image_sizes"]["width"]["max"] == 32


@pytest.mark.parametrize("fmt", ["csv", "pad-ufes-20"])
def test_header_only_metadata_is_refused_with_one_line(tmp_path, images, run_cli, fmt):
    meta = tmp_path / "meta.csv"
    meta.write_text("image_id,image,label,patient_id,lesion_id,img_id,diagnostic\n")
    out = tmp_path / "cohort"
    result = run_cli("cohort", "import", "--format", fmt, "--metadata", meta, "--images", images, "--out", out)
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    _assert_clean_failure(result, out, row=None, column=None, words="no data rows")
