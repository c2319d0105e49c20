"""The spec's ``engine:`` key: where the stages run, never what the run folder holds."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from fairderm._engine import Engine
from fairderm.audit import dump_spec, load_spec, run_audit


def test_engine_shorthand_and_spec_yaml_without_it(write_spec):
    loaded = load_spec(write_spec(engine="ray"))
    assert loaded.spec.engine == Engine(name="ray")
    assert "engine" not in yaml.safe_load(dump_spec(loaded.spec))
    detailed = load_spec(write_spec(engine={"name": "ray", "address": "auto", "actor_gpus": 1}))
    assert detailed.spec.engine.actor_gpus == 1 and detailed.spec.engine.address == "auto"


def test_a_ray_address_without_engine_ray_is_rejected_naming_the_key(write_spec):
    with pytest.raises(Exception, match="address"):
        load_spec(write_spec(engine={"address": "auto"}))


# what differs between any two runs of one audit: the run log, the predictions' wall times, and the hashes of them
_TIMED = {"run.json", "evidence.json", "predictions.parquet"}


def _stage_keys(run) -> dict[str, str]:
    # the later stages' keys hold the predictions file's hash, and with it its wall times
    return {stage: record["key"] for stage, record in _evidence(run)["stages"].items()
            if stage in ("tone", "inference")}


def _evidence(run) -> dict:
    return json.loads((run.run_dir / "evidence.json").read_text())


@pytest.mark.slow
def test_an_audit_on_ray_writes_the_local_run_folder(ray_local, write_spec):
    spec = write_spec(tone={"source": "estimate", "column": None}, strata={"attributes": ["sex"]})
    local = run_audit(spec)
    shutil.rmtree(load_spec(spec).cache_dir)  # nothing reused: every stage runs again, on Ray
    on_ray = run_audit(spec, engine=Engine(name="ray"))
    assert on_ray.run_id.split("-", 1)[1][:8] == local.run_id.split("-", 1)[1][:8]
    assert _stage_keys(on_ray) == _stage_keys(local)
    assert {r["cache"] for r in _evidence(on_ray)["stages"].values()} <= {"miss", "skipped"}
    hashes = [{name: digest for name, digest in _evidence(run)["artifacts"].items() if name not in _TIMED}
              for run in (local, on_ray)]
    assert "tone.parquet" in hashes[0] and hashes[0] == hashes[1]
    rows = [pd.read_parquet(run.run_dir / "predictions.parquet") for run in (local, on_ray)]
    pd.testing.assert_frame_equal(rows[0], rows[1], check_exact=True)
    assert json.loads((on_ray.run_dir / "run.json").read_text())["engine"]["name"] == "ray"
    # the spec's own key runs the stages on Ray too, and is a cache hit of the same stages
    from_spec = run_audit(write_spec(engine="ray", tone={"source": "estimate", "column": None},
                                     strata={"attributes": ["sex"]}))
    assert _stage_keys(from_spec) == _stage_keys(local)
    assert json.loads((from_spec.run_dir / "run.json").read_text())["engine"]["name"] == "ray"


def test_a_run_log_engine_that_is_no_engine_fails_verification(write_spec):
    from fairderm.audit import verify_run

    run = run_audit(write_spec())
    assert verify_run(run.run_dir).ok
    log = json.loads((run.run_dir / "run.json").read_text())
    assert log["engine"]["name"] == "local"
    log["engine"] = {"name": "spark"}
    (run.run_dir / "run.json").write_text(json.dumps(log))
    checks = [c for c in verify_run(run.run_dir).checks if c.item == "run.json" and c.key == "engine"]
    assert checks and checks[0].status == "mismatch"
