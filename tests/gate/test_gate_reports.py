"""JUnit XML and the Markdown step summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from markdown_it import MarkdownIt

from fairderm.gate import evaluate_gate, junit_xml, markdown_summary, policy_from_dict, write_gate_reports
from fairderm.markdown import escape_markdown
from tests.helpers.gate_metrics import DEMO_POLICY, make_metrics

HOSTILE = "<script>alert(1)</script>"


def _mixed_result():
    """One rule per verdict: PASS, FAIL, INSUFFICIENT_EVIDENCE, ERROR."""
    policy = policy_from_dict({"name": "mixed", "rules": [
        {"id": "pass", "metric": "accuracy", "attribute": "all", "groups": "all", "comparator": ">=",
         "threshold": 0.5},
        {"id": "fail", "metric": "accuracy", "attribute": "all", "groups": "all", "comparator": ">=",
         "threshold": 0.95},
        {"id": "insufficient", "metric": "accuracy", "attribute": "all", "groups": "all", "comparator": ">=",
         "threshold": 0.85},
        {"id": "error", "metric": "auroc", "attribute": "all", "comparator": ">=", "threshold": 0.5},
    ]})
    return evaluate_gate(make_metrics(), policy)


def test_junit_has_one_case_per_rule_with_failure_skip_and_error() -> None:
    root = ET.fromstring(junit_xml(_mixed_result()))
    suite = root.find("testsuite")
    assert suite.attrib["tests"] == "4"
    assert (suite.attrib["failures"], suite.attrib["skipped"], suite.attrib["errors"]) == ("1", "1", "1")
    cases = {case.attrib["name"]: case for case in suite.iter("testcase")}
    assert list(cases) == ["pass", "fail", "insufficient", "error"]
    assert [child.tag for child in cases["pass"] if child.tag != "system-out"] == []
    assert cases["fail"].find("failure").attrib["type"] == "FAIL"
    assert "straddles" in cases["insufficient"].find("skipped").attrib["message"]
    assert "auroc" in cases["error"].find("error").attrib["message"]
    properties = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert properties["verdict"] == "ERROR" and properties["exit_code"] == "3"


def test_junit_carries_hostile_and_control_characters_as_valid_xml() -> None:
    policy = policy_from_dict({"name": HOSTILE, "rules": [
        {"id": f"{HOSTILE}\x07", "metric": "accuracy", "attribute": "all", "groups": HOSTILE,
         "comparator": ">=", "threshold": 0.5}]})
    text = junit_xml(evaluate_gate(make_metrics(), policy))
    case = ET.fromstring(text).find("testsuite/testcase")
    assert case.attrib["name"] == f"{HOSTILE}\ufffd"
    assert "<script>" not in text


def test_markdown_summary_lists_every_rule_and_the_verdict() -> None:
    text = markdown_summary(_mixed_result())
    assert text.startswith("## fairderm gate: ")
    assert "ERROR" in text.splitlines()[0]
    for rule_id in ("pass", "fail", "insufficient", "error"):
        assert f"| {rule_id} |" in text
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert html.count("<table>") == 1 + 3  # the rule table, then one per rule with checked groups


def test_markdown_summary_renders_hostile_labels_as_text() -> None:
    extra = [{"attribute": "site", "group": f"site={HOSTILE}", "metric": "accuracy", "estimate": 0.8,
              "ci_low": 0.7, "ci_high": 0.9, "n": 100, "n_pos": 30, "flag": "ok"},
             {"attribute": "site", "group": "site=*bold* | [x](http://a)", "metric": "accuracy", "estimate": 0.8,
              "ci_low": 0.7, "ci_high": 0.9, "n": 100, "n_pos": 30, "flag": "ok"}]
    policy = policy_from_dict({"name": HOSTILE, "rules": [
        {"id": HOSTILE, "description": HOSTILE, "metric": "accuracy", "attribute": "site",
         "comparator": ">=", "threshold": 0.75}]})
    text = markdown_summary(evaluate_gate(make_metrics(extra_rows=extra), policy))
    assert "<script" not in text
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<em>bold</em>" not in html and "<a " not in html and "*bold* | [x](http://a)" in html
    # the table keeps its six columns: the '|' in a label did not split a cell
    assert all(row.count("<td>") == 6 for row in html.split("<tr>")[1:] if "<td>" in row)


def test_escape_markdown_keeps_identifiers_readable() -> None:
    assert escape_markdown("fitzpatrick_est=V-VI") == "fitzpatrick_est=V-VI"
    assert escape_markdown("_x_ *y*") == r"\_x\_ \*y\*"
    assert escape_markdown("# title\nline") == r"\# title line"
    assert escape_markdown("1. first") == r"1\. first"


def test_reports_are_written_and_the_summary_is_appended(tmp_path: Path) -> None:
    result = evaluate_gate(make_metrics(), policy_from_dict(DEMO_POLICY))
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step", encoding="utf-8")
    write_gate_reports(result, gate_json=tmp_path / "gate.json", junit=tmp_path / "junit.xml", summary=summary)
    assert summary.read_text(encoding="utf-8").startswith("# earlier step\n## fairderm gate: ")
    assert ET.parse(tmp_path / "junit.xml").getroot().tag == "testsuites"
    assert (tmp_path / "gate.json").read_text(encoding="utf-8") == result.to_json()
