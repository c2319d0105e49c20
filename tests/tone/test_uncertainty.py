"""What the intervals say about the strata: type probabilities and the measurement's repeatability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairderm.errors import InputError
from fairderm.tone import (
    ToneParameters,
    estimate_tone,
    group_cut_points,
    ita_to_fitzpatrick,
    measurement_repeatability,
    tone_probabilities,
)
from fairderm.tone._scales import fitzpatrick_group
from tests.helpers.skin_photos import SYNTH_WHITE


def _table(ita, half_width, status=None) -> pd.DataFrame:
    ita = np.asarray(ita, dtype=float)
    half = np.broadcast_to(np.asarray(half_width, dtype=float), ita.shape)
    frame = pd.DataFrame({
        "ita": ita, "ita_low": ita - half, "ita_high": ita + half,
        "status": status if status is not None else ["ok"] * len(ita),
    })
    frame.attrs["fairderm_tone"] = {}  # an estimate that recorded no scheme: the default cut points
    return frame


def test_an_estimate_far_from_the_boundaries_is_surely_in_its_group():
    result = measurement_repeatability(_table([50.0, 16.0, -30.0], 1.0))  # groups split at 28 and 5 (groh)
    assert result["repeatability"] == pytest.approx(1.0, abs=1e-9)
    assert {g: v["n"] for g, v in result["by_group"].items()} == {"I-II": 1, "III-IV": 1, "V-VI": 1}


def test_an_estimate_on_a_boundary_is_a_coin_toss():
    # 28.001 is I-II, with almost half its interval's mass below the I-II | III-IV boundary
    result = measurement_repeatability(_table([28.001], 10.0))
    assert result["repeatability"] == pytest.approx(0.5, abs=0.01)
    assert result["interval_counts"]["I-II"]["III-IV"] == pytest.approx(0.5, abs=0.01)


def test_repeatability_matches_the_normal_reading_of_the_interval():
    from scipy.stats import norm

    sigma = 10.0 / 1.959964
    result = measurement_repeatability(_table([20.0], 10.0))  # III-IV spans (5, 28]
    assert result["repeatability"] == pytest.approx(norm.cdf(8 / sigma) - norm.cdf(-15 / sigma), rel=1e-6)


def test_abstentions_and_rows_without_an_interval_are_left_out():
    frame = _table([50.0, 50.0, 50.0], 1.0, status=["ok", "abstain", "ok"])
    frame.loc[2, ["ita_low", "ita_high"]] = np.nan  # skin-tone-classifier's rows carry no interval
    result = measurement_repeatability(frame)
    assert result["n"] == 1
    empty = measurement_repeatability(frame.iloc[1:2])
    assert empty["n"] == 0 and np.isnan(empty["repeatability"])


def test_interval_counts_add_up_to_the_estimated_groups():
    rng = np.random.default_rng(0)
    result = measurement_repeatability(_table(rng.uniform(-50, 70, 200), rng.uniform(2, 20, 200)))
    for group, row in result["interval_counts"].items():
        assert sum(row.values()) == pytest.approx(result["by_group"][group]["n"])


def test_group_cut_points_follow_the_tables_provenance():
    frame = _table([10.0], 1.0)
    assert group_cut_points(frame) == (28.0, 5.0)
    frame.attrs["fairderm_tone"] = {"fitzpatrick_scheme": "kinyanjui"}
    assert group_cut_points(frame) == (41.0, 19.0)
    frame.attrs["fairderm_tone"] = {"calibration": {"scale": "fitzpatrick", "cutpoints": [50, 40, 30, 20, 10]}}
    assert group_cut_points(frame) == (40.0, 20.0)
    frame.attrs["fairderm_tone"] = {"calibration": {"scale": "fitzpatrick_group", "cutpoints": [33.0, 12.0]}}
    assert group_cut_points(frame) == (33.0, 12.0)
    assert measurement_repeatability(frame)["cut_points"] == [33.0, 12.0]


def test_a_table_without_intervals_is_refused_naming_the_column():
    with pytest.raises(InputError, match="ita_low"):
        measurement_repeatability(pd.DataFrame({"ita": [1.0], "status": ["ok"]}))


def test_type_probabilities_sum_to_one_and_agree_with_the_group_reading():
    frame = _table([50.0, 20.0, 4.0, -60.0], 8.0, status=["ok", "ok", "ok", "abstain"])
    probs = tone_probabilities(frame)
    assert probs.sum(axis=1) == pytest.approx(np.ones(4), abs=1e-6)
    assert probs[3] == pytest.approx(np.full(6, 1 / 6))
    groups = probs[:3].reshape(3, 3, 2).sum(axis=2)
    estimated = [0, 1, 2]
    own = groups[np.arange(3), estimated]
    assert own.mean() == pytest.approx(measurement_repeatability(frame)["repeatability"], abs=1e-6)


def test_repeatability_is_close_to_the_agreement_with_the_true_ita_on_synthetic_photographs(synth_cohort):
    """Where the interval's error model holds (synthetic photographs, the exposure prior set to the synthetic
    camera's: uniform +-0.2 stops, SD 0.115), repeatability tracks agreement with the truth."""
    tone = estimate_tone(synth_cohort, workers=1,
                         parameters=ToneParameters(exposure_sd=0.115, white_reflectance=SYNTH_WHITE))
    ok = tone["status"].eq("ok").to_numpy()
    true_group = fitzpatrick_group(ita_to_fitzpatrick(synth_cohort.manifest["true_ita"].to_numpy(dtype=float)))
    measured = (tone["fitzpatrick_group_est"].astype(str).to_numpy() == true_group.astype(str).to_numpy())[ok]
    repeatability = measurement_repeatability(tone)
    assert repeatability["n"] == ok.sum()
    assert abs(repeatability["repeatability"] - measured.mean()) < 0.08


