"""``fairderm router train`` from the command line, and the trained router as an inference backend."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers.planted_router import make_planted_cohort
from tests.helpers.refused_imports import refuse_import


def _train(run_cli, cohort, out, *options):
    return run_cli("router", "train", cohort.root, "--tone", cohort.tone, "--out", out, *options)


def test_cli_negative_epsilon_is_a_usage_error(run_cli, planted_cohort, tmp_path) -> None:
    result = _train(run_cli, planted_cohort, tmp_path / "r", "--epsilon=-0.1")
    assert result.exit_code == 3
    assert "epsilon must be a number >= 0" in result.stderr
    assert not (tmp_path / "r").exists()


def test_cli_tone_file_not_matching_the_cohort_is_rejected(run_cli, planted_cohort, tmp_path) -> None:
    other = make_planted_cohort(tmp_path, n=100, seed=5)
    result = run_cli("router", "train", planted_cohort.root, "--tone", other.tone, "--out", tmp_path / "r")
    assert result.exit_code == 3
    assert "error:" in result.stderr and "tone" in result.stderr


def test_cli_more_views_than_the_square_has_is_a_usage_error(run_cli, planted_cohort, tmp_path) -> None:
    result = _train(run_cli, planted_cohort, tmp_path / "r", "--views", "8")
    assert result.exit_code == 3
    assert "views must be between 0 and 7" in result.stderr


def test_cli_unknown_constraint_is_rejected(run_cli, planted_cohort, tmp_path) -> None:
    result = _train(run_cli, planted_cohort, tmp_path / "r", "--constraint", "fairest")
    assert result.exit_code == 3
    assert "constraint must be one of" in result.stderr


def test_backend_router_without_a_model_folder_is_rejected(tmp_path) -> None:
    from fairderm.errors import InputError
    from fairderm.inference import run_inference

    with pytest.raises(InputError, match="router"):
        run_inference(make_planted_cohort(tmp_path, n=60).root, tmp_path / "p.parquet", backend="router")


@pytest.mark.slow
def test_router_trained_from_images_audits_as_the_router_backend(run_cli, tmp_path) -> None:
    """Images -> tone -> ``fairderm router train`` -> ``--backend router`` gives the same scores.

    The cohort is a user's own two-label one (benign or malignant) over synthetic images: the demo trains and
    audits a four-label router from images (tests/test_demo.py), and fairlearn's one-vs-rest baseline, most of
    this test's time with four labels, fits once."""
    from fairderm.cohort import synthesize_cohort, write_cohort
    from fairderm.inference import read_predictions, run_inference
    from fairderm.tone import estimate_tone, write_tone

    # dark skin under-represented, so the constrained router trains on views of its cases
    images = synthesize_cohort(tmp_path / "images", n=100, seed=2, image_size=128, workers=2,
                               tone_weights=[0.25, 0.25, 0.15, 0.15, 0.1, 0.1])
    malignant = images.manifest["label"].isin(images.spec.positive_classes)
    cohort = write_cohort(
        tmp_path / "cohort",
        images.spec.model_copy(update={"name": "benign-or-malignant", "labels": ["benign", "malignant"],
                                       "positive_classes": ["malignant"]}),
        images.manifest.assign(label=np.where(malignant, "malignant", "benign")),
        images_root=images.images_root,
    )
    tone_path = tmp_path / "tone.parquet"
    write_tone(tone_path, estimate_tone(cohort, workers=2), cohort)
    router = tmp_path / "router"
    result = run_cli(
        "router", "train", cohort.root, "--tone", tone_path, "--out", router, "--n-boot", "50",
        "--max-epochs", "30", "--cache-dir", tmp_path / "cache",
    )
    assert result.exit_code == 0, result.stderr
    assert "moe_parity vs ERM" in result.stdout
    evaluation = json.loads((router / "evaluation.json").read_text())
    assert set(evaluation["methods"]) == {"erm", "moe", "moe_parity", "expgrad", "threshold", "reweight"}
    views = evaluation["views"]
    train_counts = {g: c["train"] for g, c in evaluation["dataset"]["group_counts"].items() if g != "(none)"}
    largest = max(train_counts, key=train_counts.get)
    assert views["per_case"][largest] == 0 and max(views["per_case"].values()) > 0
    assert views["failed"] == {}
    assert views["rows_added"] == sum(views["per_case"][g] * n for g, n in train_counts.items())

    stored = pd.read_parquet(router / "predictions.parquet")
    stored = stored[(stored["method"] == "moe_parity") & (stored["split"] == "test")].set_index("image_id")
    test_cases = cohort.manifest[cohort.manifest["image_id"].isin(stored.index)]
    audited = tmp_path / "audit.parquet"
    run_inference(cohort, audited, backend="router", model=router, options={"tone": str(tone_path)}, workers=0)
    predictions = read_predictions(audited, cohort).set_index("image_id").loc[test_cases["image_id"]]
    columns = [f"prob_{label}" for label in cohort.spec.labels]
    assert (predictions["status"] == "ok").all()
    assert np.allclose(
        predictions[columns].to_numpy(float), stored.loc[test_cases["image_id"], columns].to_numpy(float), atol=1e-4
    )


@pytest.mark.parametrize(("options", "message"), [
    (("--experts", "lora", "--n-experts", "1"), "n_experts >= 2"),
    (("--experts", "lora", "--lora-rank", "0"), "rank must be at least 1"),
    (("--experts", "mixed"), "experts must be one of"),
])
def test_cli_bad_lora_settings_are_usage_errors(run_cli, planted_cohort, tmp_path, options, message) -> None:
    result = _train(run_cli, planted_cohort, tmp_path / "r", *options)
    assert result.exit_code == 3
    assert message in result.stderr
    assert not (tmp_path / "r").exists()


def test_cli_lora_experts_without_peft_name_the_extra_in_one_line(run_cli, planted_cohort, tmp_path,
                                                                  monkeypatch) -> None:
    refuse_import(monkeypatch, "peft")
    result = _train(run_cli, planted_cohort, tmp_path / "r", "--experts", "lora")
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "fairderm[torch]" in lines[0]
