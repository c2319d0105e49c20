"""Gate verdicts: the decision rule, group selection, combination, and each verdict."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairderm.errors import InputError
from fairderm.gate import GateResult, Verdict, combine, decide, evaluate_gate, policy_from_dict
from tests.helpers.gate_metrics import DEMO_POLICY, group_row, make_metrics

POLICY = policy_from_dict(DEMO_POLICY)


def _policy(*rules: dict) -> object:
    return policy_from_dict({"name": "t", "rules": list(rules)})


def _tone(**overrides: dict) -> dict[str, dict]:
    """The passing model's tone groups with some values replaced (V_VI= for V-VI)."""
    base = {
        "I-II": {"sensitivity": (0.85, 0.80, 0.90), "accuracy": (0.86, 0.82, 0.90), "ece": (0.03, 0.02, 0.05)},
        "III-IV": {"sensitivity": (0.83, 0.77, 0.88), "accuracy": (0.85, 0.81, 0.89), "ece": (0.04, 0.02, 0.06)},
        "V-VI": {"sensitivity": (0.80, 0.72, 0.87), "accuracy": (0.84, 0.78, 0.89), "ece": (0.05, 0.03, 0.08)},
    }
    for group, values in overrides.items():
        base[group.replace("_", "-")].update(values)
    return base


@pytest.mark.parametrize(
    ("estimate", "low", "high", "statistic", "comparator", "threshold", "expected"),
    [
        (0.85, 0.80, 0.90, "interval", ">=", 0.75, Verdict.PASS),
        (0.85, 0.80, 0.90, "interval", ">=", 0.82, Verdict.INSUFFICIENT_EVIDENCE),
        (0.85, 0.80, 0.90, "interval", ">=", 0.95, Verdict.FAIL),
        (0.85, 0.80, 0.90, "estimate", ">=", 0.82, Verdict.PASS),
        (0.85, 0.80, 0.90, "estimate", ">=", 0.88, Verdict.INSUFFICIENT_EVIDENCE),
        (0.04, 0.01, 0.07, "ci_high", "<=", 0.05, Verdict.INSUFFICIENT_EVIDENCE),
        (0.04, 0.01, 0.07, "ci_high", "<=", 0.08, Verdict.PASS),
        (0.04, 0.01, 0.07, "interval", "<=", 0.005, Verdict.FAIL),
        # lenient rule: "not significantly above 0.05" can only pass or fail
        (0.04, 0.01, 0.07, "ci_low", "<=", 0.05, Verdict.PASS),
        (0.09, 0.06, 0.12, "ci_low", "<=", 0.05, Verdict.FAIL),
        # strict comparators: a bound equal to the threshold does not satisfy it
        (0.85, 0.80, 0.90, "ci_low", ">", 0.80, Verdict.INSUFFICIENT_EVIDENCE),
        (0.85, 0.80, 0.90, "ci_high", ">", 0.90, Verdict.FAIL),
        (0.85, 0.80, 0.90, "ci_low", ">=", 0.80, Verdict.PASS),
        (None, None, None, "interval", ">=", 0.5, Verdict.INSUFFICIENT_EVIDENCE),
        (0.85, None, None, "ci_low", ">=", 0.5, Verdict.INSUFFICIENT_EVIDENCE),
    ],
)
def test_decide_follows_the_documented_decision_rule(
    estimate, low, high, statistic, comparator, threshold, expected
) -> None:
    verdict, _, reason = decide(estimate, low, high, statistic=statistic, comparator=comparator,
                                threshold=threshold)
    assert verdict is expected, reason


_unit = st.floats(0, 1, allow_nan=False)


@given(a=_unit, b=_unit, c=_unit, threshold=_unit, comparator=st.sampled_from([">=", ">", "<=", "<"]))
def test_interval_verdict_matches_how_many_interval_values_satisfy_the_rule(a, b, c, threshold, comparator) -> None:
    low, estimate, high = sorted((a, b, c))
    verdict, _, _ = decide(estimate, low, high, statistic="interval", comparator=comparator, threshold=threshold)
    ok = {">=": lambda x: x >= threshold, ">": lambda x: x > threshold,
          "<=": lambda x: x <= threshold, "<": lambda x: x < threshold}[comparator]
    # the interval's end points decide: a monotone comparison holds on all, none, or some of it
    satisfied = [ok(low), ok(high)]
    expected = Verdict.PASS if all(satisfied) else Verdict.FAIL if not any(satisfied) else \
        Verdict.INSUFFICIENT_EVIDENCE
    assert verdict is expected


