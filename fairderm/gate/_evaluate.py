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

_GROUP_KEYS = ("group", "metric", "estimate", "ci_low", "ci_high", "n", "n_pos", "flag")
_DISPARITY_KEYS = ("metric", "kind", "group", "estimate", "ci_low", "ci_high")


def _number(value: Any) -> float | None:
    """A finite float, or None for null/NaN/inf (metrics.json writes NaN as null)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _attribute_of(record: Mapping[str, Any]) -> str:
    """The record's attribute; derived from ``attr=value`` group names when absent."""
    attribute = record.get("attribute")
    if attribute:
        return str(attribute)
    group = str(record.get("group", ""))
    if group == "all":
        return "all"
    return "&".join(part.split("=", 1)[0].strip() for part in group.split(" & ")) if "=" in group else ""


def _check_records(records: Any, keys: tuple[str, ...], what: str, source: str) -> list[dict[str, Any]]:
    if not isinstance(records, list):
        raise InputError(f"'{what}' must be a list of records", source=source, column=what)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(f"{what}[{index}] is not a record", source=source, column=what)
        missing = [k for k in keys if k not in record]
        if missing:
            raise InputError(f"{what}[{index}] lacks {', '.join(missing)}", source=source, column=what)
    return records


def _metrics_tables(metrics: Any, source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate the parts of the metrics.json contract the gate reads."""
    if hasattr(metrics, "to_dict") and not isinstance(metrics, Mapping):
        metrics = metrics.to_dict()
    if not isinstance(metrics, Mapping):
        raise InputError("metrics must be a mapping (the metrics.json contract)", source=source)
    if "groups" not in metrics:
        raise InputError("no 'groups' table", source=source, column="groups")
    groups = _check_records(metrics["groups"], _GROUP_KEYS, "groups", source)
    disparities = _check_records(metrics.get("disparities", []), _DISPARITY_KEYS, "disparities", source)
    return groups, disparities


def _matches(group: str, name: str, attribute: str) -> bool:
    return group == name or group == f"{attribute}={name}"


def _excluded(record: Mapping[str, Any], rule: Rule, attribute: str) -> bool:
    return any(_matches(str(record["group"]), name, attribute) for name in rule.exclude_groups)


def _short(group: str, attribute: str) -> str:
    return group.removeprefix(f"{attribute}=")


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


def _group_check(record: Mapping[str, Any], rule: Rule, attribute: str) -> GroupCheck:
    if record.get("basis") == "bounded":
        return _range_check(record, rule, attribute)
    flag = str(record.get("flag") or "ok")
    estimate, low, high = (_number(record.get(k)) for k in ("estimate", "ci_low", "ci_high"))
    base = dict(
        group=_short(str(record["group"]), attribute),
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        n=_count(record.get("n")),
        n_pos=_count(record.get("n_pos")),
        flag=flag,
    )
    if flag != "ok":
        if rule.small_groups == "ignore":
            return GroupCheck(**base, value=None, verdict=None, reason=f"left out: flagged {flag!r}")
        return GroupCheck(
            **base, value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
            reason=f"flagged {flag!r} (n={base['n']}): too small to judge",
        )
    verdict, value, reason = decide(
        estimate, low, high, statistic=rule.statistic, comparator=str(rule.comparator),
        threshold=float(rule.threshold),  # type: ignore[arg-type]
    )
    return GroupCheck(**base, value=value, verdict=verdict, reason=reason)


def _range_check(record: Mapping[str, Any], rule: Rule, attribute: str) -> GroupCheck:
    """A bounded value: PASS only if its whole range meets the rule, FAIL only if the whole range violates it."""
    low, high = _number(record.get("ci_low")), _number(record.get("ci_high"))
    base = dict(group=_short(str(record["group"]), attribute), estimate=None, ci_low=low, ci_high=high,
                n=_count(record.get("n")), n_pos=_count(record.get("n_pos")), flag=str(record.get("flag") or "ok"))
    if low is None or high is None:
        return GroupCheck(**base, value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
                          reason="range undefined under the strata error model")
    verdict, value, _ = decide(low, low, high, statistic="interval", comparator=str(rule.comparator),
                               threshold=float(rule.threshold))  # type: ignore[arg-type]
    span, test = f"[{_fmt(low)}, {_fmt(high)}]", f"{rule.comparator} {rule.threshold:g}"
    reason = {Verdict.PASS: f"whole range {span} meets {test}", Verdict.FAIL: f"whole range {span} violates {test}",
              Verdict.INSUFFICIENT_EVIDENCE: f"range {span} straddles {rule.threshold:g}"}[verdict]
    return GroupCheck(**base, value=value, verdict=verdict, reason=f"{reason} (true groups bounded)")


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _larger(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _absent(name: str, known: Sequence[str]) -> GroupCheck:
    return GroupCheck(
        group=name, estimate=None, ci_low=None, ci_high=None, n=0, n_pos=None, flag="absent",
        value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
        reason=f"group not in metrics.json (no cases?); known groups: {', '.join(known) or 'none'}",
    )


def _select(
    records: list[dict[str, Any]], rule: Rule, attribute: str
) -> list[tuple[str, dict[str, Any] | None]]:
    """(name, record or None when absent) for the groups a rule names."""
    names = rule.group_names
    if names is None:
        return [(_short(str(r["group"]), attribute), r) for r in records if not _excluded(r, rule, attribute)]
    chosen = []
    for name in names:
        found = next((r for r in records if _matches(str(r["group"]), name, attribute)), None)
        chosen.append((name, found))
    return chosen


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


def _metric_rule(rule: Rule, groups: list[dict[str, Any]], attribute: str) -> RuleResult:
    of_metric = [r for r in groups if r["metric"] == rule.metric]
    if not of_metric:
        known = sorted({str(r["metric"]) for r in groups})
        return _error(rule, f"metric {rule.metric!r} not in metrics.json (metrics: {', '.join(known)})")
    records = [r for r in of_metric if _attribute_of(r) == attribute]
    if not records:
        known = sorted({_attribute_of(r) for r in of_metric})
        return _error(rule, f"attribute {attribute!r} not in metrics.json for {rule.metric} "
                            f"(attributes: {', '.join(known)})")
    known_names = [_short(str(r["group"]), attribute) for r in records]
    checks = [
        _group_check(record, rule, attribute) if record is not None else _absent(name, known_names)
        for name, record in _select(records, rule, attribute)
    ]
    return _finish(rule, checks)


def _disparity_rule(rule: Rule, groups: list[dict[str, Any]], disparities: list[dict[str, Any]],
                    attribute: str) -> RuleResult:
    of_kind = [d for d in disparities if d["metric"] == rule.metric and d["kind"] == rule.disparity]
    if not of_kind:
        return _error(rule, f"no {rule.disparity} disparity for metric {rule.metric!r} in metrics.json")
    records = [d for d in of_kind if _attribute_of(d) == attribute]
    if not records:
        known = sorted({_attribute_of(d) for d in of_kind})
        return _error(rule, f"no {rule.disparity} of {rule.metric} for attribute {attribute!r} "
                            f"(attributes: {', '.join(known) or 'none recorded'})")
    # Disparity records carry no group size: borrow it (and the group's flag) from the group rows.
    flags = {
        str(r["group"]): r for r in groups
        if r["metric"] == rule.metric and _attribute_of(r) == attribute and not _excluded(r, rule, attribute)
    }
    checks: list[GroupCheck] = []
    if rule.disparity == "diff_vs_ref":
        known_names = [_short(str(d["group"]), attribute) for d in records]
        for name, record in _select(records, rule, attribute):
            if record is None:
                checks.append(_absent(name, known_names))
                continue
            row = flags.get(str(record["group"]), {})
            own_flag = str(record.get("flag") or "ok")
            sized = {**record, "n": row.get("n"), "n_pos": row.get("n_pos"),
                     "flag": own_flag if own_flag != "ok" else row.get("flag")}
            checks.append(_group_check(sized, rule, attribute))
    else:
        for record in records:
            # metrics.json flags a gap or ratio that rests on fewer than two 'ok' groups
            flag = str(record.get("flag") or "ok")
            check = _group_check({**record, "flag": flag, "n": None, "n_pos": None}, rule, attribute)
            checks.append(check.relabel(_disparity_label(record, str(rule.disparity), attribute)))
        # A gap leaves unranked small groups out, so it cannot vouch for them.
        for group, row in flags.items():
            if str(row.get("flag") or "ok") != "ok" and rule.small_groups == "insufficient":
                checks.append(GroupCheck(
                    group=_short(group, attribute), estimate=_number(row.get("estimate")),
                    ci_low=_number(row.get("ci_low")), ci_high=_number(row.get("ci_high")),
                    n=_count(row.get("n")), n_pos=_count(row.get("n_pos")), flag=str(row["flag"]),
                    value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
                    reason=f"flagged {row['flag']!r} (n={_count(row.get('n'))}): not covered by the "
                           f"{rule.disparity}",
                ))
    return _finish(rule, checks)


def _disparity_label(record: Mapping[str, Any], kind: str, attribute: str) -> str:
    """``gap (V-VI vs I-II)``: for gaps and ratios metrics.json names the worst group and the best."""
    group, reference = record.get("group"), record.get("reference")
    if group in (None, "", attribute):
        return kind
    if reference:
        return f"{kind} ({_short(str(group), attribute)} vs {_short(str(reference), attribute)})"
    return f"{kind} ({_short(str(group), attribute)})"


def _sample_size_rule(rule: Rule, groups: list[dict[str, Any]], attribute: str) -> RuleResult:
    records = [
        r for r in groups
        if _attribute_of(r) == attribute and (rule.metric is None or r["metric"] == rule.metric)
    ]
    if not records:
        known = sorted({_attribute_of(r) for r in groups})
        return _error(rule, f"attribute {attribute!r} not in metrics.json (attributes: {', '.join(known)})")
    # n is per group; n_pos can differ by metric, so take the largest recorded count.
    sizes: dict[str, tuple[int | None, int | None]] = {}
    for record in records:
        name = _short(str(record["group"]), attribute)
        n, n_pos = _count(record.get("n")), _count(record.get("n_pos"))
        old_n, old_pos = sizes.get(name, (None, None))
        sizes[name] = (_larger(n, old_n), _larger(n_pos, old_pos))
    names = rule.group_names or [
        g for g in sizes if not any(_matches(f"{attribute}={g}", x, attribute) for x in rule.exclude_groups)
    ]
    checks = []
    for name in names:
        key = next((g for g in sizes if g == name or g == _short(name, attribute)), None)
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
            group=_short(name, attribute), estimate=None, ci_low=None, ci_high=None, n=n, n_pos=n_pos,
            flag="absent" if key is None else "ok", value=float(n or 0), verdict=verdict, reason=reason,
        ))
    return _finish(rule, checks)


#: Attributes holding true-group rows for an estimated attribute, in order of preference.
TRUE_GROUP_SUFFIXES = ((":true", None), (":bounds", "bounded"))


def _true_group_attribute(rule: Rule, groups: list[dict[str, Any]]) -> str | None:
    """The attribute with corrected (else bounded) rows for the rule's attribute, if metrics.json has one."""
    present = {_attribute_of(r) for r in groups}
    for suffix, _ in TRUE_GROUP_SUFFIXES:
        if rule.attribute + suffix in present:
            return rule.attribute + suffix
    return None


def _groups_without_truth(rule: Rule, groups: list[dict[str, Any]], true_attribute: str) -> list[GroupCheck]:
    """Estimated groups the rule covers that have no true-group row (no labelled case of them): unjudged."""
    def names(attribute: str) -> set[str]:
        return {_short(str(r["group"]), attribute) for r in groups
                if _attribute_of(r) == attribute and (rule.metric is None or r["metric"] == rule.metric)
                and str(r.get("flag") or "ok") not in ("missing_value", "empty") and not _excluded(r, rule, attribute)}

    wanted = names(rule.attribute)
    if rule.group_names is not None:
        wanted &= {_short(name, rule.attribute) for name in rule.group_names}
    return [GroupCheck(group=name, estimate=None, ci_low=None, ci_high=None, n=None, n_pos=None, flag="absent",
                       value=None, verdict=Verdict.INSUFFICIENT_EVIDENCE,
                       reason="no labelled case of this group: its metrics by true group cannot be estimated")
            for name in sorted(wanted - names(true_attribute))]


def _decide_on(rule: Rule, groups: list[dict[str, Any]], disparities: list[dict[str, Any]],
               attribute: str) -> RuleResult:
    if rule.check == "sample_size":
        return _sample_size_rule(rule, groups, attribute)
    if rule.check == "disparity":
        return _disparity_rule(rule, groups, disparities, attribute)
    return _metric_rule(rule, groups, attribute)


def _rule_result(rule: Rule, groups: list[dict[str, Any]], disparities: list[dict[str, Any]]) -> RuleResult:
    """One rule's verdict; on true-group rows when the rule's attribute was estimated and corrected or bounded.

    A sample-size rule then counts the true groups' (estimated) sizes, and a
    true group without a labelled case is absent: too few to judge.
    """
    naive = _decide_on(rule, groups, disparities, rule.attribute)
    basis = next((str(r.get("basis")) for r in groups if _attribute_of(r) == rule.attribute and r.get("basis")),
                 None)
    true_attribute = _true_group_attribute(rule, groups) if rule.strata == "auto" else None
    if true_attribute is None:
        return dataclasses.replace(naive, basis=basis)
    true_basis = next((str(r.get("basis")) for r in groups if _attribute_of(r) == true_attribute), None)
    label = "bounded true groups" if true_basis == "bounded" else "true groups (corrected)"
    if naive.verdict is not Verdict.ERROR and rule.metric is not None and not any(
            _attribute_of(r) == true_attribute and r["metric"] == rule.metric for r in groups):
        # The strata are known to be estimated, and this metric has no figure by true group (e.g. AUROC or
        # ECE cannot be bounded): the face-value figure cannot vouch for the true groups.
        return dataclasses.replace(
            naive, verdict=Verdict.INSUFFICIENT_EVIDENCE, basis=true_basis, naive_verdict=naive.verdict,
            message=f"[{label}] {rule.metric} has no figure by true group, and the estimated groups can hide a "
                    f"disparity; by estimated groups at face value: {naive.verdict.value}")
    decided = _decide_on(rule, groups, disparities, true_attribute)
    unseen = _groups_without_truth(rule, groups, true_attribute)
    if unseen and decided.verdict is not Verdict.ERROR:
        decided = _finish(rule, [*decided.checks, *unseen])
    message = (f"[{label}] {decided.message}; by estimated groups at face value: {naive.verdict.value}")
    return dataclasses.replace(decided, message=message, basis=true_basis, naive_verdict=naive.verdict)


def evaluate_gate(
    metrics: Mapping[str, Any] | Any,
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
        The ``metrics.json`` content (the contract's dict) or an
        ``EvaluationResult`` (its ``to_dict()`` is used).
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

    source = metrics_source or "metrics"
    if hasattr(metrics, "to_dict") and not isinstance(metrics, Mapping):
        metrics = metrics.to_dict()
    groups, disparities = _metrics_tables(metrics, source)
    results = [_rule_result(rule, groups, disparities) for rule in policy.rules]
    config = metrics.get("config") if isinstance(metrics.get("config"), Mapping) else {}
    return GateResult(
        policy=policy,
        verdict=combine(r.verdict for r in results),
        rules=results,
        metrics_sha256=metrics_sha256 or sha256_json(metrics),
        metrics_source=metrics_source,
        policy_source=policy_source,
        metrics_config={k: config[k] for k in sorted(config) if k != "versions"},
    )
