"""Backbone features with their cache; head training on them; the backbone backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairderm.cohort import write_cohort
from fairderm.errors import InputError
from fairderm.inference import (
    extract_features,
    load_head,
    read_predictions,
    run_inference,
    train_head,
)
from tests.helpers.lesion_cohorts import make_lesion_cohort

# the module's cohort features take several seconds on a busy 2-core machine
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 40-image cohort, its features and a linear head (shared: extraction is the slow part)."""
    root = tmp_path_factory.mktemp("trained")
    cohort = make_lesion_cohort(root / "cohort", n=40, size=64, fmt="jpg")
    features = extract_features(cohort, cache_dir=root / "cache", workers=0)
    result = train_head(cohort, root / "head", features=features)
    return cohort, features, result, root


def test_features_are_float32_1280_in_manifest_order_and_cached(trained):
    cohort, features, _, root = trained
    assert features.features.shape == (40, 1280) and features.features.dtype == np.float32
    assert features.image_ids == cohort.manifest["image_id"].tolist()
    again = extract_features(cohort, cache_dir=root / "cache", workers=0)
    assert again.cache_hits == 40
    np.testing.assert_array_equal(again.features, features.features)


def test_cache_key_changes_with_image_bytes(trained, tmp_path):
    root = trained[3]
    moved = make_lesion_cohort(tmp_path / "other", n=3, size=64, fmt="jpg", seed=9)
    fresh = extract_features(moved, cache_dir=root / "cache", workers=0)
    assert fresh.cache_hits == 0


def test_unreadable_image_gets_nan_features_and_a_reason(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "c", n=4, size=48, broken=1)
    features = extract_features(cohort, cache_dir=tmp_path / "cache", workers=0)
    assert list(features.errors) == ["img_0003"] and features.errors["img_0003"].startswith(
        "cannot read image"
    )
    assert features.ok.tolist() == [True, True, True, False]


def test_head_uses_manifest_split_and_records_provenance(trained):
    cohort, features, result, root = trained
    config = json.loads((root / "head" / "head.json").read_text())
    assert config["training"]["split_method"].startswith("manifest split column")
    assert config["training"]["n_train"] == int((cohort.manifest["split"] == "train").sum())
    assert config["cohort"]["manifest_sha256"] == cohort.manifest_sha256()
    assert config["backbone"]["weights_sha256"] == features.backbone["weights_sha256"]
    assert config["classes"] == ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]
    assert config["training"]["best_epoch"] <= config["training"]["epochs_run"]
    assert result.config["training"]["val_accuracy"] > 0.5  # the lesions differ by colour and size
    head, loaded = load_head(root / "head")
    assert loaded["seed"] == 0 and sum(p.numel() for p in head.parameters()) == 1280 * 4 + 4


def test_grouped_split_keeps_each_patient_on_one_side(trained, tmp_path):
    cohort, features, _, _ = trained
    manifest = cohort.manifest.drop(columns=["split"])
    no_split = write_cohort(
        tmp_path / "nosplit", cohort.spec, manifest, images_root=cohort.images_root
    )
    result = train_head(no_split, tmp_path / "head", features=features, head="mlp", seed=3)
    assert result.config["training"]["patients_in_train_and_val"] == 0
    assert result.config["training"]["split_method"].startswith(
        "grouped shuffle split by patient_id"
    )


def test_train_filter_selects_rows(trained, tmp_path):
    cohort, features, _, _ = trained
    result = train_head(
        cohort, tmp_path / "head", features=features, train_filter="fitzpatrick <= 4"
    )
    used = cohort.manifest.query("fitzpatrick <= 4")
    assert result.config["train_filter"] == "fitzpatrick <= 4"
    assert result.config["training"]["n_train"] + result.config["training"]["n_val"] <= len(used)


def test_bad_train_filter_is_rejected(trained, tmp_path):
    cohort, features, _, _ = trained
    with pytest.raises(InputError, match="invalid filter expression"):
        train_head(cohort, tmp_path / "head", features=features, train_filter="split === 'train'")
    with pytest.raises(InputError, match="keeps no rows"):
        train_head(cohort, tmp_path / "head2", features=features, train_filter="fitzpatrick > 6")


def test_missing_label_column_is_rejected(trained, tmp_path):
    cohort, features, _, _ = trained
    with pytest.raises(InputError, match="label column 'malignant' not in the manifest"):
        train_head(cohort, tmp_path / "head", features=features, label="malignant")


