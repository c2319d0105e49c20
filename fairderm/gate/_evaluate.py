"""Checking a policy against the group metrics and disparities of ``metrics.json``.

Decision rule for one value with interval ``[ci_low, ci_high]`` checked as
``statistic comparator threshold``:

1. PASS when the chosen statistic satisfies the comparison ('interval' means
   the conservative bound: ``ci_low`` for ``>=``/``>``, ``ci_high`` for
   ``<=``/``<``, so the whole interval must satisfy it);
2. otherwise FAIL when the whole interval is on the wrong side of the
   threshold (every value it holds violates the comparison);
3. otherwise INSUFFICIENT_EVIDENCE: the interval straddles the threshold.

So a lenient rule (``ci_low <= 0.05`` on a gap: "not significantly above")
can PASS or FAIL but never be insufficient, and a strict one (``ci_high <=
0.05``: "significantly below") PASSes only with enough data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fairderm.errors import InputError
from fairderm.gate._policy import COMPARATORS, Policy, Rule
from fairderm.gate._result import GateResult, GroupCheck, RuleResult
from fairderm.gate._verdict import Verdict, combine
from fairderm.metrics import DisparityRow, EvaluationResult, GroupKey, GroupRow


def _as_result(metrics: Mapping[str, Any] | EvaluationResult, source: str) -> EvaluationResult:
    """The metrics as a result; a mapping must follow the metrics.json contract."""
    if isinstance(metrics, EvaluationResult):
        return metrics
    if not isinstance(metrics, Mapping):
        raise InputError("metrics must be an EvaluationResult or a mapping (the metrics.json contract)",
                         source=source)
    if "groups" not in metrics:
        raise InputError("no 'groups' table", source=source, column="groups")
    try:
        return EvaluationResult.from_dict(metrics)
    except InputError as exc:
        raise InputError(exc.reason, source=source, column=exc.column) from None


def _named(key: GroupKey, name: str) -> bool:
    """Whether a policy's group name (``V-VI`` or ``fitzpatrick_est=V-VI``) names the group ``key``."""
    return str(key) == name or (len(key) == 1 and key.label == name)


def _excluded(key: GroupKey, rule: Rule) -> bool:
    return any(_named(key, name) for name in rule.exclude_groups)


def _short_name(name: str, attribute: str) -> str:
    """A policy's group name without its attribute prefix."""
    return name.removeprefix(f"{attribute}=")


