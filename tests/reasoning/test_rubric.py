from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairderm.errors import InputError
from fairderm.reasoning import load_rubric


def _write(tmp_path: Path, raw: object) -> Path:
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _dimension(name: str = "safety") -> dict:
    return {"name": name, "definition": "harmless", "anchors": {1: "harmful", 5: "harmless"}}


def test_default_rubric_has_six_dimensions_with_anchors_and_states_its_sources():
    rubric = load_rubric()
    assert rubric.names == ["accuracy", "safety", "visual_description", "differential_reasoning", "coherence",
                            "completeness"]
    assert all(sorted(d.anchors) == [1, 5] for d in rubric.dimensions)
    text = (Path(__file__).resolve().parents[2] / "fairderm/reasoning/dermeval.yaml").read_text()
    assert "2511.15242" in text and "could not be retrieved" in text


def test_rubric_hash_changes_with_a_definition(tmp_path):
    a = load_rubric(_write(tmp_path, {"name": "r", "dimensions": [_dimension()]}))
    changed = _dimension()
    changed["definition"] = "no harm at all"
    b = load_rubric(_write(tmp_path, {"name": "r", "dimensions": [changed]}))
    assert a.sha256() != b.sha256()


def test_rubric_without_anchor_five_is_rejected_naming_the_key(tmp_path):
    broken = _dimension()
    broken["anchors"] = {1: "harmful"}
    with pytest.raises(InputError, match=r"dimensions\.0\.anchors.*anchors must be given for 1 and 5"):
        load_rubric(_write(tmp_path, {"name": "r", "dimensions": [broken]}))


def test_rubric_with_a_dimension_twice_is_rejected(tmp_path):
    with pytest.raises(InputError, match="'safety' is defined twice"):
        load_rubric(_write(tmp_path, {"name": "r", "dimensions": [_dimension(), _dimension()]}))


def test_dimension_named_like_a_check_is_rejected(tmp_path):
    with pytest.raises(InputError, match="name of a deterministic check"):
        load_rubric(_write(tmp_path, {"name": "r", "dimensions": [_dimension("hedged")]}))


def test_dimension_name_that_is_not_an_identifier_is_rejected(tmp_path):
    with pytest.raises(InputError, match=r"dimensions\.0\.name"):
        load_rubric(_write(tmp_path, {"name": "r", "dimensions": [_dimension("Safety & harm")]}))


def test_rubric_that_is_not_yaml_is_rejected(tmp_path):
    path = tmp_path / "rubric.yaml"
    path.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(InputError, match=r"rubric\.yaml: not valid YAML"):
        load_rubric(path)
