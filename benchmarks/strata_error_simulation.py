"""Audits by estimated skin tone against the truth: attenuation, coverage and bounds.

A simulation with known truth (issue: audits that stay right when skin tone is
estimated). Each repetition draws a cohort of binary cases whose true
Fitzpatrick group is known, a model that is worse on true V-VI (accuracy about
0.15 lower, AUROC 0.20 lower), and strata from an estimator that agrees with the
true group for about half of the cases, with errors two groups away as well as
to neighbours (:data:`fairderm.metrics.PUBLISHED_CONFUSION`-like). A validation
sample of 150 cases is drawn stratified by estimated group (50 per group) and
its true groups revealed.

Reported, over the repetitions:

* the naive gap (by estimated group) against the true gap: the attenuation;
* coverage of the corrected 95% intervals of per-group accuracy, sensitivity
  and AUROC and of the V-VI minus I-II differences (target 93-97%);
* the corrected intervals' width against using the 150 labelled cases alone,
  two ways: the same design-weighted estimator with a membership model that
  knows nothing (intercept only: the labelled cases alone, weighted by their
  inclusion probabilities, which is what a valid labelled-only estimate must
  do) and the labelled cases taken unweighted (narrower, but biased towards the
  estimated groups that were over-sampled);
* without labels: how often the bounds contain the true V-VI minus I-II
  accuracy difference and the true max-min gap, and the gate's verdict on the
  accuracy-gap rule (must not be PASS).

Run: ``python benchmarks/strata_error_simulation.py --repetitions 200 [--clusters]``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from fairderm.metrics import StrataErrorModel, _strata_correct, evaluate

GROUPS = ("I-II", "III-IV", "V-VI")
TRUE_SHARES = np.array([0.40, 0.35, 0.25])
#: P(estimated | true): about 50% agreement, errors two groups away included.
CONFUSION = np.array([
    [0.55, 0.30, 0.15],
    [0.25, 0.45, 0.30],
    [0.15, 0.35, 0.50],
])
PREVALENCE = 0.3
THRESHOLD_LOGIT = 1.42
#: Binormal separation d' of the model: AUROC = Phi(d' / sqrt(2)).
SEPARATION = {"I-II": 2.0, "III-IV": 2.0, "V-VI": None}
METRICS = ("accuracy", "sensitivity", "auroc")


@dataclass(frozen=True)
class Truth:
    """Population values of each metric by true group."""

    values: dict[tuple[str, str], float]

    def gap(self, metric: str) -> float:
        return self.values[(metric, "V-VI")] - self.values[(metric, "I-II")]


def _dark_separation() -> float:
    light_auc = norm.cdf(SEPARATION["I-II"] / np.sqrt(2))
    return float(np.sqrt(2) * norm.ppf(light_auc - 0.20))


def _accuracy(separation: float, shift: float) -> float:
    """Accuracy of s = d y + shift + N(0, 1) thresholded at THRESHOLD_LOGIT."""
    sensitivity = norm.sf(THRESHOLD_LOGIT - separation - shift)
    specificity = norm.cdf(THRESHOLD_LOGIT - shift)
    return PREVALENCE * sensitivity + (1 - PREVALENCE) * specificity


def _dark_shift(separation: float) -> float:
    """Upward score shift of V-VI (more false positives) that makes its accuracy 0.15 below I-II's."""
    from scipy.optimize import brentq

    target = _accuracy(SEPARATION["I-II"], 0.0) - 0.15
    return float(brentq(lambda shift: _accuracy(separation, shift) - target, 0.0, 3.0))


DARK_SEPARATION = _dark_separation()
DARK_SHIFT = _dark_shift(DARK_SEPARATION)


def truth() -> Truth:
    values = {}
    for group in GROUPS:
        separation = SEPARATION[group] or DARK_SEPARATION
        shift = DARK_SHIFT if group == "V-VI" else 0.0
        values[("accuracy", group)] = _accuracy(separation, shift)
        values[("sensitivity", group)] = float(norm.sf(THRESHOLD_LOGIT - separation - shift))
        values[("auroc", group)] = float(norm.cdf(separation / np.sqrt(2)))
    return Truth(values)


@dataclass
class Cohort:
    y: np.ndarray
    score: np.ndarray
    true_group: np.ndarray
    estimated: np.ndarray
    patient: np.ndarray | None
    labelled: np.ndarray
    inclusion: np.ndarray


