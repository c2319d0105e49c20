"""The runner with stand-in predictors: schema, strata, caps, resume, and each kind of bad input."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from fairderm._io import atomic_write_parquet
from fairderm.errors import InputError
from fairderm.inference import (
    Predictor,
    PredictorOutput,
    available_backends,
    load_predictor,
    read_predictions,
    register_backend,
    run_inference,
)
from tests.helpers.lesion_cohorts import LABELS, make_lesion_cohort


class FixedPredictor(Predictor):
    """Probabilities from the image id's number; optional misbehaviour per id."""

    backend = "fixed"
    input_size = 16
    batch_size = 4

    def __init__(self, classes=("MEL", "NEV", "BCC", "SK"), misbehave=None) -> None:
        self.classes = list(classes)
        self.misbehave = misbehave or {}
        self.calls = 0

    def predict(self, inputs, image_ids):
        self.calls += 1
        n = len(image_ids)
        if any(self.misbehave.get(i) == "crash" for i in image_ids):
            raise RuntimeError("CUDA error: device-side assert triggered")
        if any(self.misbehave.get(i) == "shape" for i in image_ids):
            return PredictorOutput(probs=np.full((n, len(self.classes) + 1), 0.2))
        probs = np.zeros((n, len(self.classes)))
        for j, image_id in enumerate(image_ids):
            probs[j, int(image_id.split("_")[1]) % len(self.classes)] = 1.0
            if self.misbehave.get(image_id) == "nan":
                probs[j] = np.nan
        assert inputs.shape == (n, 3, 16, 16)
        return PredictorOutput(probs=probs)

    def identity(self):
        return {"backend": "fixed", "classes": self.classes}


@pytest.fixture
def cohort(tmp_path):
    return make_lesion_cohort(tmp_path / "cohort", n=16, size=32, broken=1)


def test_predictions_schema_and_metadata(cohort, tmp_path):
    out = tmp_path / "p.parquet"
    run = run_inference(cohort, out, backend=FixedPredictor(), workers=0, seed=5)
    frame = read_predictions(out, cohort)
    assert list(frame.columns[:5]) == ["image_id", "stratum", "status", "reason", "pred"]
    assert [c for c in frame.columns if c.startswith("prob_")] == [
        f"prob_{label}" for label in LABELS
    ]
    assert frame["image_id"].tolist() == cohort.manifest["image_id"].tolist()
    # MEL, NEV, BCC, SK are mapped onto the cohort's melanoma, nevus, bcc, seborrheic_keratosis
    assert frame.loc[0, "pred"] == "melanoma" and frame.loc[1, "pred"] == "nevus"
    assert frame.loc[3, "prob_seborrheic_keratosis"] == 1.0
    meta = frame.attrs["fairderm"]
    assert meta["cohort_manifest_sha256"] == cohort.manifest_sha256()
    assert meta["class_mapping"] == {
        "MEL": "melanoma",
        "NEV": "nevus",
        "BCC": "bcc",
        "SK": "seborrheic_keratosis",
    }
    assert meta["seed"] == 5 and meta["backend"] == "fixed" and "packages" in meta["environment"]
    assert meta["status_counts"] == {"ok": 15, "error": 1, "unparseable": 0}
    assert run.summary().count("\n") >= 3


def test_unreadable_image_is_an_error_row_and_the_run_goes_on(cohort, tmp_path):
    frame = run_inference(
        cohort, tmp_path / "p.parquet", backend=FixedPredictor(), workers=0
    ).predictions
    bad = frame.set_index("image_id").loc["img_0015"]
    assert bad["status"] == "error" and bad["reason"].startswith("cannot read image")
    assert pd.isna(bad["pred"]) and pd.isna(bad["prob_nevus"])


def test_wrong_shape_output_fails_its_batch_only(cohort, tmp_path):
    predictor = FixedPredictor(misbehave={"img_0005": "shape"})
    frame = run_inference(cohort, tmp_path / "p.parquet", backend=predictor, workers=0).predictions
    failed = frame[frame["reason"].fillna("").str.startswith("model output has shape (4, 5)")]
    assert failed["image_id"].tolist() == ["img_0004", "img_0005", "img_0006", "img_0007"]
    assert (frame["status"] == "ok").sum() == 11


