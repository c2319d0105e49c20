"""The README's "An audit from Python" block runs as written, on a small audit spec."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_audit_block() -> str:
    section = README.read_text(encoding="utf-8").split("## An audit from Python", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_audit_runs_and_prints_the_verdict_and_an_interval(
    write_spec: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    block = _python_audit_block()
    assert len([line for line in block.splitlines() if line.strip()]) <= 7
    spec = write_spec("readme", strata={"attributes": ["fitzpatrick_group"]}, metrics=["accuracy", "sensitivity"])
    # The README audits the demo's spec on its estimated tone groups; this spec labels tone in a column.
    code = (block.replace('"audits/demo.yaml"', repr(str(spec)))
            .replace('{"fitzpatrick_est": "V-VI"}', '{"fitzpatrick_group": "V-VI"}'))
    assert code != block
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"^(PASS|FAIL|INSUFFICIENT_EVIDENCE) GroupRow\(", out, re.M), out[:500]
    assert "| group | metric | value | n | n_pos | flag |" in out  # the Markdown rendering
    assert "| fitzpatrick_group=V-VI | sensitivity |" in out