@given(st.lists(st.sampled_from(list(Verdict)), max_size=6))
def test_combined_verdict_is_the_most_severe(verdicts) -> None:
    order = [Verdict.PASS, Verdict.INSUFFICIENT_EVIDENCE, Verdict.FAIL, Verdict.ERROR]
    expected = max(verdicts, key=order.index) if verdicts else Verdict.PASS
    assert combine(verdicts) is expected
    assert combine(reversed(verdicts)) is expected


def test_exit_codes_follow_the_verdicts() -> None:
    assert [v.exit_code for v in (Verdict.PASS, Verdict.FAIL, Verdict.INSUFFICIENT_EVIDENCE, Verdict.ERROR)] == \
        [0, 1, 2, 3]


def test_well_powered_fair_model_passes() -> None:
    result = evaluate_gate(make_metrics(), POLICY)
    assert result.verdict is Verdict.PASS, result.summary()
    assert result.exit_code == 0
    assert all(r.verdict is Verdict.PASS for r in result.rules)


def test_darkest_group_whose_whole_interval_is_low_fails() -> None:
    metrics = make_metrics(_tone(V_VI={"sensitivity": (0.45, 0.35, 0.55)}))
    result = evaluate_gate(metrics, POLICY)
    assert result.verdict is Verdict.FAIL
    assert result.exit_code == 1
    worst = result.rules[0]
    assert worst.verdict is Verdict.FAIL
    assert worst.decisive_group == "V-VI"
    assert "violates >= 0.7" in worst.message


def test_small_darkest_group_makes_the_verdict_insufficient_rather_than_pass() -> None:
    # Same estimates as the passing model, but only 12 V-VI cases: flagged by the metrics engine.
    small = _tone(V_VI={"n": 12, "n_pos": 4, "flag": "insufficient"})
    result = evaluate_gate(make_metrics(small), POLICY)
    assert result.verdict is Verdict.INSUFFICIENT_EVIDENCE, result.summary()
    assert result.exit_code == 2
    by_id = {r.rule.id: r for r in result.rules}
    assert by_id["min-n"].verdict is Verdict.INSUFFICIENT_EVIDENCE
    assert "V-VI n=12" in by_id["min-n"].message
    assert by_id["worst-sensitivity"].verdict is Verdict.INSUFFICIENT_EVIDENCE
    assert by_id["worst-sensitivity"].decisive_group == "V-VI"
    # the gap leaves the unranked small group out, so it cannot vouch for it either
    assert by_id["accuracy-gap"].verdict is Verdict.INSUFFICIENT_EVIDENCE


def test_interval_straddling_the_threshold_is_insufficient() -> None:
    metrics = make_metrics(_tone(V_VI={"sensitivity": (0.72, 0.62, 0.82)}))
    result = evaluate_gate(metrics, POLICY)
    assert result.rules[0].verdict is Verdict.INSUFFICIENT_EVIDENCE
    assert "straddles 0.7" in result.rules[0].message
    assert result.verdict is Verdict.INSUFFICIENT_EVIDENCE


def test_missing_metric_is_an_error_and_other_rules_are_still_checked() -> None:
    policy = _policy(
        {"id": "auroc", "metric": "auroc", "attribute": "fitzpatrick_est", "comparator": ">=", "threshold": 0.7},
        *DEMO_POLICY["rules"],
    )
    metrics = make_metrics(_tone(V_VI={"sensitivity": (0.45, 0.35, 0.55)}))
    result = evaluate_gate(metrics, policy)
    assert result.verdict is Verdict.ERROR
    assert result.exit_code == 3
    assert result.rules[0].verdict is Verdict.ERROR
    assert "metric 'auroc' not in metrics.json" in result.rules[0].message
    assert result.rules[1].verdict is Verdict.FAIL


def test_missing_attribute_is_an_error() -> None:
    result = evaluate_gate(make_metrics(), _policy(
        {"id": "sex", "metric": "accuracy", "attribute": "sex", "comparator": ">=", "threshold": 0.7}))
    assert result.verdict is Verdict.ERROR
    assert "attribute 'sex'" in result.rules[0].message and "fitzpatrick_est" in result.rules[0].message


