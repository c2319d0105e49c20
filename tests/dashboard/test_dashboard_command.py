"""``fairderm dashboard``: argument checks and the streamlit command it launches."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fairderm.commands import _common
from fairderm.commands import dashboard as command


def test_missing_runs_folder_is_rejected(run_cli, tmp_path: Path) -> None:
    result = run_cli("dashboard", tmp_path / "nope")
    assert result.exit_code == 3
    assert "does not exist" in result.stderr


def test_dashboard_launches_streamlit_on_the_app(run_cli, runs_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(_common.subprocess, "run",
                        lambda argv, check: calls.append(argv) or subprocess.CompletedProcess(argv, 0))
    result = run_cli("dashboard", runs_dir, "--port", "8765")
    assert result.exit_code == 0, result.stderr
    (argv,) = calls
    assert argv[argv.index("run") + 1] == str(command.dashboard_app_path())
    assert argv[argv.index("--server.port") + 1] == "8765"
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[-1] == str(runs_dir.resolve())


def test_app_path_points_at_the_checkout() -> None:
    assert command.dashboard_app_path().parts[-2:] == ("dashboards", "app.py")
