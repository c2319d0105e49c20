"""`fairderm gate RUN_DIR --policy P`: exit codes 0/1/2/3 and the report files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.gate_metrics import DEMO_POLICY, make_metrics, write_policy, write_run


def _tone(**overrides: dict) -> dict:
    base = {
        "I-II": {"sensitivity": (0.85, 0.80, 0.90), "accuracy": (0.86, 0.82, 0.90), "ece": (0.03, 0.02, 0.05)},
        "III-IV": {"sensitivity": (0.83, 0.77, 0.88), "accuracy": (0.85, 0.81, 0.89), "ece": (0.04, 0.02, 0.06)},
        "V-VI": {"sensitivity": (0.80, 0.72, 0.87), "accuracy": (0.84, 0.78, 0.89), "ece": (0.05, 0.03, 0.08)},
    }
    base["V-VI"].update(overrides)
    return base


@pytest.mark.parametrize(
    ("dark_group", "verdict", "code"),
    [
        ({}, "PASS", 0),
        ({"sensitivity": (0.45, 0.35, 0.55)}, "FAIL", 1),
        ({"n": 12, "n_pos": 4, "flag": "insufficient"}, "INSUFFICIENT_EVIDENCE", 2),
    ],
)
def test_gate_exit_code_follows_the_verdict(dark_group, verdict, code, tmp_path: Path, demo_policy_file, run_cli):
    run = write_run(tmp_path / "run", make_metrics(_tone(**dark_group)))
    result = run_cli("gate", run, "--policy", demo_policy_file, "--out", tmp_path / "gate.json")
    assert result.exit_code == code, result.stdout + result.stderr
    assert f"verdict: {verdict} (exit {code})" in result.stdout
    assert json.loads((tmp_path / "gate.json").read_text())["verdict"] == verdict


def test_gate_on_policy_naming_a_missing_metric_exits_3(tmp_path: Path, run_cli) -> None:
    policy = write_policy(tmp_path / "p.yaml", {"rules": [
        {"id": "auroc", "metric": "auroc", "attribute": "fitzpatrick_est", "comparator": ">=", "threshold": 0.7}]})
    result = run_cli("gate", write_run(tmp_path / "run", make_metrics()), "--policy", policy)
    assert result.exit_code == 3
    assert "ERROR" in result.stdout and "auroc" in result.stdout


def test_gate_writes_junit_and_appends_the_step_summary(tmp_path: Path, demo_policy_file, run_cli) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n", encoding="utf-8")
    run = write_run(tmp_path / "run", make_metrics())
    result = run_cli("gate", run, "--policy", demo_policy_file, "--junit", tmp_path / "junit.xml",
                     "--summary", summary)
    assert result.exit_code == 0
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    assert [c.attrib["name"] for c in cases] == [r["id"] for r in DEMO_POLICY["rules"]]
    assert summary.read_text(encoding="utf-8").startswith("earlier\n## fairderm gate: ✅ PASS")
    assert not (run / "gate.json").exists()  # re-gating never rewrites the stored run


def test_gate_with_invalid_policy_exits_3_naming_the_key(tmp_path: Path, run_cli) -> None:
    policy = write_policy(tmp_path / "p.yaml", {"rules": [{"id": "x", "metric": "accuracy",
                                                          "attribute": "all", "comparator": "=>",
                                                          "threshold": 0.5}]})
    result = run_cli("gate", write_run(tmp_path / "run", make_metrics()), "--policy", policy)
    assert result.exit_code == 3
    assert "rules[0] ('x').comparator" in result.stderr


def test_gate_on_run_without_metrics_exits_3(tmp_path: Path, demo_policy_file, run_cli) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("gate", tmp_path / "empty", "--policy", demo_policy_file)
    assert result.exit_code == 3
    assert "metrics.json not found" in result.stderr


def test_gate_on_malformed_metrics_exits_3(tmp_path: Path, demo_policy_file, run_cli) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{truncated", encoding="utf-8")
    result = run_cli("gate", run, "--policy", demo_policy_file)
    assert result.exit_code == 3
    assert "not valid JSON" in result.stderr


@pytest.mark.parametrize("args", [[], ["RUN"], ["RUN", "--policy", "P", "--bogus"]])
def test_gate_usage_error_exits_3_not_2(args, tmp_path: Path, demo_policy_file, run_cli) -> None:
    run = write_run(tmp_path / "run", make_metrics())
    argv = [str(run) if a == "RUN" else str(demo_policy_file) if a == "P" else a for a in args]
    result = run_cli("gate", *argv)
    assert result.exit_code == 3, result.stdout + result.stderr


def test_hostile_labels_are_printed_as_text_not_markup(tmp_path: Path, run_cli) -> None:
    metrics = make_metrics(extra_rows=[{"attribute": "site", "group": "site=[bold red]x[/]", "metric": "accuracy",
                                        "estimate": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 100, "n_pos": 30,
                                        "flag": "ok"}])
    policy = write_policy(tmp_path / "p.yaml", {"rules": [{"id": "[/]", "metric": "accuracy", "attribute": "site",
                                                          "groups": "worst", "comparator": ">=", "threshold": 0.6}]})
    result = run_cli("gate", write_run(tmp_path / "run", metrics), "--policy", policy)
    assert result.exit_code == 0, result.stderr
    assert "[bold red]x[/]" in result.stdout


def test_deeply_nested_metrics_json_is_an_error_of_one_line(tmp_path: Path, demo_policy_file, run_cli) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    result = run_cli("gate", run, "--policy", demo_policy_file)
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    assert "metrics.json" in result.stderr and "nested too deeply" in result.stderr


def test_gate_verdict_line_names_the_rules_behind_it(tmp_path: Path, demo_policy_file, run_cli) -> None:
    run = write_run(tmp_path / "run", make_metrics(_tone(sensitivity=(0.45, 0.35, 0.55))))
    result = run_cli("gate", run, "--policy", demo_policy_file)
    assert "verdict: FAIL (exit 1) from rule worst-sensitivity" in result.stdout


def test_gate_error_verdict_line_names_the_rule_and_its_reason(tmp_path: Path, run_cli) -> None:
    policy = write_policy(tmp_path / "p.yaml", {"rules": [
        {"id": "auroc-floor", "metric": "auroc", "attribute": "fitzpatrick_est", "comparator": ">=",
         "threshold": 0.7}]})
    result = run_cli("gate", write_run(tmp_path / "run", make_metrics()), "--policy", policy)
    line = next(line for line in result.stdout.splitlines() if line.startswith("verdict:"))
    assert line.startswith("verdict: ERROR (exit 3) from rule auroc-floor: ") and "auroc" in line.split(": ", 2)[2]


def test_gate_without_policy_uses_the_policy_the_run_holds(tmp_path: Path, run_cli) -> None:
    run = write_run(tmp_path / "run", make_metrics(_tone(sensitivity=(0.45, 0.35, 0.55))))
    write_policy(run / "policy.yaml", DEMO_POLICY)
    result = run_cli("gate", run)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert f"policy: {run / 'policy.yaml'}" in result.stdout


def test_gate_without_policy_on_a_run_holding_none_says_what_is_missing(tmp_path: Path, run_cli) -> None:
    result = run_cli("gate", write_run(tmp_path / "run", make_metrics()))
    assert result.exit_code == 3
    assert "no --policy given and the run folder holds no policy.yaml" in result.stderr


def test_gate_latest_gates_the_newest_run_of_a_runs_folder(tmp_path: Path, run_cli) -> None:
    runs = tmp_path / "audits" / "mine" / "runs"
    old = write_run(runs / "20260101T000000.000Z-aaaaaaaa-000000", make_metrics())
    new = write_run(runs / "20260102T000000.000Z-bbbbbbbb-000000",
                    make_metrics(_tone(sensitivity=(0.45, 0.35, 0.55))))
    (runs / ".20260103T000000.000Z-cccccccc-000000.partial").mkdir()  # an audit still building its run
    for run in (old, new):
        write_policy(run / "policy.yaml", DEMO_POLICY)
    result = run_cli("gate", runs, "--latest", "--summary", tmp_path / "summary.md")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert new.name in result.stdout
    assert "FAIL" in (tmp_path / "summary.md").read_text()


def test_gate_latest_on_a_folder_without_runs_fails_with_one_line(tmp_path: Path, run_cli) -> None:
    (tmp_path / "runs").mkdir()
    result = run_cli("gate", tmp_path / "runs", "--latest")
    assert result.exit_code == 3
    assert "no run folder" in result.stderr
