"""The command line's one error handler: an unexpected error exits 3 (ERROR) with one line."""

from __future__ import annotations

import pytest


@pytest.fixture
def crashing_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something broke\nwith a second line")

    monkeypatch.setattr("fairderm.audit.verify_run", crash)


def test_unexpected_error_exits_3_with_one_line(crashing_verify, run_cli, tmp_path):
    result = run_cli("verify", tmp_path)
    assert result.exit_code == 3  # never 1, which is FAIL's (and "not verified") code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError: something broke" in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback(crashing_verify, run_cli, tmp_path):
    result = run_cli("--debug", "verify", tmp_path)
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr and "with a second line" in result.stderr


def test_debug_after_the_command_name_is_not_the_global_flag(run_cli, tmp_path):
    assert run_cli("verify", tmp_path, "--debug").exit_code == 3  # click: no such option
