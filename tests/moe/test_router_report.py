"""The router's methods judged as mitigations: worst and best group's paired change, levelling down, pooling."""

from __future__ import annotations

from fairderm.moe import mitigation_report, pool_mitigation_reports


def _t(estimate: float, low: float, high: float) -> dict[str, float]:
    return {"estimate": estimate, "ci_low": low, "ci_high": high}


def _evaluation(best_change: dict[str, float]) -> dict:
    erm_groups = {"I-II": {"estimate": 0.8, "flag": "ok"}, "V-VI": {"estimate": 0.6, "flag": "ok"}}
    return {"methods": {
        "erm": {"groups": erm_groups},
        "moe_parity": {"groups": {}, "vs_erm": {"overall": _t(-0.01, -0.03, 0.01),
                                                "groups": {"I-II": best_change, "V-VI": _t(0.05, 0.01, 0.09)}}},
    }}


def test_best_group_falling_beyond_its_interval_is_flagged_levelled_down() -> None:
    report = mitigation_report(_evaluation(_t(-0.06, -0.1, -0.02)))["moe_parity"]
    assert report["worst_group"] == "V-VI" and report["best_group"] == "I-II"
    assert report["worst_group_change"]["estimate"] == 0.05
    assert report["levelled_down"] is True


def test_best_group_change_whose_interval_holds_zero_is_not_levelling_down() -> None:
    assert mitigation_report(_evaluation(_t(-0.02, -0.05, 0.01)))["moe_parity"]["levelled_down"] is False


def test_pooled_change_is_the_mean_with_a_narrower_interval_than_each_run() -> None:
    runs = [mitigation_report(_evaluation(_t(-0.02, -0.05, 0.01))) for _ in range(5)]
    pooled = pool_mitigation_reports(runs)["moe_parity"]
    worst = pooled["worst_group_change"]
    assert abs(worst["estimate"] - 0.05) < 1e-12 and worst["runs"] == 5
    assert worst["ci_high"] - worst["ci_low"] < 0.08 / 2
