"""The options of evaluate() and compare(): one typed object, one default and one range per option."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from fairderm.errors import InputError
from fairderm.metrics import EvaluationOptions, compare, evaluate

OPTION_NAMES = [f.name for f in dataclasses.fields(EvaluationOptions) if f.name not in ("alpha", "target_power")]


@pytest.mark.parametrize("function", [evaluate, compare])
def test_entry_point_defaults_are_the_options_defaults(function):
    parameters = inspect.signature(function).parameters
    defaults = EvaluationOptions()
    for name in OPTION_NAMES:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameters[name].default == getattr(defaults, name), name


def test_compare_names_every_keyword_of_evaluate_except_the_strata_ones():
    evaluate_keywords = {name for name, p in inspect.signature(evaluate).parameters.items()
                         if p.kind is inspect.Parameter.KEYWORD_ONLY}
    compare_keywords = {name for name, p in inspect.signature(compare).parameters.items()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(compare).parameters.values())
    assert compare_keywords - {"names"} == evaluate_keywords - {"true_groups", "inclusion_prob", "strata_error",
                                                                  "estimated"}


@pytest.mark.parametrize("name,value", [("n_boot", -1), ("n_perm", 1_000_001), ("n_boot", 2.5), ("seed", True),
                                        ("top_k", 0), ("confidence", 1.0)])
def test_out_of_range_option_is_rejected_naming_the_parameter_not_a_flag(name, value):
    with pytest.raises(InputError) as error:
        EvaluationOptions(**{name: value})
    assert error.value.column == name
    assert "--" not in str(error.value)


def test_zero_resamples_are_the_one_minimum_and_counts_become_plain_ints():
    options = EvaluationOptions(n_boot=0, n_perm=np.int64(0), top_k=2.0)
    assert (options.n_boot, options.n_perm, options.top_k) == (0, 0, 2)
    assert all(type(v) is int for v in (options.n_boot, options.n_perm, options.top_k))
