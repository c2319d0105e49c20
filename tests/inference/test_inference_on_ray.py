"""Inference on Ray: a killed driver resumed by block, a killed actor costing nothing, the local predictions.

An undisturbed run on Ray is tests/audit/test_engine_key.py's audit on Ray (its predictions equal the local ones).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from fairderm._engine import Engine
from fairderm.inference import run_inference
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.ray_processes import kill_one, ray_processes

pytestmark = pytest.mark.slow  # a Ray instance takes seconds to start

MODEL_PY = """
import time

from torch import nn

class Net(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x):
        time.sleep(0.1)  # a model slow enough that a run can be killed half way
        return self.fc(self.conv(x).mean(dim=(2, 3)))
"""
# what differs between any two runs, whatever the engine: wall times
TIMING_KEYS = ("strata_run", "started_at", "finished_at")


@pytest.fixture(scope="module")
def model_and_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("ray-inference")
    folder = root / "net"
    folder.mkdir()
    (folder / "model.py").write_text(MODEL_PY)
    namespace: dict = {}
    exec(MODEL_PY, namespace)
    torch.manual_seed(0)
    save_file(namespace["Net"](4).state_dict(), str(folder / "model.safetensors"))
    (folder / "model.json").write_text(json.dumps({
        "architecture": "model.py:Net", "kwargs": {"n_classes": 4}, "weights": "model.safetensors",
        "classes": ["nevus", "melanoma", "bcc", "SK"], "input_size": 24,
    }))
    cohort = make_lesion_cohort(root / "cohort", n=40, size=40)
    return folder, {"architecture": f"{folder / 'model.py'}:Net"}, cohort


@pytest.fixture(scope="module")
def local_run(model_and_cohort, tmp_path_factory):
    folder, options, cohort = model_and_cohort
    out = tmp_path_factory.mktemp("local") / "p.parquet"
    return run_inference(cohort, out, backend="torch", model=folder, options=options, workers=0)


def _same_predictions(run, expected) -> None:
    probs = [c for c in expected.predictions.columns if c.startswith("prob_")]
    assert list(run.predictions.columns) == list(expected.predictions.columns)
    np.testing.assert_allclose(run.predictions[probs], expected.predictions[probs], rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(run.predictions.drop(columns=probs), expected.predictions.drop(columns=probs))
    for key, value in expected.metadata.items():
        if key not in TIMING_KEYS and key != "rows_sha256":
            assert run.metadata[key] == value, key


DRIVER = """
import sys
from fairderm._engine import Engine
from fairderm.inference import run_inference
run_inference(sys.argv[1], sys.argv[2], backend="torch", model=sys.argv[3], options={"architecture": sys.argv[4]},
              engine=Engine(name="ray", address="auto", block_size=2))
"""


def test_a_killed_driver_resumes_by_block_and_a_killed_actor_costs_no_case(
    ray_local, model_and_cohort, local_run, tmp_path
):
    """The driver is killed half way; its rerun predicts only the unfinished blocks, and loses its model actor
    after its first new block: Ray restarts the actor, and no case is lost or counted twice.

    (Two failures in one run: each Ray job starts its model actors anew, seconds of the suite per job.)"""
    folder, options, cohort = model_and_cohort
    out = tmp_path / "p.parquet"
    shards = tmp_path / "p.parquet.shards"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(cohort.root), str(out), str(folder),
                               options["architecture"]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(shards.glob("shard-*.parquet"))) < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finished = {path: path.stat().st_ino for path in shards.glob("shard-*.parquet")}
    assert 3 <= len(finished) < 20, "the driver was not killed half way"
    resumed: list[int] = []
    untouched: list[bool] = []
    killed: list[int] = []
    stale = ray_processes("_PredictActor")  # the killed driver's model actors, which Ray may not have ended yet

    def watch(tallies) -> None:
        resumed.append(sum(t.resumed for t in tallies.values()))
        untouched.append(all(path.stat().st_ino == inode for path, inode in finished.items()))
        new_cases = sum(t.done - t.resumed for t in tallies.values())
        if new_cases and not killed and (pid := kill_one("_PredictActor", spare=stale)) is not None:
            killed.append(pid)

    run = run_inference(cohort, out, backend="torch", model=folder, options=options,
                        engine=Engine(name="ray", block_size=2), progress=watch)
    assert resumed[0] == 2 * len(finished)  # every finished block counted, none predicted again
    assert all(untouched)
    assert killed, "no model actor was found when the rerun's first block finished"
    assert not run.predictions["image_id"].duplicated().any()
    _same_predictions(run, local_run)
    assert not shards.exists()