def decide(
    estimate: float | None,
    ci_low: float | None,
    ci_high: float | None,
    *,
    statistic: str,
    comparator: str,
    threshold: float,
) -> tuple[Verdict, float | None, str]:
    """Verdict for one value with its interval; returns (verdict, compared value, reason).

    See the module docstring for the decision rule.
    """
    lower_is_better = comparator in ("<=", "<")
    if statistic == "interval":
        statistic = "ci_high" if lower_is_better else "ci_low"
    value = {"estimate": estimate, "ci_low": ci_low, "ci_high": ci_high}[statistic]
    compare = COMPARATORS[comparator]
    if estimate is None:
        return Verdict.INSUFFICIENT_EVIDENCE, None, "estimate undefined (no cases or no positives?)"
    if value is None:
        return Verdict.INSUFFICIENT_EVIDENCE, None, f"no {statistic} (interval undefined)"
    if compare(value, threshold):
        return Verdict.PASS, value, f"{statistic} {value:.4g} {comparator} {threshold:g}"
    # The bound nearest the threshold decides whether the whole interval violates it.
    nearest = ci_low if lower_is_better else ci_high
    if nearest is not None and not compare(nearest, threshold):
        interval = f"[{_fmt(ci_low)}, {_fmt(ci_high)}]"
        return Verdict.FAIL, value, f"whole interval {interval} violates {comparator} {threshold:g}"
    return (
        Verdict.INSUFFICIENT_EVIDENCE,
        value,
        f"interval [{_fmt(ci_low)}, {_fmt(ci_high)}] straddles {threshold:g}",
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _group_check(row: GroupRow, rule: Rule) -> GroupCheck:
    if row.basis == "bounded":
        return _range_check(row, rule)
    base = dict(group=row.label, estimate=row.estimate, ci_low=row.ci_low, ci_high=row.ci_high, n=row.n,
                n_pos=row.n_pos, flag=row.flag)
    if row.flag != "ok":
        if rule.small_groups == "ignore":
            return GroupCheck(**base, value=None, verdict=None, reason=f"left out: flagged {row.flag!r}")
        return GroupCheck(
            **base, value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
            reason=f"flagged {row.flag!r} (n={row.n}): too small to judge",
        )
    verdict, value, reason = decide(
        row.estimate, row.ci_low, row.ci_high, statistic=rule.statistic, comparator=str(rule.comparator),
        threshold=float(rule.threshold),  # type: ignore[arg-type]
    )
    return GroupCheck(**base, value=value, verdict=verdict, reason=reason)


def _range_check(row: GroupRow, rule: Rule) -> GroupCheck:
    """A bounded value: PASS only if its whole range meets the rule, FAIL only if the whole range violates it."""
    low, high = row.ci_low, row.ci_high
    base = dict(group=row.label, estimate=None, ci_low=low, ci_high=high, n=row.n, n_pos=row.n_pos,
                flag=row.flag)
    if low is None or high is None:
        return GroupCheck(**base, value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
                          reason="range undefined under the strata error model")
    verdict, value, _ = decide(low, low, high, statistic="interval", comparator=str(rule.comparator),
                               threshold=float(rule.threshold))  # type: ignore[arg-type]
    span, test = f"[{_fmt(low)}, {_fmt(high)}]", f"{rule.comparator} {rule.threshold:g}"
    reason = {Verdict.PASS: f"whole range {span} meets {test}", Verdict.FAIL: f"whole range {span} violates {test}",
              Verdict.INSUFFICIENT_EVIDENCE: f"range {span} straddles {rule.threshold:g}"}[verdict]
    return GroupCheck(**base, value=value, verdict=verdict, reason=f"{reason} (true groups bounded)")


def _larger(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _absent(name: str, known: Sequence[str]) -> GroupCheck:
    return GroupCheck(
        group=name, estimate=None, ci_low=None, ci_high=None, n=0, n_pos=None, flag="absent",
        value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
        reason=f"group not in metrics.json (no cases?); known groups: {', '.join(known) or 'none'}",
    )


def _select(rows: list[GroupRow], rule: Rule) -> list[tuple[str, GroupRow | None]]:
    """(name, row or None when absent) for the groups a rule names."""
    names = rule.group_names
    if names is None:
        return [(row.label, row) for row in rows if not _excluded(row.key, rule)]
    return [(name, next((row for row in rows if _named(row.key, name)), None)) for name in names]


def _decisive(checks: list[GroupCheck], comparator: str) -> GroupCheck | None:
    """The group that decides a rule: most severe verdict, then least favourable value."""
    counted = [c for c in checks if c.verdict is not None]
    if not counted:
        return None
    sign = -1.0 if comparator in ("<=", "<") else 1.0

    def key(check: GroupCheck) -> tuple[int, float]:
        value = check.value if check.value is not None else check.estimate
        return (-check.verdict.severity, sign * value if value is not None else math.inf)  # type: ignore[union-attr]

    return min(counted, key=key)


def _error(rule: Rule, message: str) -> RuleResult:
    return RuleResult(rule=rule, verdict=Verdict.ERROR, message=message, checks=[], decisive_group=None)


def _finish(rule: Rule, checks: list[GroupCheck]) -> RuleResult:
    counted = [c for c in checks if c.verdict is not None]
    if not counted:
        return _error(rule, "no group left to check (all were left out)")
    verdict = combine(c.verdict for c in counted)  # type: ignore[misc]
    decisive = _decisive(checks, str(rule.comparator or ">="))
    if rule.check == "sample_size":
        short = [c for c in counted if c.verdict is not Verdict.PASS]
        message = (
            f"{len(short)} of {len(counted)} groups too small: " + "; ".join(f"{c.group} {c.reason}" for c in short)
            if short else f"all {len(counted)} groups large enough"
        )
    elif decisive is not None:
        message = f"{decisive.group}: {decisive.reason}"
        others = [c for c in counted if c is not decisive and c.verdict is not Verdict.PASS]
        if others:
            message += f" (+{len(others)} more group(s) not passing)"
    else:
        message = verdict.value
    return RuleResult(
        rule=rule, verdict=verdict, message=message, checks=checks,
        decisive_group=decisive.group if decisive is not None else None,
    )


def _metric_rule(rule: Rule, result: EvaluationResult, attribute: str) -> RuleResult:
    of_metric = result.by_group(rule.metric)
    if not of_metric:
        known = sorted(result.metric_names)
        return _error(rule, f"metric {rule.metric!r} not in metrics.json (metrics: {', '.join(known)})")
    rows = [row for row in of_metric if row.attribute == attribute]
    if not rows:
        known = sorted({row.attribute for row in of_metric})
        return _error(rule, f"attribute {attribute!r} not in metrics.json for {rule.metric} "
                            f"(attributes: {', '.join(known)})")
    known_names = [row.label for row in rows]
    checks = [
        _group_check(row, rule) if row is not None else _absent(name, known_names)
        for name, row in _select(rows, rule)
    ]
    return _finish(rule, checks)


def _disparity_rule(rule: Rule, result: EvaluationResult, attribute: str) -> RuleResult:
    kind = str(rule.disparity)
    of_kind = result.gap(str(rule.metric), kind=kind)
    if not of_kind:
        return _error(rule, f"no {kind} disparity for metric {rule.metric!r} in metrics.json")
    records = [d for d in of_kind if d.attribute == attribute]
    if not records:
        known = sorted({d.attribute for d in of_kind})
        return _error(rule, f"no {kind} of {rule.metric} for attribute {attribute!r} "
                            f"(attributes: {', '.join(known) or 'none recorded'})")
    # Disparity records carry no group size: borrow it (and the group's flag) from the group rows.
    sizes = {row.key: row for row in result.by_group(rule.metric, attribute) if not _excluded(row.key, rule)}
    checks: list[GroupCheck] = []
    if kind == "diff_vs_ref":
        by_group = [_as_group_row(d, sizes.get(d.key)) for d in records]
        known_names = [row.label for row in by_group]
        for name, row in _select(by_group, rule):
            checks.append(_absent(name, known_names) if row is None else _group_check(row, rule))
    else:
        for record in records:
            # metrics.json flags a gap or ratio that rests on fewer than two 'ok' groups
            check = _group_check(_as_group_row(record, None), rule)
            checks.append(check.relabel(_disparity_label(record)))
        # A gap leaves unranked small groups out, so it cannot vouch for them.
        for row in sizes.values():
            if row.flag != "ok" and rule.small_groups == "insufficient":
                checks.append(GroupCheck(
                    group=row.label, estimate=row.estimate, ci_low=row.ci_low, ci_high=row.ci_high, n=row.n,
                    n_pos=row.n_pos, flag=row.flag, value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
                    reason=f"flagged {row.flag!r} (n={row.n}): not covered by the {kind}",
                ))
    return _finish(rule, checks)


def _as_group_row(record: DisparityRow, sized: GroupRow | None) -> GroupRow:
    """A disparity as a value to check, with its group's size and (when its own is ok) its group's flag."""
    flag = record.flag if record.flag != "ok" or sized is None else sized.flag
    return GroupRow(key=record.key if record.key is not None else GroupKey(), attribute=record.attribute,
                    metric=record.metric, estimate=record.estimate, ci_low=record.ci_low, ci_high=record.ci_high,
                    n=None if sized is None else sized.n, n_pos=None if sized is None else sized.n_pos, flag=flag,
                    basis=record.basis, bound_low=record.bound_low, bound_high=record.bound_high)


def _disparity_label(record: DisparityRow) -> str:
    """``gap (V-VI vs I-II)``: for gaps and ratios metrics.json names the worst group and the best."""
    if record.key is None:
        return record.kind
    if record.reference is not None:
        return f"{record.kind} ({record.key.label} vs {record.reference.label})"
    return f"{record.kind} ({record.key.label})"


def _sample_size_rule(rule: Rule, result: EvaluationResult, attribute: str) -> RuleResult:
    rows = result.by_group(rule.metric, attribute)
    if not rows:
        known = sorted({row.attribute for row in result.by_group()})
        return _error(rule, f"attribute {attribute!r} not in metrics.json (attributes: {', '.join(known)})")
    # n is per group; n_pos can differ by metric, so take the largest recorded count.
    sizes: dict[str, tuple[int | None, int | None]] = {}
    for row in rows:
        old_n, old_pos = sizes.get(row.label, (None, None))
        sizes[row.label] = (_larger(row.n, old_n), _larger(row.n_pos, old_pos))
    excluded = {row.label for row in rows if _excluded(row.key, rule)}
    names = rule.group_names or [g for g in sizes if g not in excluded]
    checks = []
    for name in names:
        key = next((g for g in sizes if g == name or g == _short_name(name, attribute)), None)
        n, n_pos = sizes[key] if key is not None else (0, 0)
        short = []
        if rule.min_n is not None and (n or 0) < rule.min_n:
            short.append(f"n={n or 0} < {rule.min_n}")
        if rule.min_pos is not None and (n_pos or 0) < rule.min_pos:
            short.append(f"n_pos={n_pos or 0} < {rule.min_pos}")
        verdict = Verdict.INSUFFICIENT_EVIDENCE if short else Verdict.PASS
        reason = "; ".join(short) if short else f"n={n}" + (f", n_pos={n_pos}" if n_pos is not None else "")
        if key is None:
            reason += " (group absent)"
        checks.append(GroupCheck(
            group=_short_name(name, attribute), estimate=None, ci_low=None, ci_high=None, n=n, n_pos=n_pos,
            flag="absent" if key is None else "ok", value=float(n or 0), verdict=verdict, reason=reason,
        ))
    return _finish(rule, checks)


#: Attributes holding true-group rows for an estimated attribute, in order of preference.
TRUE_GROUP_SUFFIXES = ((":true", None), (":bounds", "bounded"))


def _true_group_attribute(rule: Rule, result: EvaluationResult) -> str | None:
    """The attribute with corrected (else bounded) rows for the rule's attribute, if metrics.json has one."""
    present = {row.attribute for row in result.by_group()}
    for suffix, _ in TRUE_GROUP_SUFFIXES:
        if rule.attribute + suffix in present:
            return rule.attribute + suffix
    return None


def _groups_without_truth(rule: Rule, result: EvaluationResult, true_attribute: str) -> list[GroupCheck]:
    """Estimated groups the rule covers that have no true-group row (no labelled case of them): unjudged."""
    def names(attribute: str) -> set[str]:
        return {row.label for row in result.by_group(rule.metric, attribute)
                if row.flag not in ("missing_value", "empty") and not _excluded(row.key, rule)}

    wanted = names(rule.attribute)
    if rule.group_names is not None:
        wanted &= {_short_name(name, rule.attribute) for name in rule.group_names}
    return [GroupCheck(group=name, estimate=None, ci_low=None, ci_high=None, n=None, n_pos=None, flag="absent",
                       value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
                       reason="no labelled case of this group: its metrics by true group cannot be estimated")
            for name in sorted(wanted - names(true_attribute))]


def _decide_on(rule: Rule, result: EvaluationResult, attribute: str) -> RuleResult:
    if rule.check == "sample_size":
        return _sample_size_rule(rule, result, attribute)
    if rule.check == "disparity":
        return _disparity_rule(rule, result, attribute)
    return _metric_rule(rule, result, attribute)


def _basis(result: EvaluationResult, attribute: str) -> str | None:
    return next((row.basis for row in result.by_group(attribute=attribute) if row.basis), None)


def _rule_result(rule: Rule, result: EvaluationResult) -> RuleResult:
    """One rule's verdict; on true-group rows when the rule's attribute was estimated and corrected or bounded.

    A sample-size rule then counts the true groups' (estimated) sizes, and a
    true group without a labelled case is absent: too few to judge.
    """
    naive = _decide_on(rule, result, rule.attribute)
    true_attribute = _true_group_attribute(rule, result) if rule.strata == "auto" else None
    if true_attribute is None:
        return dataclasses.replace(naive, basis=_basis(result, rule.attribute))
    true_basis = _basis(result, true_attribute)
    label = "bounded true groups" if true_basis == "bounded" else "true groups (corrected)"
    if naive.verdict is not Verdict.ERROR and rule.metric is not None and not result.by_group(rule.metric,
                                                                                               true_attribute):
        # The strata are known to be estimated, and this metric has no figure by true group (e.g. AUROC or
        # ECE cannot be bounded): the face-value figure cannot vouch for the true groups.
        return dataclasses.replace(
            naive, verdict=Verdict.INSUFFICIENT_EVIDENCE, basis=true_basis, naive_verdict=naive.verdict,
            message=f"[{label}] {rule.metric} has no figure by true group, and the estimated groups can hide a "
                    f"disparity; by estimated groups at face value: {naive.verdict.value}")
    decided = _decide_on(rule, result, true_attribute)
    unseen = _groups_without_truth(rule, result, true_attribute)
    if unseen and decided.verdict is not Verdict.ERROR:
        decided = _finish(rule, [*decided.checks, *unseen])
    message = (f"[{label}] {decided.message}; by estimated groups at face value: {naive.verdict.value}")
    return dataclasses.replace(decided, message=message, basis=true_basis, naive_verdict=naive.verdict)


def evaluate_gate(
    metrics: EvaluationResult | Mapping[str, Any],
    policy: Policy,
    *,
    metrics_sha256: str | None = None,
    metrics_source: str | None = None,
    policy_source: str | None = None,
) -> GateResult:
    """Check every rule of ``policy`` against stored metrics; nothing is recomputed.

    Parameters
    ----------
    metrics
        An ``EvaluationResult`` (see :func:`fairderm.metrics.read_metrics`),
        or the ``metrics.json`` content (the contract's dict).
    policy
        A validated :class:`Policy` (see :func:`load_policy`).
    metrics_sha256, metrics_source, policy_source
        Provenance recorded in the result; the metrics hash defaults to the
        SHA-256 of the canonical JSON form of ``metrics``.

    Returns
    -------
    GateResult
        Per-rule verdicts and the overall verdict, the most severe rule
        verdict (ERROR > FAIL > INSUFFICIENT_EVIDENCE > PASS).

    Raises
    ------
    InputError
        When ``metrics`` does not follow the metrics.json contract (no
        ``groups`` table, records lacking contract columns). A rule naming a
        metric or attribute that is absent is not an exception: that rule's
        verdict is ERROR and the others are still checked.
    """
    from fairderm._io import sha256_json

    result = _as_result(metrics, metrics_source or "metrics")
    results = [_rule_result(rule, result) for rule in policy.rules]
    config = result.config
    return GateResult(
        policy=policy,
        verdict=combine(r.verdict for r in results),
        rules=results,
        metrics_sha256=metrics_sha256 or sha256_json(metrics if isinstance(metrics, Mapping) else result.to_dict()),
        metrics_source=metrics_source,
        policy_source=policy_source,
        metrics_config={k: config[k] for k in sorted(config) if k != "versions"},
    )
