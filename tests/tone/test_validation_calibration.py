"""Validation report (cross-checked with scikit-learn and scipy), calibration fit/load, tone files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from fairderm.errors import InputError
from fairderm.tone import (
    ToneValidation,
    estimate_tone,
    fit_calibration,
    load_calibration,
    read_tone,
    validate_tone,
    write_tone,
)
from fairderm.tone._validation import _quadratic_kappa
from tests.helpers.skin_photos import make_image_cohort


@pytest.fixture(scope="module")
def report(synth_cohort, synth_tone) -> ToneValidation:
    return validate_tone(synth_cohort, synth_tone, "fitzpatrick", n_boot=300, seed=1)


def _evaluated(cohort, tone):
    ok = tone["status"].eq("ok") & tone["fitzpatrick_est"].notna()
    return cohort.manifest["fitzpatrick"][ok].astype(int), tone["fitzpatrick_est"][ok].astype(int), tone[ok]


def test_validation_kappa_matches_sklearn_quadratic(report, synth_cohort, synth_tone):
    true, estimated, _ = _evaluated(synth_cohort, synth_tone)
    expected = cohen_kappa_score(true, estimated, weights="quadratic", labels=[1, 2, 3, 4, 5, 6])
    assert report.metrics["kappa_quadratic"]["estimate"] == pytest.approx(expected, abs=1e-9)


def test_validation_spearman_matches_scipy(report, synth_cohort, synth_tone):
    true, _, ok_rows = _evaluated(synth_cohort, synth_tone)
    expected = spearmanr(-ok_rows["ita"], true)[0]
    assert report.metrics["spearman"]["estimate"] == pytest.approx(expected, abs=1e-9)


def test_validation_agreement_confusion_and_abstention(report, synth_cohort, synth_tone):
    true, estimated, _ = _evaluated(synth_cohort, synth_tone)
    assert report.metrics["exact_agreement"]["estimate"] == pytest.approx(np.mean(true == estimated))
    assert report.metrics["within_one"]["estimate"] == pytest.approx(np.mean(np.abs(true - estimated) <= 1))
    assert report.metrics["abstention_rate"]["estimate"] == pytest.approx(np.mean(synth_tone["status"] != "ok"))
    confusion = np.array(report.confusion["counts"])
    expected = pd.crosstab(true, estimated).reindex(index=range(1, 7), columns=range(1, 7), fill_value=0)
    np.testing.assert_array_equal(confusion, expected.to_numpy())
    assert report.n_evaluated == len(true)


def test_validation_sets_the_measurement_repeatability_beside_the_labels(report, synth_cohort, synth_tone):
    from fairderm.tone import measurement_repeatability

    # the label-free figure over the evaluated images: every ok image here has a label and an interval
    expected = measurement_repeatability(synth_tone)["repeatability"]
    assert report.metrics["measurement_repeatability"]["estimate"] == pytest.approx(expected, abs=1e-9)
    assert 0 < report.metrics["measurement_repeatability"]["ci_low"] <= expected
    summary = report.summary()
    assert "measurement_repeatability" in summary and "expected_group_agreement" not in summary
    assert "repeatability is not accuracy" in summary and "Groh et al. 2022" in summary


def test_validation_intervals_contain_the_estimate_and_round_trip(report):
    for name, values in report.metrics.items():
        if np.isfinite(values["ci_low"]):
            assert values["ci_low"] <= values["estimate"] + 1e-9 <= values["ci_high"] + 2e-9, name
    assert {g["group"] for g in report.per_group} <= {1, 2, 3, 4, 5, 6}
    assert report.config["cluster"] == "patient_id"
    restored = ToneValidation.from_dict(json.loads(report.to_json()))
    assert restored.to_dict() == report.to_dict()
    assert "kappa_quadratic" in report.summary()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
@settings(max_examples=40, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=4, max_size=60))
def test_quadratic_kappa_matches_sklearn_on_any_table(pairs):
    true, estimated = (np.array(column) for column in zip(*pairs))
    ours = _quadratic_kappa(true, estimated, np.ones((1, len(true))), 6)[0]
    expected = cohen_kappa_score(true, estimated, weights="quadratic", labels=list(range(6)))
    if np.isnan(expected):
        assert np.isnan(ours) or ours == pytest.approx(0.0)
    else:
        assert ours == pytest.approx(expected, abs=1e-9)


def test_validation_without_labels_is_rejected(synth_cohort, synth_tone):
    with pytest.raises(InputError, match="label must be one of"):
        validate_tone(synth_cohort, synth_tone, "skin_colour")


def test_validation_with_too_few_replicates_names_the_parameter_not_the_flag(synth_cohort, synth_tone):
    with pytest.raises(InputError, match="n_boot must be at least 100") as error:
        validate_tone(synth_cohort, synth_tone, "fitzpatrick", n_boot=50)
    assert error.value.column == "n_boot" and "--" not in str(error.value)


def test_calibration_fit_save_load_round_trip(tmp_path, synth_cohort, synth_tone):
    ita = synth_tone["ita"].where(synth_tone["status"] == "ok")
    calibration = fit_calibration(ita, synth_cohort.manifest["fitzpatrick"], "fitzpatrick")
    assert list(calibration.cutpoints) == sorted(calibration.cutpoints, reverse=True)
    assert calibration.training_agreement >= 0.5
    path = tmp_path / "cal.json"
    calibration.save(path)
    loaded = load_calibration(path)
    assert loaded == calibration
    assert loaded.sha256 == calibration.sha256


def test_calibration_recovers_known_cutpoints():
    rng = np.random.default_rng(0)
    ita = rng.uniform(-60, 70, 2000)
    truth = (30.0, 10.0)  # I-II above 30, III-IV to 10, V-VI below
    groups = pd.Series(np.where(ita > truth[0], "I-II", np.where(ita > truth[1], "III-IV", "V-VI")))
    calibration = fit_calibration(ita, groups, "fitzpatrick_group")
    np.testing.assert_allclose(calibration.cutpoints, truth, atol=0.5)
    assert calibration.training_agreement == 1.0
    # the published (groh) boundaries 28 and 5 misplace the images between them and the true ones
    cv = calibration.cross_validation
    assert cv["published"] == "groh" and cv["published_agreement"] == pytest.approx(1 - 7 / 130, abs=0.02)
    assert cv["agreement"] > 0.99 and cv["n_folds"] == 5 and cv["grouped_by"] is None


def test_calibration_on_a_synthetic_cohort_with_true_types_is_accepted_out_of_fold(synth_cohort):
    """The synthetic types follow Chardon's ITA ranges, not the published groh cut-points: a fit learns them."""
    manifest = synth_cohort.manifest
    calibration = fit_calibration(
        manifest["true_ita"].to_numpy(dtype=float), manifest["fitzpatrick"], "fitzpatrick",
        groups=manifest["patient_id"], grouped_by="patient_id",
    )
    cv = calibration.cross_validation
    assert cv["agreement"] > cv["published_agreement"] + 0.2
    assert cv["grouped_by"] == "patient_id"
    assert "out of fold" in calibration.summary() and "published cut-points (groh)" in calibration.summary()


