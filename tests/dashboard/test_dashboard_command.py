"""``fairderm dashboard``: argument checks and the streamlit command it launches."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fairderm.commands import _common
from fairderm.commands import dashboard as command
from fairderm.dashboard.screenshots import free_port


def test_missing_runs_folder_is_rejected(run_cli, tmp_path: Path) -> None:
    result = run_cli("dashboard", tmp_path / "nope")
    assert result.exit_code == 3
    assert "does not exist" in result.stderr


def test_dashboard_launches_streamlit_on_the_app(run_cli, runs_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class FinishedServer:
        def __init__(self, argv: list[str]) -> None:
            calls.append(argv)

        def wait(self) -> int:
            return 0

        def poll(self) -> int:
            return 0

    monkeypatch.setattr(_common.subprocess, "Popen", FinishedServer)
    result = run_cli("dashboard", runs_dir, "--port", "8765")
    assert result.exit_code == 0, result.stderr
    (argv,) = calls
    assert argv[argv.index("run") + 1] == str(command.dashboard_app_path())
    assert argv[argv.index("--server.port") + 1] == "8765"
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[-1] == str(runs_dir.resolve())


def test_app_is_inside_the_package() -> None:
    assert command.dashboard_app_path().parts[-3:] == ("fairderm", "dashboard", "app.py")
    assert command.dashboard_app_path().is_file()


def _serving(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_sigterm_to_the_dashboard_command_stops_its_streamlit_server(runs_dir: Path) -> None:
    port = free_port()
    code = "from fairderm.cli import run; run()"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-c", code, "dashboard", str(runs_dir), "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not _serving(port):
                assert process.poll() is None and time.monotonic() < deadline, "the dashboard never served"
                time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
            deadline = time.monotonic() + 15
            while _serving(port) and time.monotonic() < deadline:
                time.sleep(0.3)
            assert not _serving(port), "streamlit still serves the port after its parent was terminated"
        finally:
            with contextlib.suppress(ProcessLookupError):  # its own session: the server is in its process group
                os.killpg(process.pid, signal.SIGKILL)
