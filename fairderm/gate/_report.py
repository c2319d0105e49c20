"""Gate reports for CI: JUnit XML and a Markdown step summary."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from fairderm.gate._verdict import LEGEND, Verdict
from fairderm.markdown import escape_markdown

if TYPE_CHECKING:
    from fairderm.gate._result import GateResult, GroupCheck, RuleResult

_VERDICT_MARK = {
    Verdict.PASS: "✅",
    Verdict.FAIL: "❌",
    Verdict.INSUFFICIENT_EVIDENCE: "⚠️",
    Verdict.ERROR: "💥",
}
# XML 1.0 cannot carry most control characters, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

def _xml_text(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _interval(check: GroupCheck) -> str:
    if check.estimate is None:
        return "–"
    if check.ci_low is None or check.ci_high is None:
        return _number(check.estimate)
    return f"{check.estimate:.3f} ({check.ci_low:.3f} to {check.ci_high:.3f})"


def _group_lines(result: RuleResult) -> str:
    lines = []
    for check in result.checks:
        verdict = check.verdict.value if check.verdict is not None else "LEFT_OUT"
        size = f" n={check.n}" if check.n is not None else ""
        lines.append(f"{verdict:<21} {check.group}: {_interval(check)}{size} ({check.reason})")
    return "\n".join(lines)


def junit_xml(result: GateResult) -> str:
    """JUnit XML with one test case per rule.

    PASS is a passing test case; FAIL a ``<failure>``; INSUFFICIENT_EVIDENCE a
    ``<skipped>`` (the question could not be answered, which CI tools show as
    neither green nor red; the exit code 2 still fails the job); ERROR an
    ``<error>``. Each case's ``system-out`` lists every group's check.
    """
    counts = result.counts()
    suite_name = f"fairderm.gate.{result.policy.name}"
    attributes = {
        "tests": str(len(result.rules)),
        "failures": str(counts[Verdict.FAIL.value]),
        "errors": str(counts[Verdict.ERROR.value]),
        "skipped": str(counts[Verdict.INSUFFICIENT_EVIDENCE.value]),
    }
    root = ET.Element("testsuites", {"name": "fairderm gate", **attributes})
    suite = ET.SubElement(root, "testsuite", {"name": _xml_text(suite_name), **attributes})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", result.verdict.value),
        ("exit_code", str(result.exit_code)),
        ("policy_sha256", result.policy.sha256()),
        ("metrics_sha256", result.metrics_sha256),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for rule_result in result.rules:
        case = ET.SubElement(
            suite, "testcase", {"classname": _xml_text(suite_name), "name": _xml_text(rule_result.rule.id)}
        )
        message = _xml_text(f"{rule_result.rule.describe()}: {rule_result.message}")
        tag = {
            Verdict.FAIL: "failure",
            Verdict.INSUFFICIENT_EVIDENCE: "skipped",
            Verdict.ERROR: "error",
        }.get(rule_result.verdict)
        if tag is not None:
            element = ET.SubElement(case, tag, {"message": message, "type": rule_result.verdict.value})
            if tag != "skipped":
                element.text = message
        details = _group_lines(rule_result)
        if details:
            ET.SubElement(case, "system-out").text = _xml_text(details)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _threshold(result: RuleResult) -> str:
    rule = result.rule
    if rule.check == "sample_size":
        parts = [f"n ≥ {rule.min_n}"] if rule.min_n is not None else []
        if rule.min_pos is not None:
            parts.append(f"n_pos ≥ {rule.min_pos}")
        return ", ".join(parts)
    symbol = {">=": "≥", "<=": "≤", ">": "&gt;", "<": "&lt;"}[str(rule.comparator)]
    return f"{rule.statistic} {symbol} {rule.threshold:g}"


def _decisive_check(result: RuleResult) -> GroupCheck | None:
    return next((c for c in result.checks if c.group == result.decisive_group), None)


def _rule_row(result: RuleResult) -> str:
    rule = result.rule
    what = rule.metric or "cases"
    if rule.disparity:
        what = f"{rule.metric} {rule.disparity}"
    decisive = _decisive_check(result)
    value = "–"
    if decisive is not None:
        value = f"n={decisive.n}" if rule.check == "sample_size" else _interval(decisive)
    cells = [
        escape_markdown(rule.id),
        escape_markdown(f"{what} · {rule.attribute}"),
        escape_markdown(result.decisive_group or "–"),
        value,
        _threshold(result),
        f"{_VERDICT_MARK[result.verdict]} {result.verdict.value}",
    ]
    return "| " + " | ".join(cells) + " |"


def markdown_summary(result: GateResult) -> str:
    """A Markdown report ready to append to ``$GITHUB_STEP_SUMMARY``.

    Every user-provided string (policy name, rule ids, group labels) is
    escaped so that it renders as text (see :func:`escape_markdown`).
    """
    counts = result.counts()
    tally = " · ".join(f"{count} {verdict}" for verdict, count in counts.items() if count)
    lines = [
        f"## fairderm gate: {_VERDICT_MARK[result.verdict]} {result.verdict.value}",
        "",
        f"Policy **{escape_markdown(result.policy.name)}**: {len(result.rules)} rules ({tally}); "
        f"exit code {result.exit_code}.",
        "",
        "| Rule | Checks | Decisive group | Estimate (CI) | Threshold | Verdict |",
        "|---|---|---|---|---|---|",
        *(_rule_row(r) for r in result.rules),
        "",
    ]
    for rule_result in result.rules:
        purpose = f" ({escape_markdown(rule_result.rule.description)})" if rule_result.rule.description else ""
        lines.append(f"- **{escape_markdown(rule_result.rule.id)}**{purpose}: {escape_markdown(rule_result.message)}")
    lines += ["", "<details><summary>Every group checked</summary>", ""]
    for rule_result in result.rules:
        if not rule_result.checks:
            continue
        lines += [
            f"**{escape_markdown(rule_result.rule.id)}**: {escape_markdown(rule_result.rule.describe())}",
            "",
            "| Group | Estimate (CI) | n | Flag | Verdict | Reason |",
            "|---|---|---|---|---|---|",
        ]
        for check in rule_result.checks:
            verdict = check.verdict.value if check.verdict is not None else "left out"
            lines.append(
                f"| {escape_markdown(check.group)} | {_interval(check)} | {check.n if check.n is not None else '–'} "
                f"| {escape_markdown(check.flag)} | {verdict} | {escape_markdown(check.reason)} |"
            )
        lines.append("")
    lines += ["</details>", "", f"_{escape_markdown(LEGEND)}_", ""]
    return "\n".join(lines)
