"""Kill test: SIGKILL half way through a run, rerun, and get what an uninterrupted run gets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from fairderm.cli import main
from fairderm.inference import read_predictions, run_inference
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM

LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]
RUN_CLI = "import sys; from fairderm.cli import main; sys.exit(main(sys.argv[1:]))"


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    # latency is wall time, never equal between runs; everything else must be
    return frame.drop(columns=["latency_s"]).sort_values("image_id").reset_index(drop=True)


@pytest.mark.slow
def test_run_killed_half_way_resumes_to_the_uninterrupted_result(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=24, size=40)
    args = [
        "--backend",
        "openai",
        "--batch-size",
        "2",
        "--concurrency",
        "1",
        "--workers",
        "0",
        "--strata",
        "fitzpatrick_group",
        "--max-retries",
        "0",
    ]
    with ScriptedVLM() as server:
        for k, path in enumerate(cohort.image_paths()):
            server.set(path, ("skinr1" if k % 2 else "skingpt", LABELS[(k * 7) % 4]))
        reference = run_inference(
            cohort,
            tmp_path / "reference.parquet",
            backend="openai",
            workers=0,
            batch_size=2,
            strata="fitzpatrick_group",
            options={"endpoint": server.endpoint, "concurrency": 1, "max_retries": 0},
        )
        server.hits.clear()
        server.delay = 0.08  # a server slow enough that the run can be killed half way

        out = tmp_path / "killed.parquet"
        shards = tmp_path / "killed.parquet.shards"
        command = [
            sys.executable,
            "-c",
            RUN_CLI,
            "infer",
            str(cohort.root),
            "--out",
            str(out),
            "--endpoint",
            server.endpoint,
            *args,
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(shards.glob("shard-*.parquet"))) < 6:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        written = len(list(shards.glob("shard-*.parquet")))
        assert 6 <= written < 12 and not out.exists()
        requests_before = sum(server.hits.values())
        server.delay = 0.0

        assert (
            main(
                ["infer", str(cohort.root), "--out", str(out), "--endpoint", server.endpoint, *args]
            )
            == 0
        )
        requests_after = sum(server.hits.values())

    frame = read_predictions(out, cohort)
    assert len(frame) == 24 and frame["image_id"].is_unique
    pd.testing.assert_frame_equal(_comparable(frame), _comparable(reference.predictions))
    # finished cases were not asked again: only the batch in flight at the kill is repeated
    assert requests_after - requests_before == 24 - 2 * written
    assert not shards.exists()
    assert frame.attrs["fairderm"]["fingerprint"] == reference.metadata["fingerprint"]
