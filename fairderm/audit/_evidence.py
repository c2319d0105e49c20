"""``evidence.json``: what a reviewer needs to re-check a run.

Shape (``format`` ``fairderm.evidence/1``)::

    {
      "format": "fairderm.evidence/1",
      "run_id": "20250101T120000Z-1a2b3c4d",
      "audit": "demo",
      "created_utc": "2025-01-01T12:00:07+00:00",
      "fairderm_version": "0.1.0",
      "inputs": {                       # SHA-256 of everything read
        "spec":   {"path", "sha256"},
        "cohort": {"path", "name", "synthetic", "cohort_yaml_sha256", "manifest_sha256",
                   "filter", "n_cases", "n_selected", "selected_ids_sha256", "copy"},
        "images": {"count", "masks" (with tone.lesion_masks), "hashed", "root", "list": "images.sha256", "sha256"},
        "model":  {"backend", "model", "options", "path", "files": {name: sha256}, "sha256",
                   "architecture": {"name", "path", "sha256"} (with model.architecture)},
        "policy": {"path", "sha256", "copy": "policy.yaml"} | null,
        "tone_calibration": {"path", "sha256"} | null
      },
      "seeds": {"bootstrap": 0, "inference": 0},
      "stages": {"tone": {"key", "cache"}, "inference": ..., "metrics": ..., "gate": ..., "card": ...},
      "artifacts": {"<file, e.g. metrics.json>": "<sha256>", "figures/metrics.html": "<sha256>", ...}
    }

``artifacts`` lists every file of the run folder except ``evidence.json``
itself (and ``evidence.sig``, the optional signature written after it), by
POSIX path relative to the run folder. The hashes let a reviewer detect a
change to any file listed; whoever could rewrite the whole folder could
rewrite them too, so the evidence digest (SHA-256 of this file) is what to
publish, and ``fairderm sign`` signs it (:mod:`fairderm.audit._signature`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fairderm._io import atomic_write_json, sha256_file
from fairderm._version import __version__
from fairderm.runs import EVIDENCE_FILE

EVIDENCE_FORMAT = "fairderm.evidence/1"
SIGNATURE_FILE = "evidence.sig"
"""The producer's signature of the evidence digest, written after ``evidence.json`` (``fairderm sign``)."""


def artifact_digests(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file in a run folder except ``evidence.json`` and its signature, by relative POSIX path."""
    return {
        path.relative_to(run_dir).as_posix(): sha256_file(path)
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and path.relative_to(run_dir).as_posix() not in (EVIDENCE_FILE, SIGNATURE_FILE)
    }


def write_evidence(
    run_dir: Path,
    *,
    run_id: str,
    audit: str,
    inputs: dict[str, Any],
    seeds: dict[str, int],
    stages: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Hash the run folder's files and write ``evidence.json`` (the last file of a run)."""
    evidence = {
        "format": EVIDENCE_FORMAT,
        "run_id": run_id,
        "audit": audit,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "fairderm_version": __version__,
        "inputs": inputs,
        "seeds": seeds,
        "stages": stages,
        "artifacts": artifact_digests(run_dir),
    }
    atomic_write_json(run_dir / EVIDENCE_FILE, evidence)
    return evidence