def test_a_table_without_provenance_is_refused_not_given_default_cut_points():
    frame = _table([10.0], 1.0)
    frame.attrs = {}
    with pytest.raises(InputError, match="no provenance"):
        measurement_repeatability(frame)
    with pytest.raises(InputError, match="read_tone_table"):
        group_cut_points(frame)


def test_provenance_read_with_the_table_survives_a_concat(tmp_path, synth_cohort):
    from fairderm.tone import ToneProvenance, read_tone_table, tone_cut_points, write_tone

    frame = _table(np.linspace(-40, 60, len(synth_cohort)), 2.0)
    frame.insert(0, "image_id", synth_cohort.manifest["image_id"].astype(str).to_numpy())
    for column, value in (("skin_fraction", 0.5), ("fitzpatrick_est", 3), ("monk_est", 5), ("reason", ""),
                          ("method", "fairderm")):
        frame[column] = value
    frame.attrs["fairderm_tone"] = {"fitzpatrick_scheme": "kinyanjui", "calibration": None}
    write_tone(tmp_path / "tone.parquet", frame, synth_cohort)
    table = read_tone_table(tmp_path / "tone.parquet", synth_cohort)
    joined = pd.concat([table.frame.iloc[:3], table.frame.iloc[3:]])
    joined.attrs = {}  # what pandas may leave after concat or merge
    assert table.provenance.estimation["fitzpatrick_scheme"] == "kinyanjui"
    assert tone_cut_points(table.provenance) == (55.0, 41.0, 28.0, 19.0, 10.0)
    assert tone_cut_points(ToneProvenance(estimation={})) == (45.0, 28.0, 17.0, 5.0, -20.0)
    assert measurement_repeatability(joined, table.provenance)["cut_points"] == \
        list(table.provenance.group_cut_points())
    assert table.provenance.cohort["manifest_sha256"] == synth_cohort.manifest_sha256()
