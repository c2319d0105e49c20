"""``fairderm verify RUN_DIR``: re-check a run folder's hashes and recompute its numbers.

Checks, in order:

1. ``evidence.json`` is readable and of a known format;
2. every artefact it lists exists and has the recorded SHA-256, and the
   folder holds no file it does not list;
3. the run's copies of the inputs (``cohort/manifest.parquet``,
   ``cohort/cohort.yaml``, ``policy.yaml``, ``images.sha256``) have the
   recorded input hashes;
4. the original inputs, where they can still be found (first relative to the
   run folder, as recorded, then at their absolute path): the cohort's files,
   every image listed in ``images.sha256``, the model's files, the policy,
   the tone calibration and the spec. An input that cannot be found is
   reported as ``skipped`` (the run's copy was checked instead) and does not
   fail verification; an input that is found but differs does;
5. the metrics, recomputed with :mod:`fairderm.metrics` from the stored
   predictions, tone estimates, manifest copy and spec (the seed among them),
   against ``metrics.json`` and ``coverage.json``: exact for strings,
   integers and nulls, within 1e-12 (relative, or absolute below 1) for floats;
6. the gate, re-evaluated from ``metrics.json`` and ``policy.yaml``, against
   ``gate.json``.

Verification passes only when nothing is ``mismatch``, ``missing``,
``unexpected`` or ``error``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fairderm._io import sha256_file
from fairderm.audit import _evaluation
from fairderm.audit._evidence import EVIDENCE_FILE, EVIDENCE_FORMAT
from fairderm.audit._hashing import parse_checksum_lines
from fairderm.audit._inputs import STRATA_ERROR_FILE, TONE_VALIDATION_FILE, cluster_column, select_cases
from fairderm.audit._spec import LoadedSpec, parse_spec
from fairderm.cohort import Cohort, CohortSpec, validate_manifest
from fairderm.errors import FairdermError, InputError

FLOAT_TOLERANCE = 1e-12
FAILING = ("mismatch", "missing", "unexpected", "error")
MAX_DIFFERENCES = 20
"""Differences listed per compared file; the rest are counted."""


@dataclass
class Check:
    """One verification check.

    Attributes
    ----------
    item
        What was checked: a run-folder file (``predictions.parquet``), or an
        original input (``input cohort manifest``).
    status
        ``ok``, ``mismatch``, ``missing``, ``unexpected``, ``error`` or
        ``skipped``.
    detail
        What differs (or why it was skipped), in one line.
    key
        For recomputed numbers, the key path that differs
        (``groups[attribute=fitzpatrick_est, group=V-VI, metric=sensitivity].ci_low``).
    """

    item: str
    status: str
    detail: str = ""
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "status": self.status, "detail": self.detail, "key": self.key}


@dataclass
class Verification:
    """The outcome of :func:`verify_run`."""

    run_dir: Path
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed or was skipped."""
        return not self.problems

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status in FAILING]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(self, item: str, status: str, detail: str = "", key: str | None = None) -> None:
        self.checks.append(Check(item, status, detail, key))

    def to_frame(self) -> pd.DataFrame:
        """One row per check: item, status, detail, key."""
        return pd.DataFrame([c.to_dict() for c in self.checks], columns=["item", "status", "detail", "key"])

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}

    def summary(self) -> str:
        counts = self.to_frame()["status"].value_counts().to_dict() if self.checks else {}
        head = f"verify {self.run_dir}: {'OK' if self.ok else 'FAILED'} " + ", ".join(
            f"{n} {s}" for s, n in sorted(counts.items()))
        lines = [head]
        for check in self.checks:
            if check.status != "ok":
                key = f" [{check.key}]" if check.key else ""
                lines.append(f"  {check.status:<10} {check.item}{key}: {check.detail}")
        return "\n".join(lines)


