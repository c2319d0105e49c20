"""Bad input: a clear InputError naming the argument and row, or a flagged
result; never a crash and never a silent wrong number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairderm.errors import InputError
from fairderm.metrics import evaluate
from tests.helpers.metrics_cases import LABELS

QUICK = {"n_boot": 50, "tests": False, "case_mix": False, "power": False}


def _probabilities(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(4), size=n)
    y = np.asarray(LABELS, dtype=object)[rng.integers(0, 4, size=n)]
    return y, proba


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_probability_is_rejected_naming_the_row(bad):
    y, proba = _probabilities()
    proba[7, 2] = bad
    with pytest.raises(InputError, match=r"row 8, column 'y_score'.*NaN or infinite"):
        evaluate(y, proba, labels=LABELS, **QUICK)


def test_nan_binary_score_is_rejected_naming_the_row():
    score = np.linspace(0.1, 0.9, 20)
    score[3] = np.nan
    with pytest.raises(InputError, match="row 4"):
        evaluate(np.arange(20) % 2, score, **QUICK)


def test_probability_row_not_summing_to_one_is_rejected_naming_the_row():
    y, proba = _probabilities()
    proba[11] *= 1.001
    with pytest.raises(InputError, match=r"row 12.*sum to 1\.001"):
        evaluate(y, proba, labels=LABELS, **QUICK)


def test_probability_row_within_tolerance_is_accepted():
    y, proba = _probabilities()
    proba[11, 0] += 5e-7
    result = evaluate(y, proba, labels=LABELS, **QUICK)
    assert np.isfinite(result.estimate("accuracy"))


def test_probability_outside_unit_interval_is_rejected():
    with pytest.raises(InputError, match=r"row 2.*outside \[0, 1\]"):
        evaluate([0, 1, 0], [0.2, 1.4, 0.1], **QUICK)


def test_label_outside_the_label_set_is_rejected_naming_the_row():
    y, proba = _probabilities()
    y[5] = "angioma"
    with pytest.raises(InputError, match=r"row 6, column 'y_true'.*'angioma' is not in the label set"):
        evaluate(y, proba, labels=LABELS, **QUICK)


def test_predicted_label_outside_the_label_set_is_rejected():
    y, _ = _probabilities()
    predicted = y.copy()
    predicted[9] = "angioma"
    with pytest.raises(InputError, match=r"row 10, column 'y_score'"):
        evaluate(y, predicted, labels=LABELS, **QUICK)


def test_missing_true_label_is_rejected():
    with pytest.raises(InputError, match=r"row 2, column 'y_true'.*missing"):
        evaluate(["a", None, "b"], ["a", "a", "b"], **QUICK)


@pytest.mark.parametrize("argument", ["y_score", "groups", "cluster", "scores"])
def test_mismatched_lengths_are_rejected_naming_the_argument(argument):
    y, proba = _probabilities(40)
    kwargs = {"y_score": proba, "groups": np.repeat(["a", "b"], 20), "cluster": np.arange(40),
              "scores": {"rating": np.ones(40)}}
    short = {"y_score": proba[:-1], "groups": np.repeat(["a", "b"], 20)[:-1], "cluster": np.arange(39),
             "scores": {"rating": np.ones(39)}}
    kwargs[argument] = short[argument]
    with pytest.raises(InputError, match=f"column '{argument}.*has 39 entries but y_true has 40"):
        evaluate(y, kwargs.pop("y_score"), kwargs.pop("groups"), labels=LABELS, **kwargs, **QUICK)


def test_probability_columns_not_matching_the_labels_are_rejected():
    y, proba = _probabilities()
    with pytest.raises(InputError, match="3 probability columns for 4 labels"):
        evaluate(y, proba[:, :3], labels=LABELS, **QUICK)


def test_one_dimensional_score_for_a_multiclass_task_is_rejected():
    y, proba = _probabilities()
    with pytest.raises(InputError, match="1-d score needs a binary task"):
        evaluate(y, proba[:, 0], labels=LABELS, **QUICK)


def test_unknown_metric_is_rejected():
    with pytest.raises(InputError, match="unknown metric 'recall'"):
        evaluate([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6], metrics=["recall"], **QUICK)


def test_score_metric_with_hard_labels_is_rejected():
    with pytest.raises(InputError, match="'auroc' needs class probabilities"):
        evaluate([0, 1, 0, 1], [0, 1, 1, 1], metrics=["auroc"], **QUICK)


def test_empty_input_is_rejected():
    with pytest.raises(InputError, match="no cases"):
        evaluate([], np.zeros((0, 2)), **QUICK)


@pytest.mark.parametrize("option,value", [("ci", "studentized"), ("n_boot", -1), ("threshold", 1.5),
                                          ("confidence", 1.0), ("p_adjust", "sidak-ish")])
def test_bad_option_is_rejected(option, value):
    with pytest.raises(InputError, match=option if option != "p_adjust" else "p-value adjustment"):
        evaluate([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6], **{**QUICK, option: value})


def test_empty_group_is_listed_with_flag_empty_and_no_number():
    rng = np.random.default_rng(1)
    n = 200
    tone = pd.Categorical(rng.choice(["I-II", "III-IV"], size=n), categories=["I-II", "III-IV", "V-VI"])
    y = rng.integers(0, 2, size=n)
    result = evaluate(y, rng.random(n), {"tone": tone}, **QUICK)
    empty = result.to_frame().query("group == 'tone=V-VI'")
    assert len(empty) == len(result.config["metrics"])
    assert (empty["flag"] == "empty").all() and empty["estimate"].isna().all() and (empty["n"] == 0).all()
    gaps = result.disparities.to_frame(full=True).query("kind == 'gap'")
    assert not gaps["group"].eq("tone=V-VI").any() and not gaps["reference"].eq("tone=V-VI").any()


def test_single_group_gives_flagged_disparities_not_a_crash():
    rng = np.random.default_rng(2)
    result = evaluate(rng.integers(0, 2, 120), rng.random(120), {"tone": np.repeat("V-VI", 120)},
                      **{**QUICK, "tests": True, "case_mix": True, "power": True})
    spread = result.disparities.to_frame(full=True)
    assert set(spread["flag"]) == {"single_group"}
    assert spread["estimate"].isna().all()
    assert result.tests["p_value"].isna().all()
    assert result.to_frame().query("group == 'tone=V-VI'")["flag"].eq("ok").all()


def test_group_with_one_class_only_flags_undefined_metrics():
    rng = np.random.default_rng(3)
    n = 300
    tone = np.where(np.arange(n) < 60, "V-VI", "I-II")
    y = rng.integers(0, 2, size=n)
    y[:60] = 0  # V-VI: no positive case
    result = evaluate(y, rng.random(n), {"tone": tone}, **{**QUICK, "tests": True, "power": True})
    dark = result.to_frame().query("group == 'tone=V-VI'").set_index("metric")
    for metric in ("auroc", "sensitivity"):
        assert dark.loc[metric, "flag"] == "undefined" and np.isnan(dark.loc[metric, "estimate"])
    # F1 = 2TP / (2TP + FP + FN) is 0 here (false positives, no positive): a number, but flagged.
    assert dark.loc["f1", "estimate"] == 0.0 and dark.loc["f1", "flag"] == "insufficient"
    assert dark.loc["specificity", "flag"] == "ok" and np.isfinite(dark.loc["specificity", "estimate"])
    assert dark.loc["balanced_accuracy", "flag"] == "insufficient"
    assert dark.loc["sensitivity", "n_pos"] == 0
    gap = result.disparities.get("auroc", "gap")
    assert gap["flag"].item() == "insufficient" and np.isnan(gap["estimate"].item())


def test_small_group_is_flagged_insufficient_and_never_ranked():
    rng = np.random.default_rng(4)
    n = 400
    tone = np.where(np.arange(n) < 12, "V-VI", np.where(np.arange(n) < 200, "III-IV", "I-II"))
    y = rng.integers(0, 2, size=n)
    score = np.where(tone == "V-VI", 1 - y, y) * 0.8 + 0.1  # V-VI always wrong: worst by far
    result = evaluate(y, score, {"tone": tone}, **QUICK)
    small = result.to_frame().query("group == 'tone=V-VI'")
    assert (small["flag"] == "insufficient").all() and small["estimate"].notna().all()
    ranked = result.disparities.to_frame(full=True).query("kind in ['gap', 'ratio']")
    assert not (ranked["group"] == "tone=V-VI").any() and not (ranked["reference"] == "tone=V-VI").any()


def test_group_of_three_is_not_reported_as_perfect_without_a_flag():
    y = np.r_[np.ones(3, int), np.random.default_rng(5).integers(0, 2, 200)]
    score = np.r_[np.full(3, 0.9), np.random.default_rng(6).random(200)]
    tone = np.r_[np.repeat("V-VI", 3), np.repeat("I-II", 200)]
    result = evaluate(y, score, {"tone": tone}, **QUICK)
    row = result.to_frame().query("group == 'tone=V-VI' and metric == 'sensitivity'").iloc[0]
    assert row["estimate"] == 1.0 and row["flag"] == "insufficient"
    assert row["ci_low"] < 0.5  # Wilson, not a collapsed bootstrap interval [1, 1]


def test_missing_group_value_forms_its_own_flagged_group():
    rng = np.random.default_rng(7)
    tone = rng.choice(["I-II", "III-IV"], size=300).astype(object)
    tone[:40] = None
    result = evaluate(rng.integers(0, 2, 300), rng.random(300), {"tone": tone}, **QUICK)
    missing = result.to_frame().query("group == 'tone=missing'")
    assert len(missing) and set(missing["flag"]) <= {"missing_value", "insufficient", "undefined"}
    assert (missing["n"] == 40).all()


def test_reference_that_is_not_a_group_is_rejected():
    with pytest.raises(InputError, match="reference 'VII'"):
        evaluate([0, 1] * 20, [0.2, 0.7] * 20, {"tone": ["I-II", "V-VI"] * 20}, reference={"tone": "VII"}, **QUICK)


def test_unknown_intersection_attribute_is_rejected():
    with pytest.raises(InputError, match="intersection"):
        evaluate([0, 1] * 20, [0.2, 0.7] * 20, {"tone": ["I-II", "V-VI"] * 20}, intersections=[["tone", "sex"]],
                 **QUICK)


def test_single_label_without_label_set_is_rejected():
    with pytest.raises(InputError, match="one label only"):
        evaluate([1, 1, 1], [0.2, 0.7, 0.9], **QUICK)
