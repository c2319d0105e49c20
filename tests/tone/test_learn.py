"""The tone stratifier learned from labels: out-of-fold scoring, the preference rule, the saved model, the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairderm.errors import InputError
from fairderm.tone import (
    TONE_COLUMNS,
    LearnedToneReport,
    ToneLabels,
    ToneModel,
    fit_tone_model,
    learned_tone_frame,
    load_tone_model,
    read_tone,
)
from fairderm.tone._learn import LEARNED_ESTIMATOR, _fit, _to_model

GROUPS = ("I-II", "III-IV", "V-VI")
TYPE_OF_GROUP = {0: 1, 1: 3, 2: 5}


def _case(n: int, *, backbone_signal: float, colour_correct: float, seed: int = 0):
    """Images with true groups, backbone features carrying ``backbone_signal``, and a colour
    estimate right for a share ``colour_correct`` of the images (its ITA carries no signal)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    backbone = rng.normal(size=(n, 24))
    backbone[:, :2] += backbone_signal * truth[:, None]
    colour = np.where(rng.random(n) < colour_correct, truth, rng.choice(3, size=n))
    ita = rng.normal(20, 15, size=n)
    ids = [f"img{i:03d}" for i in range(n)]
    status = np.where(np.arange(n) % 10 == 9, "abstain", "ok")
    tone = pd.DataFrame({
        "image_id": pd.Series(ids, dtype="string"), "ita": ita, "ita_low": ita - 5, "ita_high": ita + 5,
        "skin_fraction": rng.uniform(0.2, 0.6, n),
        "fitzpatrick_est": pd.Series([TYPE_OF_GROUP[g] for g in colour], dtype="Int8").mask(status != "ok"),
        "monk_est": pd.Series(rng.integers(1, 11, n), dtype="Int8"),
        "status": pd.Series(status, dtype="string"), "reason": pd.Series([""] * n, dtype="string"),
        "method": pd.Series(["fairderm-ita/4;fitzpatrick=groh"] * n, dtype="string"),
        "skin_L": rng.normal(60, 5, n), "skin_a": rng.normal(12, 2, n), "skin_b": rng.normal(17, 2, n),
        "lesion_fraction": rng.uniform(0.05, 0.3, n),
    })
    labels = ToneLabels(pd.DataFrame({
        "image_id": ids, "stratum": ["I-II"] * n, "inclusion_prob": np.full(n, 0.5),
        "label": [GROUPS[g] for g in truth], "labeller": ["t"] * n, "labelled_at": [None] * n,
    }), "fitzpatrick_group", source="test labels")
    return backbone, tone, labels, truth


def test_a_stratifier_with_image_signal_beats_a_poor_colour_estimate_out_of_fold() -> None:
    backbone, tone, labels, _truth = _case(150, backbone_signal=2.0, colour_correct=0.2)
    _model, report = fit_tone_model(backbone, tone, labels, seed=0, c_grid=(0.01, 0.1, 1.0))
    assert report.n_labelled == 150 and report.config["outer_folds"] == 5
    assert report.learned["exact_agreement"] > report.colour["exact_agreement"] + 0.2
    assert report.learned["kappa_quadratic"] > report.colour["kappa_quadratic"]
    assert report.difference["ci_low"] > 0
    assert report.preferred and "beats" in report.decision()
    # colour abstentions count against the colour estimate, never against the learned one
    assert report.colour["abstention_rate"] == pytest.approx(0.1)
    assert "abstention_rate" not in report.learned


def test_out_of_fold_agreement_is_below_the_training_fit_on_noise() -> None:
    backbone, tone, labels, truth = _case(120, backbone_signal=0.0, colour_correct=0.9)
    model, report = fit_tone_model(backbone, tone, labels, seed=1, c_grid=(0.1, 10.0))
    training = np.mean(model.predict(np.hstack([backbone, _colour(tone)])) == np.asarray(GROUPS)[truth])
    assert report.learned["kappa_quadratic"] < 0.3
    assert training > report.learned["exact_agreement"]  # the fit on its own images flatters it
    assert not report.preferred and "does not beat" in report.decision()


def _colour(tone: pd.DataFrame) -> np.ndarray:
    from fairderm.tone._learn import colour_features

    return colour_features(tone)[0]


def test_the_saved_model_predicts_as_scikit_learn_does_and_loads_without_pickle(tmp_path: Path) -> None:
    backbone, tone, _labels, truth = _case(90, backbone_signal=1.0, colour_correct=0.5)
    x = np.hstack([backbone, _colour(tone)])
    pipeline = _fit(x, truth, 0.3, seed=0)
    model = _to_model(pipeline, "fitzpatrick_group", GROUPS, tuple(f"f{i}" for i in range(x.shape[1])), 0.3)
    np.testing.assert_allclose(model.predict_proba(x), pipeline.predict_proba(x), atol=1e-10)
    model.save(tmp_path)
    loaded = load_tone_model(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(x), pipeline.predict_proba(x), atol=1e-10)
    assert loaded.classes == GROUPS and loaded.sha256 == model.sha256
    with np.load(tmp_path / "model.npz", allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)


def test_a_two_class_model_gives_both_probabilities(tmp_path: Path) -> None:
    backbone, tone, _labels, truth = _case(80, backbone_signal=1.5, colour_correct=0.5)
    binary = (truth > 0).astype(np.int64)
    x = np.hstack([backbone, _colour(tone)])
    pipeline = _fit(x, binary, 1.0, seed=0)
    model = _to_model(pipeline, "fitzpatrick_group", GROUPS, tuple(f"f{i}" for i in range(x.shape[1])), 1.0)
    assert model.classes == ("I-II", "III-IV")
    np.testing.assert_allclose(model.predict_proba(x), pipeline.predict_proba(x), atol=1e-10)


