"""Did-you-mean for unknown keys (fairderm._keys)."""

from __future__ import annotations

from fairderm._keys import did_you_mean


def test_close_name_is_suggested_and_a_distant_one_is_not():
    assert did_you_mean("model_architecture", ["architecture", "backend"]) == " (did you mean 'architecture'?)"
    assert did_you_mean("zzz", ["architecture", "backend"]) == ""
