"""Case filters: the grammar selects what pandas would, and nothing in a filter is ever run as code."""

from __future__ import annotations

import re
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairderm.cohort import parse_filter
from fairderm.errors import InputError


@pytest.fixture
def manifest() -> pd.DataFrame:
    return pd.DataFrame({
        "split": ["test", "train", "test", "val", "test", "train"],
        "fitzpatrick": [1, 2, 3, 4, 5, 6],
        "age": [30.5, 41.0, 55.0, 62.5, 70.0, 18.0],
        "sex": ["female", "male", "male", "female", "male", "female"],
        "reviewed": [True, False, True, True, False, True],
        "body site": ["arm", "leg", "face", "arm", "back", "leg"],
    })


@pytest.mark.parametrize("expression", [
    "split == 'test'",
    'split != "test"',
    "(split == 'test') & (fitzpatrick >= 5)",
    "(split == 'test') | (sex == 'female')",
    "split == 'test' and fitzpatrick >= 3 or sex == 'female'",
    "~(split == 'train')",
    "not (split == 'train') and not reviewed",
    "fitzpatrick in (5, 6)",
    "fitzpatrick in [5, 6,]",
    "sex not in ('male',)",
    "1 < fitzpatrick <= 4",
    "age > 40.0 and age < 6.5e1",
    "fitzpatrick > -1",
    "reviewed",
    "reviewed == True",
    "`body site` == 'arm'",
    "age > fitzpatrick",
])
def test_filter_selects_the_rows_pandas_selects(manifest, expression):
    mask = parse_filter(expression).mask(manifest)
    assert mask.dtype == bool and len(mask) == len(manifest)
    # pandas is the independent reference on this benign, complete table (no missing values)
    expected = manifest.eval(expression).to_numpy(dtype=bool)
    np.testing.assert_array_equal(mask, expected)


def test_missing_values_compare_false_and_none_selects_them():
    frame = pd.DataFrame({"sex": ["male", None, "female"], "fitzpatrick": pd.array([1, None, 6], dtype="Int64")})
    assert parse_filter("sex == 'male'").mask(frame).tolist() == [True, False, False]
    assert parse_filter("sex != 'male'").mask(frame).tolist() == [False, False, True]
    assert parse_filter("not (sex == 'male')").mask(frame).tolist() == [False, True, True]
    assert parse_filter("fitzpatrick >= 1").mask(frame).tolist() == [True, False, True]
    assert parse_filter("fitzpatrick not in (6,)").mask(frame).tolist() == [True, True, False]
    assert parse_filter("sex == None").mask(frame).tolist() == [False, True, False]
    assert parse_filter("sex != None").mask(frame).tolist() == [True, False, True]
    assert parse_filter("sex in ('female', None)").mask(frame).tolist() == [False, True, True]


# Each payload would run code (or read attributes) under DataFrame.eval/query; '{marker}' names a file that
# the payload would create if it ran.
CODE_PAYLOADS = [
    "(split == 'test') & (@os.system('touch {marker}') == 0)",
    "split == 'test' and @pd.io.common.os.system('touch {marker}') == 0",
    "__import__('os').system('touch {marker}') == 0",
    "split.__class__.__name__ == 'Series'",
    "split.str.len() > 1",
    "len(split) > 1",
    "(lambda: open('{marker}', 'w'))() == 1",
    "split[0] == 't'",
    "f'{{split}}' == 'test'",
    "fitzpatrick ** 2 > 1",
    "split == 'test'; import os",
    "[c for c in ().__class__.__bases__] == 1",
    "fitzpatrick == 1 if True else 2",
    "split := 'test'",
]


@pytest.mark.parametrize("payload", CODE_PAYLOADS)
def test_filter_with_code_is_rejected_naming_its_position(manifest, payload, tmp_path):
    marker = tmp_path / "ran"
    expression = payload.format(marker=marker)
    with pytest.raises(InputError, match=r"at character \d+") as caught:
        parse_filter(expression).mask(manifest)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize(("expression", "names"), [
    ("(split == 'test') & (@os.system('x') == 0)", "'@' at character 22"),
    ("split.__class__ == 1", "'.' at character 6"),
    ("__import__('os')", "name '__import__' at character 1"),
    ("split[0] == 't'", "unexpected '[' at character 6"),
    ("split === 'train'", "'=' at character 9"),
    ("nope > 1", "column 'nope' at character 1: no such column"),
    ("split < 3", "'<' at character 7: cannot compare"),
    ("split == 'test", "unterminated string at character 10"),
    ("split", "column 'split' at character 1: it is not true/false"),
    ("(" * 100 + "reviewed" + ")" * 100, "'(' at character 65: nested deeper than 64 levels"),
    ("fitzpatrick == " + "9" * 500, "number '999999999999...' at character 16: too long"),
])
def test_filter_error_names_the_character_and_the_token(manifest, expression, names):
    with pytest.raises(InputError, match=r"^" + re.escape(names)):
        parse_filter(expression).mask(manifest)


def test_empty_filter_is_rejected():
    with pytest.raises(InputError, match="empty"):
        parse_filter("   ")


_FILTER_ALPHABET = st.sampled_from(
    [*"()[]<>=!&|~@.,:'\"`\\-+*/ _0123456789eE\n", "split", "fitzpatrick", "reviewed", " and ", " or ", "not ",
     " in ", "True", "None", "__class__", "'test'", "os", "system", "lambda", "import"]
)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(max_size=60), st.lists(_FILTER_ALPHABET, max_size=25).map("".join)))
def test_arbitrary_text_either_parses_or_raises_one_line_input_error(text):
    frame = pd.DataFrame({"split": ["test", "train", None], "fitzpatrick": [1, 5, 6], "reviewed": [True, False, True]})
    evaluators = ("pandas.eval", "pandas.DataFrame.eval", "pandas.DataFrame.query", "builtins.eval", "builtins.exec")
    patches = [mock.patch(name, side_effect=AssertionError(f"{name} reached")) for name in evaluators]
    try:
        for patch in patches:
            patch.start()
        mask = parse_filter(text).mask(frame)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc) and "\u2028" not in str(exc)
    else:
        assert mask.dtype == bool and mask.shape == (3,)
    finally:
        for patch in patches:
            patch.stop()