def verify_run(run_dir: str | Path, *, check_inputs: bool = True, check_images: bool = True,
               recompute: bool = True) -> Verification:
    """Verify a run folder written by :func:`fairderm.audit.run_audit`.

    Parameters
    ----------
    run_dir
        ``audits/NAME/runs/RUN_ID``.
    check_inputs
        Also re-hash the original inputs where they can be found.
    check_images
        With ``check_inputs``: re-hash every image listed in ``images.sha256``.
    recompute
        Recompute the metrics and the gate from the stored files.

    Raises
    ------
    InputError
        When ``run_dir`` is not a folder or has no readable ``evidence.json``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found", source=str(run_dir))
    evidence_path = run_dir / EVIDENCE_FILE
    if not evidence_path.is_file():
        raise InputError(f"{EVIDENCE_FILE} not found: not an audit run folder", source=str(run_dir))
    try:
        evidence = json.loads(evidence_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid JSON: {exc}", source=str(evidence_path)) from None
    if not isinstance(evidence, dict) or evidence.get("format") != EVIDENCE_FORMAT:
        raise InputError(f"not a {EVIDENCE_FORMAT} file", source=str(evidence_path), column="format")
    result = Verification(run_dir)
    intact = _check_artifacts(run_dir, evidence, result)
    _check_copies(run_dir, evidence, result)
    if check_inputs:
        _check_originals(run_dir, evidence, result, images=check_images)
    if recompute:
        _recompute(run_dir, result, intact)
    return result


def _check_artifacts(run_dir: Path, evidence: dict[str, Any], result: Verification) -> set[str]:
    artifacts = evidence.get("artifacts")
    if not isinstance(artifacts, dict):
        result.add(EVIDENCE_FILE, "error", "no 'artifacts' table", key="artifacts")
        return set()
    intact = set()
    for name, recorded in sorted(artifacts.items()):
        path = run_dir / name
        if not path.is_file():
            result.add(name, "missing", "listed in evidence.json but not in the run folder")
        elif sha256_file(path) != recorded:
            result.add(name, "mismatch", f"SHA-256 differs from evidence.json ({str(recorded)[:12]}...)")
        else:
            result.add(name, "ok")
            intact.add(name)
    for path in sorted(run_dir.rglob("*")):
        name = path.relative_to(run_dir).as_posix()
        if path.is_file() and name != EVIDENCE_FILE and name not in artifacts:
            result.add(name, "unexpected", "in the run folder but not listed in evidence.json")
    return intact


def _entry(evidence: dict[str, Any], name: str) -> dict[str, Any] | None:
    entry = (evidence.get("inputs") or {}).get(name)
    return entry if isinstance(entry, dict) else None


def _compare_hash(result: Verification, item: str, path: Path, recorded: Any) -> None:
    if not path.is_file():
        result.add(item, "missing", f"not found: {path}")
        return
    actual = sha256_file(path)
    if actual == recorded:
        result.add(item, "ok")
    else:
        result.add(item, "mismatch", f"{path.name}: SHA-256 {actual[:12]}... differs from the recorded "
                   f"input hash {str(recorded)[:12]}...")


def _check_copies(run_dir: Path, evidence: dict[str, Any], result: Verification) -> None:
    cohort = _entry(evidence, "cohort") or {}
    if cohort:
        _compare_hash(result, "cohort/manifest.parquet", run_dir / "cohort/manifest.parquet",
                      cohort.get("manifest_sha256"))
        _compare_hash(result, "cohort/cohort.yaml", run_dir / "cohort/cohort.yaml", cohort.get("cohort_yaml_sha256"))
    policy = _entry(evidence, "policy")
    if policy:
        _compare_hash(result, "policy.yaml", run_dir / "policy.yaml", policy.get("sha256"))
    images = _entry(evidence, "images") or {}
    if images.get("hashed"):
        _compare_hash(result, "images.sha256", run_dir / "images.sha256", images.get("sha256"))


def _locate(run_dir: Path, entry: dict[str, Any], key: str = "path") -> Path | None:
    """An original input: relative to the run folder as recorded, else its absolute path."""
    relative = entry.get(f"{key}_from_run")
    candidates = [run_dir / relative] if relative else []
    if entry.get(key):
        candidates.append(Path(entry[key]))
    return next((c for c in candidates if c.exists()), None)


def _check_originals(run_dir: Path, evidence: dict[str, Any], result: Verification, *, images: bool) -> None:
    cohort = _entry(evidence, "cohort")
    if cohort:
        root = _locate(run_dir, cohort)
        if root is None:
            result.add("input cohort", "skipped", f"not found at {cohort.get('path')}; the run's copy was checked")
        else:
            _compare_hash(result, "input cohort manifest", root / "manifest.parquet", cohort.get("manifest_sha256"))
            _compare_hash(result, "input cohort.yaml", root / "cohort.yaml", cohort.get("cohort_yaml_sha256"))
    for name, item in (("spec", "input spec"), ("policy", "input policy"), ("tone_calibration", "input calibration")):
        entry = _entry(evidence, name)
        if not entry:
            continue
        path = _locate(run_dir, entry)
        if path is None:
            result.add(item, "skipped", f"not found at {entry.get('path')}")
        else:
            _compare_hash(result, item, path, entry.get("sha256"))
    _check_model(run_dir, _entry(evidence, "model"), result)
    image_entry = _entry(evidence, "images")
    if images and image_entry and image_entry.get("hashed"):
        _check_images(run_dir, image_entry, result)


def _check_model(run_dir: Path, entry: dict[str, Any] | None, result: Verification) -> None:
    if not entry or not entry.get("files"):
        return
    path = _locate(run_dir, entry)
    if path is None:
        result.add("input model", "skipped", f"not found at {entry.get('path')}")
        return
    base = path.parent if path.is_file() else path
    differing = []
    for name, recorded in sorted(entry["files"].items()):
        file = base / name
        if not file.is_file() or sha256_file(file) != recorded:
            differing.append(name)
    if differing:
        result.add("input model", "mismatch", f"model files differ or are missing: {', '.join(differing[:5])}")
    else:
        result.add("input model", "ok")


def _check_images(run_dir: Path, entry: dict[str, Any], result: Verification) -> None:
    listing = run_dir / "images.sha256"
    root = _locate(run_dir, entry, key="root")
    if root is None or not listing.is_file():
        result.add("input images", "skipped", f"images root not found at {entry.get('root')}")
        return
    recorded = parse_checksum_lines(listing.read_text(encoding="utf-8"))
    differing = [name for name, digest in recorded.items()
                 if not (root / name).is_file() or sha256_file(root / name) != digest]
    if differing:
        result.add("input images", "mismatch",
                   f"{len(differing)} of {len(recorded)} images differ or are missing: {', '.join(differing[:5])}")
    else:
        result.add("input images", "ok", f"{len(recorded)} images")


def _recompute(run_dir: Path, result: Verification, intact: set[str]) -> None:
    try:
        loaded_spec, cohort = _stored_inputs(run_dir)
        selected = select_cases(cohort, loaded_spec.spec.cohort.filter, source="spec.yaml")
        tone = pd.read_parquet(run_dir / "tone.parquet") if (run_dir / "tone.parquet").is_file() else None
        predictions = pd.read_parquet(run_dir / "predictions.parquet")
        spec = loaded_spec.spec
        strata = _evaluation.strata_inputs(
            spec, selected.manifest,
            labels=run_dir / TONE_VALIDATION_FILE if spec.tone.validation_labels else None,
            error_model=run_dir / STRATA_ERROR_FILE if spec.tone.strata_error_file else None)
        scores = None
        if (run_dir / "scores.parquet").is_file():
            from fairderm.reasoning import read_scores

            scores = read_scores(run_dir / "scores.parquet")
        table = _evaluation.evaluation_table(selected.manifest, cohort.spec, tone, predictions, spec,
                                             cluster=cluster_column(loaded_spec, selected), trust=strata,
                                             scores=scores)
        metrics = _evaluation.compute_metrics(table, loaded_spec.spec)
    except (FairdermError, OSError, ValueError, KeyError) as exc:
        result.add("metrics.json", "error", f"cannot recompute the metrics: {str(exc).splitlines()[0]}")
        return
    _compare_file(run_dir, "metrics.json", metrics, result)
    _compare_file(run_dir, "coverage.json", table.coverage, result)
    if (run_dir / "policy.yaml").is_file():
        _regate(run_dir, result)


def _stored_inputs(run_dir: Path) -> tuple[LoadedSpec, Cohort]:
    spec_path = run_dir / "spec.yaml"
    spec = parse_spec(yaml.safe_load(spec_path.read_text(encoding="utf-8")), source=spec_path)
    loaded = LoadedSpec(spec=spec, source=spec_path.resolve(), name=spec.name or run_dir.parent.parent.name)
    cohort_dir = run_dir / "cohort"
    cohort_spec = CohortSpec.model_validate(yaml.safe_load((cohort_dir / "cohort.yaml").read_text(encoding="utf-8")))
    manifest = validate_manifest(pd.read_parquet(cohort_dir / "manifest.parquet"), cohort_spec,
                                 source=str(cohort_dir / "manifest.parquet"))
    return loaded, Cohort(root=cohort_dir, spec=cohort_spec, manifest=manifest)


def _regate(run_dir: Path, result: Verification) -> None:
    from fairderm.audit._stages import gate_result

    try:
        gate = gate_result(run_dir / "metrics.json", run_dir / "policy.yaml").to_dict()
    except FairdermError as exc:
        result.add("gate.json", "error", f"cannot re-evaluate the gate: {exc}")
        return
    _compare_file(run_dir, "gate.json", gate, result)


def _compare_file(run_dir: Path, name: str, recomputed: Any, result: Verification,
                  ignore: tuple[str, ...] = ()) -> None:
    path = run_dir / name
    if not path.is_file():
        result.add(name, "missing", "cannot compare the recomputed values")
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.add(name, "error", f"not valid JSON: {exc}")
        return
    fresh = json.loads(json.dumps(recomputed, default=_plain))  # the form the file was written in
    differences = list(differences_between(stored, fresh, ignore=ignore))
    for key, detail in differences[:MAX_DIFFERENCES]:
        result.add(name, "mismatch", detail, key=key)
    if len(differences) > MAX_DIFFERENCES:
        result.add(name, "mismatch", f"... and {len(differences) - MAX_DIFFERENCES} more differences")
    if not differences:
        result.add(name, "ok", "recomputed values match")


def _plain(obj: Any) -> Any:
    from fairderm._io import _json_default

    return _json_default(obj)


_IDENTITY_KEYS = ("attribute", "group", "metric", "kind", "reference", "test", "id", "stratum")


def _label(record: Any, index: int) -> str:
    if isinstance(record, dict):
        parts = [f"{k}={record[k]}" for k in _IDENTITY_KEYS if k in record and isinstance(record[k], str | int)]
        if parts:
            return ", ".join(parts)
    return str(index)


def _floats_equal(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= FLOAT_TOLERANCE * max(1.0, abs(a), abs(b))


def differences_between(
    stored: Any, fresh: Any, path: str = "", ignore: tuple[str, ...] = ()
) -> Iterator[tuple[str, str]]:
    """Yield ``(key path, what differs)`` between a stored JSON value and a recomputed one.

    Floats compare within :data:`FLOAT_TOLERANCE`; everything else exactly.
    Records in lists are named by their identity keys (attribute, group,
    metric, kind, ...) rather than their position when they have them.
    """
    where = path or "(top level)"
    if isinstance(stored, bool) or isinstance(fresh, bool):
        if stored is not fresh:
            yield where, f"stored {stored!r}, recomputed {fresh!r}"
    elif isinstance(stored, int | float) and isinstance(fresh, int | float):
        if not _floats_equal(float(stored), float(fresh)):
            yield where, f"stored {stored!r}, recomputed {fresh!r}"
    elif isinstance(stored, dict) and isinstance(fresh, dict):
        for key in sorted(set(stored) | set(fresh)):
            if key in ignore:
                continue
            sub = f"{path}.{key}" if path else str(key)
            if key not in fresh:
                yield sub, "in the stored file but not recomputed"
            elif key not in stored:
                yield sub, "recomputed but not in the stored file"
            else:
                yield from differences_between(stored[key], fresh[key], sub, ignore)
    elif isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            yield where, f"stored {len(stored)} entries, recomputed {len(fresh)}"
            return
        for index, (a, b) in enumerate(zip(stored, fresh)):
            yield from differences_between(a, b, f"{path}[{_label(a, index)}]", ignore)
    elif stored != fresh:
        yield where, f"stored {stored!r}, recomputed {fresh!r}"
