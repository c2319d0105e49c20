"""Shared fixtures: the CLI runner, the shared PAD-UFES-20 subset, small cohorts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FAIRDERM_SHARED", REPO_ROOT.parent / "shared")) / "data"
PAD_SUBSET = SHARED_DATA / "pad-ufes-20-subset"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``fairderm ARGS...`` in-process; returns exit code, stdout and stderr."""
    from fairderm.cli import main

    def _run(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture(scope="session")
def pad_subset() -> Path:
    """The shared PAD-UFES-20 subset, used in place; skip when ../shared is absent."""
    if not (PAD_SUBSET / "labels.csv").is_file():
        pytest.skip(f"shared PAD-UFES-20 subset not found at {PAD_SUBSET}")
    return PAD_SUBSET
