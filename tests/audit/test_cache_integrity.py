"""What the audit's stage cache may reuse: nothing from a redeployed model server, another model revision, or
a cache entry whose files were edited after they were stored (metrics engine faked)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from fairderm._io import atomic_write_parquet, read_parquet_metadata
from fairderm.audit import run_audit
from fairderm.audit._cache import StageCache
from fairderm.audit._spec import load_spec
from fairderm.errors import InputError
from tests.helpers.vlm_server import ScriptedVLM

pytestmark = pytest.mark.usefixtures("fake_metrics")

FEW_CASES = {"filter": "split == 'train'"}  # 18 cases: each request to the scripted server costs time


@pytest.fixture
def vlm_server() -> Iterator[ScriptedVLM]:
    """The scripted OpenAI-compatible server of the inference tests, on 127.0.0.1."""
    with ScriptedVLM() as server:
        yield server


def _served(server: Any, **extra: Any) -> dict[str, Any]:
    return {"backend": "openai", "model": "skingpt-r1-test", "endpoint": server.endpoint,
            "options": {"max_retries": 0, "timeout": 10}, **extra}


def _inference(run: Any) -> Any:
    return next(s for s in run.stages if s.stage == "inference")


def test_redeployed_vlm_server_at_the_same_endpoint_reruns_inference(write_spec, vlm_server):
    spec = write_spec(model=_served(vlm_server), cohort=FEW_CASES)
    first = run_audit(spec)
    again = run_audit(spec)
    vlm_server.root, vlm_server.default_label = "/models/skingpt-r1-v2", "melanoma"
    redeployed = run_audit(spec)
    assert _inference(first).cache == "miss" and _inference(again).cache == "hit"
    assert _inference(redeployed).cache == "miss"
    assert (pd.read_parquet(first.run_dir / "predictions.parquet")["pred"] == "nevus").all()
    assert (pd.read_parquet(redeployed.run_dir / "predictions.parquet")["pred"] == "melanoma").all()


def test_new_model_revision_in_the_spec_reruns_inference(write_spec, vlm_server):
    first = run_audit(write_spec(model=_served(vlm_server, revision="a1b2c3"), cohort=FEW_CASES))
    second = run_audit(write_spec(model=_served(vlm_server, revision="d4e5f6"), cohort=FEW_CASES))
    assert _inference(first).cache == "miss" and _inference(second).cache == "miss"
    assert read_parquet_metadata(second.run_dir / "predictions.parquet")["model"]["revision"] == "d4e5f6"


def test_revision_for_a_backend_without_one_is_rejected(write_spec):
    with pytest.raises(InputError, match="'revision' is for backends openai and vllm"):
        load_spec(write_spec(model={"revision": "a1b2c3"}))


def test_edited_cached_predictions_are_recomputed_saying_so(write_spec):
    spec = write_spec()
    first = run_audit(spec)
    cached = load_spec(spec).cache_dir / "inference" / _inference(first).key / "predictions.parquet"
    frame = pd.read_parquet(cached)
    frame["pred"] = "bcc"
    atomic_write_parquet(cached, frame, metadata_json=read_parquet_metadata(cached))
    logged: list[str] = []
    second = run_audit(spec, log=logged.append)
    record = _inference(second)
    assert record.cache == "miss" and "predictions.parquet was changed after it was stored" in record.reason
    assert sum("predictions.parquet was changed" in line for line in logged) == 1
    original = pd.read_parquet(first.run_dir / "predictions.parquet")
    assert pd.read_parquet(second.run_dir / "predictions.parquet").equals(original)
    assert _inference(run_audit(spec)).cache == "hit"  # the recomputed entry is whole again


def test_cache_entry_names_its_edited_added_or_removed_file(tmp_path):
    cache = StageCache(tmp_path)
    with cache.store("metrics", "k1", {"x": 1}) as staging:
        (staging / "metrics.json").write_text("{}")
        (staging / "coverage.json").write_text("{}")
    folder = cache.lookup("metrics", "k1")
    assert folder is not None and cache.integrity_problem(folder) is None
    (folder / "metrics.json").write_text('{"verdict": "PASS"}')
    assert cache.integrity_problem(folder) == "metrics.json was changed after it was stored"
    (folder / "metrics.json").write_text("{}")
    (folder / "extra.json").write_text("{}")
    assert cache.integrity_problem(folder) == "extra.json was added after it was stored"
    (folder / "extra.json").unlink()
    (folder / "coverage.json").unlink()
    assert cache.integrity_problem(folder) == "coverage.json was removed after it was stored"
    cache.discard("metrics", "k1")
    assert cache.lookup("metrics", "k1") is None and not list(tmp_path.joinpath("metrics").iterdir())


def test_audit_over_two_servers_shares_its_inference_with_one_server_of_the_same_model(write_spec, vlm_server):
    with type(vlm_server)() as second:
        spread = {k: v for k, v in _served(vlm_server).items() if k != "endpoint"}
        first = run_audit(write_spec(model={**spread, "endpoints": [vlm_server.endpoint, second.endpoint]},
                                     cohort=FEW_CASES))
        asked_second = len(second.requests)
    alone = run_audit(write_spec(model=_served(vlm_server), cohort=FEW_CASES))
    assert _inference(first).cache == "miss" and _inference(alone).cache == "hit"
    served = read_parquet_metadata(first.run_dir / "predictions.parquet")["served_by"]
    assert [s["endpoint"] for s in served] == [vlm_server.endpoint, second.endpoint]
    assert sum(s["answered"] for s in served) == 18 and served[1]["answered"] == asked_second > 0


def test_endpoint_and_endpoints_together_are_rejected(write_spec, vlm_server):
    with pytest.raises(InputError, match="either 'endpoint' or 'endpoints'"):
        load_spec(write_spec(model=_served(vlm_server, endpoints=[vlm_server.endpoint])))
