"""Concurrent and killed audits: distinct run ids, locked cache entries, inference resumed from its shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fairderm.audit import run_audit
from tests.helpers.vlm_server import ScriptedVLM  # the scripted model server of the inference tests

RUN_CLI = "import sys; from fairderm.cli import main; sys.exit(main(sys.argv[1:]))"
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def _audit(spec: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN_CLI, "audit", str(spec), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.partial")]


@pytest.mark.slow
def test_two_audits_of_one_spec_started_together_both_complete_with_distinct_run_ids(write_spec):
    spec = write_spec()
    processes = [_audit(spec, "--wait", "120") for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in processes]
    # both reach a verdict (the real metrics engine's; the tiny cohort may be too small to pass): none is ERROR
    codes = [p.returncode for p in processes]
    assert codes[0] == codes[1] and codes[0] in (0, 1, 2), [err for _, err in outputs]
    runs = spec.parent / "tiny" / "runs"
    run_dirs = sorted(p for p in runs.iterdir())
    assert len(run_dirs) == 2 and run_dirs[0].name != run_dirs[1].name
    for run_dir in run_dirs:
        run_log = json.loads((run_dir / "run.json").read_text())
        assert run_log["run_id"] == run_dir.name and run_log["exit_code"] == codes[0]
        assert len(pd.read_parquet(run_dir / "predictions.parquet")) == 72
    assert not _partials(spec.parent) and not list(spec.parent.rglob(".*.lock"))


def test_second_audit_while_the_first_builds_a_stage_is_refused_with_one_line(write_spec, fake_metrics,
                                                                              monkeypatch):
    from fairderm.audit import _stages

    spec = write_spec()
    real = _stages.run_predictions
    seen: dict[str, subprocess.CompletedProcess] = {}

    def predictions_while_another_audit_starts(*args, **kwargs):
        second = _audit(spec)
        out, err = second.communicate(timeout=120)
        seen["second"] = subprocess.CompletedProcess(second.args, second.returncode, out, err)
        return real(*args, **kwargs)

    monkeypatch.setattr(_stages, "run_predictions", predictions_while_another_audit_starts)
    first = run_audit(spec)
    second = seen["second"]
    assert second.returncode == 3
    error = next(line for line in second.stderr.splitlines() if line.startswith("error:"))
    assert "another fairderm process" in error and str(spec.parent / "tiny" / "cache" / "inference") in error
    assert [p.name for p in (spec.parent / "tiny" / "runs").iterdir()] == [first.run_id]
    assert first.exit_code == 0 and not _partials(spec.parent)


@pytest.mark.slow
def test_audit_killed_during_inference_resumes_from_its_shards(write_spec, tiny_cohort_dir, fake_metrics):
    manifest = pd.read_parquet(tiny_cohort_dir / "manifest.parquet")
    tested = manifest[manifest["split"] == "test"]
    with ScriptedVLM(delay=0.06) as server:
        for image in tested["image"]:
            server.set(tiny_cohort_dir / image, ("skingpt", "melanoma"))
        spec = write_spec(model={"backend": "openai", "model": "skingpt-r1-test", "endpoint": server.endpoint,
                                 "options": {"batch_size": 2, "concurrency": 1, "workers": 0, "max_retries": 0}})
        shards_glob = "tiny/cache/inference/.*.partial/predictions.parquet.shards/shard-*.parquet"
        process = _audit(spec)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(spec.parent.glob(shards_glob))) < 6:
            assert process.poll() is None, "the audit ended before it could be killed"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        written = len(list(spec.parent.glob(shards_glob)))
        assert 6 <= written < 36
        requests_before = sum(server.hits.values())
        server.delay = 0.0  # slow only so that the audit could be killed half way

        run = run_audit(spec)
        requests_after = sum(server.hits.values())

    # the cases finished before the kill were not asked again: only the batch in flight is repeated
    assert requests_after - requests_before == len(tested) - 2 * written
    predictions = pd.read_parquet(run.run_dir / "predictions.parquet")
    assert len(predictions) == len(tested) and (predictions["pred"] == "melanoma").all()
    assert not _partials(spec.parent) and not list(spec.parent.rglob(".*.lock"))
