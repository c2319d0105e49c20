"""The tests of any difference across groups take only the groups flagged ok (#21).

A V-VI group of four cases, flagged ``insufficient``, once drove the
Holm-adjusted omnibus test; like gaps and ratios, the tests now leave it out.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairderm.metrics import evaluate

FAST = {"n_boot": 50, "n_perm": 99, "case_mix": False, "power": False, "metrics": ["accuracy", "auroc"]}


def _cases(sizes: dict[str, int], seed: int = 0):
    """Equally good predictions in every group except the last, where every prediction is wrong."""
    rng = np.random.default_rng(seed)
    group = np.concatenate([[name] * n for name, n in sizes.items()])
    y = rng.integers(0, 2, size=group.size)
    score = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.15, size=group.size), 0.0, 1.0)
    last = group == list(sizes)[-1]
    score[last] = 1.0 - np.where(y[last] == 1, 0.9, 0.1)
    return y, score, group, np.arange(group.size) // 2


@pytest.mark.parametrize("clustered", [False, True], ids=["chi_square", "permutation"])
def test_a_group_flagged_insufficient_is_left_out_of_the_test(clustered):
    y, score, group, patient = _cases({"I-II": 300, "III-IV": 300, "V-VI": 4})
    result = evaluate(y, score, {"tone": group}, cluster=patient if clustered else None, **FAST)
    flags = result.groups.set_index(["group", "metric"])["flag"]
    assert flags[("tone=V-VI", "accuracy")] == "insufficient"
    tests = result.tests[result.tests["attribute"] == "tone"]
    assert len(tests) == 2
    for row in tests.itertuples():
        assert row.groups == ["tone=I-II", "tone=III-IV"] and row.n_groups == 2, row
        assert row.flag == "ok"
        # the two ok groups are alike: without the four wrong V-VI cases there is nothing to find
        assert row.p_adjusted > 0.05, row


def test_fewer_than_two_ok_groups_leave_the_test_undone_and_flagged():
    y, score, group, _ = _cases({"I-II": 300, "III-IV": 6, "V-VI": 4})
    result = evaluate(y, score, {"tone": group}, **FAST)
    tests = result.tests[result.tests["attribute"] == "tone"]
    assert len(tests) == 2
    assert (tests["flag"] == "insufficient").all()
    assert tests["p_value"].isna().all() and tests["p_adjusted"].isna().all()
    assert tests["note"].str.contains("fewer than two groups flagged ok").all()
    assert (tests["groups"].map(list) == [["tone=I-II"]] * 2).all()
