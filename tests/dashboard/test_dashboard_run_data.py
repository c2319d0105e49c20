"""The loading layer: discovery of runs, optional files, and confinement to the runs folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fairderm.dashboard.run_data import RunsRoot, case_table, load_run, resolve_inside
from fairderm.errors import InputError


def test_runs_are_discovered_relative_to_the_root(runs_dir: Path, run_ids: list[str]) -> None:
    assert sorted(RunsRoot.open(runs_dir).run_ids()) == sorted(run_ids)


@pytest.mark.parametrize("attempt", ["../../etc/passwd", "/etc/passwd", "audits/../../x", "", "a\x00b"])
def test_path_escaping_the_runs_folder_is_rejected(runs_dir: Path, attempt: str) -> None:
    with pytest.raises(InputError):
        resolve_inside(runs_dir.resolve(), attempt)


def test_traversal_run_id_is_refused(runs_dir: Path) -> None:
    with pytest.raises(InputError, match="outside the runs folder"):
        RunsRoot.open(runs_dir).run_dir("../../etc/passwd")


def test_folder_inside_root_that_is_not_a_run_is_refused(runs_dir: Path) -> None:
    with pytest.raises(InputError, match="not a run folder"):
        RunsRoot.open(runs_dir).run_dir("cohort")


def test_symlink_leaving_the_runs_folder_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metrics.json").write_text("{}")
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    runs = RunsRoot.open(root)
    assert runs.run_ids() == []
    with pytest.raises(InputError):
        runs.run_dir("escape")


def test_missing_runs_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        RunsRoot.open(tmp_path / "nope")


def test_run_loads_with_cohort_inside_root(runs_dir: Path, run_ids: list[str]) -> None:
    run = load_run(RunsRoot.open(runs_dir), run_ids[0])
    assert run.gate["verdict"] in {"PASS", "FAIL", "INSUFFICIENT_EVIDENCE"}
    assert run.manifest is not None and len(run.manifest) == 300
    cases = case_table(run)
    assert {"label", "pred", "confidence", "correct", "tone_group_est", "tone_group", "image"} <= set(cases.columns)
    assert cases["correct"].sum() < len(cases)  # the sample model makes errors


def test_optional_files_missing_load_as_none(runs_dir: Path, run_ids: list[str], tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(runs_dir / run_ids[0], root / "runs" / "r1")
    for name in ("gate.json", "card.md", "tone.parquet", "predictions.parquet", "spec.yaml"):
        (root / "runs" / "r1" / name).unlink()
    run = load_run(RunsRoot.open(root), "runs/r1")
    assert run.gate is None and run.card_md is None and run.tone is None and run.manifest is None
    assert case_table(run).empty


def test_cohort_outside_root_is_not_read(runs_dir: Path, run_ids: list[str]) -> None:
    # Opening one run folder as the root: its cohort lies outside and must not be loaded.
    run_root = runs_dir / run_ids[0]
    run = load_run(RunsRoot.open(run_root), ".")
    assert run.manifest is None
    assert "not found inside the runs folder" in run.cohort_note


def test_stage_cache_holding_metrics_is_not_a_run(tmp_path: Path) -> None:
    for folder in ("audits/x/runs/r1", "audits/x/cache/metrics/abc"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metrics.json").write_text("{}")
    assert RunsRoot.open(tmp_path).run_ids() == ["audits/x/runs/r1"]


@pytest.mark.parametrize("name", ["manifest.parquet", "cohort.yaml"])
def test_cohort_file_symlinked_from_outside_the_runs_folder_is_not_read(runs_dir: Path, run_ids: list[str],
                                                                       tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    shutil.copytree(runs_dir, root)
    cohort_file = next(root.rglob(name))
    outside = tmp_path / f"outside-{name}"
    shutil.move(cohort_file, outside)
    cohort_file.symlink_to(outside)
    run = load_run(RunsRoot.open(root), run_ids[0])
    assert run.manifest is None
    assert "not found inside the runs folder" in run.cohort_note
