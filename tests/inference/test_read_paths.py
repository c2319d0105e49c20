"""Every image is checked inside images_root when it is read, not only when the cohort was imported."""

from __future__ import annotations

import hashlib

import pandas as pd

from fairderm.cohort import load_cohort
from fairderm.inference import extract_features, run_inference
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM


def _swap_after_import(cohort, tmp_path):
    """img_0001 becomes a symlink to a file outside images_root; img_0002's manifest path leaves it."""
    outside = tmp_path / "outside.png"
    outside.write_bytes((cohort.images_root / "images" / "img_0003.png").read_bytes() + b"secret")
    link = cohort.images_root / "images" / "img_0001.png"
    link.unlink()
    link.symlink_to(outside)
    manifest = pd.read_parquet(cohort.manifest_path)
    manifest.loc[manifest["image_id"] == "img_0002", "image"] = "../../outside.png"
    manifest.to_parquet(cohort.manifest_path, index=False)
    return load_cohort(cohort.root), outside


def test_symlink_or_manifest_swapped_after_import_is_an_error_row_and_never_sent(tmp_path):
    cohort, outside = _swap_after_import(make_lesion_cohort(tmp_path / "cohort", n=6, size=32), tmp_path)
    with ScriptedVLM() as server:
        run = run_inference(cohort, tmp_path / "preds.parquet", backend="openai", workers=0,
                            options={"endpoint": server.endpoint, "max_retries": 0})
        sent = set(server.hits)
    frame = run.predictions.set_index("image_id")
    for image_id in ("img_0001", "img_0002"):
        assert frame.loc[image_id, "status"] == "error"
        assert "escapes images_root" in frame.loc[image_id, "reason"]
    assert (frame.drop(index=["img_0001", "img_0002"])["status"] == "ok").all()
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in sent


def test_router_features_of_a_swapped_symlink_are_an_error_not_read(tmp_path, monkeypatch):
    cohort, outside = _swap_after_import(make_lesion_cohort(tmp_path / "cohort", n=4, size=32), tmp_path)
    hashed: list[str] = []
    from fairderm.inference import _backbone

    real = _backbone.sha256_file
    monkeypatch.setattr(_backbone, "sha256_file", lambda path: hashed.append(str(path)) or real(path))
    features = extract_features(cohort, cache_dir=tmp_path / "cache", workers=0)
    assert set(features.errors) == {"img_0001", "img_0002"}
    assert all("escapes images_root" in reason for reason in features.errors.values())
    assert str(outside) not in hashed and str(outside.resolve()) not in hashed
