"""Fixtures of the reasoning tests: a scripted judge server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.judge_server import ScriptedJudge


@pytest.fixture
def judge_server() -> Iterator[ScriptedJudge]:
    with ScriptedJudge() as server:
        yield server