def test_fail_outranks_insufficient_evidence_in_one_rule() -> None:
    # III-IV straddles (wide), V-VI's whole interval is below: 'worst' reports the failing group.
    metrics = make_metrics(_tone(III_IV={"sensitivity": (0.70, 0.50, 0.90)}, V_VI={"sensitivity": (0.6, 0.55, 0.65)}))
    rule = evaluate_gate(metrics, POLICY).rules[0]
    assert rule.verdict is Verdict.FAIL
    assert rule.decisive_group == "V-VI"
    assert "+1 more group" in rule.message


def test_named_group_accepts_short_and_qualified_names() -> None:
    for name in ("V-VI", "fitzpatrick_est=V-VI"):
        policy = _policy({"id": "dark", "metric": "sensitivity", "attribute": "fitzpatrick_est", "groups": name,
                          "comparator": ">=", "threshold": 0.75})
        result = evaluate_gate(make_metrics(), policy)
        assert [c.group for c in result.rules[0].checks] == ["V-VI"]
        assert result.verdict is Verdict.INSUFFICIENT_EVIDENCE  # V-VI interval [0.72, 0.87]


def test_absent_named_group_is_insufficient_and_lists_known_groups() -> None:
    policy = _policy({"id": "x", "metric": "accuracy", "attribute": "fitzpatrick_est", "groups": ["VII"],
                      "comparator": ">=", "threshold": 0.5})
    rule = evaluate_gate(make_metrics(), policy).rules[0]
    assert rule.verdict is Verdict.INSUFFICIENT_EVIDENCE
    assert "known groups: I-II, III-IV, V-VI" in rule.message


def test_pooled_row_is_the_group_named_all() -> None:
    policy = _policy({"id": "overall", "metric": "accuracy", "attribute": "all", "groups": "all",
                      "comparator": ">=", "threshold": 0.80})
    rule = evaluate_gate(make_metrics(), policy).rules[0]
    assert rule.verdict is Verdict.PASS
    assert rule.checks[0].n == 600


def test_small_group_can_be_left_out_explicitly() -> None:
    policy = _policy({"id": "ece", "metric": "ece", "attribute": "fitzpatrick_est", "comparator": "<=",
                      "threshold": 0.10, "small_groups": "ignore"})
    metrics = make_metrics(_tone(V_VI={"n": 12, "flag": "insufficient"}))
    rule = evaluate_gate(metrics, policy).rules[0]
    assert rule.verdict is Verdict.PASS
    left_out = [c for c in rule.checks if c.verdict is None]
    assert [c.group for c in left_out] == ["V-VI"]


def test_excluded_groups_are_left_out_of_each_worst_gap_and_sample_size() -> None:
    unknown = {"sensitivity": (0.2, 0.0, 0.6), "accuracy": (0.5, 0.2, 0.8), "ece": (0.3, 0.1, 0.5),
               "n": 5, "n_pos": 1, "flag": "insufficient"}
    metrics = make_metrics({**_tone(), "unknown": unknown})
    assert evaluate_gate(metrics, POLICY).verdict is Verdict.INSUFFICIENT_EVIDENCE
    rules = [dict(r, exclude_groups=["unknown"]) if r.get("groups", "each") in ("each", "worst") else r
             for r in DEMO_POLICY["rules"]]
    result = evaluate_gate(metrics, _policy(*rules, {"id": "n-each", "attribute": "fitzpatrick_est", "min_n": 30,
                                                     "exclude_groups": ["fitzpatrick_est=unknown"]}))
    assert result.verdict is Verdict.PASS, result.summary()
    assert all("unknown" not in {c.group for c in r.checks} for r in result.rules)


def test_excluding_from_named_groups_is_rejected() -> None:
    with pytest.raises(InputError, match="exclude_groups"):
        _policy({"id": "x", "metric": "accuracy", "attribute": "fitzpatrick_est", "groups": ["V-VI"],
                 "exclude_groups": ["unknown"], "comparator": ">=", "threshold": 0.5})


def test_rule_with_every_group_left_out_is_an_error() -> None:
    policy = _policy({"id": "ece", "metric": "ece", "attribute": "fitzpatrick_est", "groups": "V-VI",
                      "comparator": "<=", "threshold": 0.10, "small_groups": "ignore"})
    metrics = make_metrics(_tone(V_VI={"n": 12, "flag": "insufficient"}))
    assert evaluate_gate(metrics, policy).rules[0].verdict is Verdict.ERROR


