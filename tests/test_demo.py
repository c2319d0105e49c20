"""``fairderm demo``: the whole pipeline end to end on a small synthetic cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fairderm.audit import verify_run
from fairderm.audit.demo import DEMO_MARKER, _prepare, demo_spec
from fairderm.errors import InputError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small demo shared by the tests of this module (n=120: every stage)."""
    from fairderm.cli import main

    out = tmp_path_factory.mktemp("demo") / "demo-output"
    assert main(["demo", "--out", str(out), "--n", "120", "--n-boot", "200"]) == 0
    return out


def _run(out: Path, name: str) -> Path:
    runs = sorted((out / "audits" / name / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
def test_demo_writes_two_verifiable_runs(demo_output):
    assert (demo_output / DEMO_MARKER).is_file()
    for name in ("erm", "router"):
        run = _run(demo_output, name)
        for file in ("card.html", "card.md", "card.json", "gate.json", "junit.xml", "evidence.json",
                     "metrics.json", "predictions.parquet", "tone.parquet", "figures/metrics.html"):
            assert (run / file).is_file(), f"{name}: {file}"
        result = verify_run(run)
        assert result.ok, result.summary()
    assert (_run(demo_output, "router") / "mitigation.json").is_file()


@pytest.mark.slow
def test_demo_embeds_each_image_once(demo_output):
    from fairderm.inference._backbone import feature_cache_key, feature_identity

    # extract_features writes one chunk; both audits find every test image in it
    cache = demo_output / "cache" / "features"
    chunks = list((cache / feature_cache_key(feature_identity())).glob("*.npz"))
    assert len(chunks) == 1, chunks
    # the router's turned and mirrored views sit beside it, one key per view, each computed once
    evaluation = json.loads((demo_output / "models" / "router" / "evaluation.json").read_text())
    view_keys = [k for k in cache.iterdir() if k.name != chunks[0].parent.name]
    assert len(view_keys) == len(evaluation["views"]["views"])
    assert all(len(list(k.glob("*.npz"))) == 1 for k in view_keys)
    for name in ("erm", "router"):
        spec = yaml.safe_load((demo_output / "audits" / f"{name}.yaml").read_text())
        assert spec["model"]["options"]["feature_cache"] == "../cache"


@pytest.mark.slow
def test_demo_classifier_is_not_cleared_on_the_darkest_group(demo_output):
    gate = json.loads((_run(demo_output, "erm") / "gate.json").read_text())
    assert gate["verdict"] in ("FAIL", "INSUFFICIENT_EVIDENCE")


@pytest.mark.slow
def test_demo_runs_are_ordinary_run_folders(demo_output, run_cli, tmp_path):
    run = _run(demo_output, "erm")
    gated = run_cli("gate", run, "--policy", REPO / "audits" / "policy.example.yaml")
    stored = json.loads((run / "gate.json").read_text())
    assert gated.exit_code == stored["exit_code"]
    carded = run_cli("card", run, "--out", tmp_path)
    assert carded.exit_code == 0, carded.stderr
    assert (tmp_path / "card.html").is_file()
    assert run_cli("verify", run).exit_code == 0


@pytest.mark.slow
def test_demo_audit_spec_matches_the_shipped_demo_spec(demo_output):
    written = yaml.safe_load((demo_output / "audits" / "erm.yaml").read_text())
    shipped = yaml.safe_load((REPO / "audits" / "demo.yaml").read_text())
    for key in ("tone", "strata", "metrics"):
        assert _without_paths(written[key]) == _without_paths(shipped[key]), key
    assert {k: v for k, v in written["bootstrap"].items()} == {**shipped["bootstrap"], "n_boot": 200}
    assert written["cohort"]["filter"] == shipped["cohort"]["filter"]
    assert written["model"]["backend"] == shipped["model"]["backend"]


def test_demo_spec_defaults_match_the_shipped_demo_spec():
    shipped = yaml.safe_load((REPO / "audits" / "demo.yaml").read_text())
    spec = demo_spec("erm", backend="backbone", model="../models/erm", description="", card={})
    for key in ("tone", "strata", "metrics", "bootstrap"):
        assert _without_paths(spec[key]) == _without_paths(shipped[key]), key
    # the same labels file, seen from DIR/audits and from the repository's audits/
    assert spec["tone"]["validation_labels"] == "../tone/validation_labels.csv"
    assert shipped["tone"]["validation_labels"] == "../demo-output/tone/validation_labels.csv"


def _without_paths(section):
    """A spec section without its file paths (relative to different folders in the two specs)."""
    return {k: v for k, v in section.items() if k != "validation_labels"} if isinstance(section, dict) else section


def test_demo_refuses_a_folder_that_is_not_an_earlier_demo(tmp_path, run_cli):
    (tmp_path / "thesis.tex").write_text("precious")
    result = run_cli("demo", "--out", tmp_path)
    assert result.exit_code == 3
    assert "not an earlier demo" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_earlier_demo_folder_is_cleared(tmp_path):
    (tmp_path / DEMO_MARKER).write_text("")
    (tmp_path / "cohort").mkdir()
    _prepare(tmp_path)
    assert tmp_path.is_dir() and not list(tmp_path.iterdir())


def test_folder_with_a_copied_demo_marker_keeps_the_user_files(tmp_path, run_cli):
    (tmp_path / DEMO_MARKER).write_text("made by `fairderm demo`\n")
    (tmp_path / "thesis.tex").write_text("precious")
    (tmp_path / "cohort").mkdir()
    result = run_cli("demo", "--out", tmp_path)
    assert result.exit_code == 3 and "'thesis.tex', which no earlier demo wrote" in result.stderr
    assert (tmp_path / "thesis.tex").read_text() == "precious" and (tmp_path / "cohort").is_dir()


def _finished_demo(out: Path) -> None:
    (out / "audits" / "erm").mkdir(parents=True)
    (out / "audits" / "erm" / "erm.yaml").write_text("x")
    (out / DEMO_MARKER).write_text(json.dumps({"files": ["audits/erm/erm.yaml"]}))


def test_file_added_to_a_finished_demo_folder_is_not_deleted(tmp_path):
    _finished_demo(tmp_path)
    (tmp_path / "audits" / "notes.md").write_text("mine")
    with pytest.raises(InputError, match=r"'audits/notes\.md', which no earlier demo wrote"):
        _prepare(tmp_path)
    assert (tmp_path / "audits" / "notes.md").read_text() == "mine"
    assert (tmp_path / "audits" / "erm" / "erm.yaml").is_file()


def test_symlink_in_a_demo_folder_is_not_followed_or_deleted(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    _finished_demo(out)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.csv").write_text("mine")
    (out / "cohort").symlink_to(precious, target_is_directory=True)
    with pytest.raises(InputError, match="'cohort', which no earlier demo wrote"):
        _prepare(out)
    assert (precious / "data.csv").read_text() == "mine"


def test_finished_demo_folder_is_cleared_of_exactly_its_files(tmp_path):
    _finished_demo(tmp_path)
    _prepare(tmp_path)
    assert tmp_path.is_dir() and not list(tmp_path.iterdir())


def test_demo_with_too_few_images_is_rejected(tmp_path):
    from fairderm.audit.demo import run_demo

    with pytest.raises(InputError, match="at least 100"):
        run_demo(tmp_path / "out", n=20)
    assert not (tmp_path / "out").exists()


def test_demo_gate_panel_at_80_columns_names_the_rules_and_cuts_no_word(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from rich.console import Console

    from fairderm.commands import demo

    runs = {}
    for name, verdict, rules in (("erm", "FAIL", [("worst-group-sensitivity", "PASS"), ("accuracy-gap", "FAIL")]),
                                 ("router", "INSUFFICIENT_EVIDENCE", [("accuracy-gap", "INSUFFICIENT_EVIDENCE")])):
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "gate.json").write_text(json.dumps({"verdict": verdict, "rules": [
            {"id": rule, "verdict": rule_verdict, "message": ""} for rule, rule_verdict in rules]}))
        runs[name] = SimpleNamespace(verdict=verdict, run_dir=run_dir)
    # the CLI's console (soft_wrap=True) at 80 columns
    console = Console(width=80, record=True, highlight=False, soft_wrap=True)
    monkeypatch.setattr(demo, "console", console)
    demo._print_gate_panel(runs)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    words = " ".join(line.strip("│ ╭╮╰╯─") for line in text.splitlines()).split()
    for meaning in (demo._MEANING["FAIL"], demo._MEANING["INSUFFICIENT_EVIDENCE"]):
        for word in meaning.split():
            assert word in words, (word, text)
    assert "(from rule accuracy-gap)" in " ".join(words)