def test_backbone_backend_predicts_every_case(trained, tmp_path):
    cohort, _, _, root = trained
    run = run_inference(
        cohort,
        tmp_path / "p.parquet",
        backend="backbone",
        model=root / "head",
        batch_size=16,
        workers=0,
    )
    frame = read_predictions(tmp_path / "p.parquet", cohort)
    assert (frame["status"] == "ok").all() and len(frame) == 40
    probs = frame[[f"prob_{label}" for label in cohort.spec.labels]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (frame["pred"] == cohort.manifest["label"]).mean() > 0.5
    assert run.metadata["model"]["backbone"]["name"] == "efficientnet-lite0"
    assert run.metadata["preprocessing"]["normalise"] == "(rgb_0_255 - 127) / 128"


def test_head_folder_without_config_is_rejected(tmp_path, lesion_cohort):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a head folder"):
        run_inference(
            lesion_cohort, tmp_path / "p.parquet", backend="backbone", model=tmp_path / "empty"
        )


@pytest.mark.shared
def test_backbone_runs_on_real_pad_photos_per_stratum(trained, pad_subset, tmp_path):
    from fairderm.cohort import import_cohort

    pad = import_cohort("pad-ufes-20", pad_subset / "labels.csv", pad_subset, tmp_path / "pad")
    run = run_inference(
        pad,
        tmp_path / "p.parquet",
        backend="backbone",
        model=trained[3] / "head",
        strata="fitzpatrick_group",
        cap_per_stratum=4,
        workers=1,
    )
    frame = read_predictions(tmp_path / "p.parquet", pad)
    # the synthetic head's nevus/melanoma/bcc/seborrheic_keratosis map onto PAD's NEV/MEL/BCC/SEK
    assert run.metadata["class_mapping"] == {
        "nevus": "NEV",
        "melanoma": "MEL",
        "bcc": "BCC",
        "seborrheic_keratosis": "SEK",
    }
    assert (frame["status"] == "ok").all() and set(frame["pred"]) <= {"NEV", "MEL", "BCC", "SEK"}
    assert frame["stratum"].value_counts().to_dict() == {
        "I-II": 4,
        "III-IV": 4,
        "V-VI": 4,
        "unknown": 4,
    }


def test_backbone_backend_reuses_cached_features_without_decoding(trained, tmp_path):
    cohort, _, _, root = trained
    run_inference(cohort, tmp_path / "cached.parquet", backend="backbone", model=root / "head",
                  options={"feature_cache": str(root / "cache")}, workers=0)
    run_inference(cohort, tmp_path / "fresh.parquet", backend="backbone", model=root / "head",
                  options={"feature_cache": False}, workers=0)
    columns = [f"prob_{label}" for label in cohort.spec.labels]
    cached = read_predictions(tmp_path / "cached.parquet", cohort)[columns].to_numpy()
    fresh = read_predictions(tmp_path / "fresh.parquet", cohort)[columns].to_numpy()
    np.testing.assert_allclose(cached, fresh, atol=1e-6)


def test_backbone_backend_does_not_decode_a_cached_image(trained, monkeypatch):
    from fairderm.inference import Backbone, CachedEmbedder

    cohort, _, _, root = trained
    embedder = CachedEmbedder(Backbone(), root / "cache")

    def refuse(path):
        raise AssertionError(f"decoded {path}")

    monkeypatch.setattr(Backbone, "preprocess", staticmethod(refuse))
    items = [embedder.preprocess(p) for p in cohort.image_paths()[:3]]
    assert all(item.pixels is None for item in items)
    assert embedder.embed(items).shape == (3, 1280)


def test_backbone_backend_adds_what_it_computes_to_the_cache(trained, tmp_path):
    cohort, _, _, root = trained
    cache = tmp_path / "new-cache"
    run_inference(cohort, tmp_path / "p.parquet", backend="backbone", model=root / "head",
                  options={"feature_cache": str(cache)}, workers=0)
    assert extract_features(cohort, cache_dir=cache, workers=0).cache_hits == len(cohort.manifest)


def test_feature_cache_option_of_the_wrong_type_is_rejected(trained, tmp_path):
    cohort, _, _, root = trained
    with pytest.raises(InputError, match="feature_cache must be true, false or a folder"):
        run_inference(cohort, tmp_path / "p.parquet", backend="backbone", model=root / "head",
                      options={"feature_cache": 3})


def test_head_is_temperature_scaled_on_validation_and_old_heads_still_load(trained, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    _, _, result, _ = trained
    calibration = result.config["calibration"]
    assert calibration["n_val"] == result.config["training"]["n_val"]
    assert calibration["val_nll_after"] <= calibration["val_nll_before"]
    model, _ = load_head(result.path)
    assert float(model.temperature) == pytest.approx(calibration["temperature"], rel=1e-5)
    # a head folder from before temperature scaling (no buffer) loads, uncalibrated
    old = tmp_path / "old-head"
    shutil.copytree(result.path, old)
    state = {k: v for k, v in load_file(str(old / "head.safetensors")).items() if k != "temperature"}
    save_file(state, str(old / "head.safetensors"))
    old_model, _ = load_head(old)
    assert float(old_model.temperature) == 1.0
    features = torch.randn(4, 1280)
    with torch.no_grad():
        assert torch.allclose(old_model(features), model(features) * model.temperature, atol=1e-5)
