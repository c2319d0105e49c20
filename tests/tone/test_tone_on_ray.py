"""Tone estimation on Ray: a killed driver resumed by block, a killed worker costing nothing, the local table.

An undisturbed run on Ray is tests/audit/test_engine_key.py's audit on Ray (its tone table hashes as the local one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fairderm._engine import Engine
from fairderm.tone import ToneParameters, estimate_tone
from tests.helpers.ray_processes import kill_one, ray_processes
from tests.helpers.skin_photos import SYNTH_WHITE

pytestmark = pytest.mark.slow  # a Ray instance takes seconds to start

PARAMETERS = ToneParameters(white_reflectance=SYNTH_WHITE)
BUSY_WORKER = "MapBatches(measure_batch)"  # the title of a Ray worker measuring a block


def _identical(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    # byte for byte: the same values hash the same
    assert (pd.util.hash_pandas_object(frame, index=False) == pd.util.hash_pandas_object(expected, index=False)).all()


DRIVER = """
import sys
from fairderm._engine import Engine
from fairderm.cohort import load_cohort
from fairderm.tone import ToneParameters, estimate_tone
estimate_tone(load_cohort(sys.argv[1]), parameters=ToneParameters(white_reflectance=float(sys.argv[3])),
              engine=Engine(name="ray", address="auto", block_size=2), checkpoint=sys.argv[2])
"""


def test_a_killed_driver_resumes_by_block_and_a_killed_worker_costs_no_row(
    ray_local, synth_cohort, synth_tone, tmp_path
):
    """The driver is killed half way; its rerun measures only the unfinished blocks, and loses a busy Ray
    worker after its first new block: Ray runs that block again, and no row is lost or counted twice.

    (Two failures in one run: each Ray job costs seconds of the suite.)"""
    checkpoint = tmp_path / "tone.blocks"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(synth_cohort.root), str(checkpoint),
                               str(SYNTH_WHITE)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(checkpoint.glob("block-*.parquet"))) < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finished = {path: path.stat().st_ino for path in checkpoint.glob("block-*.parquet")}
    assert 3 <= len(finished) < len(synth_cohort) // 2, "the driver was not killed half way"
    calls: list[tuple[int, int]] = []
    untouched: list[bool] = []
    killed: list[int] = []
    stale = ray_processes(BUSY_WORKER)  # the killed driver's, which Ray may not have ended yet

    def watch(done: int, total: int) -> None:
        calls.append((done, total))
        # a block measured again would be written again (a new file through a rename)
        untouched.append(all(path.stat().st_ino == inode for path, inode in finished.items()))
        if done > calls[0][0] and not killed and (pid := kill_one(BUSY_WORKER, spare=stale)) is not None:
            killed.append(pid)

    frame = estimate_tone(synth_cohort, parameters=PARAMETERS, engine=Engine(name="ray", block_size=2),
                          checkpoint=checkpoint, progress=watch)
    assert calls[0] == (2 * len(finished), len(synth_cohort))  # the finished blocks are counted, not measured
    assert all(untouched)
    assert killed, "no Ray worker was measuring when the rerun's first block finished"
    assert not checkpoint.exists()
    assert not frame["image_id"].duplicated().any()
    _identical(frame, synth_tone)
    assert frame.attrs == synth_tone.attrs  # the same provenance
