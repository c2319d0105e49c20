"""``fairderm verify``: a fresh run verifies; any tampering is found and named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fairderm._io import atomic_write_parquet, read_parquet_metadata
from fairderm.audit import run_audit, verify_run
from fairderm.audit._verify import differences_between

pytestmark = pytest.mark.usefixtures("fake_metrics")


@pytest.fixture
def run_dir(write_spec) -> Path:
    return run_audit(write_spec()).run_dir


def _problems(result) -> set[tuple[str, str]]:
    return {(c.item, c.status) for c in result.problems}


def test_fresh_run_verifies(run_dir):
    result = verify_run(run_dir)
    assert result.ok, result.summary()
    items = {c.item for c in result.checks}
    assert {"metrics.json", "gate.json", "input cohort manifest", "input images", "input model"} <= items


def test_changed_prediction_is_found_and_named(run_dir):
    path = run_dir / "predictions.parquet"
    frame = pd.read_parquet(path)
    row = frame.index[0]
    probs = [c for c in frame.columns if c.startswith("prob_")]
    frame.loc[row, probs] = frame.loc[row, probs].to_numpy()[::-1]
    frame.loc[row, "pred"] = frame.loc[row, probs].astype(float).idxmax()[len("prob_"):]
    atomic_write_parquet(path, frame, metadata_json=read_parquet_metadata(path))
    result = verify_run(run_dir)
    assert not result.ok
    assert ("predictions.parquet", "mismatch") in _problems(result)


def test_changed_prediction_with_rewritten_evidence_is_caught_by_recomputation(run_dir):
    path = run_dir / "predictions.parquet"
    frame = pd.read_parquet(path)
    truth = pd.read_parquet(run_dir / "cohort" / "manifest.parquet").set_index("image_id")["label"]
    probs = [c for c in frame.columns if c.startswith("prob_")]
    # make the first ten cases confidently wrong, benign for malignant and back: accuracy must move
    for row in frame.index[:10]:
        wrong = "nevus" if truth[frame.loc[row, "image_id"]] in ("melanoma", "bcc") else "melanoma"
        frame.loc[row, probs] = [1.0 if c == f"prob_{wrong}" else 0.0 for c in probs]
    atomic_write_parquet(path, frame, metadata_json=read_parquet_metadata(path))
    evidence = json.loads((run_dir / "evidence.json").read_text())
    from fairderm._io import sha256_file

    evidence["artifacts"]["predictions.parquet"] = sha256_file(path)
    (run_dir / "evidence.json").write_text(json.dumps(evidence))
    result = verify_run(run_dir)
    problems = [c for c in result.problems if c.item == "metrics.json"]
    assert problems and all(c.key for c in problems)
    assert any("accuracy" in c.key and c.key.endswith("estimate") for c in problems)


def test_changed_manifest_row_in_the_cohort_is_found(run_dir, tiny_cohort_dir):
    path = tiny_cohort_dir / "manifest.parquet"
    manifest = pd.read_parquet(path)
    manifest.loc[3, "label"] = "melanoma" if manifest.loc[3, "label"] != "melanoma" else "nevus"
    manifest.to_parquet(path)
    result = verify_run(run_dir)
    assert ("input cohort manifest", "mismatch") in _problems(result)
    assert "manifest.parquet" in next(c.detail for c in result.problems if c.item == "input cohort manifest")


def test_changed_manifest_copy_in_the_run_is_found(run_dir):
    path = run_dir / "cohort" / "manifest.parquet"
    manifest = pd.read_parquet(path)
    manifest.loc[0, "sex"] = "other"
    manifest.to_parquet(path)
    assert ("cohort/manifest.parquet", "mismatch") in _problems(verify_run(run_dir))


def test_changed_metrics_json_is_found_naming_the_key(run_dir):
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    record = next(r for r in metrics["groups"] if r["group"] == "fitzpatrick_group=V-VI")
    record["estimate"] = record["estimate"] + 0.01
    path.write_text(json.dumps(metrics))
    result = verify_run(run_dir)
    keys = {c.key for c in result.problems if c.item == "metrics.json"}
    assert ("metrics.json", "mismatch") in _problems(result)
    assert "groups[attribute=fitzpatrick_group, group=fitzpatrick_group=V-VI, metric=accuracy].estimate" in keys


def test_changed_gate_verdict_is_found(run_dir):
    path = run_dir / "gate.json"
    gate = json.loads(path.read_text())
    gate["verdict"] = "PASS" if gate["verdict"] != "PASS" else "FAIL"
    path.write_text(json.dumps(gate))
    result = verify_run(run_dir)
    assert any(c.item == "gate.json" and c.key == "verdict" for c in result.problems)


def test_changed_image_is_found_naming_it(run_dir, tiny_cohort_dir):
    image = tiny_cohort_dir / "images" / "img002.png"
    image.write_bytes(image.read_bytes() + b"\0")
    result = verify_run(run_dir)
    detail = next(c.detail for c in result.problems if c.item == "input images")
    assert "img002.png" in detail
    assert verify_run(run_dir, check_images=False).ok


def test_changed_model_file_is_found(run_dir, predictions_file):
    predictions_file.write_text(predictions_file.read_text() + "\n")
    assert ("input model", "mismatch") in _problems(verify_run(run_dir))


def test_added_and_removed_files_are_found(run_dir):
    (run_dir / "notes.txt").write_text("added later")
    (run_dir / "junit.xml").unlink()
    problems = _problems(verify_run(run_dir))
    assert ("notes.txt", "unexpected") in problems and ("junit.xml", "missing") in problems


def test_run_verifies_without_its_original_inputs(run_dir, tiny_cohort_dir, predictions_file, policy_file):
    shutil.rmtree(tiny_cohort_dir)
    predictions_file.unlink()
    policy_file.unlink()
    result = verify_run(run_dir)
    assert result.ok, result.summary()
    skipped = {c.item for c in result.checks if c.status == "skipped"}
    assert {"input cohort", "input model", "input policy"} <= skipped


def test_moved_audit_tree_verifies_against_its_moved_inputs(run_dir, tmp_path):
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    shutil.move(tmp_path, moved)
    try:
        new_run = moved / run_dir.relative_to(tmp_path)
        result = verify_run(new_run)
        assert result.ok, result.summary()
        assert all(c.status == "ok" for c in result.checks if c.item == "input cohort manifest")
        assert any(c.item == "input cohort manifest" for c in result.checks)
    finally:
        shutil.move(moved, tmp_path)


def test_folder_without_evidence_is_rejected(tmp_path, run_cli):
    result = run_cli("verify", tmp_path)
    assert result.exit_code == 3 and "evidence.json not found" in result.stderr


def test_verify_command_exit_codes(run_cli, run_dir):
    assert run_cli("verify", run_dir).exit_code == 0
    (run_dir / "coverage.json").write_text("{}")
    result = run_cli("verify", run_dir)
    assert result.exit_code == 1
    assert "coverage.json" in result.stdout and "NOT verified" in result.stdout


def test_differences_use_float_tolerance_and_name_records():
    stored = {"groups": [{"group": "a", "metric": "m", "estimate": 0.5}], "n": 3}
    same = {"groups": [{"group": "a", "metric": "m", "estimate": 0.5 + 1e-15}], "n": 3}
    assert list(differences_between(stored, same)) == []
    other = {"groups": [{"group": "a", "metric": "m", "estimate": 0.5001}], "n": 4}
    keys = [k for k, _ in differences_between(stored, other)]
    assert keys == ["groups[group=a, metric=m].estimate", "n"]
    assert list(differences_between({"x": None}, {"x": 0.0})) == [("x", "stored None, recomputed 0.0")]


def _with_masks(cohort_root: Path) -> None:
    """Give every case of the tiny cohort a lesion mask file (column ``mask``)."""
    manifest = pd.read_parquet(cohort_root / "manifest.parquet")
    for image in manifest["image"]:
        Image.new("L", (8, 8), 0).save(cohort_root / image.replace(".png", "_mask.png"))
    manifest["mask"] = manifest["image"].str.replace(".png", "_mask.png", regex=False)
    manifest.to_parquet(cohort_root / "manifest.parquet", index=False)


def test_lesion_masks_used_by_the_tone_stage_are_hashed_and_verified(write_spec, tiny_cohort_dir):
    _with_masks(tiny_cohort_dir)
    run = run_audit(write_spec(tone={"source": "estimate", "lesion_masks": True, "column": None,
                                     "workers": 1}))
    evidence = json.loads((run.run_dir / "evidence.json").read_text())
    assert evidence["inputs"]["images"]["masks"] == evidence["inputs"]["images"]["count"] > 0
    listing = (run.run_dir / "images.sha256").read_text()
    assert "images/img001_mask.png" in listing  # a test-split case (every fifth is train)
    tone = pd.read_parquet(next(run.run_dir.rglob("tone.parquet")))
    assert tone["method"].str.contains("lesion=cohort-masks").all()
    assert verify_run(run.run_dir).ok
    mask = tiny_cohort_dir / "images" / "img006_mask.png"
    mask.write_bytes(mask.read_bytes() + b"\0")
    detail = next(c.detail for c in verify_run(run.run_dir).problems if c.item == "input images")
    assert "img006_mask.png" in detail


@pytest.fixture
def carded_run(write_spec) -> Path:
    return run_audit(write_spec(outputs={"figures": False, "card": True})).run_dir


def test_card_with_info_into_a_finished_run_is_refused_and_the_run_still_verifies(carded_run, tmp_path, run_cli):
    run_dir = carded_run
    info = tmp_path / "card.yaml"
    info.write_text("card:\n  intended_use: Research only.\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in run_dir.glob("card.*")}
    result = run_cli("card", run_dir, "--info", info)
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "evidence.json" in lines[0] and "--out" in lines[0], result.stderr
    assert len(before) == 3 and {p.name: p.read_bytes() for p in run_dir.glob("card.*")} == before
    assert verify_run(run_dir, check_inputs=False).ok


def test_card_with_info_written_elsewhere_leaves_the_run_verifiable(carded_run, tmp_path, run_cli):
    run_dir = carded_run
    info = tmp_path / "card.yaml"
    info.write_text("card:\n  intended_use: Research only.\n", encoding="utf-8")
    result = run_cli("card", run_dir, "--info", info, "--out", tmp_path / "card")
    assert result.exit_code == 0, result.stderr
    assert "Research only." in (tmp_path / "card" / "card.md").read_text(encoding="utf-8")
    assert verify_run(run_dir, check_inputs=False).ok
