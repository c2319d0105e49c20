"""The gate on real `fairderm.metrics.evaluate(...).to_dict()` output (simulated models, known truth)."""

from __future__ import annotations

import numpy as np
import pytest

from fairderm.gate import Verdict, evaluate_gate, policy_from_dict
from tests.helpers.gate_metrics import DEMO_POLICY

metrics = pytest.importorskip("fairderm.metrics")

POLICY = policy_from_dict(DEMO_POLICY)


def _simulate(sizes: dict[str, int], dark_miss_rate: float = 0.0, seed: int = 0) -> dict:
    """Calibrated, confident scores (sensitivity ~0.9); in V-VI a share of positives is missed."""
    rng = np.random.default_rng(seed)
    tone = np.concatenate([np.full(n, group) for group, n in sizes.items()])
    p = np.where(rng.random(len(tone)) < 0.5, 0.9, 0.1)
    y = (rng.random(len(tone)) < p).astype(int)
    score = p.copy()
    missed = (tone == "V-VI") & (y == 1) & (rng.random(len(tone)) < dark_miss_rate)
    score[missed] = 0.2
    result = metrics.evaluate(y, score, {"fitzpatrick_est": tone}, n_boot=200, seed=0,
                              metrics=["accuracy", "sensitivity", "ece"])
    return result.to_dict()


@pytest.mark.parametrize(
    ("sizes", "dark_miss_rate", "expected"),
    [
        ({"I-II": 500, "III-IV": 500, "V-VI": 500}, 0.0, Verdict.PASS),
        ({"I-II": 500, "III-IV": 500, "V-VI": 500}, 0.6, Verdict.FAIL),
        ({"I-II": 500, "III-IV": 500, "V-VI": 12}, 0.0, Verdict.INSUFFICIENT_EVIDENCE),
    ],
    ids=["fair-model-passes", "missed-dark-positives-fail", "small-dark-group-is-insufficient"],
)
def test_gate_verdict_on_evaluated_metrics(sizes, dark_miss_rate, expected) -> None:
    result = evaluate_gate(_simulate(sizes, dark_miss_rate), POLICY)
    assert result.verdict is expected, result.summary()
    if expected is Verdict.FAIL:
        assert result.rules[0].decisive_group == "V-VI"
    if expected is Verdict.INSUFFICIENT_EVIDENCE:
        by_id = {r.rule.id: r for r in result.rules}
        assert by_id["min-n"].verdict is Verdict.INSUFFICIENT_EVIDENCE
        assert Verdict.FAIL not in {r.verdict for r in result.rules}


def test_gap_rule_names_worst_and_best_group_from_evaluated_metrics() -> None:
    result = evaluate_gate(_simulate({"I-II": 500, "III-IV": 500, "V-VI": 500}, 0.6), POLICY)
    gap = next(r for r in result.rules if r.rule.id == "accuracy-gap")
    assert gap.checks[0].group.startswith("gap (V-VI vs ")


def test_gate_reads_the_result_and_its_json_form_alike() -> None:
    data = _simulate({"I-II": 300, "III-IV": 300, "V-VI": 40}, dark_miss_rate=0.3)
    from_json = evaluate_gate(data, POLICY, metrics_sha256="same").to_dict()
    from_result = evaluate_gate(metrics.EvaluationResult.from_dict(data), POLICY, metrics_sha256="same").to_dict()
    assert from_result == from_json
