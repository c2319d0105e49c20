"""``fairderm verify`` on hostile run folders: self-contradictions with every hash updated, forgeries,
paths outside the folders verify may read, and file names with line breaks.

One real run (policy, card, figures) is built per module; each test edits a copy of its whole audit tree
(cohort, model, policy, spec and run folder), then re-hashes what it edited as a forger would.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from fairderm._io import atomic_write_parquet, read_parquet_metadata, sha256_bytes, sha256_file
from fairderm.audit import generate_key_pair, run_audit, sign_run, verify_run
from fairderm.audit._evidence import artifact_digests
from fairderm.errors import InputError
from tests.helpers.audit_runs import POLICY, fake_compute_metrics, write_predictions, write_tiny_cohort

pytestmark = pytest.mark.usefixtures("fake_metrics")

# every group's accuracy upper bound is below 0.99: the gate says FAIL
FAILING_POLICY = {**POLICY, "rules": [{**POLICY["rules"][0], "threshold": 0.99}]}


def _spec(**outputs: Any) -> dict[str, Any]:
    return {
        "cohort": {"path": "../cohort", "filter": "split == 'test'"},
        "model": {"backend": "file", "model": "../model_predictions.csv"},
        "tone": {"source": "column", "column": "fitzpatrick_group"},
        "metrics": ["accuracy", "sensitivity"],
        "bootstrap": {"n_boot": 200, "seed": 3},
        "policy": "../policy.yaml",
        "outputs": {"figures": True, "card": True, **outputs},
    }


def _build_tree(root: Path) -> Path:
    """An audit tree with one finished run; returns the run folder."""
    write_predictions(write_tiny_cohort(root / "cohort"))
    (root / "policy.yaml").write_text(yaml.safe_dump(FAILING_POLICY), encoding="utf-8")
    (root / "audits").mkdir()
    spec = root / "audits" / "tiny.yaml"
    spec.write_text(yaml.safe_dump(_spec()), encoding="utf-8")
    return run_audit(spec).run_dir


@pytest.fixture(scope="module")
def built_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("hostile") / "tree"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("fairderm.audit._evaluation.compute_metrics", fake_compute_metrics)
        run_dir = _build_tree(root)
    yield root, run_dir.relative_to(root).as_posix()


@pytest.fixture
def run_dir(built_tree: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the module's audit tree; returns its run folder."""
    root, relative = built_tree
    shutil.copytree(root, tmp_path / "tree", symlinks=True)
    return tmp_path / "tree" / relative


def _evidence(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "evidence.json").read_text(encoding="utf-8"))


def _write_evidence(run_dir: Path, evidence: dict[str, Any]) -> None:
    (run_dir / "evidence.json").write_text(json.dumps(evidence, indent=2), encoding="utf-8")


def _rehash(run_dir: Path) -> None:
    """What a forger does after editing files: record their new hashes in evidence.json."""
    evidence = _evidence(run_dir)
    evidence["artifacts"] = artifact_digests(run_dir)
    images = evidence["inputs"]["images"]
    if images.get("hashed"):
        images["sha256"] = sha256_file(run_dir / "images.sha256")
    _write_evidence(run_dir, evidence)


