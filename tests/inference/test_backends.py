"""The file, hf, torch and vllm backends (vllm through a stand-in module: no GPU here)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from fairderm.errors import FairdermError, InputError
from fairderm.inference import read_predictions, run_inference
from tests.helpers.lesion_cohorts import LABELS, make_lesion_cohort


@pytest.fixture
def cohort(tmp_path):
    return make_lesion_cohort(tmp_path / "cohort", n=8, size=32)


# ---------------------------------------------------------------- file


def test_file_backend_imports_probabilities_with_model_class_names(cohort, tmp_path):
    ids = cohort.manifest["image_id"].tolist()
    table = pd.DataFrame(
        {
            "image_id": ids[:7],
            "prob_MEL": [0.7, 0.1, 0.2, 0.1, 0.3, 0.2, 0.1],
            "prob_nevus": [0.3, 0.9, 0.8, 0.9, 0.7, 0.8, 0.9],
        }
    )
    table.to_csv(tmp_path / "other.csv", index=False)
    frame = run_inference(
        cohort, tmp_path / "p.parquet", backend="file", model=tmp_path / "other.csv"
    ).predictions
    frame = frame.set_index("image_id")
    assert frame.loc[ids[0], "pred"] == "melanoma" and frame.loc[ids[0], "prob_melanoma"] == 0.7
    assert frame.loc[ids[0], "prob_bcc"] == 0.0  # a label the model does not have gets 0
    assert (frame.loc[ids[7], "status"], frame.loc[ids[7], "reason"]) == (
        "error",
        "not in the predictions file",
    )


def test_file_backend_imports_decisions_and_failures(cohort, tmp_path):
    ids = cohort.manifest["image_id"].tolist()
    table = pd.DataFrame(
        {
            "image_id": ids,
            "pred": ["BCC", "NEV", "melanoma", "SK", "bcc", None, "MEL", "nevus"],
            "status": ["ok"] * 5 + ["unparseable", "ok", "ok"],
            "reason": [None] * 5 + ["no answer", None, None],
        }
    )
    table.to_parquet(tmp_path / "other.parquet")
    frame = run_inference(
        cohort, tmp_path / "p.parquet", backend="file", model=tmp_path / "other.parquet"
    ).predictions
    assert frame["pred"].tolist()[:5] == ["bcc", "nevus", "melanoma", "seborrheic_keratosis", "bcc"]
    assert (frame.loc[5, "status"], frame.loc[5, "reason"]) == ("unparseable", "no answer")
    assert not any(c.startswith("prob_") for c in frame.columns)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"image_id": ["img_0000"], "prob_nevus": ["high"]}, "'high' is not a number"),
        ({"image_id": ["img_0000"], "prob_nevus": [1.3]}, "outside 0-1"),
        ({"image_id": ["img_0000", "img_0000"], "pred": ["nevus", "bcc"]}, "duplicate image_id"),
        ({"image_id": ["img_0000"], "score": [0.3]}, "needs a 'pred' column"),
        ({"image_id": ["img_9999"], "pred": ["nevus"]}, "not in the cohort"),
        (
            {"image_id": ["img_0000"], "pred": ["lichen planus"]},
            r"\['lichen planus'\] map onto none",
        ),
    ],
)
def test_bad_predictions_file_is_rejected(cohort, tmp_path, table, message):
    pd.DataFrame(table).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=message):
        run_inference(cohort, tmp_path / "p.parquet", backend="file", model=tmp_path / "bad.csv")


# ---------------------------------------------------------------- hf


def _tiny_vit(folder, labels):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: k for k, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)


@pytest.mark.slow
def test_hf_backend_runs_a_local_transformers_classifier(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _tiny_vit(
        tmp_path / "vit", ["Melanoma", "Nevus", "Basal cell carcinoma", "Seborrheic keratosis"]
    )
    run = run_inference(
        cohort, tmp_path / "p.parquet", backend="hf", model=tmp_path / "vit", workers=0
    )
    frame = read_predictions(tmp_path / "p.parquet", cohort)
    assert (frame["status"] == "ok").all()
    probs = frame[[f"prob_{label}" for label in LABELS]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert "model.safetensors" in run.metadata["model"]["files"]
    assert run.metadata["class_mapping"]["Basal cell carcinoma"] == "bcc"


def test_hf_model_with_unmappable_labels_is_rejected(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _tiny_vit(tmp_path / "vit", ["LABEL_0", "LABEL_1"])
    with pytest.raises(InputError, match=r"\['LABEL_0', 'LABEL_1'\] map onto none"):
        run_inference(cohort, tmp_path / "p.parquet", backend="hf", model=tmp_path / "vit")


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickled_hf_weights_are_refused_with_one_line_and_never_run(cohort, tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "vit"
    _tiny_vit(folder, LABELS)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    torch.save({"vit.embeddings.cls_token": _RunsAShellCommand(marker)}, folder / "pytorch_model.bin")
    result = run_cli("infer", cohort.root, "--backend", "hf", "--model", folder, "--out", tmp_path / "p.parquet")
    assert not marker.exists()
    assert result.exit_code == 3, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "refused" in result.stderr and str(folder) in result.stderr


# ---------------------------------------------------------------- torch

MODEL_PY = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))
"""


