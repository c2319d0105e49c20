"""Fixtures: a synthetic runs folder (cohort + two runs) built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dashboards.sample_run import write_sample_runs


@pytest.fixture(autouse=True)
def _keep_main_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest runs the app as ``__main__`` and leaves it there; a later test in this
    worker that starts a process pool by spawn would then rerun the app in every child."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_sample_runs(root, n=300, seed=1)
    return root


@pytest.fixture(scope="session")
def run_ids(runs_dir: Path) -> list[str]:
    return ["audits/erm/runs/run-001", "audits/router/runs/run-001"]