def test_nan_output_is_an_error_for_that_case(cohort, tmp_path):
    predictor = FixedPredictor(misbehave={"img_0002": "nan"})
    frame = run_inference(
        cohort, tmp_path / "p.parquet", backend=predictor, workers=0
    ).predictions.set_index("image_id")
    assert frame.loc["img_0002", "reason"] == "model output is NaN or infinite"
    assert frame.loc["img_0003", "status"] == "ok"


def test_crashing_model_fails_its_batch_and_the_run_goes_on(cohort, tmp_path):
    predictor = FixedPredictor(misbehave={"img_0009": "crash"})
    frame = run_inference(cohort, tmp_path / "p.parquet", backend=predictor, workers=0).predictions
    crashed = frame[
        frame["reason"].fillna("").str.startswith("model failed on this batch: RuntimeError")
    ]
    assert len(crashed) == 4 and predictor.calls == 4


def test_unmappable_classes_fail_before_any_inference(cohort, tmp_path):
    predictor = FixedPredictor(classes=("MEL", "NEV", "bkl", "df"))
    with pytest.raises(InputError, match=r"\['bkl', 'df'\] map onto none"):
        run_inference(cohort, tmp_path / "p.parquet", backend=predictor, workers=0)
    assert predictor.calls == 0 and not (tmp_path / "p.parquet").exists()
    run = run_inference(
        cohort,
        tmp_path / "p.parquet",
        backend=predictor,
        workers=0,
        class_map={"bkl": "seborrheic_keratosis", "df": "nevus"},
    )
    assert run.metadata["class_mapping"]["df"] == "nevus"


def test_strata_from_column_run_smallest_first_with_cap(cohort, tmp_path):
    order = []

    class Recording(FixedPredictor):
        def predict(self, inputs, image_ids):
            order.extend(image_ids)
            return super().predict(inputs, image_ids)

    run = run_inference(
        cohort,
        tmp_path / "p.parquet",
        backend=Recording(),
        workers=0,
        strata="fitzpatrick_group",
        cap_per_stratum=3,
        seed=1,
    )
    frame = run.predictions
    counts = cohort.manifest["fitzpatrick_group"].value_counts()
    expected = {g: min(3, int(n)) for g, n in counts.items()}
    assert frame["stratum"].value_counts().to_dict() == expected
    group_of = dict(zip(cohort.manifest["image_id"], cohort.manifest["fitzpatrick_group"]))
    first = group_of[order[0]]
    assert counts[first] == counts.min()
    assert run.metadata["cap_per_stratum"] == 3
    assert set(run.to_frame()["stratum"]) == set(expected)


def test_strata_from_tone_table_groups_fitzpatrick_estimates(cohort, tmp_path):
    tone = pd.DataFrame(
        {
            "image_id": cohort.manifest["image_id"],
            "fitzpatrick_est": pd.array([1, 2, 3, 4, 5, 6, None, 1] * 2, dtype="Int8"),
        }
    )
    frame = run_inference(
        cohort, tmp_path / "p.parquet", backend=FixedPredictor(), workers=0, tone=tone
    ).predictions
    assert frame["stratum"].value_counts().to_dict() == {
        "I-II": 6,
        "III-IV": 4,
        "V-VI": 4,
        "unknown": 2,
    }


def test_tone_table_missing_cohort_images_is_rejected(cohort, tmp_path):
    tone = pd.DataFrame({"image_id": ["img_0000"], "fitzpatrick_est": [2]})
    with pytest.raises(InputError, match="no row for 15 cohort images"):
        run_inference(cohort, tmp_path / "p.parquet", backend=FixedPredictor(), tone=tone)


