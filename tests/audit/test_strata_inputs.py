"""The audit's validation labels and strata error model reach the metrics: corrected or bounded true groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairderm.audit import load_spec
from fairderm.audit._evaluation import compute_metrics, evaluation_table, strata_inputs
from fairderm.cohort import load_cohort
from fairderm.errors import InputError

FAST = {"n_boot": 100, "seed": 3}


def _tone(cohort) -> pd.DataFrame:
    """A tone table whose estimate agrees with the cohort's group for about two thirds of the images."""
    rng = np.random.default_rng(1)
    truth = cohort.manifest["fitzpatrick_group"].map({"I-II": 2, "III-IV": 4, "V-VI": 6}).to_numpy()
    wrong = rng.random(truth.size) < 0.35
    types = np.where(wrong, rng.choice([2, 4, 6], truth.size), truth)
    return pd.DataFrame({"image_id": cohort.manifest["image_id"].astype(str), "status": "ok",
                         "fitzpatrick_est": pd.array(types, dtype="Int8"), "monk_est": pd.array(types, dtype="Int8")})


def _predictions(predictions_file: Path) -> pd.DataFrame:
    return pd.read_csv(predictions_file).assign(status="ok")


def _labels(cohort, path: Path, *, every: int = 2, edits: dict | None = None) -> Path:
    manifest = cohort.manifest
    frame = pd.DataFrame({"image_id": manifest["image_id"].astype(str),
                          "stratum": "all", "inclusion_prob": 0.5,
                          "label": manifest["fitzpatrick_group"].astype(str)})
    frame = frame.iloc[::every].reset_index(drop=True)
    for (row, column), value in (edits or {}).items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return path


def _run(loaded, cohort, predictions_file, labels=None, error_model=None) -> dict:
    spec = loaded.spec
    selected = cohort.manifest[cohort.manifest["split"] == "test"].reset_index(drop=True)
    trust = strata_inputs(spec, selected, cohort_ids=set(cohort.manifest["image_id"].astype(str)),
                          labels=labels, error_model=error_model)
    table = evaluation_table(selected, cohort.spec, _tone(cohort), _predictions(predictions_file), spec,
                             cluster=None, trust=trust)
    return compute_metrics(table, spec).to_dict()


def _spec(write_spec, **tone):
    return load_spec(write_spec(tone={"source": "estimate", "column": None, **tone}, bootstrap=FAST))


def test_validation_labels_give_corrected_true_group_rows(write_spec, tiny_cohort_dir, predictions_file, tmp_path):
    labels = _labels(load_cohort(tiny_cohort_dir), tmp_path / "labels.csv")
    loaded = _spec(write_spec, validation_labels="../labels.csv")
    metrics = _run(loaded, load_cohort(tiny_cohort_dir), predictions_file, labels=labels)
    bases = {(r["attribute"], r["basis"]) for r in metrics["groups"]}
    assert ("fitzpatrick_est", "estimated") in bases and ("fitzpatrick_est:true", "corrected") in bases
    strata = metrics["config"]["strata"]
    # labels of the train split are left out; the audited (test) images labelled are every other one
    assert strata["n_labelled"] == 36 and strata["inclusion_prob"] == "given"
    assert not any(r["attribute"] == "fitzpatrick_est:bounds" for r in metrics["groups"])


def test_without_labels_the_published_error_model_bounds_the_groups(write_spec, tiny_cohort_dir, predictions_file):
    metrics = _run(_spec(write_spec), load_cohort(tiny_cohort_dir), predictions_file)
    bounded = [r for r in metrics["groups"] if r["attribute"] == "fitzpatrick_est:bounds"]
    assert bounded and {r["basis"] for r in bounded} == {"bounded"}
    assert all(r["estimate"] is None and r["bound_low"] <= r["bound_high"] for r in bounded)
    assert "Groh" in metrics["config"]["strata"]["error_model"]["source"]


def test_strata_error_none_leaves_the_estimated_groups_alone(write_spec, tiny_cohort_dir, predictions_file):
    metrics = _run(_spec(write_spec, strata_error="none"), load_cohort(tiny_cohort_dir), predictions_file)
    assert {r["attribute"] for r in metrics["groups"]} == {"all", "fitzpatrick_est"}
    assert "strata" not in metrics["config"]


def test_a_validation_confusion_csv_is_the_error_model(write_spec, tiny_cohort_dir, predictions_file, tmp_path):
    path = tmp_path / "confusion.csv"
    path.write_text("true,I-II,III-IV,V-VI\nI-II,40,8,2\nIII-IV,6,30,9\nV-VI,1,9,30\n")
    loaded = _spec(write_spec, strata_error="../confusion.csv")
    metrics = _run(loaded, load_cohort(tiny_cohort_dir), predictions_file, error_model=path)
    assert metrics["config"]["strata"]["error_model"]["n_validation"] == 135


