"""``fairderm infer`` and ``fairderm head train`` from the command line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from fairderm.inference import read_predictions
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM


@pytest.fixture
def cohort(tmp_path):
    return make_lesion_cohort(tmp_path / "cohort", n=12, size=40)


@pytest.mark.slow
def test_head_train_then_infer_with_the_backbone(cohort, tmp_path, run_cli):
    trained = run_cli(
        "head",
        "train",
        cohort.root,
        "--out",
        tmp_path / "head",
        "--head",
        "linear",
        "--train-filter",
        "split != 'test'",
        "--workers",
        "0",
    )
    assert trained.exit_code == 0, trained.stderr
    assert "val accuracy" in trained.stdout
    result = run_cli(
        "infer",
        cohort.root,
        "--backend",
        "backbone",
        "--model",
        tmp_path / "head",
        "--out",
        tmp_path / "p.parquet",
        "--strata",
        "fitzpatrick_group",
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.stderr
    assert "ok 12" in result.stdout
    assert len(read_predictions(tmp_path / "p.parquet", cohort)) == 12


def test_infer_openai_with_options_and_class_map(cohort, tmp_path, run_cli):
    with ScriptedVLM() as server:
        result = run_cli(
            "infer",
            cohort.root,
            "--backend",
            "openai",
            "--endpoint",
            server.endpoint,
            "--out",
            tmp_path / "p.parquet",
            "--concurrency",
            "2",
            "--timeout",
            "5",
            "--option",
            "max_tokens=256",
            "--cap-per-stratum",
            "2",
            "--strata",
            "fitzpatrick_group",
            "--workers",
            "0",
        )
        sent = server.requests[0]
    assert result.exit_code == 0, result.stderr
    assert sent["max_tokens"] == 256
    frame = pd.read_parquet(tmp_path / "p.parquet")
    assert (frame["pred"] == "nevus").all() and frame["stratum"].value_counts().max() == 2


def test_router_backend_without_the_moe_package_is_a_clear_error(
    cohort, tmp_path, run_cli, monkeypatch
):
    monkeypatch.setitem(sys.modules, "fairderm.moe", None)  # as if the package failed to import
    result = run_cli(
        "infer",
        cohort.root,
        "--backend",
        "router",
        "--model",
        tmp_path,
        "--out",
        tmp_path / "p.parquet",
    )
    assert result.exit_code == 3
    assert "backend 'router' needs fairderm.moe, which cannot be imported" in result.stderr


def test_inference_never_imports_the_moe_layer():
    package = Path(__file__).resolve().parents[2] / "fairderm" / "inference"
    for source in package.glob("*.py"):
        assert not re.search(
            r"^\s*(import|from)\s+fairderm\.moe", source.read_text(), re.MULTILINE
        ), source.name


def test_bad_option_syntax_is_rejected(cohort, tmp_path, run_cli):
    result = run_cli(
        "infer",
        cohort.root,
        "--backend",
        "openai",
        "--option",
        "max_tokens",
        "--out",
        tmp_path / "p.parquet",
    )
    assert result.exit_code == 3 and "expected OLD=NEW" in result.stderr


def test_unknown_head_type_is_rejected(cohort, tmp_path, run_cli):
    result = run_cli("head", "train", cohort.root, "--out", tmp_path / "head", "--head", "forest")
    assert result.exit_code == 3 and "unknown head 'forest'" in result.stderr


def test_help_texts(run_cli):
    for args in (("infer", "--help"), ("head", "train", "--help")):
        result = run_cli(*args)
        assert result.exit_code == 0 and "--out" in result.stdout


def test_infer_filter_runs_only_the_selected_cases(cohort, tmp_path, run_cli):
    wanted = int((cohort.manifest["split"] == "test").sum())
    assert 0 < wanted < len(cohort.manifest)
    with ScriptedVLM() as server:
        result = run_cli("infer", cohort.root, "--backend", "openai", "--endpoint", server.endpoint,
                         "--out", tmp_path / "p.parquet", "--filter", "split == 'test'", "--workers", "0")
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "p.parquet")
    test_ids = set(cohort.manifest.loc[cohort.manifest["split"] == "test", "image_id"].astype(str))
    assert len(frame) == wanted and set(frame["image_id"].astype(str)) == test_ids


@pytest.mark.parametrize(("expression", "words"), [
    ("__import__('os').system('true')", "--filter"),
    ("split == 'nowhere'", "selects no cases"),
])
def test_infer_bad_filter_is_one_line_naming_the_option(cohort, tmp_path, run_cli, expression, words):
    result = run_cli("infer", cohort.root, "--backend", "openai", "--endpoint", "http://127.0.0.1:1/v1",
                     "--out", tmp_path / "p.parquet", "--filter", expression)
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "p.parquet").exists()


def test_cuda_device_without_cuda_is_one_line(cohort, tmp_path, run_cli, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run_cli("infer", cohort.root, "--backend", "backbone", "--model", tmp_path / "head",
                     "--out", tmp_path / "p.parquet", "--device", "cuda:0")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cuda:0" in lines[0] and "CUDA is not available" in lines[0], result.stderr


def test_unknown_device_is_one_line(cohort, tmp_path, run_cli):
    result = run_cli("infer", cohort.root, "--backend", "backbone", "--model", tmp_path / "head",
                     "--out", tmp_path / "p.parquet", "--device", "gpu0")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpu0" in lines[0], result.stderr
