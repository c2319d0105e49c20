"""Model folders describe, never instantiate, code; every file a torch loader reads is in the model identity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fairderm._io import read_parquet_metadata, sha256_file
from fairderm.errors import InputError
from fairderm.inference import available_architectures, register_architecture, run_inference
from fairderm.inference._classifiers import TorchCheckpointClassifier
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.tiny_net import TINY_NET_PY, TinyNet

CLASSES = ["nevus", "melanoma", "bcc", "SK"]


@pytest.fixture
def cohort(tmp_path):
    return make_lesion_cohort(tmp_path / "cohort", n=6, size=32)


@pytest.fixture
def tiny_registered(monkeypatch):
    """TinyNet registered for one test (the registry is restored afterwards)."""
    from fairderm.inference import _architectures

    monkeypatch.setattr(_architectures, "_REGISTRY", dict(_architectures._REGISTRY))
    register_architecture("tiny_net", TinyNet)
    return "tiny_net"


def _model_folder(folder: Path, *, architecture: str = "tiny_net", weights: str = "model.safetensors",
                  **spec) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    target = folder / weights
    target.parent.mkdir(parents=True, exist_ok=True)
    _save(TinyNet().state_dict(), target)
    config = {"architecture": architecture, "kwargs": {"n_classes": 4}, "weights": weights, "classes": CLASSES,
              "input_size": 24, **spec}
    (folder / "model.json").write_text(json.dumps(config))
    return folder


def _save(state: dict, path: Path) -> None:
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)


def _torch(folder: Path, architecture: str | None = None) -> TorchCheckpointClassifier:
    return TorchCheckpointClassifier(folder, torch.device("cpu"), architecture)


def test_model_json_naming_a_registered_architecture_loads_and_predicts(cohort, tmp_path, tiny_registered):
    folder = _model_folder(tmp_path / "net")
    run = run_inference(cohort, tmp_path / "p.parquet", backend="torch", model=folder, workers=0)
    assert (run.predictions["status"] == "ok").all()
    assert run.metadata["model"]["architecture"] == "tiny_net"
    assert run.metadata["model"]["architecture_origin"] == "registry"
    assert "efficientnet_lite0" in available_architectures()


# (architecture, kwargs): each was imported and called by the old loader before anything checked it
FOLDER_CODE = [
    ("subprocess:Popen", {"args": ["touch", "{marker}"]}),
    ("os:system", {"command": "touch {marker}"}),
    ("builtins:eval", {}),
    ("builtins:exec", {}),
    ("collections:OrderedDict", {}),
    ("pathlib:Path", {}),
    ("model.py:Net", {}),
    ("torch.nn:Linear", {"in_features": 2, "out_features": 4}),
]


@pytest.mark.parametrize(("architecture", "kwargs"), FOLDER_CODE)
def test_model_json_naming_code_to_import_is_refused_before_it_runs(tmp_path, architecture, kwargs):
    marker = tmp_path / "ran"
    folder = _model_folder(tmp_path / "net", architecture=architecture,
                           kwargs=json.loads(json.dumps(kwargs).replace("{marker}", str(marker))))
    # a model.py in the folder runs on import: it must never be imported
    (folder / "model.py").write_text(f"open({str(marker)!r}, 'w').close()\nNet = dict\n")
    with pytest.raises(InputError, match=r"model\.json: key 'architecture': .* is not a registered architecture"):
        _torch(folder)
    assert not marker.exists()


@pytest.mark.parametrize("architecture", ["subprocess:Popen", "os:system", "builtins:eval", "collections:OrderedDict"])
def test_user_architecture_that_is_not_a_module_class_is_refused_before_it_is_called(tmp_path, architecture):
    marker = tmp_path / "ran"
    folder = _model_folder(tmp_path / "net", kwargs={"args": ["touch", str(marker)]})
    with pytest.raises(InputError, match=r"--architecture: .* is not a torch\.nn\.Module class"):
        _torch(folder, architecture)
    assert not marker.exists()


def test_user_architecture_file_runs_and_its_source_is_in_the_identity(cohort, tmp_path, run_cli):
    folder = _model_folder(tmp_path / "net", architecture="not-registered")
    code = tmp_path / "mine" / "tiny.py"
    code.parent.mkdir()
    code.write_text(TINY_NET_PY)
    out = tmp_path / "p.parquet"
    result = run_cli("infer", cohort.root, "--backend", "torch", "--model", folder, "--architecture",
                     f"{code}:TinyNet", "--workers", "0", "--out", out)
    assert result.exit_code == 0, result.stderr
    identity = read_parquet_metadata(out)["model"]
    assert identity["architecture_origin"] == "user"
    assert identity["architecture_sha256"] == sha256_file(code)


def test_user_architecture_by_module_path_loads(tmp_path):
    folder = _model_folder(tmp_path / "net", architecture="anything", kwargs={"in_features": 3, "out_features": 4})
    save_file(nn.Linear(3, 4).state_dict(), str(folder / "model.safetensors"))
    model = _torch(folder, "torch.nn:Linear")
    assert isinstance(model.model, nn.Linear)


@pytest.mark.parametrize("weights", [".hidden.safetensors", "sub/.cache/w.safetensors", "../outside.safetensors",
                                     "ABSOLUTE", "link.safetensors"])
def test_model_json_weights_outside_the_folder_or_hidden_are_refused(tmp_path, tiny_registered, weights):
    folder = _model_folder(tmp_path / "net")
    outside = tmp_path / "outside.safetensors"
    save_file(TinyNet().state_dict(), str(outside))
    if weights == "ABSOLUTE":
        weights = str(outside)
    elif weights == "link.safetensors":
        os.symlink(outside, folder / weights)
    else:
        target = folder / weights
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            _save(TinyNet().state_dict(), target)
    config = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**config, "weights": weights}))
    with pytest.raises(InputError, match=r"model\.json: key 'weights': "):
        _torch(folder)


def test_every_file_the_torch_loader_reads_is_in_the_identity(tmp_path, tiny_registered):
    # weights with any suffix and in a subfolder: the old identity hashed only known suffixes
    folder = _model_folder(tmp_path / "net", weights="weights/net.ckpt")
    before = _torch(folder).identity()["files"]
    assert set(before) == {"model.json", "weights/net.ckpt"}
    torch.manual_seed(1)
    _save(TinyNet().state_dict(), folder / "weights" / "net.ckpt")
    assert _torch(folder).identity()["files"]["weights/net.ckpt"] != before["weights/net.ckpt"]


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_trust_remote_code_from_options_is_refused(backend, tmp_path):
    # transformers' trust_remote_code would import Python files that the model folder ships
    from fairderm.errors import InputError
    from fairderm.inference import load_predictor

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="trust_remote_code"):
        load_predictor(backend, str(tmp_path), labels=["a", "b"], trust_remote_code=True)
