"""A VLM audit spread over several OpenAI-compatible servers of one model (scripted servers on 127.0.0.1)."""

from __future__ import annotations

import socket
import warnings
from collections import Counter

import pytest

from fairderm.errors import FairdermError, InputError
from fairderm.inference import EndpointWarning, read_predictions, run_inference
from fairderm.inference._endpoints import endpoint_list
from tests.helpers.lesion_cohorts import make_lesion_cohort
from tests.helpers.vlm_server import ScriptedVLM

FAST = {"timeout": 2.0, "max_retries": 0, "backoff": 0.01, "concurrency": 2}
# what a case's answer is; latency_s and attempts say how it went, not what it is
ANSWER = ["image_id", "stratum", "status", "reason", "pred", "text", "differential",
          "prompt_tokens", "completion_tokens"]


@pytest.fixture
def cohort(tmp_path):
    return make_lesion_cohort(tmp_path / "cohort", n=16, size=40)


def _dead_endpoint() -> str:
    """The address of a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _script(server: ScriptedVLM, cohort) -> None:
    for path, behaviour in zip(cohort.image_paths(), [("skinr1", "melanoma"), "http400", ("skingpt", "bcc")]):
        server.set(path, behaviour)


def _run(cohort, out, endpoints, **options):
    return run_inference(cohort, out, backend="openai", workers=0, strata="fitzpatrick_group", batch_size=8,
                         options={"endpoint": endpoints, **FAST, **options})


def test_server_stopped_half_way_has_its_cases_answered_once_by_the_other(cohort, tmp_path):
    with ScriptedVLM() as alone:
        _script(alone, cohort)
        single = _run(cohort, tmp_path / "one.parquet", alone.endpoint)
    with ScriptedVLM(delay=0.05) as steady, ScriptedVLM(delay=0.05, stop_after=5) as dying:
        for server in (steady, dying):
            _script(server, cohort)
        run = _run(cohort, tmp_path / "two.parquet", [steady.endpoint, dying.endpoint])
        answered = steady.answered + dying.answered
        dying_requests = len(dying.requests)
    frame = read_predictions(tmp_path / "two.parquet", cohort)
    assert dying.dead and dying_requests >= 5
    # every case answered exactly once, whichever server answered it
    assert sorted(answered.values()) == [1] * 16 and len(answered) == 16
    assert frame["image_id"].is_unique and len(frame) == 16
    failed = frame.set_index("image_id").loc["img_0001"]
    assert (failed["status"], failed["attempts"]) == ("error", 1) and failed["reason"].startswith("HTTP 400")
    assert (frame.loc[frame["image_id"] != "img_0001", "status"] == "ok").all()
    # the same predictions, in the same order, under the same fingerprint as with one server
    assert frame[ANSWER].equals(single.predictions[ANSWER])
    assert run.metadata["fingerprint"] == single.metadata["fingerprint"]
    served = {s["endpoint"]: s for s in run.metadata["served_by"]}
    assert served[steady.endpoint]["down"] is None and "health" in served[dying.endpoint]["down"]
    assert sum(s["answered"] + s["failed"] for s in served.values()) == 16
    assert served[dying.endpoint]["answered"] + served[dying.endpoint]["failed"] < 5


def test_endpoint_down_from_the_start_is_skipped_with_a_warning(cohort, tmp_path):
    dead = _dead_endpoint()
    with ScriptedVLM() as server, pytest.warns(EndpointWarning, match=f"cannot reach the model server at {dead}"):
        run = _run(cohort, tmp_path / "p.parquet", [dead, server.endpoint])
        answered = server.answered
    assert (run.predictions["status"] == "ok").all() and sum(answered.values()) == 16
    served = {s["endpoint"]: s for s in run.metadata["served_by"]}
    assert served[dead]["answered"] == 0 and "cannot reach" in served[dead]["down"]
    assert served[server.endpoint] == {"endpoint": server.endpoint, "answered": 16, "failed": 0, "down": None}


def test_every_endpoint_down_is_one_error_and_no_output(cohort, tmp_path):
    out = tmp_path / "p.parquet"
    dead = [_dead_endpoint(), _dead_endpoint()]
    with pytest.raises(FairdermError, match="no model server answers: cannot reach") as raised:
        _run(cohort, out, dead)
    assert "\n" not in str(raised.value) and all(d in str(raised.value) for d in dead)
    assert not out.exists() and not (tmp_path / "p.parquet.shards").exists()


@pytest.mark.parametrize(
    ("other", "expected"),
    [({"model": "another-vlm"}, "serves another model"), ({"root": "/models/retrained"}, "root='/models/retrained'")],
)
def test_servers_of_different_models_are_refused_naming_the_server(cohort, tmp_path, other, expected):
    with ScriptedVLM() as first, ScriptedVLM(**other) as second:
        with pytest.raises(InputError, match=expected) as raised:
            _run(cohort, tmp_path / "p.parquet", [first.endpoint, second.endpoint])
        assert f"the model server at {second.endpoint}" in str(raised.value)
        assert not first.requests and not second.requests
    assert not (tmp_path / "p.parquet").exists()


def test_named_model_missing_on_one_server_is_refused_naming_it(cohort, tmp_path):
    with ScriptedVLM() as first, ScriptedVLM(model="another-vlm") as second:
        missing = f"the server at {second.endpoint} does not serve model 'skingpt-r1-test'"
        with pytest.raises(InputError, match=missing):
            run_inference(cohort, tmp_path / "p.parquet", backend="openai", model="skingpt-r1-test",
                          options={"endpoint": [first.endpoint, second.endpoint], **FAST})


def test_one_dead_server_alone_keeps_retrying_its_cases_with_reasons(cohort, tmp_path):
    with ScriptedVLM(stop_after=3) as dying, warnings.catch_warnings():
        warnings.simplefilter("error", EndpointWarning)
        run = _run(cohort, tmp_path / "p.parquet", dying.endpoint, max_retries=1)
    frame = run.predictions
    failed = frame[frame["status"] == "error"]
    assert len(frame) == 16 and len(failed) >= 12
    assert failed["reason"].str.startswith("connection error").all() and (failed["attempts"] == 2).all()
    assert run.metadata["served_by"][0]["down"] is None  # the last server standing is never dropped


def test_cases_spread_over_servers_with_per_server_concurrency(cohort, tmp_path):
    with ScriptedVLM(delay=0.05) as first, ScriptedVLM(delay=0.05) as second:
        run = _run(cohort, tmp_path / "p.parquet", [first.endpoint, second.endpoint])
        counts = Counter({first.endpoint: len(first.requests), second.endpoint: len(second.requests)})
    assert min(counts.values()) >= 4 and sum(counts.values()) == 16
    assert [s["answered"] for s in run.metadata["served_by"]] == [counts[first.endpoint], counts[second.endpoint]]


@pytest.mark.parametrize("given", [[], ["http://a:8000/v1", "http://a:8000"], [""]])
def test_endpoint_list_rejects_none_duplicates_and_blanks(given):
    with pytest.raises(InputError, match="endpoint"):
        endpoint_list(given)


def test_infer_takes_endpoint_repeated(cohort, tmp_path, run_cli):
    with ScriptedVLM() as first, ScriptedVLM() as second:
        result = run_cli("infer", cohort.root, "--backend", "openai", "--endpoint", first.endpoint,
                         "--endpoint", second.endpoint, "--out", tmp_path / "p.parquet", "--concurrency", "2",
                         "--workers", "0")
        hit = (len(first.requests), len(second.requests))
    assert result.exit_code == 0, result.stderr
    assert min(hit) > 0 and sum(hit) == 16