def draw(rng: np.random.Generator, n: int = 2000, n_labels: int = 150, clusters: bool = False) -> Cohort:
    """One cohort; with ``clusters``, 1-4 images per patient sharing group and a patient effect."""
    if clusters:
        sizes = rng.integers(1, 5, size=n)
        sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
        patient = np.repeat(np.arange(sizes.size), sizes)[:n]
        patient_group = rng.choice(3, size=sizes.size, p=TRUE_SHARES)
        true_code = patient_group[patient]
        effect = rng.normal(0.0, 0.5, size=sizes.size)[patient]
    else:
        patient = None
        true_code = rng.choice(3, size=n, p=TRUE_SHARES)
        effect = np.zeros(n)
    y = (rng.random(n) < PREVALENCE).astype(np.int64)
    separation = np.where(true_code == 2, DARK_SEPARATION, SEPARATION["I-II"])
    shift = np.where(true_code == 2, DARK_SHIFT, 0.0)
    # The patient effect moves scores of both classes alike, keeping each group's
    # marginal score distribution binormal with unit variance.
    noise = np.sqrt(1.0 - 0.25) * rng.standard_normal(n) + effect if clusters else rng.standard_normal(n)
    logit = separation * y + shift + noise
    score = 1.0 / (1.0 + np.exp(-(logit - THRESHOLD_LOGIT) * 1.0))
    estimated_code = np.array([rng.choice(3, p=CONFUSION[t]) for t in true_code])
    labelled = np.zeros(n, dtype=bool)
    inclusion = np.full(n, np.nan)
    per_group = n_labels // 3
    for code in range(3):
        members = np.flatnonzero(estimated_code == code)
        take = min(per_group, members.size)
        labelled[rng.choice(members, size=take, replace=False)] = True
        inclusion[members] = take / members.size
    groups = np.array(GROUPS, dtype=object)
    return Cohort(y, score, groups[true_code], groups[estimated_code], patient, labelled,
                  np.where(labelled, inclusion, np.nan))


def _rows(result) -> dict:
    """The rows of ``result.groups`` by (attribute, metric, group): one pass, not a scan of the table per row
    looked up (that took a tenth of the simulation's time)."""
    frame = result.groups
    rows: dict = {}
    for row in frame.itertuples(index=False):
        rows.setdefault((row.attribute, row.metric, row.group), row)
    return rows


def _row(rows: dict, attribute: str, metric: str, group: str):
    return rows[(attribute, metric, f"{attribute}={group}")]


def _diff(result, attribute: str, metric: str):
    frame = result.disparities.frame
    row = frame[(frame["attribute"] == attribute) & (frame["metric"] == metric) & (frame["kind"] == "diff_vs_ref")
                & (frame["group"] == f"{attribute}=V-VI")]
    return row.iloc[0]


@contextlib.contextmanager
def labelled_alone() -> Iterator[None]:
    """Within it, the membership model knows nothing (the overall shares for every case): the correction then
    rests on the labelled cases alone, design-weighted -- the baseline the estimated group must beat."""
    informed = _strata_correct.membership_probabilities

    def overall_only(groups, count):
        # count: (n,) or (resamples, n), as the membership model is given it
        rows = count.reshape(-1, count.shape[-1])
        shares = np.stack([_overall(groups, row) for row in rows])
        return np.broadcast_to(shares[:, None, :], (len(rows), groups.true.size, shares.shape[1])).reshape(
            *count.shape, shares.shape[1])

    _strata_correct.membership_probabilities = overall_only
    try:
        yield
    finally:
        _strata_correct.membership_probabilities = informed


def _overall(groups, count) -> np.ndarray:
    labelled = groups.labelled & (count > 0)
    weight = count[labelled] / groups.inclusion[labelled]
    shares = np.bincount(groups.true[labelled], weights=weight, minlength=len(groups.true_values))
    return shares / shares.sum()