def _problems(result: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for check in result.problems:
        found.setdefault(check.item, []).append(f"{check.key or ''}: {check.detail}")
    return found


def test_untouched_run_verifies_and_names_its_evidence_digest(run_dir: Path) -> None:
    result = verify_run(run_dir)
    assert result.ok, result.summary()
    assert _evidence(run_dir)["stages"]["gate"]["cache"] == "miss"
    assert json.loads((run_dir / "gate.json").read_text())["verdict"] == "FAIL"
    assert result.evidence_sha256 == sha256_file(run_dir / "evidence.json")
    rederived = {c.item for c in result.checks if c.status == "ok"}
    assert {"gate.json", "gate.md", "junit.xml", "run.json", "card.md", "card.html", "card.json",
            "figures/metrics.html", "predictions.parquet", "evidence.json"} <= rederived


@pytest.mark.parametrize("name", ["gate.md", "junit.xml", "card.md", "card.html", "card.json"])
def test_report_saying_pass_while_gate_json_says_fail_is_rejected(run_dir: Path, name: str) -> None:
    path = run_dir / name
    text = path.read_text(encoding="utf-8")
    assert "FAIL" in text
    path.write_text(text.replace("FAIL", "PASS"), encoding="utf-8")
    _rehash(run_dir)
    result = verify_run(run_dir)
    assert not result.ok
    assert name in _problems(result), result.summary()


def test_run_log_saying_pass_while_gate_json_says_fail_is_rejected(run_dir: Path) -> None:
    path = run_dir / "run.json"
    log = json.loads(path.read_text())
    log.update(verdict="PASS", exit_code=0)
    path.write_text(json.dumps(log))
    _rehash(run_dir)
    problems = _problems(verify_run(run_dir))
    assert any(line.startswith("verdict:") for line in problems["run.json"])
    assert any(line.startswith("exit_code:") for line in problems["run.json"])


def test_every_report_saying_pass_is_rejected_file_by_file(run_dir: Path) -> None:
    for name in ("gate.md", "junit.xml", "card.md", "card.html", "card.json"):
        path = run_dir / name
        path.write_text(path.read_text(encoding="utf-8").replace("FAIL", "PASS"), encoding="utf-8")
    log = json.loads((run_dir / "run.json").read_text())
    log.update(verdict="PASS", exit_code=0)
    (run_dir / "run.json").write_text(json.dumps(log))
    _rehash(run_dir)
    problems = _problems(verify_run(run_dir))
    assert {"gate.md", "junit.xml", "card.md", "card.html", "card.json", "run.json"} <= set(problems)
    assert "gate.json" not in problems


def test_gate_json_saying_pass_with_its_hash_updated_is_rejected(run_dir: Path) -> None:
    path = run_dir / "gate.json"
    gate = json.loads(path.read_text())
    gate.update(verdict="PASS", exit_code=0)
    path.write_text(json.dumps(gate))
    _rehash(run_dir)
    assert any(line.startswith("verdict:") for line in _problems(verify_run(run_dir))["gate.json"])


def test_run_log_with_an_added_key_is_rejected(run_dir: Path) -> None:
    path = run_dir / "run.json"
    log = json.loads(path.read_text())
    log["release_approved"] = True
    path.write_text(json.dumps(log))
    _rehash(run_dir)
    assert any("release_approved" in line for line in _problems(verify_run(run_dir))["run.json"])


def test_run_log_whose_stage_key_differs_from_the_evidence_is_rejected(run_dir: Path) -> None:
    path = run_dir / "run.json"
    log = json.loads(path.read_text())
    log["stages"][2]["key"] = "0" * 64
    path.write_text(json.dumps(log))
    _rehash(run_dir)
    assert any(line.startswith("stages[metrics].key") for line in _problems(verify_run(run_dir))["run.json"])


def test_figures_redrawn_with_other_numbers_are_rejected(run_dir: Path) -> None:
    path = run_dir / "figures" / "accuracy.json"
    path.write_text(path.read_text().replace('"x":[', '"x":[0.99,', 1))
    _rehash(run_dir)
    assert "figures/accuracy.json" in _problems(verify_run(run_dir))


def _set(evidence: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = evidence
    for key in parents:
        target = target[key]
    target[last] = value


@pytest.mark.parametrize(("field", "value"), [
    ("inputs.cohort.filter", "split == 'train'"),
    ("inputs.cohort.n_selected", 90),
    ("inputs.cohort.n_cases", 72),
    ("inputs.cohort.selected_ids_sha256", "0" * 64),
    ("inputs.cohort.synthetic", False),
    ("inputs.images.count", 90),
    ("seeds.bootstrap", 4),
    ("seeds.inference", 1),
    ("fairderm_version", "9.9.9"),
    ("run_id", "20200101T000000Z-00000000"),
    ("audit", "another"),
    ("inputs.model.options", {"seed": 1}),
    ("inputs.model.backend", "torch"),
    ("created_utc", "yesterday"),
])
def test_evidence_field_contradicting_the_run_is_rejected(run_dir: Path, field: str, value: Any) -> None:
    evidence = _evidence(run_dir)
    _set(evidence, field, value)
    _write_evidence(run_dir, evidence)
    result = verify_run(run_dir, check_inputs=False)
    assert not result.ok
    assert any(line.startswith(f"{field}:") for line in _problems(result)["evidence.json"]), result.summary()


def test_evidence_without_a_stage_is_rejected(run_dir: Path) -> None:
    evidence = _evidence(run_dir)
    del evidence["stages"]["gate"]
    _write_evidence(run_dir, evidence)
    assert any(line.startswith("stages") for line in _problems(verify_run(run_dir))["evidence.json"])


def _rewrite_predictions(run_dir: Path, edit: Any) -> None:
    path = run_dir / "predictions.parquet"
    metadata = read_parquet_metadata(path)
    atomic_write_parquet(path, edit(pd.read_parquet(path)), metadata_json=metadata)
    _rehash(run_dir)


def test_flipped_pred_is_rejected_naming_the_case(run_dir: Path) -> None:
    def flip(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, "pred"] = "melanoma" if frame.loc[3, "pred"] != "melanoma" else "nevus"
        return frame

    _rewrite_predictions(run_dir, flip)
    result = verify_run(run_dir)
    case = pd.read_parquet(run_dir / "predictions.parquet").loc[3, "image_id"]
    detail = " ".join(_problems(result)["predictions.parquet"])
    assert detail.startswith("pred:") and case in detail
    assert "metrics.json" not in _problems(result)  # the metrics use the probabilities: only pred betrays it


def test_probability_columns_in_another_label_order_are_rejected(run_dir: Path) -> None:
    def reorder(frame: pd.DataFrame) -> pd.DataFrame:
        probs = [c for c in frame.columns if c.startswith("prob_")]
        return frame[[c for c in frame.columns if c not in probs] + probs[::-1]]

    _rewrite_predictions(run_dir, reorder)
    assert any(line.startswith("prob_:") for line in _problems(verify_run(run_dir))["predictions.parquet"])


def test_predictions_of_cases_not_selected_are_rejected(run_dir: Path) -> None:
    _rewrite_predictions(run_dir, lambda frame: frame.iloc[:-1])
    assert any(line.startswith("image_id:") for line in _problems(verify_run(run_dir))["predictions.parquet"])


def test_image_list_naming_an_unselected_image_is_rejected(run_dir: Path) -> None:
    listing = run_dir / "images.sha256"
    lines = listing.read_text().splitlines(keepends=True)
    digest = sha256_file(run_dir.parents[3] / "cohort" / "images" / "img000.png")  # a train case
    listing.write_text("".join(lines[1:]) + f"{digest}  images/img000.png\n")
    _rehash(run_dir)
    assert "images.sha256" in _problems(verify_run(run_dir))


def test_consistent_forgery_passes_plain_verify_but_not_the_producers_key(run_dir: Path, tmp_path: Path) -> None:
    """A forger swaps the failing policy for a lax one and recomputes every file with fairderm itself."""
    from fairderm.audit._spec import LoadedSpec, parse_spec
    from fairderm.audit._stages import run_card, run_gate

    producer_key, producer_pub = generate_key_pair(tmp_path / "producer.key")
    sign_run(run_dir, producer_key)
    assert verify_run(run_dir, public_key=producer_pub).ok

    lax = yaml.safe_dump(POLICY)
    (run_dir / "policy.yaml").write_text(lax)
    (run_dir.parents[3] / "policy.yaml").write_text(lax)  # the forger controls the originals too
    # the pipeline's order: gate reports, then the card (before the run log and the evidence existed)
    aside = {name: (run_dir / name).read_text() for name in ("run.json", "evidence.json")}
    for name in ("gate.md", "run.json", "evidence.json", "evidence.sig"):
        (run_dir / name).unlink()
    run_gate(run_dir / "metrics.json", run_dir / "policy.yaml", run_dir)
    spec = parse_spec(yaml.safe_load((run_dir / "spec.yaml").read_text()), source="spec.yaml")
    run_card(run_dir, LoadedSpec(spec=spec, source=run_dir / "spec.yaml", name="tiny"), run_dir)
    log = json.loads(aside["run.json"])
    log.update(verdict="PASS", exit_code=0)
    (run_dir / "run.json").write_text(json.dumps(log))
    evidence = json.loads(aside["evidence.json"])
    evidence["inputs"]["policy"]["sha256"] = sha256_bytes(lax.encode())
    _write_evidence(run_dir, evidence)
    _rehash(run_dir)
    assert json.loads((run_dir / "gate.json").read_text())["verdict"] == "PASS"

    plain = verify_run(run_dir)
    assert plain.ok, plain.summary()  # the documented limit: verify proves consistency, not authorship
    forger_key, _ = generate_key_pair(tmp_path / "forger.key")
    sign_run(run_dir, forger_key)
    signed = verify_run(run_dir, public_key=producer_pub)
    assert not signed.ok
    assert "evidence.sig" in _problems(signed)


def test_signature_of_other_evidence_is_rejected(run_dir: Path, tmp_path: Path) -> None:
    key, pub = generate_key_pair(tmp_path / "k")
    sign_run(run_dir, key)
    # the same fields, other bytes: the signature is of the digest, not of an interpretation
    (run_dir / "evidence.json").write_text((run_dir / "evidence.json").read_text() + "\n")
    detail = " ".join(_problems(verify_run(run_dir, public_key=pub))["evidence.sig"])
    assert "signs evidence" in detail


def test_unsigned_run_fails_verify_with_a_public_key(run_dir: Path, tmp_path: Path) -> None:
    _, pub = generate_key_pair(tmp_path / "k")
    assert "evidence.sig" in _problems(verify_run(run_dir, public_key=pub))


def test_sign_keygen_and_verify_commands(run_dir: Path, tmp_path: Path, run_cli) -> None:
    key = tmp_path / "keys" / "producer"
    key.parent.mkdir()
    assert run_cli("keygen", key).exit_code == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600" and (key.parent / "producer.pub").is_file()
    assert run_cli("keygen", key).exit_code == 3  # never overwritten
    assert run_cli("sign", run_dir, "--key", key).exit_code == 0
    result = run_cli("verify", run_dir, "--public-key", key.parent / "producer.pub")
    assert result.exit_code == 0, result.stdout
    assert f"sha256:{sha256_file(run_dir / 'evidence.json')}" in result.stdout
    _, other = generate_key_pair(tmp_path / "other")
    refused = run_cli("verify", run_dir, "--public-key", other)
    assert refused.exit_code == 1 and "evidence.sig" in refused.stdout


def test_deeply_nested_metrics_json_fails_verify_with_one_line_naming_it(run_dir: Path, run_cli) -> None:
    (run_dir / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    _rehash(run_dir)
    result = run_cli("verify", run_dir, "--no-inputs")
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "metrics.json" in result.stdout and "NOT verified" in result.stdout


# --- paths outside the folders verify may read -----------------------------------------------------------------


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file verify hashes."""
    seen: list[Path] = []
    real = sha256_file

    def recording(path: Any) -> str:
        seen.append(Path(path).resolve())
        return real(path)

    monkeypatch.setattr("fairderm.audit._verify.sha256_file", recording)
    return seen


def test_inputs_named_outside_the_audit_tree_are_not_opened(run_dir: Path, tmp_path: Path,
                                                            opened: list[Path]) -> None:
    outside = tmp_path / "secrets"
    outside.mkdir()
    (outside / "id_ed25519").write_text("private")
    evidence = _evidence(run_dir)
    inputs = evidence["inputs"]
    for name in ("spec", "policy"):
        inputs[name].update(path=str(outside / "id_ed25519"), path_from_run=None)
    inputs["model"].update(path=str(outside), path_from_run=None, files={"id_ed25519": "0" * 64})
    inputs["cohort"].update(path=str(outside), path_from_run=None)
    _write_evidence(run_dir, evidence)
    result = verify_run(run_dir)
    assert not any(path.is_relative_to(outside.resolve()) for path in opened)
    skipped = {c.item: c.detail for c in result.checks if c.status == "skipped"}
    assert "outside the inputs root" in skipped["input policy"] and "input model" in skipped


def test_run_folder_file_linked_to_a_file_outside_is_refused_unread(run_dir: Path, tmp_path: Path,
                                                                   opened: list[Path], run_cli) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n")
    (run_dir / "spec.yaml").unlink()
    (run_dir / "spec.yaml").symlink_to(secret)
    _rehash(run_dir)
    with pytest.raises(InputError, match=r"'spec\.yaml' is a symbolic link"):
        verify_run(run_dir)
    assert opened == []
    result = run_cli("verify", run_dir)
    assert result.exit_code == 3 and len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.stdout + result.stderr


def test_fifo_in_the_run_folder_is_refused_without_waiting(run_dir: Path) -> None:
    os.mkfifo(run_dir / "figures" / "pipe.json")
    with pytest.raises(InputError, match="not a plain file"):
        verify_run(run_dir)


def test_image_name_escaping_images_root_is_refused_unread(run_dir: Path, tmp_path: Path,
                                                           opened: list[Path]) -> None:
    secret = run_dir.parents[3] / "secret.txt"
    secret.write_text("not an image")
    listing = run_dir / "images.sha256"
    listing.write_text(listing.read_text() + f"{sha256_file(secret)}  ../secret.txt\n")
    _rehash(run_dir)
    result = verify_run(run_dir)
    assert secret.resolve() not in opened
    assert any(c.item == "input images" and c.status == "error" and "refused" in c.detail for c in result.checks)


def test_model_file_name_escaping_the_model_folder_is_refused(run_dir: Path, opened: list[Path]) -> None:
    secret = run_dir.parents[4] / "secret.txt"
    secret.write_text("outside the model's folder")
    evidence = _evidence(run_dir)
    evidence["inputs"]["model"]["files"] = {"../secret.txt": sha256_file(secret)}
    _write_evidence(run_dir, evidence)
    result = verify_run(run_dir, inputs_root=run_dir.parents[4])
    assert any(c.item == "input model" and c.status == "error" for c in result.checks)
    assert secret.resolve() not in opened


def test_images_root_other_than_the_cohorts_is_rejected(run_dir: Path, tmp_path: Path) -> None:
    evidence = _evidence(run_dir)
    evidence["inputs"]["images"].update(root="/", root_from_run=None)
    _write_evidence(run_dir, evidence)
    result = verify_run(run_dir)
    assert any(c.item == "input images" and c.status == "mismatch" and "images_root" in c.detail
               for c in result.checks)


def test_inputs_root_option_limits_what_is_read(run_dir: Path, opened: list[Path]) -> None:
    result = verify_run(run_dir, inputs_root=run_dir)
    assert result.ok, result.summary()
    assert all(path.is_relative_to(run_dir.resolve()) for path in opened)
    assert {c.item for c in result.checks if c.status == "skipped"} >= {"input model", "input policy"}


# --- file names with line breaks ------------------------------------------------------------------------------


def test_run_with_line_breaks_in_image_names_verifies(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    cohort = write_tiny_cohort(root / "cohort")
    manifest = pd.read_parquet(cohort / "manifest.parquet")
    odd = {1: "images/new\nline.png", 2: "images/para\u2028sep.png", 3: "images/back\\slash\r.png"}
    for row, name in odd.items():
        (cohort / manifest.loc[row, "image"]).rename(cohort / name)
        manifest.loc[row, "image"] = name
    manifest.to_parquet(cohort / "manifest.parquet", index=False)
    write_predictions(cohort)
    (root / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    (root / "audits").mkdir()
    spec = root / "audits" / "tiny.yaml"
    spec.write_text(yaml.safe_dump(_spec(card=False, figures=False)))
    run = run_audit(spec)
    result = verify_run(run.run_dir)
    assert result.ok, result.summary()
    assert next(c for c in result.checks if c.item == "input images").detail == "72 images"
    (cohort / odd[2]).write_bytes((cohort / odd[2]).read_bytes() + b"\0")
    assert any(c.item == "input images" and "para\u2028sep" in c.detail for c in verify_run(run.run_dir).problems)
