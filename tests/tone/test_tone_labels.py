"""Validation labels: the stratified sample, inclusion probabilities, the labels file, resuming, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairderm.cohort import Cohort
from fairderm.errors import InputError
from fairderm.tone import (
    CANNOT_TELL,
    labels_from_column,
    new_label_sample,
    read_tone_labels,
    record_answer,
    write_labels,
    write_tone,
)
from fairderm.tone._labels import ABSTAINED, allocate_equal, draw_label_sample, estimated_strata, sidecar_path


@pytest.fixture
def tone_path(tmp_path: Path, synth_cohort: Cohort, synth_tone: pd.DataFrame) -> Path:
    path = tmp_path / "tone.parquet"
    write_tone(path, synth_tone, synth_cohort)
    return path


@pytest.fixture
def labels_path(tmp_path: Path, synth_cohort: Cohort, synth_tone: pd.DataFrame, tone_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    write_labels(path, new_label_sample(synth_cohort, synth_tone, tone_path=tone_path, scale="fitzpatrick",
                                        n=20, seed=3))
    return path


def _strata(sizes: dict[str, int]) -> tuple[pd.Series, pd.Series]:
    groups = [name for name, size in sizes.items() for _ in range(size)]
    return pd.Series([f"img{i}" for i in range(len(groups))]), pd.Series(groups)


def test_equal_allocation_gives_a_small_stratum_all_its_images_and_shares_the_rest() -> None:
    allocation = allocate_equal({"I-II": 50, "III-IV": 50, "V-VI": 2, ABSTAINED: 10}, 40)
    assert allocation == {"I-II": 14, "III-IV": 14, "V-VI": 2, ABSTAINED: 10}


def test_allocation_larger_than_the_cohort_takes_every_image() -> None:
    assert allocate_equal({"a": 3, "b": 4}, 100) == {"a": 3, "b": 4}


def test_sample_is_stratified_and_inclusion_probability_is_n_over_N_of_the_stratum() -> None:
    ids, strata = _strata({"I-II": 60, "III-IV": 30, "V-VI": 5, ABSTAINED: 15})
    sample = draw_label_sample(ids, strata, 40, seed=0)
    assert len(sample) == 40 and sample["image_id"].is_unique
    drawn = sample["stratum"].value_counts().to_dict()
    assert drawn == {"I-II": 12, "III-IV": 12, "V-VI": 5, ABSTAINED: 11}
    truth = dict(zip(ids, strata))
    assert (sample["image_id"].map(truth) == sample["stratum"]).all()
    expected = sample["stratum"].map({"I-II": 12 / 60, "III-IV": 12 / 30, "V-VI": 1.0, ABSTAINED: 11 / 15})
    np.testing.assert_allclose(sample["inclusion_prob"], expected)
    # Horvitz-Thompson: the weights 1/pi add up to the cohort's size
    assert (1 / sample["inclusion_prob"]).sum() == pytest.approx(len(ids))
    assert sample["label"].isna().all()


def test_the_same_seed_draws_the_same_sample_and_another_seed_another() -> None:
    ids, strata = _strata({"I-II": 60, "III-IV": 30, "V-VI": 5})
    first = draw_label_sample(ids, strata, 20, seed=7)
    pd.testing.assert_frame_equal(first, draw_label_sample(ids, strata, 20, seed=7))
    assert first["image_id"].tolist() != draw_label_sample(ids, strata, 20, seed=8)["image_id"].tolist()


def test_abstentions_form_their_own_stratum() -> None:
    tone = pd.DataFrame({"fitzpatrick_est": pd.Series([1, 4, None, 6], dtype="Int8"),
                         "status": ["ok", "ok", "abstain", "error"]})
    assert estimated_strata(tone).tolist() == ["I-II", "III-IV", ABSTAINED, ABSTAINED]


def test_sidecar_records_the_draw(labels_path: Path, tone_path: Path, synth_cohort: Cohort) -> None:
    from fairderm._io import sha256_file

    draw = json.loads(sidecar_path(labels_path).read_text())
    assert draw["seed"] == 3 and draw["n_requested"] == 20 and draw["n_drawn"] == 20
    assert draw["scale"] == "fitzpatrick"
    assert draw["tone"]["sha256"] == sha256_file(tone_path)
    assert draw["cohort"]["manifest_sha256"] == synth_cohort.manifest_sha256()
    assert sum(s["N"] for s in draw["strata"].values()) == len(synth_cohort)
    assert sum(s["n"] for s in draw["strata"].values()) == 20


def test_resume_starts_at_the_first_image_without_an_answer(labels_path: Path, synth_cohort: Cohort) -> None:
    labels = read_tone_labels(labels_path, synth_cohort)
    assert labels.next_unlabelled() == 0
    for position, answer in ((0, "2"), (1, CANNOT_TELL), (3, "5")):
        labels = record_answer(labels_path, labels, position, answer, "derm-1")
    reread = read_tone_labels(labels_path, synth_cohort)
    assert reread.next_unlabelled() == 2
    assert reread.next_unlabelled(after=3) == 4
    assert reread.frame.loc[[0, 1, 3], "labeller"].tolist() == ["derm-1"] * 3
    assert reread.frame.loc[[0, 1, 3], "labelled_at"].str.endswith("Z").all()
    assert reread.labelled()["label"].tolist() == ["2", "5"]  # cannot tell is answered, not labelled
    for position in range(len(reread.frame)):
        reread = record_answer(labels_path, reread, position, "1", "derm-1")
    assert read_tone_labels(labels_path, synth_cohort).next_unlabelled() is None


def test_answers_leave_no_temporary_files_behind(labels_path: Path, synth_cohort: Cohort) -> None:
    labels = read_tone_labels(labels_path, synth_cohort)
    record_answer(labels_path, labels, 0, "6", "derm-1")
    assert sorted(p.name for p in labels_path.parent.iterdir()) == ["labels.csv", "labels.json", "tone.parquet"]


def test_an_answer_outside_the_scale_is_refused(labels_path: Path, synth_cohort: Cohort) -> None:
    labels = read_tone_labels(labels_path, synth_cohort)
    with pytest.raises(InputError, match="'7' is not a fitzpatrick value"):
        record_answer(labels_path, labels, 0, "7", "derm-1")


def test_partial_manifest_labels_get_the_labelled_share_of_their_estimated_group(
    tmp_path: Path, synth_cohort: Cohort, synth_tone: pd.DataFrame
) -> None:
    manifest = synth_cohort.manifest.copy()
    manifest.loc[manifest.index[::3], "fitzpatrick"] = pd.NA
    cohort = Cohort(synth_cohort.root, synth_cohort.spec, manifest)
    labels = labels_from_column(cohort, synth_tone, "fitzpatrick", "fitzpatrick_group")
    strata = estimated_strata(synth_tone)
    has = manifest["fitzpatrick"].notna().to_numpy()
    share = pd.Series(has).groupby(strata.to_numpy()).mean()
    assert len(labels.frame) == has.sum()
    np.testing.assert_allclose(labels.frame["inclusion_prob"], labels.frame["stratum"].map(share))
    assert set(labels.frame["label"]) <= {"I-II", "III-IV", "V-VI"}
    assert "labelled at random within estimated group" in labels.draw["design"]
    path = tmp_path / "from-column.csv"
    write_labels(path, labels)
    assert len(read_tone_labels(path, cohort).labelled()) == has.sum()


def test_labels_for_every_row_are_used_directly(synth_cohort: Cohort, synth_tone: pd.DataFrame) -> None:
    labels = labels_from_column(synth_cohort, synth_tone, "fitzpatrick")
    assert (labels.frame["inclusion_prob"] == 1.0).all()
    assert labels.draw["every_row_labelled"] is True
    assert "used directly" in labels.draw["design"]


def _rewrite(path: Path, row: int, column: str, value: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def test_labels_for_unknown_image_ids_are_rejected(labels_path: Path, synth_cohort: Cohort) -> None:
    _rewrite(labels_path, 4, "image_id", "not_an_image")
    with pytest.raises(InputError, match=r"labels\.csv, row 5, column 'image_id': image_id 'not_an_image' is not in"):
        read_tone_labels(labels_path, synth_cohort)


def test_a_label_outside_the_scale_is_rejected(labels_path: Path, synth_cohort: Cohort) -> None:
    _rewrite(labels_path, 2, "label", "VII")
    with pytest.raises(InputError, match=r"labels\.csv, row 3, column 'label': label 'VII' is not on the fitzpatrick"):
        read_tone_labels(labels_path, synth_cohort)


@pytest.mark.parametrize("value", ["0", "-0.2", "1.5", "often", ""])
def test_inclusion_probabilities_outside_zero_one_are_rejected(
    labels_path: Path, synth_cohort: Cohort, value: str
) -> None:
    _rewrite(labels_path, 6, "inclusion_prob", value)
    with pytest.raises(InputError, match=r"labels\.csv, row 7, column 'inclusion_prob': inclusion probability .* "
                                         r"is not in \(0, 1\]"):
        read_tone_labels(labels_path, synth_cohort)


def test_a_duplicated_image_is_rejected(labels_path: Path, synth_cohort: Cohort) -> None:
    first = pd.read_csv(labels_path, dtype=str)["image_id"].iloc[0]
    _rewrite(labels_path, 1, "image_id", first)
    with pytest.raises(InputError, match=r"row 2, column 'image_id': duplicate image_id"):
        read_tone_labels(labels_path, synth_cohort)


def test_a_scale_that_contradicts_the_sidecar_is_rejected(labels_path: Path, synth_cohort: Cohort) -> None:
    with pytest.raises(InputError, match=r"labels\.json, column 'scale': labels are on the 'fitzpatrick' scale"):
        read_tone_labels(labels_path, synth_cohort, "monk")


def test_labels_without_sidecar_need_a_scale(labels_path: Path, synth_cohort: Cohort) -> None:
    sidecar_path(labels_path).unlink()
    with pytest.raises(InputError, match=r"labels\.json is missing, so give the scale"):
        read_tone_labels(labels_path, synth_cohort)
    assert read_tone_labels(labels_path, synth_cohort, "fitzpatrick").scale == "fitzpatrick"


def test_label_command_draws_once_and_then_resumes(run_cli, tmp_path: Path, synth_cohort: Cohort,
                                                   tone_path: Path) -> None:
    out = tmp_path / "drawn.csv"
    args = ("tone", "label", synth_cohort.root, "--tone", tone_path, "--out", out, "--n", "12", "--no-serve")
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "12 images to label" in result.stdout
    labels = read_tone_labels(out, synth_cohort)
    record_answer(out, labels, 0, "3", "derm-2")
    result = run_cli(*args, "--seed", "9")
    assert result.exit_code == 0, result.stderr
    assert "resuming" in result.stdout and "1 of 12 images answered" in " ".join(result.stdout.split())
    assert read_tone_labels(out, synth_cohort).frame["image_id"].tolist() == labels.frame["image_id"].tolist()


def test_label_command_rejects_a_scale_other_than_the_files(run_cli, labels_path: Path, synth_cohort: Cohort,
                                                            tone_path: Path) -> None:
    result = run_cli("tone", "label", synth_cohort.root, "--tone", tone_path, "--out", labels_path,
                     "--scale", "monk", "--no-serve")
    assert result.exit_code == 3
    assert "labels are on the 'fitzpatrick' scale, not 'monk'" in result.stderr
