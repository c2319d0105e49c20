"""The vision-language path end to end against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import pandas as pd
import pytest

from fairderm.errors import FairdermError, InputError
from fairderm.inference import read_predictions, run_inference
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM

FAST = {"timeout": 0.5, "max_retries": 1, "backoff": 0.01, "concurrency": 4}


@pytest.fixture
def cohort12(tmp_path):
    return make_lesion_cohort(tmp_path / "cohort", n=12, size=48)


def _script(server: ScriptedVLM, cohort) -> dict[str, object]:
    behaviours = [
        ("skingpt", "melanoma"),
        ("skinr1", "bcc"),
        "malformed",
        "slow",
        "http500",
        "flaky429",
        "http400",
        "empty",
        ("skinr1", "seborrheic_keratosis"),
        ("skingpt", "nevus"),
    ]
    plan = {}
    for image_id, path, behaviour in zip(
        cohort.manifest["image_id"], cohort.image_paths(), behaviours
    ):
        server.set(path, behaviour)
        plan[image_id] = behaviour
    return plan


def test_vlm_run_records_answers_failures_tokens_and_latency(cohort12, tmp_path):
    with ScriptedVLM(slow_seconds=1.5) as server:
        _script(server, cohort12)
        out = tmp_path / "pred.parquet"
        result = run_inference(
            cohort12,
            out,
            backend="openai",
            options={"endpoint": server.endpoint, **FAST},
            strata="fitzpatrick_group",
            workers=0,
        )
        hits = dict(server.hits)
        first_request = server.requests[0]
    frame = read_predictions(out, cohort12).set_index("image_id")
    assert len(frame) == 12
    row = frame.loc["img_0000"]
    assert (row["status"], row["pred"]) == ("ok", "melanoma")
    assert "Final diagnosis" in row["text"]
    assert frame.loc["img_0001", "pred"] == "bcc"
    assert frame.loc["img_0008", "pred"] == "seborrheic_keratosis"
    assert frame.loc["img_0009", "pred"] == "nevus"
    assert (
        frame.loc["img_0002", "status"] == "error"
        and "malformed server JSON" in frame.loc["img_0002", "reason"]
    )
    assert (
        frame.loc["img_0003", "status"] == "error"
        and "timed out" in frame.loc["img_0003", "reason"]
    )
    assert (
        frame.loc["img_0004", "status"] == "error" and "HTTP 500" in frame.loc["img_0004", "reason"]
    )
    assert frame.loc["img_0005", "status"] == "ok" and frame.loc["img_0005", "attempts"] == 2
    assert (
        frame.loc["img_0006", "status"] == "error" and "HTTP 400" in frame.loc["img_0006", "reason"]
    )
    assert frame.loc["img_0006", "attempts"] == 1  # a 4xx other than 429 is not retried
    assert frame.loc["img_0004", "attempts"] == 2  # 5xx: first attempt + one retry
    assert (frame.loc["img_0007", "status"], frame.loc["img_0007", "reason"]) == (
        "unparseable",
        "empty answer",
    )
    ok = frame[frame["status"] == "ok"]
    assert ok["prompt_tokens"].notna().all() and (ok["completion_tokens"] > 0).all()
    assert (frame["latency_s"] > 0).all()
    assert "melanoma" in frame.loc["img_0001", "differential"]
    assert not any(c.startswith("prob_") for c in frame.columns)
    assert sum(hits.values()) >= 12
    identity = result.metadata["model"]
    assert identity["served"]["id"] == "skingpt-r1-test" and len(identity["prompt_sha256"]) == 64
    prompt = next(
        p["text"] for p in first_request["messages"][-1]["content"] if p["type"] == "text"
    )
    assert "seborrheic keratosis" in prompt and "${labels}" not in prompt
    image_part = next(
        p for p in first_request["messages"][-1]["content"] if p["type"] == "image_url"
    )
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    counts = result.to_frame().set_index("stratum")
    assert (
        counts["done"].sum() == 12
        and counts["error"].sum() == 4
        and counts["unparseable"].sum() == 1
    )


def test_prompt_file_is_rendered_with_cohort_labels(cohort12, tmp_path):
    template = tmp_path / "prompt.txt"
    template.write_text("Pick one of ${labels}. Answer as <answer>label</answer>.\n")
    with ScriptedVLM() as server:
        run_inference(
            cohort12,
            tmp_path / "p.parquet",
            backend="openai",
            workers=0,
            options={"endpoint": server.endpoint, "prompt": template, **FAST},
            cap_per_stratum=2,
        )
        text = next(
            p["text"] for p in server.requests[0]["messages"][-1]["content"] if p["type"] == "text"
        )
    assert text.startswith("Pick one of nevus, melanoma, bcc, seborrheic keratosis.")


def test_unreachable_server_is_reported_before_inference(cohort12, tmp_path):
    with ScriptedVLM() as server:
        endpoint = server.endpoint
    with pytest.raises(FairdermError, match="cannot reach"):
        run_inference(
            cohort12,
            tmp_path / "p.parquet",
            backend="openai",
            options={"endpoint": endpoint, **FAST},
        )


def test_model_not_served_is_rejected(cohort12, tmp_path):
    with ScriptedVLM() as server, pytest.raises(InputError, match="does not serve model 'other'"):
        run_inference(
            cohort12,
            tmp_path / "p.parquet",
            backend="openai",
            model="other",
            options={"endpoint": server.endpoint, **FAST},
        )


def test_unknown_backend_option_is_rejected(cohort12, tmp_path):
    with ScriptedVLM() as server, pytest.raises(InputError, match="does not take options"):
        run_inference(
            cohort12,
            tmp_path / "p.parquet",
            backend="openai",
            options={"endpoint": server.endpoint, "temprature": 0.2},
        )


def test_unreadable_image_never_reaches_the_server(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "c", n=4, size=48, broken=1)
    with ScriptedVLM() as server:
        frame = run_inference(
            cohort,
            tmp_path / "p.parquet",
            backend="openai",
            workers=0,
            options={"endpoint": server.endpoint, **FAST},
        ).predictions
        assert sum(server.hits.values()) == 3
    failed = frame.set_index("image_id").loc["img_0003"]
    assert failed["status"] == "error" and failed["reason"].startswith("cannot read image")
    assert pd.isna(failed["text"])
