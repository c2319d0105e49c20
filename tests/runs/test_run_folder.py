"""The run folder's one reader and writer: typed records, one-line errors naming the file, confinement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairderm.errors import InputError
from fairderm.metrics import EvaluationResult, evaluate
from fairderm.runs import GATE_FILE, METRICS_FILE, RUN_SPEC_FILE, TONE_FILE, RunFolder


@pytest.fixture(scope="module")
def result() -> EvaluationResult:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    score = np.clip(y * 0.6 + rng.uniform(0, 0.4, 120), 0, 1)
    tone = np.where(np.arange(120) % 3 == 0, "V-VI", "I-II")
    return evaluate(y, score, {"fitzpatrick_est": tone}, n_boot=50, tests=False, case_mix=False, power=False)


def test_metrics_written_and_read_back_are_the_same_result(result: EvaluationResult, tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    path = folder.write_metrics(result)
    assert path == tmp_path / METRICS_FILE
    assert folder.metrics().to_dict() == result.to_dict()


def test_absent_optional_files_read_as_none(tmp_path: Path) -> None:
    folder = RunFolder.open(tmp_path)
    assert folder.json(GATE_FILE) is None and folder.spec() is None and folder.tone() is None
    assert folder.predictions() is None and folder.text("card.md") is None


def test_missing_run_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run folder not found"):
        RunFolder.open(tmp_path / "nowhere")


def test_json_file_holding_a_list_is_rejected_naming_it(tmp_path: Path) -> None:
    (tmp_path / GATE_FILE).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match=r"gate\.json must hold a JSON object") as caught:
        RunFolder(tmp_path).json(GATE_FILE)
    assert str(tmp_path / GATE_FILE) in str(caught.value)


def test_spec_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    (tmp_path / RUN_SPEC_FILE).write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(InputError, match="must be a mapping"):
        RunFolder(tmp_path).spec()


def test_file_symlinked_outside_the_root_is_refused(result: EvaluationResult, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"a": 1}), encoding="utf-8")
    root = tmp_path / "runs"
    run = root / "r1"
    run.mkdir(parents=True)
    (run / GATE_FILE).symlink_to(outside / "secret.json")
    folder = RunFolder(run, root=root.resolve())
    with pytest.raises(InputError, match="outside the runs folder"):
        folder.json(GATE_FILE)
    assert RunFolder(run).json(GATE_FILE) == {"a": 1}  # without a root nothing is confined


def test_tone_is_read_with_its_provenance(tmp_path: Path) -> None:
    from fairderm._io import atomic_write_parquet

    frame = pd.DataFrame({
        "image_id": ["a", "b"], "ita": [40.0, -10.0], "ita_low": [37.0, -13.0], "ita_high": [43.0, -7.0],
        "skin_fraction": [0.5, 0.5], "fitzpatrick_est": [2, 5], "monk_est": [3, 7], "status": ["ok", "ok"],
        "reason": ["", ""], "method": ["fairderm", "fairderm"],
    })
    atomic_write_parquet(tmp_path / TONE_FILE, frame,
                         metadata_json={"format": "fairderm-tone/1", "estimation": {"fitzpatrick_scheme": "kinyanjui"}})
    tone = RunFolder(tmp_path).tone()
    assert tone is not None and list(tone.frame["image_id"]) == ["a", "b"]
    assert tone.provenance.estimation == {"fitzpatrick_scheme": "kinyanjui"}
