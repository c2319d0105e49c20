"""The audit's tone stage: its settings reach the estimator, and a change of estimator reruns it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fairderm.audit import load_spec
from fairderm.audit._stages import run_tone
from fairderm.cohort import load_cohort
from fairderm.tone import ToneCalibration, read_tone

pytestmark = pytest.mark.usefixtures("fake_metrics")


def _calibration(path: Path) -> Path:
    ToneCalibration(scale="fitzpatrick_group", cutpoints=(30.0, 10.0), n=10, counts={"I-II": 5, "III-IV": 5},
                    training_agreement=0.8).save(path)
    return path


def test_tone_stage_applies_the_specs_calibration_and_exposure_prior(write_spec, tiny_cohort_dir, tmp_path):
    _calibration(tmp_path / "cal.json")
    loaded = load_spec(write_spec(tone={"source": "estimate", "calibration": "../cal.json", "exposure_sd": 0.05,
                                        "column": None}))
    out = tmp_path / "stage"
    out.mkdir()
    cohort = load_cohort(tiny_cohort_dir)
    run_tone(loaded, cohort, out, None)
    frame = read_tone(out / "tone.parquet", cohort)
    settings = frame.attrs["fairderm_tone"]
    assert settings["calibration"]["scale"] == "fitzpatrick_group"
    assert settings["parameters"]["exposure_sd"] == 0.05
    assert pd.Series(frame["method"]).str.contains("fitzpatrick_group=calibrated").all()


def test_a_new_tone_estimator_reruns_the_tone_stage(write_spec, monkeypatch):
    from fairderm.audit import run_audit

    spec = write_spec(tone={"source": "estimate", "column": None}, strata={"attributes": ["sex"]})
    first = run_audit(spec)
    assert "tone" not in first.cache_hits
    assert "tone" in run_audit(spec).cache_hits
    monkeypatch.setattr("fairderm.tone.ESTIMATOR_VERSION", "fairderm-ita/999")
    assert "tone" not in run_audit(spec).cache_hits
