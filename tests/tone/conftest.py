"""Fixtures for the tone tests: cohorts of any image files, and a small synthetic cohort."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from fairderm.cohort import Cohort, synthesize_cohort
from fairderm.tone import ToneParameters, estimate_tone
from tests.helpers.skin_photos import SYNTH_WHITE, make_image_cohort


@pytest.fixture
def image_cohort(tmp_path: Path) -> Callable[..., Cohort]:
    """Factory: ``image_cohort({"a.png": bytes, ...}, extra={column: values})`` -> Cohort."""
    counter = iter(range(1000))

    def _make(files: dict[str, bytes], extra: dict[str, list[object]] | None = None) -> Cohort:
        return make_image_cohort(tmp_path / f"cohort{next(counter)}", files, extra=extra)

    return _make


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """60 synthetic photographs with known skin colour and lesion masks (confounders included)."""
    return synthesize_cohort(tmp_path_factory.mktemp("synth") / "cohort", n=60, seed=5, workers=1)


@pytest.fixture(scope="session")
def synth_tone(synth_cohort: Cohort) -> pd.DataFrame:
    """The tone table of :func:`synth_cohort`, told the reflectance of its rulers and paper (0.65)."""
    return estimate_tone(synth_cohort, workers=1, parameters=ToneParameters(white_reflectance=SYNTH_WHITE))
