"""The files of an audit run folder (``audits/NAME/runs/RUN_ID/``), by name.

=============================  ===============================================
``spec.yaml``                  the audit spec as run
``policy.yaml``                the release policy the gate checked
``tone.parquet``               tone estimates, provenance in the file metadata
``predictions.parquet``        the model's predictions, run metadata
``scores.parquet``             per-case scores (the reasoning judge, checks)
``metrics.json``               per-group metrics: an ``EvaluationResult``
``coverage.json``              evaluated and left-out cases per stratum
``tone_validation.json``       the tone estimate against labels
``mitigation.json``            the router's evaluation (methods vs ERM)
``gate.json``                  the gate's verdict (``fairderm.gate.GateResult``)
``junit.xml``, ``gate.md``     the gate's reports for CI
``card.json|md|html``          the model card in its three forms
``figures/``                   per-group figures drawn from ``metrics.json``
``environment.json``           package versions, platform
``evidence.json``              the hash of every other file
=============================  ===============================================
"""

from __future__ import annotations

RUN_SPEC_FILE = "spec.yaml"
POLICY_FILE = "policy.yaml"
TONE_FILE = "tone.parquet"
PREDICTIONS_FILE = "predictions.parquet"
SCORES_FILE = "scores.parquet"
METRICS_FILE = "metrics.json"
COVERAGE_FILE = "coverage.json"
TONE_VALIDATION_JSON = "tone_validation.json"
MITIGATION_FILE = "mitigation.json"
GATE_FILE = "gate.json"
JUNIT_FILE = "junit.xml"
GATE_SUMMARY_FILE = "gate.md"
CARD_JSON = "card.json"
CARD_MARKDOWN = "card.md"
CARD_HTML = "card.html"
CARD_FILES = (CARD_MARKDOWN, CARD_HTML, CARD_JSON)
FIGURES_DIR = "figures"
ENVIRONMENT_FILE = "environment.json"
EVIDENCE_FILE = "evidence.json"
