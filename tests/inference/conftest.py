"""Fixtures of the inference tests; the cohort builders are in ``tests.helpers.lesion_cohorts``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.lesion_cohorts import make_lesion_cohort


@pytest.fixture
def lesion_cohort(tmp_path: Path):
    return make_lesion_cohort(tmp_path / "cohort", n=40)