def test_unknown_strata_column_is_rejected(cohort, tmp_path):
    with pytest.raises(InputError, match="strata column 'monk'"):
        run_inference(cohort, tmp_path / "p.parquet", backend=FixedPredictor(), strata="monk")


def test_rerun_of_a_finished_run_does_nothing_and_a_different_run_needs_overwrite(cohort, tmp_path):
    out = tmp_path / "p.parquet"
    run_inference(cohort, out, backend=FixedPredictor(), workers=0)
    again = FixedPredictor()
    run_inference(cohort, out, backend=again, workers=0)
    assert again.calls == 0
    with pytest.raises(InputError, match="different run"):
        run_inference(cohort, out, backend=FixedPredictor(), workers=0, strata="fitzpatrick_group")
    run_inference(
        cohort, out, backend=FixedPredictor(), workers=0, strata="fitzpatrick_group", overwrite=True
    )
    assert read_predictions(out).attrs["fairderm"]["strata"]["column"] == "fitzpatrick_group"


def test_resume_skips_cases_in_shards_and_retry_errors_reruns_failures(cohort, tmp_path):
    out = tmp_path / "p.parquet"
    flaky = FixedPredictor(misbehave={"img_0001": "nan"})
    first = run_inference(cohort, out, backend=flaky, workers=0)
    assert first.metadata["status_counts"]["error"] == 2
    fixed = FixedPredictor()
    second = run_inference(cohort, out, backend=fixed, workers=0, retry_errors=True)
    assert (
        fixed.calls == 1
    )  # only the one batch holding img_0001 (the unreadable image fails in decoding)
    assert second.predictions.set_index("image_id").loc["img_0001", "status"] == "ok"


def test_shards_of_a_different_run_are_not_mixed_in(cohort, tmp_path):
    out = tmp_path / "p.parquet"
    shards = tmp_path / "p.parquet.shards"
    shards.mkdir()
    (shards / "run.json").write_text('{"fingerprint": "something else"}')
    atomic_write_parquet(
        shards / "shard-000000.parquet", pd.DataFrame({"image_id": ["img_0000"], "status": ["ok"]})
    )
    with pytest.raises(InputError, match="--restart"):
        run_inference(cohort, out, backend=FixedPredictor(), workers=0)
    run = run_inference(cohort, out, backend=FixedPredictor(), workers=0, restart=True)
    assert len(run.predictions) == 16 and not shards.exists()


def test_registry_names_builtins_and_rejects_unknown_backends():
    import fairderm.inference._predictor as registry

    # router too, without importing fairderm.moe: a lazy entry like the built-ins
    assert {"backbone", "hf", "torch", "openai", "vllm", "file", "router"} <= set(available_backends())
    assert isinstance(registry._REGISTRY["router"], str) or "fairderm.moe" in sys.modules
    with pytest.raises(InputError, match="unknown backend 'nonesuch'"):
        load_predictor("nonesuch", None)
    register_backend("fixed-test", lambda model, **options: FixedPredictor(), replace=True)
    assert isinstance(load_predictor("fixed-test", None, labels=LABELS), FixedPredictor)
    with pytest.raises(ValueError, match="already registered"):
        register_backend("fixed-test", lambda model, **options: FixedPredictor())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(status="maybe"), "status 'maybe'"),
        (lambda f: f.assign(pred="psoriasis"), "pred 'psoriasis'"),
        (lambda f: f.assign(prob_nevus=1.5), "outside 0-1"),
        (lambda f: f.drop(columns=["reason"]), "required column missing: reason"),
        (lambda f: pd.concat([f, f.head(1)]), "duplicate image_id"),
    ],
)
def test_invalid_predictions_file_is_rejected(cohort, tmp_path, change, message):
    frame = run_inference(
        cohort, tmp_path / "p.parquet", backend=FixedPredictor(), workers=0
    ).predictions
    frame = frame[frame["status"] == "ok"]
    atomic_write_parquet(tmp_path / "bad.parquet", change(frame))
    with pytest.raises(InputError, match=message):
        read_predictions(tmp_path / "bad.parquet", cohort)
