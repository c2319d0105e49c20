"""The tone estimator's worker processes: same results as one process, fork even beside torch, clear failures."""

from __future__ import annotations

import os
import sys

import pandas as pd
import pytest
import torch

import fairderm.tone._run as run_module
from fairderm._processes import worker_context
from fairderm.errors import FairdermError
from fairderm.tone import ToneParameters, estimate_tone
from tests.helpers.skin_photos import SYNTH_WHITE


def test_worker_processes_give_the_single_process_table(synth_cohort, synth_tone):
    assert len(synth_cohort.manifest) >= run_module._MIN_IMAGES_FOR_POOL  # the pool is really used
    pooled = estimate_tone(synth_cohort, workers=2, parameters=ToneParameters(white_reflectance=SYNTH_WHITE))
    pd.testing.assert_frame_equal(pooled, synth_tone)


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the start method checked on Linux")
def test_workers_are_forked_beside_torch_on_the_cpu():
    # spawn would re-import the caller's __main__: a script without a main guard
    # would run again in every worker
    torch.ones(2) @ torch.ones(2)
    assert "torch" in sys.modules and not torch.cuda.is_initialized()
    assert worker_context().get_start_method() == "fork"


def _die(*args):
    os._exit(3)


def test_a_worker_that_dies_is_one_clear_error(synth_cohort, monkeypatch):
    monkeypatch.setattr(run_module, "measure_chunk", _die)
    with pytest.raises(FairdermError, match=r"tone worker process died.*workers=1"):
        estimate_tone(synth_cohort, workers=2)