def test_calibration_that_collapses_to_one_category_is_refused():
    """Labels the ITA does not track (PAD's clinic types): the L1 fit puts (almost) every image in the commonest."""
    rng = np.random.default_rng(3)
    ita = rng.normal(30.0, 15.0, 400)
    types = pd.Series(rng.choice([1, 2, 3], size=400, p=[0.1, 0.7, 0.2]))
    with pytest.raises(InputError, match=r"column 'fitzpatrick': calibration refused: .* in [12] of 6 categories"):
        fit_calibration(ita, types, "fitzpatrick")


def test_calibration_no_better_than_the_published_cutpoints_out_of_fold_is_refused():
    """Labels made by the published cut-points themselves: nothing to gain, and the fit may only lose."""
    from fairderm.tone import ita_to_fitzpatrick

    ita = np.random.default_rng(4).uniform(-50, 70, 300)
    types = ita_to_fitzpatrick(ita, "groh")
    with pytest.raises(InputError, match="no better than the published groh mapping") as raised:
        fit_calibration(ita, types, "fitzpatrick")
    assert "\n" not in str(raised.value)


def test_calibration_folds_keep_each_patient_whole():
    from fairderm.tone._calibration import _folds

    patients = np.repeat(np.arange(40), np.random.default_rng(5).integers(1, 5, 40))
    folds = _folds(patients, 5, seed=0)
    assert pd.DataFrame({"p": patients, "f": folds}).groupby("p")["f"].nunique().max() == 1
    assert set(folds) == set(range(5))
    # images without a patient id are dealt out one by one, not lumped into one fold
    unknown = _folds(np.array([None] * 10, dtype=object), 5, seed=0)
    assert np.bincount(unknown).tolist() == [2, 2, 2, 2, 2]


