"""Audits: one spec, one command, one run folder a reviewer can re-check.

``fairderm audit audits/NAME.yaml`` runs tone -> inference -> metrics ->
gate -> card, caching each stage by the content hash of its inputs, and
writes ``audits/NAME/runs/RUN_ID/`` with the predictions, metrics with
intervals, gate verdict, model card, environment and an evidence bundle
(``evidence.json``: SHA-256 of every input and artefact, and the seeds).
``fairderm verify RUN_DIR`` recomputes the hashes and the numbers.
The folder layout and every file's keys are documented in ``docs/audit.md``.

Public API
----------
AuditSpec, LoadedSpec, load_spec, parse_spec, dump_spec
    The audit spec (pydantic; defaults documented on each field) and its YAML
    loader, whose errors name the file and key.
run_audit, AuditRun, StageRecord
    Run an audit; the result names its run folder, verdict and exit code.
verify_run, Verification, Check
    Re-check a run folder.
sign_run, check_signature, generate_key_pair, evidence_digest, SIGNATURE_FILE
    Ed25519 signatures of a run's evidence digest (``evidence.sig``).
StageCache
    The content-addressed stage cache.
EvaluationTable, evaluation_table, compute_metrics
    The join of manifest, tone and predictions that the metrics are computed
    from (shared by the audit and by verification).
"""

from __future__ import annotations

from fairderm.audit._cache import StageCache
from fairderm.audit._evaluation import EvaluationTable, compute_metrics, evaluation_table
from fairderm.audit._evidence import EVIDENCE_FILE, EVIDENCE_FORMAT, SIGNATURE_FILE
from fairderm.audit._runner import RUN_LOG_FILE, STAGES, AuditRun, StageRecord, latest_run, run_audit
from fairderm.audit._signature import check_signature, evidence_digest, generate_key_pair, sign_run
from fairderm.audit._spec import AuditSpec, LoadedSpec, dump_spec, load_spec, parse_spec
from fairderm.audit._spec_sections import LABEL_ONLY_BACKENDS
from fairderm.audit._verify import Check, Verification, verify_run

__all__ = [
    "EVIDENCE_FILE",
    "EVIDENCE_FORMAT",
    "LABEL_ONLY_BACKENDS",
    "RUN_LOG_FILE",
    "SIGNATURE_FILE",
    "STAGES",
    "AuditRun",
    "AuditSpec",
    "Check",
    "EvaluationTable",
    "LoadedSpec",
    "StageCache",
    "StageRecord",
    "Verification",
    "check_signature",
    "compute_metrics",
    "dump_spec",
    "evaluation_table",
    "evidence_digest",
    "generate_key_pair",
    "latest_run",
    "load_spec",
    "parse_spec",
    "run_audit",
    "sign_run",
    "verify_run",
]
