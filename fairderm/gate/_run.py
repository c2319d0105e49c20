"""Gating a stored run folder and writing the gate's reports."""

from __future__ import annotations

from pathlib import Path

from fairderm._io import atomic_write_text, sha256_file
from fairderm.gate._evaluate import evaluate_gate
from fairderm.gate._policy import Policy, load_policy
from fairderm.gate._report import junit_xml, markdown_summary
from fairderm.gate._result import GateResult
from fairderm.runs import METRICS_FILE, RunFolder


def gate_run(run_dir: str | Path, policy: Policy | str | Path) -> GateResult:
    """Re-gate a stored run from its ``metrics.json``; nothing is recomputed.

    Parameters
    ----------
    run_dir
        A run folder (``audits/NAME/runs/RUN_ID/``) or any folder holding
        ``metrics.json``.
    policy
        A :class:`Policy` or the path of a policy YAML file.

    Raises
    ------
    InputError
        When the folder or its ``metrics.json`` is missing or malformed, or
        the policy is invalid.
    """
    folder = RunFolder.open(run_dir)
    policy_source = None
    if not isinstance(policy, Policy):
        policy_source = str(policy)
        policy = load_policy(policy)
    return evaluate_gate(
        folder.metrics(), policy, metrics_sha256=sha256_file(folder.file(METRICS_FILE)),
        metrics_source=METRICS_FILE, policy_source=policy_source,
    )


def write_gate_reports(
    result: GateResult,
    *,
    gate_json: str | Path | None = None,
    junit: str | Path | None = None,
    summary: str | Path | None = None,
) -> None:
    """Write ``gate.json``, JUnit XML and the Markdown summary (each optional).

    The summary is appended when its file exists, as GitHub Actions expects
    of ``$GITHUB_STEP_SUMMARY``; the other files are replaced atomically.
    """
    if gate_json is not None:
        atomic_write_text(gate_json, result.to_json())
    if junit is not None:
        atomic_write_text(junit, junit_xml(result))
    if summary is not None:
        summary = Path(summary)
        before = summary.read_text(encoding="utf-8") if summary.is_file() else ""
        separator = "\n" if before and not before.endswith("\n") else ""
        atomic_write_text(summary, before + separator + markdown_summary(result))
