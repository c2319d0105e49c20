"""LoRA experts (peft) on the bundled backbone and on a local transformers model, end to end on CPU."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from fairderm.errors import FairdermError, InputError
from fairderm.moe import load_router, train_router
from tests.helpers.refused_imports import refuse_import

# Skipped without peft, which is looked for, not imported: importing it (and transformers) took 4 s of every
# worker's collection, also where no test of this file runs. Feature extraction of 200 images at 224 px
# dominates (~2 min on 2 shared cores).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft is not installed (the [torch] extra)"),
]

# tiny images, few epochs: the test checks the plumbing, not the accuracy
TINY = {"n_boot": 20, "views": 1, "group_column": "fitzpatrick_group", "experts": "lora", "n_experts": 2,
        "train_config": {"max_epochs": 2, "patience": 1, "min_epochs": 1, "image_size": 32, "lora_rank": 2}}


@pytest.fixture(scope="module")
def image_cohort(tmp_path_factory: pytest.TempPathFactory):
    from fairderm.cohort import synthesize_cohort

    return synthesize_cohort(tmp_path_factory.mktemp("lora") / "cohort", n=200, seed=1, image_size=64, workers=1)


@pytest.fixture(scope="module")
def lora_router(image_cohort, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("lora_router") / "router"
    return train_router(image_cohort, out, cache_dir=out.parent / "cache", **TINY)


def test_lora_router_writes_peft_adapters_and_judges_every_method(lora_router) -> None:
    out = lora_router.out
    for e in range(2):
        assert (out / "adapters" / "moe_parity" / f"expert_{e}" / "adapter_model.safetensors").is_file()
        assert (out / "adapters" / "moe" / f"expert_{e}" / "adapter_config.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["experts"] == "lora" and config["architecture"]["kind"] == "lora"
    # LoRA's CPU schedule is the routers'; the linear heads keep theirs (a LoRA run's ERM is the frozen run's)
    assert config["training"]["dual_every"] == 4 and config["head_training"]["dual_every"] == 1
    assert config["head_training"]["max_epochs"] == config["training"]["max_epochs"] == 2  # the caller's, for both
    mitigation = lora_router.evaluation["mitigation"]
    assert set(mitigation) == {"moe", "moe_parity", "expgrad", "threshold", "reweight"}
    assert {"worst_group_change", "best_group_change", "overall_change", "levelled_down"} <= set(mitigation["moe"])
    assert "levelled down" in lora_router.summary() or "worst group change" in lora_router.summary()


def test_one_training_step_moves_every_chosen_experts_adapter_and_no_frozen_weight() -> None:
    import torch

    from fairderm.moe import LoraExpertMixture, lora_backbone

    backbone = lora_backbone("efficientnet-lite0", image_size=32)
    inputs = backbone.expert_inputs(torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8))
    model = LoraExpertMixture(backbone.tail, 1280, 3, 6, n_experts=2, top_k=2, rank=2, dropout=0.0)
    frozen = backbone.tail.head.weight.clone()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model(inputs).logits, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    loss.backward()
    optimiser.step()
    for expert in model.experts:
        moved = [p for n, p in expert.named_parameters() if "lora_B" in n]
        assert moved and all(float(p.abs().max()) > 0 for p in moved)
    assert torch.equal(backbone.tail.head.weight, frozen)


def test_packed_rows_carry_the_frozen_tails_output_and_classify_as_the_inputs_do() -> None:
    import torch

    from fairderm.moe import LoraExpertMixture, lora_backbone

    backbone = lora_backbone("efficientnet-lite0", image_size=32)
    pixels = torch.randint(0, 255, (6, 3, 32, 32), dtype=torch.uint8)
    inputs, rows = backbone.expert_inputs(pixels), backbone.expert_rows(pixels)
    assert rows.shape == (6, int(np.prod(backbone.input_shape)) + 1280)
    unpacked, pooled = backbone.split_rows(rows)
    assert torch.equal(unpacked, inputs)
    with torch.no_grad():
        assert torch.allclose(pooled, backbone.tail(inputs), atol=1e-5)
    model = LoraExpertMixture(backbone.tail, 1280, 3, 6, n_experts=2, rank=2, dropout=0.0,
                              input_shape=backbone.input_shape).eval()
    torch.nn.init.normal_(model.experts[0].base_model.model.head.lora_B.default.weight)  # experts that differ
    with torch.no_grad():
        assert torch.allclose(model(rows).logits, model(inputs).logits, atol=1e-4)
    with pytest.raises(ValueError, match="input_shape"):
        LoraExpertMixture(backbone.tail, 1280, 3, 6, n_experts=2, rank=2)(rows)


def test_reloaded_lora_router_predicts_its_stored_test_probabilities(lora_router, image_cohort) -> None:
    from fairderm.moe import RouterPredictor

    stored = pd.read_parquet(lora_router.out / "predictions.parquet")
    stored = stored[(stored["method"] == "moe_parity") & (stored["split"] == "test")]
    paths = dict(zip(image_cohort.manifest["image_id"].astype(str), image_cohort.image_paths(), strict=True))
    predictor = RouterPredictor(lora_router.out, device="cpu")
    ids = stored["image_id"].astype(str).tolist()
    batch = predictor.collate([predictor.preprocess(paths[i]) for i in ids])
    probs = predictor.predict(batch, ids).probs
    columns = [c for c in stored.columns if c.startswith("prob_")]
    # the router's tone came from the tone head (no tone table in training either)
    assert np.abs(probs - stored[columns].to_numpy(float)).max() < 1e-6


def test_lora_experts_on_a_local_transformers_vit_train(image_cohort, tmp_path) -> None:
    from transformers import ViTConfig, ViTModel

    vit = tmp_path / "vit"
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32)).save_pretrained(vit)
    run = train_router(image_cohort, tmp_path / "router", backbone=str(vit), cache_dir=tmp_path / "cache", **TINY)
    config = json.loads((tmp_path / "router" / "config.json").read_text())
    assert config["architecture"]["backbone"]["kind"] == "transformers"
    assert run.evaluation["training"]["moe_parity"]["epochs_run"] >= 1
    model, _ = load_router(tmp_path / "router")
    assert len(model.experts) == 2


def test_backbone_folder_without_weights_is_rejected(image_cohort, tmp_path) -> None:
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text("{}")
    with pytest.raises(InputError, match="no weights"):
        train_router(image_cohort, tmp_path / "r", backbone=str(tmp_path / "vit"), **TINY)
    assert not (tmp_path / "r").exists()


class _Payload:
    """A pickled object in a weights file: what a weights-only load must refuse to run."""


def test_backbone_weights_holding_pickled_objects_are_refused(tmp_path) -> None:
    import torch
    from transformers import ViTConfig

    from fairderm.moe import lora_backbone

    ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=32).save_pretrained(tmp_path)
    torch.save({"payload": _Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(InputError, match="refused: the weights hold pickled objects"):
        lora_backbone(str(tmp_path))


@pytest.mark.parametrize("n_experts", [0, 1])
def test_lora_with_fewer_than_two_experts_is_rejected(image_cohort, tmp_path, n_experts) -> None:
    with pytest.raises(InputError, match="n_experts >= 2"):
        train_router(image_cohort, tmp_path / "r", **{**TINY, "n_experts": n_experts})


def test_lora_rank_below_one_is_rejected(image_cohort, tmp_path) -> None:
    with pytest.raises(InputError, match="rank must be at least 1"):
        train_router(image_cohort, tmp_path / "r", **{**TINY, "train_config": {"lora_rank": 0}})


def test_transformers_backbone_with_frozen_experts_is_rejected(image_cohort, tmp_path) -> None:
    with pytest.raises(InputError, match="experts='lora'"):
        train_router(image_cohort, tmp_path / "r", backbone=str(tmp_path), group_column="fitzpatrick_group")


def test_lora_experts_without_peft_name_the_extra(image_cohort, tmp_path, monkeypatch) -> None:
    refuse_import(monkeypatch, "peft")
    with pytest.raises(FairdermError, match=r"pip install 'fairderm\[torch\]'"):
        train_router(image_cohort, tmp_path / "r", **TINY)
