"""The stage cache and the file hasher."""

from __future__ import annotations

import os

import pytest

from fairderm._io import sha256_file
from fairderm.audit import StageCache
from fairderm.audit._hashing import (
    FileHasher,
    checksum_lines,
    combined_digest,
    parse_checksum_lines,
    tree_digests,
)


def test_key_depends_on_stage_and_inputs_not_on_key_order():
    a = StageCache.key("metrics", {"x": 1, "y": [1, 2]})
    assert a == StageCache.key("metrics", {"y": [1, 2], "x": 1})
    assert a != StageCache.key("metrics", {"x": 2, "y": [1, 2]})
    assert a != StageCache.key("gate", {"x": 1, "y": [1, 2]})


def test_stored_outputs_are_found_by_their_key(tmp_path):
    cache = StageCache(tmp_path)
    key = StageCache.key("tone", {"a": 1})
    assert cache.lookup("tone", key) is None
    with cache.store("tone", key, {"a": 1}) as staging:
        (staging / "tone.parquet").write_bytes(b"data")
    found = cache.lookup("tone", key)
    assert found == tmp_path / "tone" / key
    assert (found / "tone.parquet").read_bytes() == b"data"


def test_failed_stage_leaves_no_cache_entry(tmp_path):
    cache = StageCache(tmp_path)
    key = StageCache.key("inference", {"a": 1})
    with pytest.raises(RuntimeError), cache.store("inference", key, {"a": 1}) as staging:
        (staging / "predictions.parquet").write_bytes(b"half")
        raise RuntimeError("model crashed")
    assert cache.lookup("inference", key) is None
    assert not (tmp_path / "inference" / key).exists()
    assert not [p for p in (tmp_path / "inference").iterdir() if p.name.endswith(".partial")]


def test_hasher_memo_reuses_digest_until_the_file_changes(tmp_path, monkeypatch):
    file = tmp_path / "weights.bin"
    file.write_bytes(b"one")
    memo = tmp_path / "memo.json"
    hasher = FileHasher(memo)
    first = hasher.digest(file)
    hasher.save()
    calls = []
    monkeypatch.setattr("fairderm.audit._hashing.sha256_file", lambda p: calls.append(p) or "x")
    again = FileHasher(memo)
    assert again.digest(file) == first and not calls
    file.write_bytes(b"two!")
    os.utime(file, ns=(1, 1))
    assert again.digest(file) == "x" and calls == [file]


def test_tree_digests_cover_every_file_but_hidden_ones(tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.safetensors").write_bytes(b"w")
    (model / ".cache").mkdir()
    (model / ".cache" / "junk").write_text("x")
    digests = tree_digests(model)
    assert sorted(digests) == ["config.json", "sub/weights.safetensors"]
    assert digests["config.json"] == sha256_file(model / "config.json")
    assert combined_digest(digests) != combined_digest({**digests, "config.json": "0" * 64})


def test_checksum_lines_round_trip():
    text = checksum_lines(["images/a b.jpg", "c.png"], ["1" * 64, None])
    assert parse_checksum_lines(text) == {"images/a b.jpg": "1" * 64, "c.png": "-"}


def test_checksum_lines_keep_names_with_line_breaks_on_one_line_as_sha256sum_does():
    names = ["a\nb.png", "c\u2028d.png", "e\\f\r.png", "g\x0bh\x1ci.png", "plain.png"]
    text = checksum_lines(names, ["2" * 64] * len(names))
    assert text.count("\n") == len(names)
    assert text.splitlines()[0] == "\\" + "2" * 64 + "  a\\nb.png"  # GNU coreutils' escaped form
    assert parse_checksum_lines(text) == dict.fromkeys(names, "2" * 64)