def _torch_model(folder, weights="model.safetensors", **spec):
    folder.mkdir()
    (folder / "model.py").write_text(MODEL_PY)
    namespace: dict = {}
    exec(MODEL_PY, namespace)
    torch.manual_seed(0)
    net = namespace["Net"](4)
    if weights.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(net.state_dict(), str(folder / weights))
    else:
        torch.save(net.state_dict(), folder / weights)
    config = {
        "architecture": "model.py:Net",
        "kwargs": {"n_classes": 4},
        "weights": weights,
        "classes": ["nevus", "melanoma", "bcc", "SK"],
        "input_size": 24,
        **spec,
    }
    (folder / "model.json").write_text(json.dumps(config))


def _own_net(folder) -> dict:
    """The backend option naming the test's own class: the user's code, given outside the model folder."""
    return {"architecture": f"{folder / 'model.py'}:Net"}


@pytest.mark.parametrize("weights", ["model.safetensors", "model.pt"])
def test_torch_backend_loads_safe_weights_and_predicts(cohort, tmp_path, weights):
    _torch_model(tmp_path / "net", weights)
    run = run_inference(
        cohort, tmp_path / "p.parquet", backend="torch", model=tmp_path / "net", workers=0,
        options=_own_net(tmp_path / "net"),
    )
    assert (run.predictions["status"] == "ok").all()
    assert run.metadata["model"]["architecture"] == f"{tmp_path / 'net' / 'model.py'}:Net"
    assert run.metadata["preprocessing"]["input_size"] == 24


def test_torch_checkpoint_with_pickled_code_is_refused(cohort, tmp_path):
    _torch_model(tmp_path / "net", "model.pt")
    torch.save(
        {"state_dict": {"w": torch.zeros(1)}, "callback": print}, tmp_path / "net" / "model.pt"
    )
    with pytest.raises(InputError, match="weights_only=True"):
        run_inference(cohort, tmp_path / "p.parquet", backend="torch", model=tmp_path / "net",
                      options=_own_net(tmp_path / "net"))


def test_torch_weights_that_do_not_fit_are_rejected(cohort, tmp_path):
    _torch_model(
        tmp_path / "net", kwargs={"n_classes": 5}, classes=["nevus", "melanoma", "bcc", "SK", "MEL"]
    )
    with pytest.raises(InputError, match="do not fit the architecture"):
        run_inference(cohort, tmp_path / "p.parquet", backend="torch", model=tmp_path / "net",
                      options=_own_net(tmp_path / "net"))


# ---------------------------------------------------------------- vllm


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in ``vllm`` module recording what the backend asks of it."""
    calls: dict = {"llm": None, "chat": []}

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, model, **kwargs):
            calls["llm"] = {"model": model, **kwargs}

        def chat(self, conversations, sampling_params=None, use_tqdm=True, lora_request=None):
            calls["chat"].append(
                {
                    "conversations": conversations,
                    "sampling": sampling_params.kwargs,
                    "lora": lora_request,
                }
            )
            outputs = []
            for k, _ in enumerate(conversations):
                text = (
                    "<think>pearly border</think><answer>BCC</answer>"
                    if k % 2
                    else "Final diagnosis: melanoma"
                )
                completion = types.SimpleNamespace(text=text, token_ids=list(range(7)))
                outputs.append(
                    types.SimpleNamespace(outputs=[completion], prompt_token_ids=list(range(1200)))
                )
            return outputs

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return calls


def test_vllm_backend_builds_chat_requests_and_reads_outputs(
    cohort, tmp_path, fake_vllm, monkeypatch
):
    import fairderm.inference._vllm as vllm_backend

    monkeypatch.setattr(
        vllm_backend, "_require_gpu", lambda: None
    )  # pretend a GPU for the backend only
    run = run_inference(
        cohort,
        tmp_path / "p.parquet",
        backend="vllm",
        model="Qwen/Qwen2.5-VL-7B-Instruct",
        options={"max_model_len": 4096, "batch_size": 4},
        workers=0,
        device="cpu",
    )
    assert (
        fake_vllm["llm"]["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
        and fake_vllm["llm"]["max_model_len"] == 4096
    )
    first = fake_vllm["chat"][0]
    assert len(first["conversations"]) == 4 and first["sampling"]["temperature"] == 0.0
    content = first["conversations"][0][-1]["content"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "basal cell carcinoma" not in content[1]["text"] and "bcc" in content[1]["text"]
    frame = run.predictions
    assert frame["pred"].tolist() == ["melanoma", "bcc"] * 4
    assert (frame["prompt_tokens"] == 1200).all() and (frame["completion_tokens"] == 7).all()
    assert run.metadata["model"]["engine"] == {"max_model_len": 4096}


def test_vllm_backend_without_gpu_says_so(cohort, tmp_path, fake_vllm, monkeypatch):
    monkeypatch.setattr(
        torch.cuda, "is_available", lambda: False
    )  # whatever machine the test runs on
    with pytest.raises(FairdermError, match="needs a CUDA GPU"):
        run_inference(cohort, tmp_path / "p.parquet", backend="vllm", model="m", device="cpu")


def test_vllm_backend_without_vllm_says_how_to_install(cohort, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(FairdermError, match=r"fairderm\[vllm\]"):
        run_inference(cohort, tmp_path / "p.parquet", backend="vllm", model="m", device="cpu")
