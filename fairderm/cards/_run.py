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

import pandas as pd
import pyarrow as pa
import yaml

from fairderm._io import read_parquet_metadata, sha256_file
from fairderm.errors import InputError
from fairderm.gate import read_json_file

CARD_FILES = ("card.md", "card.html", "card.json")
SPEC_CANDIDATES = ("spec.yaml", "audit.yaml", "spec.yml")


@dataclass
class RunArtifacts:
    """The parsed contents of a run folder (None for absent optional files)."""

    root: Path
    metrics: dict[str, Any]
    gate: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    spec_file: str | None = None
    predictions_meta: dict[str, Any] | None = None
    predictions_status: dict[str, int] | None = None
    tone: pd.DataFrame | None = None
    tone_meta: dict[str, Any] | None = None
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


def _json_mapping(path: Path, what: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = read_json_file(path, what=what)
    if not isinstance(data, dict):
        raise InputError(f"{what} must hold a JSON object", source=str(path))
    return data


def _parquet(path: Path, columns: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path, columns=columns)
        return frame, read_parquet_metadata(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InputError(f"cannot read: {str(exc).splitlines()[0]}", source=str(path)) from None


def _spec(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    for name in SPEC_CANDIDATES:
        path = root / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise InputError(f"not valid YAML: {str(exc).splitlines()[0]}", source=str(path)) from None
            if data is not None and not isinstance(data, dict):
                raise InputError("the audit spec must be a mapping", source=str(path))
            return data, name
    return None, None


def load_run(run_dir: str | Path) -> RunArtifacts:
    """Read a run folder for a model card.

    Raises
    ------
    InputError
        When the folder or its ``metrics.json`` is missing, or a present file
        cannot be parsed (the message names the file).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise InputError("run folder not found", source=str(root))
    metrics = _json_mapping(root / "metrics.json", "metrics.json")
    if metrics is None:
        raise InputError("metrics.json not found: a model card needs the run's metrics", source=str(root))
    if not isinstance(metrics.get("groups"), list):
        raise InputError("no 'groups' table (the metrics.json contract)", source=str(root / "metrics.json"),
                         column="groups")
    spec, spec_file = _spec(root)
    run = RunArtifacts(
        root=root,
        metrics=metrics,
        gate=_json_mapping(root / "gate.json", "gate.json"),
        evidence=_json_mapping(root / "evidence.json", "evidence.json"),
        environment=_json_mapping(root / "environment.json", "environment.json"),
        spec=spec,
        spec_file=spec_file,
        tone_validation=_json_mapping(root / "tone_validation.json", "tone_validation.json"),
        mitigation=_json_mapping(root / "mitigation.json", "mitigation.json"),
    )
    predictions = _parquet(root / "predictions.parquet", columns=["status"])
    if predictions is not None:
        frame, run.predictions_meta = predictions
        run.predictions_status = {str(k): int(v) for k, v in frame["status"].value_counts().items()}
    tone = _parquet(root / "tone.parquet")
    if tone is not None:
        run.tone, run.tone_meta = tone
    # The card is itself an artefact of the run: never hash an earlier card into the new one.
    run.file_hashes = {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name not in CARD_FILES and not path.name.startswith(".")
    }
    return run