def run(repetitions: int, n_boot: int, clusters: bool, seed: int = 0, progress: bool = True,
        unweighted: bool = True) -> dict:
    """Coverage, widths, attenuation and bound coverage over ``repetitions`` cohorts.

    ``unweighted=False`` skips the labelled cases' own, unweighted evaluation (a quarter of the work): the
    report's ``width_ratio_unweighted`` is then empty; every other number is the same (each evaluation draws
    its replicates from its own seed)."""
    rng = np.random.default_rng(seed)
    known = truth()
    covered: dict[str, list[bool]] = {}
    widths: dict[str, list[tuple[float, float]]] = {}
    naive_gaps, true_gap = [], known.gap("accuracy")
    bound_hits, gap_bound_hits, verdicts = [], [], []
    true_maxmin = max(known.values[("accuracy", g)] for g in GROUPS) - min(known.values[("accuracy", g)]
                                                                          for g in GROUPS)
    common = {"metrics": list(METRICS), "n_boot": n_boot, "ci": "percentile", "tests": False, "case_mix": False,
              "power": False, "reference": "I-II", "min_group_size": 10, "min_positives": 5}
    start = time.perf_counter()
    for repetition in range(repetitions):
        cohort = draw(rng, clusters=clusters)
        seed_r = int(rng.integers(1 << 31))
        corrected = evaluate(cohort.y, cohort.score, {"tone": cohort.estimated}, cluster=cohort.patient,
                             true_groups=np.where(cohort.labelled, cohort.true_group, None),
                             inclusion_prob=cohort.inclusion, seed=seed_r, **common)
        labelled_only = evaluate(cohort.y[cohort.labelled], cohort.score[cohort.labelled],
                                 {"tone": cohort.true_group[cohort.labelled]},
                                 cluster=None if cohort.patient is None else cohort.patient[cohort.labelled],
                                 seed=seed_r, **common) if unweighted else None
        with labelled_alone():
            weighted_only = evaluate(cohort.y, cohort.score, {"tone": cohort.estimated}, cluster=cohort.patient,
                                     true_groups=np.where(cohort.labelled, cohort.true_group, None),
                                     inclusion_prob=cohort.inclusion, seed=seed_r, **common)
        corrected_rows, weighted_rows = _rows(corrected), _rows(weighted_only)
        alone_rows = _rows(labelled_only) if unweighted else None
        for metric in METRICS:
            for group in GROUPS:
                row = _row(corrected_rows, "tone:true", metric, group)
                key = f"{metric} {group}"
                covered.setdefault(key, []).append(row.ci_low <= known.values[(metric, group)] <= row.ci_high)
                alone = _row(alone_rows, "tone", metric, group) if unweighted else None
                weighted = _row(weighted_rows, "tone:true", metric, group)
                widths.setdefault(key, []).append((_width(row), _width(weighted), _width(alone)))
            row = _diff(corrected, "tone:true", metric)
            key = f"{metric} V-VI - I-II"
            covered.setdefault(key, []).append(row.ci_low <= known.gap(metric) <= row.ci_high)
            alone = _diff(labelled_only, "tone", metric) if unweighted else None
            weighted = _diff(weighted_only, "tone:true", metric)
            widths.setdefault(key, []).append((_width(row), _width(weighted), _width(alone)))
        naive_gaps.append(_diff(corrected, "tone", "accuracy").estimate)
        bounded = evaluate(cohort.y, cohort.score, {"tone": cohort.estimated}, cluster=cohort.patient,
                           strata_error=StrataErrorModel(GROUPS, CONFUSION, "simulation"), seed=seed_r,
                           **{**common, "metrics": ["accuracy", "sensitivity"]})
        diff = _diff(bounded, "tone:bounds", "accuracy")
        bound_hits.append(diff.ci_low <= true_gap <= diff.ci_high)
        frame = bounded.disparities.frame
        gap_row = frame[(frame["attribute"] == "tone:bounds") & (frame["metric"] == "accuracy")
                        & (frame["kind"] == "gap")].iloc[0]
        gap_bound_hits.append(gap_row.ci_low <= true_maxmin <= gap_row.ci_high)
        verdicts.append(_gate_verdict(bounded))
        if progress:
            elapsed = time.perf_counter() - start
            print(f"\r{repetition + 1}/{repetitions} cohorts, {elapsed:.0f} s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return {
        "true_gap": true_gap,
        "naive_gap": float(np.mean(naive_gaps)),
        "coverage": {key: float(np.mean(values)) for key, values in covered.items()},
        "width_ratio": {key: _median_ratio([(a, b) for a, b, _ in values]) for key, values in widths.items()},
        "width_ratio_unweighted": {key: _median_ratio([(a, c) for a, _, c in values])
                                   for key, values in widths.items()} if unweighted else {},
        "bound_coverage_diff": float(np.mean(bound_hits)),
        "bound_coverage_gap": float(np.mean(gap_bound_hits)),
        "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
    }


def _width(row) -> float:
    """An interval's width (NaN for an evaluation not made)."""
    return math.nan if row is None else row.ci_high - row.ci_low


def _median_ratio(pairs: list[tuple[float, float]]) -> float:
    """Median of a / b over the cohorts where both widths exist (a degenerate comparator interval is skipped)."""
    ratios = [a / b for a, b in pairs if np.isfinite(a) and np.isfinite(b) and b > 0]
    return float(np.median(ratios)) if ratios else float("nan")


def _gate_verdict(result) -> str:
    """The accuracy-gap rule of the example policy, on the bounded rows."""
    from fairderm.gate import evaluate_gate, policy_from_dict

    policy = policy_from_dict({"name": "sim", "rules": [{
        "id": "accuracy-gap", "metric": "accuracy", "disparity": "gap", "attribute": "tone",
        "statistic": "ci_high", "comparator": "<=", "threshold": 0.10}]})
    return evaluate_gate(result, policy).verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--clusters", action="store_true", help="1-4 images per patient with a patient effect")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run(args.repetitions, args.n_boot, args.clusters, args.seed)
    print(f"true V-VI - I-II accuracy difference {report['true_gap']:+.3f}; naive (by estimated group) "
          f"{report['naive_gap']:+.3f}: attenuated to {report['naive_gap'] / report['true_gap']:.0%}")
    print("coverage of the corrected 95% intervals (target 93-97%); median width against the 150 labelled cases "
          "alone, design-weighted / unweighted:")
    for key, value in report["coverage"].items():
        print(f"  {key:28s} {value:6.1%}   width x{report['width_ratio'][key]:.2f} / "
              f"x{report['width_ratio_unweighted'][key]:.2f}")
    values = list(report["coverage"].values())
    print(f"  mean coverage {np.mean(values):.1%} (min {min(values):.1%}, max {max(values):.1%})")
    print(f"bounds without labels contain the true V-VI - I-II difference in {report['bound_coverage_diff']:.1%} "
          f"and the true max-min gap in {report['bound_coverage_gap']:.1%} of repetitions")
    print(f"gate verdicts on the accuracy-gap rule without labels: {report['verdicts']}")


if __name__ == "__main__":
    main()
