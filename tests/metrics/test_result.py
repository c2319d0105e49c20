"""Result objects: the metrics.json contract, round trips, summaries, comparisons."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairderm.metrics import ComparisonResult, EvaluationResult, compare, evaluate

STRATA_KEYS = {"basis", "bound_low", "bound_high"}
GROUP_KEYS = {"attribute", "group", "metric", "estimate", "ci_low", "ci_high", "n", "n_pos", "flag", *STRATA_KEYS}
DISPARITY_KEYS = {"attribute", "metric", "kind", "group", "reference", "estimate", "ci_low", "ci_high", "flag",
                  *STRATA_KEYS}


@pytest.fixture(scope="module")
def result(binary):
    rating = np.where(np.arange(binary.y.size) % 7 == 0, np.nan, (np.arange(binary.y.size) % 6).astype(float))
    return evaluate(binary.y, binary.score, {"tone": binary.group, "sex": binary.sex}, intersections="all",
                    cluster=pd.Series(binary.patient, name="patient_id"), scores={"reasoning": rating},
                    n_boot=200, n_perm=100, seed=7)


def test_frames_have_the_contract_columns(result):
    assert list(result.to_frame().columns) == ["group", "metric", "estimate", "ci_low", "ci_high", "n", "n_pos",
                                               "flag"]
    assert list(result.disparities.to_frame().columns) == ["metric", "kind", "group", "estimate", "ci_low",
                                                           "ci_high"]
    assert set(result.disparities.to_frame()["kind"]) == {"gap", "ratio", "diff_vs_ref", "eod", "dpd"}
    assert "mean_score:reasoning" in set(result.to_frame()["metric"])


def test_metrics_json_has_the_contract_keys_and_records(result):
    data = json.loads(result.to_json())
    assert {"groups", "disparities", "tests", "calibration", "case_mix", "power", "config"} <= set(data)
    assert all(set(r) == GROUP_KEYS for r in data["groups"])
    assert all(set(r) == DISPARITY_KEYS for r in data["disparities"])
    overall = [r for r in data["groups"] if r["group"] == "all"]
    assert overall and all(r["attribute"] == "all" for r in overall)
    attributes = {r["attribute"] for r in data["groups"]}
    assert attributes == {"all", "tone", "sex", "tone&sex"}
    # nothing was declared estimated: every grouping is recorded as labelled
    assert {r["basis"] for r in data["groups"]} == {"labelled"}
    assert {"metric", "attribute", "test", "statistic", "p_value", "p_adjusted", "method"} <= set(data["tests"][0])
    assert {"attribute", "group", "adjusted_or", "ci_low", "ci_high"} <= set(data["case_mix"][0])
    assert {"attribute", "group", "metric", "mdd"} <= set(data["power"][0])
    assert {"group", "bin", "mean_confidence", "observed"} <= set(data["calibration"][0])
    config = data["config"]
    for key in ("n_boot", "ci", "seed", "cluster", "min_group_size", "labels", "positive_label", "threshold",
                "versions", "inputs_sha256"):
        assert key in config, key
    assert config["cluster"] == "patient_id" and config["n_boot"] == 200 and config["seed"] == 7
    assert "numpy" in config["versions"]


def test_nan_is_written_as_null(binary):
    tone = np.where(np.arange(binary.y.size) < 5, "V-VI", "I-II")
    y = binary.y.copy()
    y[:5] = 0
    data = json.loads(evaluate(y, binary.score, {"tone": tone}, n_boot=50).to_json())
    undefined = next(r for r in data["groups"] if r["group"] == "tone=V-VI" and r["metric"] == "auroc")
    assert undefined["estimate"] is None and undefined["flag"] == "undefined"


def test_from_dict_round_trips(result):
    data = result.to_dict()
    again = EvaluationResult.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    pd.testing.assert_frame_equal(again.to_frame(), result.to_frame(), check_dtype=False)


def test_from_dict_rejects_a_non_result():
    from fairderm.errors import InputError

    with pytest.raises(InputError, match="groups"):
        EvaluationResult.from_dict({"disparities": []})


def test_summary_reads_like_a_report(result):
    text = result.summary()
    for needle in ("cluster=patient_id", "tone=V-VI", "Disparities", "Tests across groups", "Case-mix",
                   "Minimum detectable"):
        assert needle in text


def test_comparing_a_model_with_itself_gives_zero_differences(binary):
    comparison = compare(binary.y, binary.score, binary.score, binary.group, n_boot=100, tests=False,
                         case_mix=False, power=False)
    frame = comparison.to_frame().dropna(subset=["difference"])
    assert (frame["difference"] == 0).all() and (frame["ci_low"] == 0).all() and (frame["ci_high"] == 0).all()


def test_paired_intervals_are_narrower_than_separate_ones(binary):
    rng = np.random.default_rng(14)
    better = np.clip(binary.score + np.where(binary.y == 1, 0.05, -0.05) + rng.normal(0, 0.02, binary.y.size), 0, 1)
    comparison = compare(binary.y, better, binary.score, binary.group, names=("tuned", "base"), n_boot=400,
                         tests=False, case_mix=False, power=False)
    rows = comparison.to_frame().set_index(["group", "metric"])
    separate = {name: r.to_frame().set_index(["group", "metric"]) for name, r in comparison.results.items()}
    key = ("all", "auroc")
    paired_width = rows.loc[key, "ci_high"] - rows.loc[key, "ci_low"]
    widths = [separate[m].loc[key, "ci_high"] - separate[m].loc[key, "ci_low"] for m in ("tuned", "base")]
    assert paired_width < 0.5 * np.hypot(*widths)
    assert rows.loc[key, "ci_low"] > 0  # the tuned model is better, and the pairing shows it
    assert rows.loc[key, "estimate_a"] == pytest.approx(
        evaluate(binary.y, better, binary.group, n_boot=0, tests=False, case_mix=False,
                 power=False).estimate("auroc"))
    gaps = comparison.disparities.to_frame()
    assert {"gap", "ratio", "diff_vs_ref"} <= set(gaps["kind"])


def test_comparison_round_trips_and_summarises(binary):
    comparison = compare(binary.y, binary.score, np.clip(binary.score * 0.9, 0, 1), binary.group,
                         names=("a", "b"), n_boot=50, tests=False, case_mix=False, power=False)
    data = json.loads(comparison.to_json())
    again = ComparisonResult.from_dict(data)
    assert again.to_dict() == data
    assert "Paired comparison a - b" in comparison.summary()
