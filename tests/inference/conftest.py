"""Fixtures of the inference tests; the cohort builders are in ``inference_testdata``."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_testdata import make_cohort


@pytest.fixture
def tiny_cohort(tmp_path: Path):
    return make_cohort(tmp_path / "cohort", n=40)

