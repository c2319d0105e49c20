"""Concurrent writers: two real `infer` processes with one --out, and outputs that are not complete."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from fairderm._io import atomic_write_parquet, read_parquet_metadata
from fairderm.cli import main
from fairderm.inference import read_predictions, rows_sha256, run_inference
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM

LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]
RUN_CLI = "import sys; from fairderm.cli import main; sys.exit(main(sys.argv[1:]))"
N = 24


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["latency_s"]).sort_values("image_id").reset_index(drop=True)


def _scripted(server: ScriptedVLM, cohort) -> None:
    for k, path in enumerate(cohort.image_paths()):
        server.set(path, ("skinr1" if k % 2 else "skingpt", LABELS[(k * 7) % 4]))


def _two_processes(cohort, out, endpoint: str, *extra: str) -> list[subprocess.CompletedProcess]:
    command = [
        sys.executable, "-c", RUN_CLI, "infer", str(cohort.root), "--out", str(out), "--backend", "openai",
        "--endpoint", endpoint, "--batch-size", "2", "--concurrency", "1", "--workers", "0",
        "--max-retries", "0", *extra,
    ]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return results


def test_two_concurrent_infer_runs_with_one_out_end_complete_or_refused(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=N, size=40)
    out = tmp_path / "preds.parquet"
    with ScriptedVLM() as server:
        _scripted(server, cohort)
        reference = run_inference(cohort, tmp_path / "reference.parquet", backend="openai", workers=0,
                                  batch_size=2, options={"endpoint": server.endpoint, "concurrency": 1,
                                                         "max_retries": 0})
        server.delay = 0.05  # slow enough that the two runs overlap
        results = _two_processes(cohort, out, server.endpoint)
    codes = sorted(r.returncode for r in results)
    assert codes[0] == 0, [r.stderr for r in results]
    for result in results:
        if result.returncode != 0:
            # a clear refusal: one line naming the output, and a code that is neither success nor FAIL
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and str(out) in lines[0] and "another fairderm process" in lines[0]
            assert result.returncode == 3
    frame = read_predictions(out, cohort)
    assert len(frame) == N
    pd.testing.assert_frame_equal(_comparable(frame), _comparable(reference.predictions))
    assert not (tmp_path / ".preds.parquet.lock").exists() and not out.with_name(out.name + ".shards").exists()


def test_two_concurrent_infer_runs_with_wait_both_succeed_with_the_full_output(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=N, size=40)
    out = tmp_path / "preds.parquet"
    with ScriptedVLM(delay=0.03) as server:
        _scripted(server, cohort)
        results = _two_processes(cohort, out, server.endpoint, "--wait", "60")
        # the waiter found the finished output and asked the server nothing more
        assert sum(server.hits.values()) == N
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    frame = read_predictions(out, cohort)
    assert len(frame) == N and (frame["status"] == "ok").all()


def test_short_output_of_the_same_run_is_completed_not_taken_as_finished(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=N, size=40)
    out = tmp_path / "preds.parquet"
    with ScriptedVLM() as server:
        _scripted(server, cohort)
        args = ["infer", str(cohort.root), "--out", str(out), "--backend", "openai", "--endpoint",
                server.endpoint, "--workers", "0", "--max-retries", "0"]
        assert main(args) == 0
        full = read_predictions(out, cohort)
        # what a lost race used to leave: the same run's metadata over 8 of its rows (with their own, valid
        # rows hash: an edited file is never reused at all)
        short = pd.read_parquet(out).head(8)
        atomic_write_parquet(out, short, metadata_json={**read_parquet_metadata(out),
                                                        "rows_sha256": rows_sha256(short)})
        server.hits.clear()
        assert main(args) == 0
        assert sum(server.hits.values()) == N - 8
    again = read_predictions(out, cohort)
    pd.testing.assert_frame_equal(_comparable(again), _comparable(full))
