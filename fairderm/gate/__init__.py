"""Release gate: a policy of rules on interval bounds, checked against ``metrics.json``.

A gate answers the release question with four verdicts and exit codes:
PASS (0), FAIL (1: a whole interval is on the wrong side of a threshold),
INSUFFICIENT_EVIDENCE (2: an interval straddles a threshold, or a required
group is too small) and ERROR (3: a rule could not be evaluated, or the
policy or input is invalid). The overall verdict is the most severe rule
verdict: ERROR > FAIL > INSUFFICIENT_EVIDENCE > PASS.

Public API
----------
Policy, Rule, load_policy, policy_from_dict
    The policy model (pydantic) and its YAML loader (errors name the key).
evaluate_gate, gate_run
    Check a policy against metrics (a dict or an ``EvaluationResult``), or
    against a stored run folder's ``metrics.json``.
GateResult, RuleResult, GroupCheck, Verdict, combine, decide
    Results (``summary()``, ``to_frame()``, ``to_dict()``, ``to_json()``,
    and the decision rules.
write_gate_reports, junit_xml, markdown_summary, LEGEND
    Report writers (JUnit XML, the Markdown step summary) and what each verdict means.
"""

from __future__ import annotations

from fairderm.gate._evaluate import decide, evaluate_gate
from fairderm.gate._policy import Policy, Rule, load_policy, policy_from_dict
from fairderm.gate._report import junit_xml, markdown_summary
from fairderm.gate._result import GateResult, GroupCheck, RuleResult
from fairderm.gate._run import gate_run, write_gate_reports
from fairderm.gate._verdict import COMBINATION_RULE, LEGEND, Verdict, combine

__all__ = [
    "COMBINATION_RULE",
    "LEGEND",
    "GateResult",
    "GroupCheck",
    "Policy",
    "Rule",
    "RuleResult",
    "Verdict",
    "combine",
    "decide",
    "evaluate_gate",
    "gate_run",
    "junit_xml",
    "load_policy",
    "markdown_summary",
    "policy_from_dict",
    "write_gate_reports",
]
