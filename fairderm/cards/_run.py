"""Reading the files of an audit run folder that a model card draws on.

Layout (written by :mod:`fairderm.audit`): ``audits/NAME/runs/RUN_ID/`` with

=========================  ========  ==============================================
file                       needed    used for
=========================  ========  ==============================================
``metrics.json``           required  every number in the card
``gate.json``              optional  the release verdict (else "not gated")
``evidence.json``          optional  recorded hashes (else hashed here)
``environment.json``       optional  package versions, platform
``spec.yaml``              optional  audit name, model, tone method, ``card:`` text
``predictions.parquet``    optional  model identity, evaluated cases
``tone.parquet``           optional  tone method, abstentions, interval widths
``tone_validation.json``   optional  tone estimator agreement with labels
``mitigation.json``        optional  the router's evaluation (methods vs ERM)
=========================  ========  ==============================================

A present file that cannot be read is an error naming it; an absent optional
file is reported as absent in the card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairderm._io import sha256_file
from fairderm.errors import InputError
from fairderm.metrics import EvaluationResult
from fairderm.runs import (
    CARD_FILES,
    ENVIRONMENT_FILE,
    EVIDENCE_FILE,
    GATE_FILE,
    METRICS_FILE,
    MITIGATION_FILE,
    RUN_SPEC_FILE,
    TONE_VALIDATION_JSON,
    RunFolder,
)
from fairderm.tone import ToneTable


@dataclass
class RunArtifacts:
    """The parsed contents of a run folder (None for absent optional files)."""

    root: Path
    metrics: EvaluationResult
    gate: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    spec_file: str | None = None
    predictions_meta: dict[str, Any] | None = None
    predictions_status: dict[str, int] | None = None
    tone: ToneTable | None = None
    tone_validation: dict[str, Any] | None = None
    mitigation: dict[str, Any] | None = None
    file_hashes: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The run folder's name."""
        return self.root.name

    @property
    def audit_name(self) -> str | None:
        """``NAME`` from the spec, else from ``audits/NAME/runs/RUN_ID``."""
        if self.spec and isinstance(self.spec.get("name"), str):
            return self.spec["name"]
        parent = self.root.parent
        return parent.parent.name if parent.name == "runs" else None


def load_run(run_dir: str | Path) -> RunArtifacts:
    """Read a run folder for a model card.

    Raises
    ------
    InputError
        When the folder or its ``metrics.json`` is missing, or a present file
        cannot be parsed (the message names the file).
    """
    folder = RunFolder.open(run_dir)
    if not folder.has(METRICS_FILE):
        raise InputError(f"{METRICS_FILE} not found: a model card needs the run's metrics", source=str(folder.path))
    spec = folder.spec()
    run = RunArtifacts(
        root=folder.path,
        metrics=folder.metrics(),
        gate=folder.json(GATE_FILE),
        evidence=folder.json(EVIDENCE_FILE),
        environment=folder.json(ENVIRONMENT_FILE),
        spec=spec,
        spec_file=RUN_SPEC_FILE if spec is not None else None,
        tone_validation=folder.json(TONE_VALIDATION_JSON),
        mitigation=folder.json(MITIGATION_FILE),
        tone=folder.tone(),
    )
    predictions = folder.predictions(columns=["status"])
    if predictions is not None:
        run.predictions_meta, run.predictions_status = predictions.metadata, predictions.status_counts()
    # The card is itself an artefact of the run: never hash an earlier card into the new one.
    run.file_hashes = {
        path.relative_to(folder.path).as_posix(): sha256_file(path)
        for path in sorted(folder.path.rglob("*"))
        if path.is_file() and path.name not in CARD_FILES and not path.name.startswith(".")
    }
    return run
