"""``fairderm tone estimate|validate|calibrate``: outputs, options, errors, and no partial files."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from fairderm.tone import TONE_COLUMNS, load_calibration, read_tone
from tests.helpers.skin_photos import make_image_cohort


@pytest.fixture(scope="module")
def tone_file(tmp_path_factory, synth_cohort):
    """A tone table written by the CLI with two worker processes."""
    from fairderm.cli import main

    path = tmp_path_factory.mktemp("cli") / "tone.parquet"
    assert main(["tone", "estimate", str(synth_cohort.root), "--out", str(path), "--workers", "2",
                 "--white-reflectance", "0.65"]) == 0
    return path


def test_estimate_writes_the_contract_columns(tone_file, synth_cohort, synth_tone):
    frame = read_tone(tone_file, synth_cohort)
    assert list(frame.columns[: len(TONE_COLUMNS)]) == list(TONE_COLUMNS)
    assert frame["image_id"].tolist() == synth_cohort.manifest["image_id"].tolist()
    # two worker processes give exactly what one process gives
    pd.testing.assert_series_equal(frame["ita"], synth_tone["ita"].astype("float64"))
    assert frame["method"].iloc[0].startswith("fairderm-ita/5;fitzpatrick=groh")


def test_estimate_prints_counts(run_cli, synth_cohort, tmp_path):
    result = run_cli("tone", "estimate", synth_cohort.root, "--out", tmp_path / "t.parquet", "--workers", "1",
                     "--fitzpatrick-scheme", "kinyanjui")
    assert result.exit_code == 0, result.stderr
    assert "ok" in result.stdout and "of 60 images" in result.stdout
    assert read_tone(tmp_path / "t.parquet")["method"].iloc[0].endswith("fitzpatrick=kinyanjui")
    printed = " ".join(result.stdout.split())
    assert re.search(r"measurement repeatability: the ITA of \d+% of the \d+ measured images stays in its "
                     r"I-II / III-IV / V-VI group", printed)
    assert "repeatability is not accuracy" in printed and "0.41-0.49" in printed and "0.69-0.76" in printed
    assert "expected in" not in printed and "right group" not in printed


def test_exposure_sd_is_recorded_and_narrows_the_interval(run_cli, synth_cohort, synth_tone, tmp_path):
    result = run_cli("tone", "estimate", synth_cohort.root, "--out", tmp_path / "t.parquet", "--workers", "1",
                     "--exposure-sd", "0", "--white-reflectance", "0.65")
    assert result.exit_code == 0, result.stderr
    frame = read_tone(tmp_path / "t.parquet")
    assert frame.attrs["fairderm_tone"]["parameters"]["exposure_sd"] == 0.0
    pd.testing.assert_series_equal(frame["ita"], synth_tone["ita"].astype("float64"))
    width = frame["ita_high"] - frame["ita_low"]
    default_width = synth_tone["ita_high"] - synth_tone["ita_low"]
    assert (width < default_width).sum() >= 0.9 * width.notna().sum()


def test_negative_exposure_sd_is_refused_without_output(run_cli, synth_cohort, tmp_path):
    result = run_cli("tone", "estimate", synth_cohort.root, "--out", tmp_path / "t.parquet", "--exposure-sd", "-1")
    assert result.exit_code == 3
    assert "--exposure-sd" in result.stderr
    assert not (tmp_path / "t.parquet").exists()


def test_validate_prints_a_table_and_writes_json(run_cli, synth_cohort, tone_file, tmp_path):
    out = tmp_path / "validation.json"
    result = run_cli("tone", "validate", synth_cohort.root, "--tone", tone_file, "--label", "fitzpatrick_group",
                     "--json", out, "--n-boot", "200")
    assert result.exit_code == 0, result.stderr
    assert "kappa_quadratic" in result.stdout and "confusion" in result.stdout
    report = json.loads(out.read_text())
    assert report["label"] == "fitzpatrick_group"
    assert set(report["metrics"]) >= {"exact_agreement", "within_one", "kappa_quadratic", "spearman",
                                      "abstention_rate"}
    assert report["config"]["n_boot"] == 200


def test_calibrate_then_estimate_with_calibration(run_cli, synth_cohort, tone_file, tmp_path):
    cal = tmp_path / "cal.json"
    result = run_cli("tone", "calibrate", synth_cohort.root, "--tone", tone_file, "--label", "fitzpatrick",
                     "--out", cal)
    assert result.exit_code == 0, result.stderr
    calibration = load_calibration(cal)
    assert calibration.scale == "fitzpatrick" and len(calibration.cutpoints) == 5
    out = tmp_path / "calibrated.parquet"
    result = run_cli("tone", "estimate", synth_cohort.root, "--out", out, "--calibration", cal, "--workers", "1")
    assert result.exit_code == 0, result.stderr
    frame = read_tone(out, synth_cohort)
    assert f"calibrated:{calibration.sha256[:12]}" in frame["method"].iloc[0]
    ok = frame["status"].eq("ok").to_numpy()
    expected = calibration.apply(frame["ita"].to_numpy())[ok] + 1
    np.testing.assert_array_equal(frame["fitzpatrick_est"].to_numpy(dtype=float)[ok], expected)


def test_calibrate_reports_the_out_of_fold_agreement_beside_the_published(run_cli, synth_cohort, tone_file, tmp_path):
    result = run_cli("tone", "calibrate", synth_cohort.root, "--tone", tone_file, "--label", "fitzpatrick",
                     "--out", tmp_path / "cal.json")
    assert result.exit_code == 0, result.stderr
    printed = " ".join(result.stdout.split())
    assert re.search(r"exact agreement out of fold \(5-fold, folds of whole patient_id\): [0-9.]+; "
                     r"published cut-points \(groh\) on the same images: [0-9.]+", printed)
    cv = load_calibration(tmp_path / "cal.json").cross_validation
    assert cv["agreement"] > cv["published_agreement"]


def test_calibrate_to_labels_the_ita_does_not_track_is_refused_and_writes_nothing(
    run_cli, synth_cohort, tone_file, tmp_path
):
    from fairderm.tone import write_tone

    frame = read_tone(tone_file, synth_cohort)
    frame["ita"] = np.random.default_rng(0).permutation(frame["ita"].to_numpy())  # ITA unrelated to the labels
    shuffled = tmp_path / "shuffled.parquet"
    write_tone(shuffled, frame, synth_cohort)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("tone", "calibrate", synth_cohort.root, "--tone", shuffled, "--label", "fitzpatrick_group",
                     "--out", out_dir / "cal.json")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: column 'fitzpatrick_group': calibration refused")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(out_dir.iterdir()) == []


def test_calibrate_monk_is_compared_with_the_published_swatches(run_cli, synth_cohort, tone_file, tmp_path):
    # the synthetic Monk labels are the nearest swatch of the true skin colour: the published mapping itself
    result = run_cli("tone", "calibrate", synth_cohort.root, "--tone", tone_file, "--label", "monk",
                     "--out", tmp_path / "cal.json")
    assert result.exit_code == 3
    assert "no better than the published monk-swatches mapping" in result.stderr
    assert not (tmp_path / "cal.json").exists()


def test_estimate_with_bad_calibration_file_writes_nothing(run_cli, synth_cohort, tmp_path):
    cal = tmp_path / "cal.json"
    cal.write_text('{"format": "something else"}')
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("tone", "estimate", synth_cohort.root, "--out", out_dir / "tone.parquet", "--calibration", cal)
    assert result.exit_code == 3
    assert result.stderr.startswith("error:") and "cal.json" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_validate_with_tone_file_of_another_cohort_writes_no_json(run_cli, tone_file, tmp_path):
    other = make_image_cohort(tmp_path / "other", {"a.png": b"x"}, extra={"fitzpatrick": [3]})
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("tone", "validate", other.root, "--tone", tone_file, "--label", "fitzpatrick",
                     "--json", out_dir / "v.json")
    assert result.exit_code == 3
    assert "does not match the cohort" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_calibrate_with_unknown_label_writes_nothing(run_cli, synth_cohort, tone_file, tmp_path):
    result = run_cli("tone", "calibrate", synth_cohort.root, "--tone", tone_file, "--label", "colour",
                     "--out", tmp_path / "cal.json")
    assert result.exit_code == 3
    assert "label must be one of" in result.stderr
    assert not (tmp_path / "cal.json").exists()


def test_estimate_with_unknown_constancy_is_a_usage_error(run_cli, synth_cohort, tmp_path):
    result = run_cli("tone", "estimate", synth_cohort.root, "--out", tmp_path / "t.parquet", "--constancy", "magic")
    assert result.exit_code == 3
    assert "unknown constancy" in result.stderr
    assert not (tmp_path / "t.parquet").exists()


def test_estimate_on_missing_cohort_is_an_input_error(run_cli, tmp_path):
    result = run_cli("tone", "estimate", tmp_path / "nowhere", "--out", tmp_path / "t.parquet")
    assert result.exit_code == 3
    assert not (tmp_path / "t.parquet").exists()


@pytest.mark.parametrize("command", ["estimate", "validate", "calibrate"])
def test_every_tone_command_has_help(run_cli, command):
    result = run_cli("tone", command, "--help")
    assert result.exit_code == 0
    assert "--help" in result.stdout


@pytest.mark.parametrize("command", ["estimate", "calibrate"])
def test_out_naming_a_folder_is_refused_before_any_work(run_cli, synth_cohort, tmp_path, monkeypatch, command):
    def no_work(*args, **kwargs):
        raise AssertionError("the work started before --out was checked")

    monkeypatch.setattr("fairderm.tone.estimate_tone", no_work)
    monkeypatch.setattr("fairderm.tone.fit_calibration", no_work)
    folder = tmp_path / "out"
    folder.mkdir()
    args = ["--tone", tmp_path / "t.parquet", "--label", "fitzpatrick"] if command == "calibrate" else []
    result = run_cli("tone", command, synth_cohort.root, "--out", folder, *args)
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "is a folder" in result.stderr and "--out" in result.stderr


def test_validate_with_unknown_label_names_the_flag(run_cli, synth_cohort, tone_file):
    # validate_tone() names its parameter 'label'; the command reports the flag the user typed.
    result = run_cli("tone", "validate", synth_cohort.root, "--tone", tone_file, "--label", "colour")
    assert result.exit_code == 3
    assert "column '--label'" in result.stderr and "label must be one of" in result.stderr
