"""Running an audit: the run folder, caching, atomicity, exit codes (metrics engine faked)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fairderm._io import sha256_file
from fairderm.audit import run_audit
from fairderm.errors import InputError

pytestmark = pytest.mark.usefixtures("fake_metrics")

RUN_FILES = {
    "spec.yaml", "cohort/cohort.yaml", "cohort/manifest.parquet", "policy.yaml", "images.sha256",
    "environment.json", "predictions.parquet", "metrics.json", "coverage.json", "gate.json", "junit.xml",
    "gate.md", "card.md", "card.html", "card.json", "run.json", "evidence.json",
}


def _files(run_dir: Path) -> set[str]:
    return {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}


def _no_work(*args, **kwargs):
    raise AssertionError("a stage ran although its inputs did not change")


def test_run_folder_holds_the_documented_files_and_evidence_hashes_them(write_spec, tiny_cohort_dir, predictions_file):
    run = run_audit(write_spec(outputs={"card": True, "figures": True}))
    assert run.run_dir.parent == write_spec().parent / "tiny" / "runs"
    files = _files(run.run_dir)
    figures = {f for f in files if f.startswith("figures/")}
    assert files - figures == RUN_FILES
    assert {"figures/metrics.html", "figures/accuracy.json"} <= figures
    evidence = json.loads((run.run_dir / "evidence.json").read_text())
    assert set(evidence["artifacts"]) == files - {"evidence.json"}
    assert evidence["artifacts"]["metrics.json"] == sha256_file(run.run_dir / "metrics.json")
    inputs = evidence["inputs"]
    assert inputs["cohort"]["manifest_sha256"] == sha256_file(tiny_cohort_dir / "manifest.parquet")
    assert inputs["model"]["files"] == {"model_predictions.csv": sha256_file(predictions_file)}
    assert inputs["images"]["count"] == 72 and inputs["images"]["sha256"] == sha256_file(run.run_dir / "images.sha256")
    assert evidence["seeds"]["bootstrap"] == 3
    assert evidence["run_id"] == run.run_id == run.run_dir.name
    spec = yaml.safe_load((run.run_dir / "spec.yaml").read_text())
    assert spec["name"] == "tiny" and spec["bootstrap"]["n_boot"] == 200
    predictions = pd.read_parquet(run.run_dir / "predictions.parquet")
    assert len(predictions) == 72 and set(predictions["status"]) == {"ok"}


def test_run_id_sorts_by_time_and_names_the_inputs(write_spec):
    first = run_audit(write_spec())
    second = run_audit(write_spec())
    assert first.run_id != second.run_id
    assert sorted([second.run_id, first.run_id]) == [first.run_id, second.run_id]
    assert first.run_id.split("-", 1)[1][:8] == second.run_id.split("-", 1)[1][:8]


def test_unchanged_rerun_does_no_work(write_spec, monkeypatch):
    path = write_spec()
    first = run_audit(path)
    assert {s.stage: s.cache for s in first.stages} == {
        "tone": "skipped", "inference": "miss", "metrics": "miss", "gate": "miss", "card": "skipped"}
    for stage in ("run_tone", "run_predictions", "run_metrics", "run_gate"):
        monkeypatch.setattr(f"fairderm.audit._stages.{stage}", _no_work)
    monkeypatch.setattr("fairderm.audit._evaluation.compute_metrics", _no_work)
    second = run_audit(path)
    assert second.cache_hits == ["inference", "metrics", "gate"]
    for name in ("predictions.parquet", "metrics.json", "gate.json"):
        assert sha256_file(first.run_dir / name) == sha256_file(second.run_dir / name)
    log = json.loads((second.run_dir / "run.json").read_text())
    assert [s["cache"] for s in log["stages"]] == ["skipped", "hit", "hit", "hit", "skipped"]


def test_new_seed_recomputes_metrics_but_reuses_predictions(write_spec, monkeypatch):
    run_audit(write_spec())
    monkeypatch.setattr("fairderm.audit._stages.run_predictions", _no_work)
    again = run_audit(write_spec(bootstrap={"seed": 4}))
    assert {s.stage: s.cache for s in again.stages}["metrics"] == "miss"
    assert again.cache_hits == ["inference"]


def test_changed_model_file_reruns_inference(write_spec, predictions_file):
    run_audit(write_spec())
    frame = pd.read_csv(predictions_file)
    swapped = frame.loc[0, "prob_melanoma"], frame.loc[0, "prob_nevus"]
    frame.loc[0, "prob_nevus"], frame.loc[0, "prob_melanoma"] = swapped
    frame.to_csv(predictions_file, index=False)
    again = run_audit(write_spec())
    assert {s.stage: s.cache for s in again.stages}["inference"] == "miss"


def test_exit_code_is_the_gates(write_spec, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"name": "strict", "rules": [
        {"id": "perfect", "metric": "accuracy", "attribute": "all", "groups": "all", "statistic": "estimate",
         "comparator": ">=", "threshold": 0.999}]}))
    run = run_audit(write_spec(policy="../strict.yaml"))
    assert (run.verdict, run.exit_code) == ("FAIL", 1)
    assert json.loads((run.run_dir / "gate.json").read_text())["verdict"] == "FAIL"


def test_spec_without_policy_is_not_gated(write_spec):
    run = run_audit(write_spec(policy=None))
    assert (run.verdict, run.exit_code) == (None, 0)
    assert not (run.run_dir / "gate.json").exists()


def test_router_evaluation_is_copied_as_mitigation(write_spec, tmp_path, predictions_file, monkeypatch):
    router = tmp_path / "router"
    router.mkdir()
    (router / "evaluation.json").write_text(json.dumps({"methods": {"erm": {}}}))

    def predictions_from_file(loaded, cohort, tone, out, progress, *, whole=None, tone_file=None):
        from fairderm.inference import run_inference

        run_inference(whole, out / "all.parquet", backend="file", model=predictions_file)
        frame = pd.read_parquet(out / "all.parquet")
        frame[frame["image_id"].isin(cohort.manifest["image_id"])].to_parquet(out / "predictions.parquet")
        (out / "all.parquet").unlink()

    monkeypatch.setattr("fairderm.audit._stages.run_predictions", predictions_from_file)
    run = run_audit(write_spec(model={"backend": "router", "model": "../router"}))
    assert (run.run_dir / "mitigation.json").read_bytes() == (router / "evaluation.json").read_bytes()


def _assert_nothing_written(runs: Path) -> None:
    assert not runs.exists() or not list(runs.iterdir())


def test_failing_stage_leaves_no_run_folder(write_spec, monkeypatch):
    path = write_spec()

    def broken(*args, **kwargs):
        raise InputError("metrics engine exploded")

    monkeypatch.setattr("fairderm.audit._stages.run_metrics", broken)
    with pytest.raises(InputError, match="exploded"):
        run_audit(path)
    _assert_nothing_written(path.parent / "tiny" / "runs")
    assert not list((path.parent / "tiny" / "cache" / "metrics").iterdir())


@pytest.mark.parametrize(("override", "message"), [
    ({"cohort": {"path": "../cohort", "filter": "split == 'validation'"}}, "key 'cohort.filter'.*selects no cases"),
    ({"cohort": {"path": "../cohort", "filter": "no_such_column > 1"}}, "key 'cohort.filter': cannot evaluate"),
    ({"strata": {"attributes": ["skin_colour"]}}, "key 'strata.attributes': no column 'skin_colour'"),
    ({"bootstrap": {"cluster": "family_id"}}, "key 'bootstrap.cluster': no column 'family_id'"),
    ({"tone": {"source": "column", "column": "monk"}}, "key 'tone.column': no column 'monk'"),
])
def test_bad_spec_input_is_rejected_before_any_output(write_spec, override, message):
    path = write_spec(**override)
    with pytest.raises(InputError, match=message):
        run_audit(path)
    _assert_nothing_written(path.parent / "tiny" / "runs")


def test_missing_image_is_rejected_naming_it(write_spec, tiny_cohort_dir):
    (tiny_cohort_dir / "images" / "img001.png").unlink()
    path = write_spec()
    with pytest.raises(InputError, match=r"img001\.png"):
        run_audit(path)
    _assert_nothing_written(path.parent / "tiny" / "runs")


def test_policy_file_removed_after_loading_is_an_error(write_spec, policy_file):
    from fairderm.audit import load_spec

    loaded = load_spec(write_spec())
    policy_file.unlink()
    with pytest.raises((InputError, OSError)):
        run_audit(loaded)
    _assert_nothing_written(loaded.runs_dir)


def test_audit_command_exit_code_and_output(run_cli, write_spec):
    result = run_cli("audit", write_spec())
    assert result.exit_code == 0, result.stderr
    assert "PASS" in result.stdout and "run folder" in result.stdout
    assert "verdict: PASS (exit 0) from rule accuracy-floor" in result.stdout


def test_audit_command_with_bad_spec_prints_one_line_and_exits_3(run_cli, write_spec):
    result = run_cli("audit", write_spec(bootstrap={"ci": "jackknife"}))
    assert result.exit_code == 3
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error:") and "key 'bootstrap.ci'" in first


def test_audit_command_runs_dir_option(run_cli, write_spec, tmp_path):
    result = run_cli("audit", write_spec(), "--runs-dir", tmp_path / "elsewhere")
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "elsewhere").iterdir())) == 1
