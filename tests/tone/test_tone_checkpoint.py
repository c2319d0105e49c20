"""Tone estimation with a checkpoint folder: a run stopped half way resumes by block, and the table is the same."""

from __future__ import annotations

import pandas as pd
import pytest

from fairderm._engine import Engine
from fairderm.tone import ToneParameters, estimate_tone
from tests.helpers.skin_photos import SYNTH_WHITE

PARAMETERS = ToneParameters(white_reflectance=SYNTH_WHITE)


class _Stop(Exception):
    pass


def test_a_stopped_run_resumes_from_its_finished_blocks(synth_cohort, synth_tone, tmp_path):
    checkpoint = tmp_path / "tone.blocks"

    def stop_after_three_blocks(done: int, total: int) -> None:
        if done == 13:  # the first image of the fourth block
            raise _Stop

    with pytest.raises(_Stop):
        estimate_tone(synth_cohort, parameters=PARAMETERS, workers=1, engine=Engine(block_size=4),
                      checkpoint=checkpoint, progress=stop_after_three_blocks)
    finished = {path: path.stat().st_ino for path in checkpoint.glob("block-*.parquet")}
    assert len(finished) == 3
    calls: list[int] = []

    def watch(done: int, total: int) -> None:
        calls.append(done)
        assert all(path.stat().st_ino == inode for path, inode in finished.items())  # never measured again

    frame = estimate_tone(synth_cohort, parameters=PARAMETERS, workers=1, engine=Engine(block_size=4),
                          checkpoint=checkpoint, progress=watch)
    assert calls[0] == 12 and calls[-1] == len(synth_cohort)
    pd.testing.assert_frame_equal(frame, synth_tone, check_exact=True)
    assert not checkpoint.exists()


def test_blocks_measured_with_other_settings_are_not_reused(synth_cohort, tmp_path):
    checkpoint = tmp_path / "tone.blocks"

    def stop_after_one_block(done: int, total: int) -> None:
        if done == 5:
            raise _Stop

    with pytest.raises(_Stop):
        estimate_tone(synth_cohort, parameters=PARAMETERS, workers=1, engine=Engine(block_size=4),
                      checkpoint=checkpoint, progress=stop_after_one_block)
    assert len(list(checkpoint.glob("block-*.parquet"))) == 1
    calls: list[int] = []
    other = ToneParameters(white_reflectance=SYNTH_WHITE, exposure_sd=0.2)
    estimate_tone(synth_cohort, parameters=other, workers=1, engine=Engine(block_size=4), checkpoint=checkpoint,
                  progress=lambda done, total: calls.append(done))
    assert calls[0] == 0