def test_diff_vs_reference_rule_checks_each_named_group() -> None:
    policy = _policy({"id": "diff", "metric": "accuracy", "disparity": "diff_vs_ref",
                      "attribute": "fitzpatrick_est", "statistic": "ci_low", "comparator": ">=",
                      "threshold": -0.10})
    rule = evaluate_gate(make_metrics(), policy).rules[0]
    assert rule.verdict is Verdict.PASS
    assert [c.group for c in rule.checks] == ["III-IV", "V-VI"]
    assert rule.checks[0].n == 200


def test_gap_whose_whole_interval_exceeds_the_threshold_fails() -> None:
    metrics = make_metrics(gaps={"accuracy": (0.18, 0.12, 0.25)})
    rule = evaluate_gate(metrics, POLICY).rules[1]
    assert rule.verdict is Verdict.FAIL
    assert rule.checks[0].group == "gap"


def test_missing_disparity_is_an_error() -> None:
    policy = _policy({"id": "eod", "metric": "sensitivity", "disparity": "eod", "attribute": "fitzpatrick_est",
                      "comparator": "<=", "threshold": 0.1})
    rule = evaluate_gate(make_metrics(), policy).rules[0]
    assert rule.verdict is Verdict.ERROR and "no eod disparity" in rule.message


def test_intersection_groups_are_selected_by_their_attribute() -> None:
    extra = [
        group_row("fitzpatrick_est&sex", "fitzpatrick_est=V-VI & sex=female", "accuracy", (0.7, 0.6, 0.8), n=40),
        group_row("fitzpatrick_est&sex", "fitzpatrick_est=V-VI & sex=male", "accuracy", (0.9, 0.8, 0.95), n=45),
    ]
    policy = _policy({"id": "inter", "metric": "accuracy", "attribute": "fitzpatrick_est&sex", "groups": "worst",
                      "comparator": ">=", "threshold": 0.75})
    rule = evaluate_gate(make_metrics(extra_rows=extra), policy).rules[0]
    assert rule.decisive_group == "fitzpatrick_est=V-VI & sex=female"
    assert rule.verdict is Verdict.INSUFFICIENT_EVIDENCE


def test_sample_size_rule_counts_positives_and_absent_groups() -> None:
    policy = _policy({"id": "n", "attribute": "fitzpatrick_est", "groups": ["I-II", "V-VI", "VII"],
                      "min_n": 30, "min_pos": 10})
    metrics = make_metrics(_tone(V_VI={"n": 50, "n_pos": 6}))
    rule = evaluate_gate(metrics, policy).rules[0]
    assert rule.verdict is Verdict.INSUFFICIENT_EVIDENCE
    verdicts = {c.group: c.verdict for c in rule.checks}
    assert verdicts == {"I-II": Verdict.PASS, "V-VI": Verdict.INSUFFICIENT_EVIDENCE,
                        "VII": Verdict.INSUFFICIENT_EVIDENCE}
    assert "n_pos=6 < 10" in rule.message and "n=0 < 30" in rule.message


def test_metrics_without_groups_table_are_rejected() -> None:
    with pytest.raises(InputError, match="no 'groups' table"):
        evaluate_gate({"disparities": []}, POLICY)


def test_metrics_record_lacking_contract_columns_is_rejected() -> None:
    metrics = make_metrics()
    del metrics["groups"][3]["ci_low"]
    with pytest.raises(InputError, match=r"groups\[3\] lacks ci_low"):
        evaluate_gate(metrics, POLICY)


def test_gate_json_round_trips() -> None:
    metrics = make_metrics(_tone(V_VI={"n": 12, "flag": "insufficient"}))
    result = evaluate_gate(metrics, POLICY)
    again = GateResult.from_dict(result.to_dict())
    assert again.to_dict() == result.to_dict()
    assert result.to_dict()["counts"] == {"PASS": 0, "INSUFFICIENT_EVIDENCE": 4, "FAIL": 0, "ERROR": 0}


def test_result_frame_has_one_row_per_rule_and_group() -> None:
    frame = evaluate_gate(make_metrics(), POLICY).to_frame()
    assert list(frame.columns[:3]) == ["rule", "check", "group"]
    assert len(frame) == 3 + 1 + 3 + 3  # worst (3 groups), gap, ece each (3), min-n (3)
    assert set(frame["verdict"]) == {"PASS"}


def test_result_is_deterministic() -> None:
    metrics = make_metrics()
    assert evaluate_gate(metrics, POLICY).to_json() == evaluate_gate(copy.deepcopy(metrics), POLICY).to_json()