@pytest.fixture(scope="module")
def fitted() -> tuple[np.ndarray, pd.DataFrame, ToneLabels, ToneModel, LearnedToneReport]:
    """60 images whose backbone carries the tone and whose colour estimate is poor, and the model fitted on them
    (shared: nested cross-validation is the slow part; tests copy the arrays before changing them)."""
    backbone, tone, labels, _ = _case(60, backbone_signal=2.0, colour_correct=0.3)
    model, report = fit_tone_model(backbone, tone, labels, c_grid=(0.1, 1.0))
    return backbone, tone, labels, model, report


def test_a_tampered_model_file_is_refused(tmp_path: Path, fitted) -> None:
    model = fitted[3]
    model.save(tmp_path)
    (tmp_path / "model.npz").write_bytes((tmp_path / "model.npz").read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(InputError, match="arrays do not match"):
        load_tone_model(tmp_path)


def test_the_learned_table_has_the_tone_schema_and_names_its_method(fitted) -> None:
    backbone, tone, _labels, model, report = fitted
    backbone = backbone.copy()
    backbone[3] = np.nan
    frame = learned_tone_frame(model, backbone, tone, preferred=report.preferred,
                               backbone_errors={"img003": "cannot decode"})
    assert list(frame.columns[: len(TONE_COLUMNS)]) == list(TONE_COLUMNS)
    assert frame["method"].iloc[0].startswith(f"{LEARNED_ESTIMATOR}:{model.sha256[:12]};fitzpatrick_group=learned")
    assert frame.loc[3, "status"] == "error" and "cannot decode" in frame.loc[3, "reason"]
    ok = frame["status"] == "ok"
    assert ok.sum() == 59  # colour abstentions get a learned tone too
    assert set(frame.loc[ok, "fitzpatrick_group_est"]) <= set(GROUPS)
    assert (frame.loc[ok, "fitzpatrick_est"].map({1: "I-II", 3: "III-IV", 5: "V-VI"})
            == frame.loc[ok, "fitzpatrick_group_est"]).all()
    np.testing.assert_allclose(frame.loc[ok, [f"prob_{g}" for g in GROUPS]].sum(axis=1), 1.0)
    assert frame.attrs["fairderm_tone"]["preferred"] is report.preferred


def test_labelled_images_get_their_out_of_fold_value_in_the_learned_table(fitted) -> None:
    # the final model saw their labels: an audit correcting these strata with the same labels needs the
    # labelled images estimated as the unlabelled ones are
    backbone, tone, _labels, model, report = fitted
    frame = learned_tone_frame(model, backbone, tone, preferred=report.preferred, out_of_fold=report.out_of_fold)
    labelled = frame["image_id"].astype(str).isin(report.out_of_fold)
    assert labelled.sum() == report.n_labelled and frame.loc[labelled, "out_of_fold"].all()
    assert not frame.loc[~labelled, "out_of_fold"].any()
    groups = frame.loc[labelled].set_index(frame.loc[labelled, "image_id"].astype(str))["fitzpatrick_group_est"]
    assert groups.to_dict() == report.out_of_fold
    assert frame.loc[labelled, [f"prob_{g}" for g in GROUPS]].isna().all().all()


def test_too_few_labels_are_refused() -> None:
    backbone, tone, labels, _ = _case(15, backbone_signal=1.0, colour_correct=0.5)
    with pytest.raises(InputError, match="15 labelled images with features; at least 20 are needed"):
        fit_tone_model(backbone, tone, labels)


def test_labels_of_one_value_are_refused() -> None:
    backbone, tone, labels, _ = _case(30, backbone_signal=1.0, colour_correct=0.5)
    labels.frame["label"] = "I-II"
    with pytest.raises(InputError, match="every labelled image has the same label 'I-II'"):
        fit_tone_model(backbone, tone, labels)


@pytest.mark.slow
def test_tone_learn_on_a_synthetic_cohort_writes_a_model_and_strata_the_audit_reads(
    run_cli, tmp_path: Path, synth_cohort, synth_tone
) -> None:
    from fairderm.inference._strata import resolve_strata
    from fairderm.tone import write_tone

    write_tone(tmp_path / "tone.parquet", synth_tone, synth_cohort)
    result = run_cli("tone", "label", synth_cohort.root, "--tone", tmp_path / "tone.parquet",
                     "--out", tmp_path / "labels.csv", "--from-column", "fitzpatrick", "--scale", "fitzpatrick_group")
    assert result.exit_code == 0, result.stderr
    result = run_cli("tone", "learn", synth_cohort.root, "--labels", tmp_path / "labels.csv",
                     "--tone", tmp_path / "tone.parquet", "--out", tmp_path / "model")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "exact_agreement" in text and "kappa_quadratic" in text and "nested CV" in text
    assert ("beats the colour estimate" in text) or ("does not beat the colour estimate" in text)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "model.json", "model.npz", "report.json", "tone.parquet"]
    model = load_tone_model(tmp_path / "model")
    assert model.info["preferred"] == model.info["report"]["preferred"]
    assert model.info["labels"]["draw"]["every_row_labelled"] is True
    learned = read_tone(tmp_path / "model" / "tone.parquet", synth_cohort)
    assert learned.attrs["fairderm_tone"]["estimator"] == LEARNED_ESTIMATOR
    strata = resolve_strata(synth_cohort, tone=tmp_path / "model" / "tone.parquet")
    assert set(strata.values) <= set(GROUPS)
