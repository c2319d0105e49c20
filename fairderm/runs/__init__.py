"""The run folder: its file names, and the one reader and writer of its files.

Every stage writes, and the gate, the model card, the dashboard and
``fairderm verify`` read, the files of ``audits/NAME/runs/RUN_ID/`` through
this package, so that a file's name and its record live in one place.

Public API
----------
RunFolder
    A run folder: ``metrics()`` (an ``EvaluationResult``), ``tone()`` (a
    ``ToneTable``: rows and provenance), ``predictions()``, ``json(name)``,
    ``spec()``, ``file(name)``, ``write_metrics(result)``, ``write_json``.
Predictions
    ``predictions.parquet``: rows and run metadata.
read_json_file
    A JSON file, with one-line errors naming it.
METRICS_FILE, GATE_FILE, ... (see :mod:`fairderm.runs._layout`)
    The file names.
"""

from __future__ import annotations

from fairderm.runs._folder import Predictions, RunFolder, read_json_file
from fairderm.runs._layout import (
    CARD_FILES,
    CARD_HTML,
    CARD_JSON,
    CARD_MARKDOWN,
    COVERAGE_FILE,
    ENVIRONMENT_FILE,
    EVIDENCE_FILE,
    FIGURES_DIR,
    GATE_FILE,
    GATE_SUMMARY_FILE,
    JUNIT_FILE,
    METRICS_FILE,
    MITIGATION_FILE,
    POLICY_FILE,
    PREDICTIONS_FILE,
    RUN_SPEC_FILE,
    SCORES_FILE,
    TONE_FILE,
    TONE_VALIDATION_JSON,
)

__all__ = [
    "CARD_FILES",
    "CARD_HTML",
    "CARD_JSON",
    "CARD_MARKDOWN",
    "COVERAGE_FILE",
    "ENVIRONMENT_FILE",
    "EVIDENCE_FILE",
    "FIGURES_DIR",
    "GATE_FILE",
    "GATE_SUMMARY_FILE",
    "JUNIT_FILE",
    "METRICS_FILE",
    "MITIGATION_FILE",
    "POLICY_FILE",
    "PREDICTIONS_FILE",
    "RUN_SPEC_FILE",
    "SCORES_FILE",
    "TONE_FILE",
    "TONE_VALIDATION_JSON",
    "Predictions",
    "RunFolder",
    "read_json_file",
]
