"""Fixtures for the gate tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.gate_metrics import DEMO_POLICY, write_policy


@pytest.fixture
def demo_policy_file(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy.yaml", DEMO_POLICY)