def test_unanswered_images_lower_their_strata_inclusion_probability(tiny_cohort_dir, tmp_path):
    cohort = load_cohort(tiny_cohort_dir)
    path = _labels(cohort, tmp_path / "labels.csv", edits={(0, "label"): "", (1, "label"): "cannot tell"})
    loaded_ids = set(cohort.manifest["image_id"].astype(str))
    spec = load_spec_for(tmp_path, tiny_cohort_dir)
    trust = strata_inputs(spec, cohort.manifest, cohort_ids=loaded_ids, labels=path, error_model=None)
    assert trust.n_cannot_tell == 2
    rate = 43 / 45  # 45 sampled, 43 answered, one stratum
    assert np.allclose(list(trust.inclusion.values()), 0.5 * rate)


def load_spec_for(tmp_path: Path, tiny_cohort_dir: Path):
    from fairderm.audit._spec import parse_spec

    return parse_spec({"cohort": {"path": str(tiny_cohort_dir)}, "model": {"backend": "file", "model": "x.csv"},
                       "tone": {"source": "estimate"}}, source=tmp_path / "spec.yaml")


@pytest.mark.parametrize("edits, message", [
    ({(3, "image_id"): "nobody"}, r"row 4.*image id 'nobody' is not in the cohort"),
    ({(5, "label"): "VII"}, r"row 6.*label 'VII' is not a Fitzpatrick type"),
    ({(2, "inclusion_prob"): 0}, r"row 3.*inclusion probability .* outside \(0, 1\]"),
    ({(2, "inclusion_prob"): 1.5}, r"row 3.*inclusion probability .* outside \(0, 1\]"),
    ({(4, "image_id"): "img000"}, r"row 5.*listed twice"),
])
def test_bad_validation_labels_are_rejected_naming_file_and_row(tiny_cohort_dir, tmp_path, edits, message):
    cohort = load_cohort(tiny_cohort_dir)
    path = _labels(cohort, tmp_path / "labels.csv", edits=edits)
    with pytest.raises(InputError, match=message) as caught:
        strata_inputs(load_spec_for(tmp_path, tiny_cohort_dir), cohort.manifest,
                      cohort_ids=set(cohort.manifest["image_id"].astype(str)), labels=path, error_model=None)
    assert "labels.csv" in str(caught.value) and "\n" not in str(caught.value)


def test_validation_labels_need_estimated_tone(write_spec, tmp_path):
    with pytest.raises(InputError, match="validation labels correct estimated strata"):
        load_spec(write_spec(tone={"validation_labels": "../labels.csv"}))


def _tone_table(cohort, path: Path) -> Path:
    """A tone table of the whole cohort made beforehand (as `fairderm tone learn` writes one)."""
    from fairderm.tone import TONE_COLUMNS

    frame = _tone(cohort)
    for column in TONE_COLUMNS:
        if column not in frame.columns:
            frame[column] = {"ita": 10.0, "ita_low": 5.0, "ita_high": 15.0, "skin_fraction": 0.5,
                             "reason": "", "method": "fairderm-learned/1:test"}.get(column, np.nan)
    frame[list(TONE_COLUMNS)].to_parquet(path, index=False)
    return path


def test_a_tone_table_made_beforehand_is_the_audits_estimated_strata(write_spec, tiny_cohort_dir, tmp_path):
    from fairderm.audit import run_audit, verify_run

    cohort = load_cohort(tiny_cohort_dir)
    _tone_table(cohort, tmp_path / "learned.parquet")
    _labels(cohort, tmp_path / "labels.csv")
    spec = write_spec(tone={"source": "table", "table": "../learned.parquet", "column": None,
                            "validation_labels": "../labels.csv"}, bootstrap=FAST)
    run = run_audit(spec)
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert {r["basis"] for r in metrics["groups"] if r["attribute"] == "fitzpatrick_est"} == {"estimated"}
    assert any(r["attribute"] == "fitzpatrick_est:true" and r["basis"] == "corrected" for r in metrics["groups"])
    assert verify_run(run.run_dir).ok
    # a changed table is a new tone stage
    frame = pd.read_parquet(tmp_path / "learned.parquet")
    frame.loc[0, "fitzpatrick_est"] = 6 if frame.loc[0, "fitzpatrick_est"] != 6 else 2
    frame.to_parquet(tmp_path / "learned.parquet", index=False)
    assert "tone" not in run_audit(spec).cache_hits


def test_a_tone_table_missing_audited_cases_is_refused(write_spec, tiny_cohort_dir, tmp_path):
    from fairderm.audit import run_audit

    cohort = load_cohort(tiny_cohort_dir)
    path = _tone_table(cohort, tmp_path / "learned.parquet")
    pd.read_parquet(path).iloc[5:].to_parquet(path, index=False)
    with pytest.raises(InputError, match="tone table lacks"):
        run_audit(write_spec(tone={"source": "table", "table": "../learned.parquet", "column": None},
                             bootstrap=FAST))


def test_source_table_needs_its_table(write_spec):
    with pytest.raises(InputError, match="source 'table' goes with 'table'"):
        load_spec(write_spec(tone={"source": "table", "column": None}))
