"""A hostile or redeployed OpenAI-compatible server: each attack fails only its own case, and nothing stale is reused.

The attacks are played by the scripted server on 127.0.0.1 (``vlm_server``):
a malformed ``usage``, an answer dripped one byte at a time, a huge answer, an
error body full of terminal escape sequences, a redeployed model behind the
same endpoint; and out-of-range numbers on the command line.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from fairderm.errors import InputError
from fairderm.inference import (
    PARSER_VERSION,
    PROMPT_VERSION,
    read_predictions,
    run_inference,
    served_model_identity,
)
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM

FAST = {"timeout": 2.0, "max_retries": 0, "backoff": 0.01, "concurrency": 4}


@pytest.fixture
def cohort(tmp_path):
    return make_lesion_cohort(tmp_path / "cohort", n=6, size=40)


def _run(cohort, out, server, **kwargs):
    options = {"endpoint": server.endpoint, **FAST, **kwargs.pop("options", {})}
    return run_inference(cohort, out, backend="openai", workers=0, options=options, **kwargs)


def _rows(run):
    return run.predictions.set_index("image_id")


def test_malformed_usage_fails_only_its_case(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=20, size=40)
    with ScriptedVLM() as server:
        server.set(cohort.image_paths()[3], "bad_usage")
        rows = _rows(_run(cohort, tmp_path / "p.parquet", server, batch_size=20))
    assert rows.loc["img_0003", "status"] == "error"
    assert "usage is not an object" in rows.loc["img_0003", "reason"]
    others = rows.drop(index="img_0003")
    assert len(others) == 19 and (others["status"] == "ok").all() and (others["pred"] == "nevus").all()


def test_retry_errors_after_malformed_usage_reruns_only_that_case(tmp_path):
    cohort = make_lesion_cohort(tmp_path / "cohort", n=20, size=40)
    out = tmp_path / "p.parquet"
    with ScriptedVLM() as server:
        server.set(cohort.image_paths()[3], "bad_usage")
        first = _rows(_run(cohort, out, server, batch_size=20))
        server.set(cohort.image_paths()[3], ("skingpt", "melanoma"))
        requests_before = len(server.requests)
        retried = _rows(_run(cohort, out, server, batch_size=20, retry_errors=True))
        requests_after = len(server.requests)
    assert (first["status"] == "ok").sum() == 19
    assert requests_after - requests_before == 1
    assert (retried["status"] == "ok").all() and retried.loc["img_0003", "pred"] == "melanoma"


def test_slow_drip_is_cut_at_the_timeout(cohort, tmp_path):
    # about 700 bytes at 20 a second: each read is quick, the whole answer would take 35 s
    with ScriptedVLM(drip_seconds=0.05) as server:
        server.set(cohort.image_paths()[0], "drip")
        started = time.monotonic()
        rows = _rows(_run(cohort, tmp_path / "p.parquet", server, options={"timeout": 1.0}))
        elapsed = time.monotonic() - started
    assert rows.loc["img_0000", "status"] == "error" and "timed out" in rows.loc["img_0000", "reason"]
    assert (rows.drop(index="img_0000")["status"] == "ok").all()
    assert elapsed < 6


@pytest.mark.parametrize("behaviour", ["huge", "huge_unsized"])
def test_huge_answer_is_that_cases_error_and_never_stored(cohort, tmp_path, behaviour):
    with ScriptedVLM() as server:
        server.set(cohort.image_paths()[0], behaviour)
        rows = _rows(_run(cohort, tmp_path / "p.parquet", server))
    assert rows.loc["img_0000", "status"] == "error"
    assert "larger than 1048576 bytes" in rows.loc["img_0000", "reason"]
    assert pd.isna(rows.loc["img_0000", "text"])
    assert (rows.drop(index="img_0000")["status"] == "ok").all()


def test_max_response_bytes_flag_lowers_the_cap(cohort, tmp_path, run_cli):
    out = tmp_path / "p.parquet"
    with ScriptedVLM() as server:
        result = run_cli("infer", cohort.root, "--backend", "openai", "--endpoint", server.endpoint, "--out", out,
                         "--max-response-bytes", "400", "--max-retries", "0", "--workers", "0")
    assert result.exit_code == 0, result.stderr
    frame = read_predictions(out)
    assert (frame["status"] == "error").all()
    assert frame["reason"].str.contains("larger than 400 bytes").all() and frame["text"].isna().all()


def test_ansi_escapes_in_server_error_body_never_reach_the_terminal(cohort, tmp_path, run_cli):
    out = tmp_path / "p.parquet"
    with ScriptedVLM() as server:
        server.set(cohort.image_paths()[0], "ansi_error")
        result = run_cli("infer", cohort.root, "--backend", "openai", "--endpoint", server.endpoint, "--out", out,
                         "--max-retries", "0", "--workers", "0")
    assert result.exit_code == 0, result.stderr
    printed = result.stdout + result.stderr
    assert "HTTP 400" in result.stdout and "gate PASS" in result.stdout
    for control in ("\x1b", "\x9b", "\x07", "\r"):
        assert control not in printed
    assert "[bold green]PASS[/]" in result.stdout  # shown as the text it is, not drawn as rich markup
    reason = read_predictions(out).set_index("image_id").loc["img_0000", "reason"]
    assert "\x1b" not in reason and "\x9b" not in reason and "gate PASS" in reason


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max-retries", "-1"),
        ("--timeout", "0"),
        ("--timeout", "nan"),
        ("--concurrency", "-2"),
        ("--max-response-bytes", "0"),
        ("--batch-size", "0"),
        ("--cap-per-stratum", "0"),
        ("--workers", "-1"),
    ],
)
def test_out_of_range_numeric_flag_is_rejected_naming_it(cohort, tmp_path, run_cli, flag, value):
    out = tmp_path / "p.parquet"
    with ScriptedVLM() as server:
        result = run_cli("infer", cohort.root, "--backend", "openai", "--endpoint", server.endpoint, "--out", out,
                         flag, value)
        requests = len(server.requests)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.stderr
    assert requests == 0 and not out.exists() and not out.with_name(out.name + ".shards").exists()


@pytest.mark.parametrize(
    "option, value",
    [
        ("max_retries", -1),
        ("timeout", 0),
        ("timeout", "soon"),
        ("concurrency", 0),
        ("concurrency", True),
        ("backoff", -1),
        ("max_tokens", 0),
        ("max_response_bytes", 0),
        ("batch_size", 2.5),
    ],
)
def test_out_of_range_backend_option_is_rejected_naming_it(cohort, tmp_path, option, value):
    with ScriptedVLM() as server, pytest.raises(InputError, match=f"option {option} must be"):
        _run(cohort, tmp_path / "p.parquet", server, options={option: value})
    assert not (tmp_path / "p.parquet").exists()


def test_redeployed_server_with_another_models_answer_does_not_reuse_predictions(cohort, tmp_path):
    out = tmp_path / "p.parquet"
    with ScriptedVLM(created=1_700_000_000) as server:
        first = _run(cohort, out, server)
        server.created, server.default_label = 1_800_000_000, "melanoma"  # same name and root, new weights
        with pytest.raises(InputError, match="different run"):
            _run(cohort, out, server)
        second = _run(cohort, out, server, overwrite=True)
    assert (first.predictions["pred"] == "nevus").all()
    assert (second.predictions["pred"] == "melanoma").all()
    assert second.metadata["model"]["served"]["created"] == 1_800_000_000


def test_answer_time_in_created_is_not_identity_but_a_fixed_created_is():
    with ScriptedVLM() as server:
        stamped = served_model_identity(server.endpoint, None)  # as vLLM: created is the time of the answer
        server.created = 1_700_000_000
        fixed = served_model_identity(server.endpoint, "skingpt-r1-test")
    assert stamped == {"id": "skingpt-r1-test", "root": "/models/skingpt-r1-test", "parent": None,
                       "owned_by": "vllm", "max_model_len": 8192}
    assert fixed == {**stamped, "created": 1_700_000_000}


def test_model_revision_is_identity_and_a_new_revision_is_another_run(cohort, tmp_path, run_cli):
    out = tmp_path / "p.parquet"
    with ScriptedVLM() as server:
        args = ["infer", cohort.root, "--backend", "openai", "--endpoint", server.endpoint, "--out", out,
                "--workers", "0"]
        first = run_cli(*args, "--model-revision", "a1b2c3")
        same = run_cli(*args, "--model-revision", "a1b2c3")
        requests = len(server.requests)
        other = run_cli(*args, "--model-revision", "d4e5f6")
    assert first.exit_code == 0 and same.exit_code == 0 and requests == len(cohort.manifest)
    assert read_predictions(out).attrs["fairderm"]["model"]["revision"] == "a1b2c3"
    assert other.exit_code == 3 and "different run" in other.stderr


def test_prompt_and_parser_versions_are_part_of_the_fingerprint(cohort, tmp_path, monkeypatch):
    out = tmp_path / "p.parquet"
    with ScriptedVLM() as server:
        meta = _run(cohort, out, server).metadata
        monkeypatch.setattr("fairderm.inference._runner.PARSER_VERSION", PARSER_VERSION + 1)
        with pytest.raises(InputError, match="different run"):
            _run(cohort, out, server)
    assert meta["model"]["prompt_version"] == PROMPT_VERSION and meta["parser_version"] == PARSER_VERSION
