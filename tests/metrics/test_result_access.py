"""The result as one currency: group keys, typed rows, gaps, the metrics.json reader and the renderer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairderm.errors import InputError
from fairderm.metrics import EvaluationResult, GroupKey, evaluate, read_metrics

_ATTRIBUTE = st.text(st.characters(blacklist_characters="&=", blacklist_categories=("Cs",)), min_size=1,
                     max_size=12).filter(lambda a: a.strip() == a and a != "all")
_VALUE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).filter(lambda v: " & " not in v
                                                                                   and not v.endswith(" ")
                                                                                   and not v.startswith("& "))


@pytest.fixture(scope="module")
def result(binary):
    return evaluate(binary.y, binary.score, {"tone": binary.group, "sex": binary.sex}, intersections="all",
                    n_boot=100, tests=False, case_mix=False, power=False, seed=3)


@given(st.lists(st.tuples(_ATTRIBUTE, _VALUE), min_size=0, max_size=3, unique_by=lambda p: p[0]))
def test_group_key_name_round_trips(pairs):
    key = GroupKey.of(pairs)
    assert GroupKey.parse(str(key)) == key
    assert str(GroupKey.parse(str(key))) == str(key)
    assert dict(key) == dict(pairs)


def test_group_key_reads_an_intersection_name():
    key = GroupKey.parse("fitzpatrick_est=V-VI & sex=female")
    assert dict(key) == {"fitzpatrick_est": "V-VI", "sex": "female"}
    assert key.attribute == "fitzpatrick_est&sex"
    assert str(key) == "fitzpatrick_est=V-VI & sex=female"
    assert GroupKey.parse("tone=V-VI").label == "V-VI"


def test_all_is_the_empty_key():
    assert GroupKey.parse("all") == GroupKey() and str(GroupKey()) == "all" and GroupKey().attribute == "all"


def test_group_name_without_attribute_is_rejected():
    with pytest.raises(InputError, match="not 'attribute=value'"):
        GroupKey.parse("V-VI")


def test_interval_takes_a_key_a_mapping_or_a_name(result):
    frame = result.to_frame(full=True)
    name = next(g for g in frame["group"] if " & " in g)
    row = frame[(frame["group"] == name) & (frame["metric"] == "accuracy")].iloc[0]
    key = GroupKey.parse(name)
    by_key, by_name, by_mapping = (result.interval("accuracy", g) for g in (key, name, dict(key)))
    assert by_key == by_name == by_mapping
    assert by_key.key == key and by_key.attribute == "tone&sex"
    assert (by_key.estimate, by_key.ci_low, by_key.ci_high, by_key.n) == (row["estimate"], row["ci_low"],
                                                                          row["ci_high"], row["n"])
    assert result.interval("accuracy").key == GroupKey() and result.estimate("accuracy") == \
        frame[(frame["group"] == "all") & (frame["metric"] == "accuracy")]["estimate"].iloc[0]


def test_interval_of_an_absent_group_is_a_key_error(result):
    with pytest.raises(KeyError, match="tone=none"):
        result.interval("accuracy", {"tone": "none"})


def test_by_group_keeps_one_attribute_in_table_order(result):
    rows = result.by_group("sensitivity", "tone")
    frame = result.to_frame(full=True)
    expected = frame[(frame["metric"] == "sensitivity") & (frame["attribute"] == "tone")]["group"].tolist()
    assert [str(r.key) for r in rows] == expected
    assert all(r.attribute == "tone" and r.metric == "sensitivity" for r in rows)
    assert result.attributes == ["tone", "sex", "tone&sex"]


def test_gap_names_worst_and_best_groups_as_keys(result):
    (gap,) = result.gap("accuracy", "tone")
    record = result.disparities.get("accuracy", "gap", "tone").iloc[0]
    assert str(gap.key) == record["group"] and str(gap.reference) == record["reference"]
    assert gap.estimate == pytest.approx(record["estimate"])
    assert {r.attribute for r in result.gap("accuracy")} == {"tone", "sex", "tone&sex"}
    assert len(result.gap("accuracy", "tone", kind="diff_vs_ref")) >= 1


def test_undefined_numbers_are_none_in_rows(binary):
    tone = np.where(np.arange(binary.y.size) < 5, "V-VI", "I-II")
    y = binary.y.copy()
    y[:5] = 0
    result = EvaluationResult.from_dict(json.loads(evaluate(y, binary.score, {"tone": tone}, n_boot=50).to_json()))
    row = result.interval("auroc", "tone=V-VI")
    assert row.estimate is None and row.flag == "undefined"


def test_records_without_attribute_get_it_from_the_group_name(result):
    data = result.to_dict()
    for record in data["groups"]:
        del record["attribute"]
    again = EvaluationResult.from_dict(data)
    assert again.to_frame(full=True)["attribute"].tolist() == result.to_frame(full=True)["attribute"].tolist()


def test_read_metrics_round_trips(result, tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(result.to_json(), encoding="utf-8")
    assert read_metrics(path).to_dict() == result.to_dict()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"disparities": []}', "no 'groups' table"),
    ('{"groups": {"a": 1}}', "must be a list of records"),
    ("[1, 2]", "no 'groups' table"),
])
def test_read_metrics_names_the_bad_file(tmp_path, content, message):
    path = tmp_path / "metrics.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        read_metrics(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_metrics_file_is_named(tmp_path):
    with pytest.raises(InputError, match="not found") as caught:
        read_metrics(tmp_path / "metrics.json")
    assert str(tmp_path / "metrics.json") in str(caught.value)


def test_summary_text_is_the_text_rendering(result):
    assert result.summary() == result.render("text") == result.report().as_text()


def test_markdown_and_html_renderings_hold_every_group_escaped(result):
    groups = result.to_frame()["group"].unique()
    markdown, page = result.render("markdown"), result.render("html")
    assert "### Per group" in markdown and "<h3>Per group</h3>" in page
    for group in groups:
        assert group.replace("&", "&amp;") in page
    hostile = result.to_dict()
    hostile["groups"][1]["group"] = "tone=<script>alert(1)</script>"
    again = EvaluationResult.from_dict(hostile)
    assert "<script>" not in again.render("html") and "<script>" not in again.render("markdown")


def test_unknown_format_is_rejected(result):
    with pytest.raises(ValueError, match="fmt must be one of"):
        result.render("latex")  # type: ignore[arg-type]


def test_result_frames_are_unchanged_by_the_accessors(result):
    before = result.to_frame(full=True).copy()
    result.by_group("accuracy")
    result.gap("accuracy")
    pd.testing.assert_frame_equal(result.to_frame(full=True), before)
