"""Hostile specs, model folders and run folders: nothing in them is ever run as code.

A cohort filter is parsed, never evaluated, by ``audit`` and by ``verify``; a model folder names only a
registered architecture, and the user's own architecture (``model.architecture``) is hashed into the model's
identity.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import save_file

from fairderm._io import sha256_file
from fairderm.audit import run_audit, verify_run
from fairderm.errors import InputError
from tests.helpers.tiny_net import TINY_NET_PY, TinyNet

pytestmark = pytest.mark.usefixtures("fake_metrics")

LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]  # the tiny cohort's labels

# Under DataFrame.eval each of these ran code in fairderm's process ('@name' reaches module globals);
# '{marker}' is the file a payload creates if it runs.
FILTER_PAYLOADS = [
    "(split == 'test') & (@os.system('touch {marker}') == 0)",
    "split == 'test' and @os.system('touch {marker}') == 0",
    "(split == 'test') | (@Path('{marker}').touch() == 1)",
    "(@os.popen('touch {marker}').read() == '') & (split == 'test')",
]


@pytest.mark.parametrize("payload", FILTER_PAYLOADS)
def test_audit_with_code_in_cohort_filter_is_refused_without_running_it(write_spec, tmp_path, payload):
    marker = tmp_path / "ran"
    spec = write_spec(cohort={"filter": payload.format(marker=marker)})
    with pytest.raises(InputError, match=r"key 'cohort.filter': cannot evaluate .*'@' at character \d+"):
        run_audit(spec)
    assert not marker.exists()


def test_audit_command_with_code_in_cohort_filter_prints_one_error_line(write_spec, tmp_path, run_cli):
    marker = tmp_path / "ran"
    spec = write_spec(cohort={"filter": f"(split == 'test') & (@os.system('touch {marker}') == 0)"})
    result = run_cli("audit", spec)
    assert result.exit_code == 3  # the audit's ERROR code
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error:") and "key 'cohort.filter'" in first and "'@' at character" in first
    assert "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("payload", FILTER_PAYLOADS)
@pytest.mark.parametrize("check_inputs", [True, False])
def test_verify_parses_the_stored_filter_and_never_runs_it(write_spec, tmp_path, payload, check_inputs):
    run_dir = run_audit(write_spec()).run_dir
    marker = tmp_path / "ran"
    # a forger rewrites the run's spec.yaml and every digest of it, as anyone with the folder can
    spec_path = run_dir / "spec.yaml"
    old_digest = sha256_file(spec_path)
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    spec["cohort"]["filter"] = payload.format(marker=marker)
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    evidence = run_dir / "evidence.json"
    evidence.write_text(evidence.read_text(encoding="utf-8").replace(old_digest, sha256_file(spec_path)),
                        encoding="utf-8")
    result = verify_run(run_dir, check_inputs=check_inputs)
    assert not marker.exists()
    assert not result.ok
    refused = [c for c in result.problems if c.item == "metrics.json" and c.status == "error"]
    assert refused and "'@' at character" in refused[0].detail


def _torch_model_folder(folder: Path, architecture: str, **config: object) -> Path:
    folder.mkdir()
    save_file(TinyNet().state_dict(), str(folder / "model.safetensors"))
    (folder / "model.json").write_text(json.dumps({
        "architecture": architecture, "kwargs": {"n_classes": 4}, "weights": "model.safetensors",
        "classes": LABELS, "input_size": 16, **config,
    }))
    return folder


def test_spec_architecture_file_is_hashed_into_the_model_identity(write_spec, tmp_path):
    _torch_model_folder(tmp_path / "net", "not-registered")
    code = tmp_path / "mine.py"
    code.write_text(TINY_NET_PY)
    spec = write_spec(model={"backend": "torch", "model": "../net", "architecture": "../mine.py:TinyNet",
                             "options": {"workers": 0}})
    first = run_audit(spec).run_dir
    recorded = json.loads((first / "evidence.json").read_text())["inputs"]["model"]["architecture"]
    assert recorded["name"] == "../mine.py:TinyNet" and recorded["sha256"] == sha256_file(code)
    code.write_text(TINY_NET_PY + "\n# changed code, same weights\n")
    second = run_audit(spec).run_dir
    assert second != first
    assert json.loads((second / "evidence.json").read_text())["inputs"]["model"]["architecture"]["sha256"] == \
        sha256_file(code)


@pytest.mark.parametrize("architecture", ["subprocess:Popen", "os:system", "model.py:Net"])
def test_audit_of_model_folder_naming_code_is_refused_without_running_it(write_spec, tmp_path, architecture):
    marker = tmp_path / "ran"
    folder = _torch_model_folder(tmp_path / "net", architecture)
    (folder / "model.py").write_text(f"open({str(marker)!r}, 'w').close()\nNet = dict\n")
    spec = write_spec(model={"backend": "torch", "model": "../net", "options": {"workers": 0}})
    with pytest.raises(InputError, match=r"key 'architecture': .* is not a registered architecture"):
        run_audit(spec)
    assert not marker.exists()


def test_audit_of_model_json_with_weights_outside_the_folder_is_refused(write_spec, tmp_path):
    folder = _torch_model_folder(tmp_path / "net", "not-registered", weights="../outside.safetensors")
    (folder / "model.safetensors").rename(tmp_path / "outside.safetensors")
    (tmp_path / "mine.py").write_text(TINY_NET_PY)
    spec = write_spec(model={"backend": "torch", "model": "../net", "architecture": "../mine.py:TinyNet",
                             "options": {"workers": 0}})
    with pytest.raises(InputError, match=r"model\.json: key 'weights': .* leaves the model folder"):
        run_audit(spec)


@pytest.mark.parametrize(("model", "message"), [
    ({"architecture": "mine:Net"}, "'architecture' is for backend 'torch' only"),
    ({"backend": "torch", "model": "../net", "options": {"architecture": "os:system"}},
     "not among model.options"),
])
def test_spec_architecture_outside_model_architecture_is_rejected(write_spec, tmp_path, model, message):
    _torch_model_folder(tmp_path / "net", "not-registered")
    with pytest.raises(InputError, match=message):
        run_audit(write_spec(model=model))