def _group_calibration(cohort):
    """Group cut-points learnt from the true ITA (Chardon's ranges, 41 and 10): better than groh's 28 and 5."""
    return fit_calibration(cohort.manifest["true_ita"].to_numpy(dtype=float), cohort.manifest["fitzpatrick_group"],
                           "fitzpatrick_group")


def test_calibrated_estimate_uses_the_fitted_cutpoints(tmp_path, synth_cohort, synth_tone):
    calibration = _group_calibration(synth_cohort)
    frame = estimate_tone(synth_cohort, calibration=calibration, workers=1)
    expected = np.array(calibration.categories, dtype=object)[calibration.apply(frame["ita"].to_numpy())]
    ok = frame["status"].eq("ok").to_numpy()
    assert frame["fitzpatrick_group_est"][ok].tolist() == expected[ok].tolist()
    assert calibration.sha256[:12] in frame["method"].iloc[0]


def test_calibration_with_too_few_labels_is_rejected():
    with pytest.raises(InputError, match="need at least 20"):
        fit_calibration(np.arange(5.0), pd.Series([1, 2, 3, 4, 5]), "fitzpatrick")


def test_monk_calibration_without_the_published_tones_is_rejected():
    with pytest.raises(InputError, match="pass published"):
        fit_calibration(np.arange(30.0), pd.Series(np.arange(30) % 10 + 1), "monk")


def test_calibration_file_with_ascending_cutpoints_is_rejected(tmp_path, synth_cohort):
    data = _group_calibration(synth_cohort).to_dict()
    data["cutpoints"] = [-10.0, 30.0]
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="descending"):
        load_calibration(path)


def test_calibration_file_that_is_not_json_is_rejected(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_calibration(path)


def test_tone_file_round_trip_keeps_provenance(tmp_path, synth_cohort, synth_tone):
    path = tmp_path / "tone.parquet"
    write_tone(path, synth_tone, synth_cohort)
    frame = read_tone(path, synth_cohort)
    pd.testing.assert_series_equal(frame["ita"], synth_tone["ita"].astype("float64"))
    assert frame["fitzpatrick_est"].dtype == "Int8"
    metadata = frame.attrs["fairderm_tone_file"]
    assert metadata["cohort"]["manifest_sha256"] == synth_cohort.manifest_sha256()
    assert metadata["estimation"]["parameters"]["working_size"] == 128


def test_tone_file_not_matching_cohort_is_rejected(tmp_path, synth_cohort, synth_tone, image_cohort):
    path = tmp_path / "tone.parquet"
    write_tone(path, synth_tone, synth_cohort)
    other = make_image_cohort(tmp_path / "other", {"a.png": b"x", "b.png": b"y"})
    with pytest.raises(InputError, match="does not match the cohort"):
        read_tone(path, other)


def test_tone_file_missing_a_contract_column_is_rejected(tmp_path, synth_tone):
    path = tmp_path / "tone.parquet"
    synth_tone.drop(columns=["ita_low"]).to_parquet(path)
    with pytest.raises(InputError, match="column missing: ita_low"):
        read_tone(path)


def test_tone_file_with_unknown_status_is_rejected(tmp_path, synth_tone):
    path = tmp_path / "tone.parquet"
    bad = synth_tone.copy()
    bad["status"] = bad["status"].astype(object)
    bad.loc[3, "status"] = "maybe"
    bad.attrs = {}
    bad.to_parquet(path)
    with pytest.raises(InputError, match="'maybe' is not one of"):
        read_tone(path)
