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
   fail verification; an input that is found but differs does. Verify reads
   originals only inside the inputs root (default: the folder holding
   ``audits/NAME/runs/RUN_ID``'s ``audits`` folder) and images only inside
   the cohort's ``images_root``; a path in ``evidence.json`` that resolves
   elsewhere is not opened (``skipped``, saying so), and an image or model
   file name that escapes its folder fails verification;
5. the metrics, recomputed with :mod:`fairderm.metrics` from the stored
   predictions, tone estimates, manifest copy and spec (the seed among them),
   against ``metrics.json`` and ``coverage.json``: exact for strings,
   integers and nulls, within 1e-12 (relative, or absolute below 1) for floats;
6. every derived file derived again from the run's own data and compared
   (the gate's reports, the run log, the card, the figures, ``pred`` against
   the probabilities, ``evidence.json``'s own fields): see
   :mod:`fairderm.audit._derived`;
7. with a public key, the producer's signature of the evidence digest
   (``evidence.sig``, see :mod:`fairderm.audit._signature`).

Verification passes only when nothing is ``mismatch``, ``missing``,
``unexpected`` or ``error``. Its ``evidence_sha256`` is the digest to
publish: with it a reader knows which evidence (and so which files) a
verified result is about.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fairderm._io import json_default, sha256_file
from fairderm.audit import _derived, _evaluation
from fairderm.audit._evidence import EVIDENCE_FILE, EVIDENCE_FORMAT, SIGNATURE_FILE
from fairderm.audit._hashing import read_checksum_file
from fairderm.audit._inputs import STRATA_ERROR_FILE, TONE_VALIDATION_FILE, cluster_column, select_cases
from fairderm.audit._signature import check_signature, load_public_key, read_signature
from fairderm.audit._spec import LoadedSpec, parse_spec
from fairderm.cohort import Cohort, CohortSpec, resolve_inside, validate_manifest
from fairderm.errors import FairdermError, InputError
from fairderm.runs import COVERAGE_FILE, METRICS_FILE, POLICY_FILE, PREDICTIONS_FILE, TONE_FILE

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
    """The outcome of :func:`verify_run`.

    Attributes
    ----------
    run_dir
        The run folder verified.
    evidence_sha256
        SHA-256 of its ``evidence.json``: the digest to publish (or sign).
    checks
        Every check made, in order.
    """

    run_dir: Path
    evidence_sha256: str = ""
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
        return {"run_dir": str(self.run_dir), "ok": self.ok, "evidence_sha256": self.evidence_sha256,
                "checks": [c.to_dict() for c in self.checks]}

    def summary(self) -> str:
        counts = self.to_frame()["status"].value_counts().to_dict() if self.checks else {}
        head = f"verify {self.run_dir}: {'OK' if self.ok else 'FAILED'} " + ", ".join(
            f"{n} {s}" for s, n in sorted(counts.items()))
        lines = [head, f"  evidence sha256:{self.evidence_sha256}"]
        for check in self.checks:
            if check.status != "ok":
                key = f" [{check.key}]" if check.key else ""
                lines.append(f"  {check.status:<10} {check.item}{key}: {check.detail}")
        return "\n".join(lines)


def verify_run(run_dir: str | Path, *, check_inputs: bool = True, check_images: bool = True,
               recompute: bool = True, public_key: str | Path | None = None,
               inputs_root: str | Path | None = None) -> Verification:
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
        Recompute the metrics and derive every derived file again from the
        stored files.
    public_key
        The producer's Ed25519 public key (PEM): ``evidence.sig`` must be its
        holder's signature of this ``evidence.json``.
    inputs_root
        With ``check_inputs``: the folder the original inputs are read in
        (default: the folder holding the ``audits`` folder of
        ``audits/NAME/runs/RUN_ID``; else none are read). Images are read in
        the cohort's ``images_root`` wherever it is.

    Raises
    ------
    InputError
        When ``run_dir`` is not a folder, holds a symbolic link or anything
        but plain files and folders, or has no readable ``evidence.json``, or
        ``public_key`` cannot be read.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found", source=str(run_dir))
    _refuse_special_files(run_dir)
    if public_key is not None:
        load_public_key(public_key)  # an unreadable key is refused before any work
    evidence_path = run_dir / EVIDENCE_FILE
    if not evidence_path.is_file():
        raise InputError(f"{EVIDENCE_FILE} not found: not an audit run folder", source=str(run_dir))
    try:
        evidence = json.loads(evidence_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"not valid JSON: {str(exc) or type(exc).__name__}", source=str(evidence_path)) from None
    if not isinstance(evidence, dict) or evidence.get("format") != EVIDENCE_FORMAT:
        raise InputError(f"not a {EVIDENCE_FORMAT} file", source=str(evidence_path), column="format")
    result = Verification(run_dir, evidence_sha256=sha256_file(evidence_path))
    intact = _check_artifacts(run_dir, evidence, result)
    _check_copies(run_dir, evidence, result)
    if check_inputs:
        roots = [Path(inputs_root)] if inputs_root is not None else _default_inputs_roots(run_dir)
        _check_originals(run_dir, evidence, result, images=check_images, roots=[r.resolve() for r in roots])
    if recompute:
        _recompute(run_dir, evidence, result, intact)
    _check_signature(run_dir, result, public_key)
    return result


def _refuse_special_files(run_dir: Path) -> None:
    """A run folder holds plain files and folders only: a link could point verify at any file, a FIFO hang it.

    An audit writes every file itself (copies, never links), so a genuine run has none.
    """
    for folder, subfolders, files in os.walk(run_dir):
        for name in (*subfolders, *files):
            path = Path(folder) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                kind = "a symbolic link" if path.is_symlink() else "not a plain file"
                raise InputError(f"{path.relative_to(run_dir).as_posix()!r} is {kind}: a run folder holds plain "
                                 "files only; refused, nothing was read", source=str(run_dir))


def _default_inputs_roots(run_dir: Path) -> list[Path]:
    """``TREE`` for ``TREE/audits/NAME/runs/RUN_ID``: where an audit's spec, cohort, model and policy live."""
    parents = run_dir.resolve().parents
    return [parents[3]] if len(parents) > 3 and parents[0].name == "runs" else []


def _check_signature(run_dir: Path, result: Verification, public_key: str | Path | None) -> None:
    if public_key is None:
        try:
            signed = read_signature(run_dir) is not None
        except InputError as exc:
            result.add(SIGNATURE_FILE, "error", str(exc))
            return
        if signed:
            result.add(SIGNATURE_FILE, "skipped", "not checked: give the producer's public key (--public-key)")
        return
    outcome = check_signature(run_dir, public_key)
    result.add(SIGNATURE_FILE, "ok" if outcome.ok else "mismatch", outcome.detail)


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
        if path.is_file() and name not in (EVIDENCE_FILE, SIGNATURE_FILE) and name not in artifacts:
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
        _compare_hash(result, POLICY_FILE, run_dir / POLICY_FILE, policy.get("sha256"))
    images = _entry(evidence, "images") or {}
    if images.get("hashed"):
        _compare_hash(result, "images.sha256", run_dir / "images.sha256", images.get("sha256"))


def _inside(path: Path, roots: list[Path]) -> bool:
    real = path.resolve()
    return any(real.is_relative_to(root) for root in roots)


def _locate(run_dir: Path, entry: dict[str, Any], roots: list[Path], key: str = "path") -> tuple[Path | None, str]:
    """An original input inside ``roots``: relative to the run folder as recorded, else its absolute path.

    Returns the path (None when not found or not readable here) and, for
    None, why. A path outside ``roots`` is never opened, not even looked at:
    evidence.json is written by whoever produced the run.
    """
    relative = entry.get(f"{key}_from_run")
    candidates = [run_dir / str(relative)] if relative else []
    if entry.get(key):
        candidates.append(Path(str(entry[key])))
    allowed = [c for c in candidates if _inside(c, roots)]
    found = next((c for c in allowed if c.exists()), None)
    if found is not None:
        return found, ""
    if candidates and not allowed:
        where = ", ".join(str(r) for r in roots) or "nowhere (give --inputs-root)"
        return None, f"not read: {entry.get(key)} is outside the inputs root ({where})"
    return None, f"not found at {entry.get(key)}"


def _check_originals(run_dir: Path, evidence: dict[str, Any], result: Verification, *, images: bool,
                     roots: list[Path]) -> None:
    cohort = _entry(evidence, "cohort")
    cohort_root = None
    if cohort:
        cohort_root, why = _locate(run_dir, cohort, roots)
        if cohort_root is None:
            result.add("input cohort", "skipped", f"{why}; the run's copy was checked")
        else:
            _compare_hash(result, "input cohort manifest", cohort_root / "manifest.parquet",
                          cohort.get("manifest_sha256"))
            _compare_hash(result, "input cohort.yaml", cohort_root / "cohort.yaml", cohort.get("cohort_yaml_sha256"))
    for name, item in (("spec", "input spec"), ("policy", "input policy"), ("tone_calibration", "input calibration")):
        entry = _entry(evidence, name)
        if not entry:
            continue
        path, why = _locate(run_dir, entry, roots)
        if path is None:
            result.add(item, "skipped", why)
        else:
            _compare_hash(result, item, path, entry.get("sha256"))
    _check_model(run_dir, _entry(evidence, "model"), result, roots)
    image_entry = _entry(evidence, "images")
    if images and image_entry and image_entry.get("hashed"):
        _check_images(run_dir, image_entry, result, cohort_root)


def _check_model(run_dir: Path, entry: dict[str, Any] | None, result: Verification, roots: list[Path]) -> None:
    if not entry or not isinstance(entry.get("files"), dict) or not entry["files"]:
        return
    path, why = _locate(run_dir, entry, roots)
    if path is None:
        result.add("input model", "skipped", why)
        return
    base = path.parent if path.is_file() else path
    differing = []
    for name, recorded in sorted(entry["files"].items()):
        try:
            file = resolve_inside(base, str(name))
        except ValueError:
            result.add("input model", "error", f"refused: model file name {name!r} escapes the model folder")
            return
        if not file.is_file() or sha256_file(file) != recorded:
            differing.append(name)
    if differing:
        result.add("input model", "mismatch", f"model files differ or are missing: {', '.join(differing[:5])}")
    else:
        result.add("input model", "ok")


def _cohort_images_root(run_dir: Path, cohort_root: Path) -> Path | None:
    """The images_root the run's cohort.yaml gives, for the original cohort folder."""
    try:
        spec = CohortSpec.model_validate(yaml.safe_load((run_dir / "cohort/cohort.yaml").read_text(encoding="utf-8")))
    except (OSError, ValueError, yaml.YAMLError):
        return None  # the copy's hash and content are checked elsewhere
    root = Path(spec.images_root)
    return (root if root.is_absolute() else cohort_root / root).resolve()


def _check_images(run_dir: Path, entry: dict[str, Any], result: Verification, cohort_root: Path | None) -> None:
    listing = run_dir / "images.sha256"
    if cohort_root is None or not listing.is_file():
        result.add("input images", "skipped", "the original cohort was not read, so neither was its images_root")
        return
    root = _cohort_images_root(run_dir, cohort_root)
    if root is None or not root.is_dir():
        result.add("input images", "skipped", f"images root not found at {root}")
        return
    recorded_root = entry.get("root")
    moved = Path(str(entry.get("root_from_run"))) if entry.get("root_from_run") else None
    if not any(p is not None and (run_dir / p).resolve() == root for p in (moved, recorded_root)):
        result.add("input images", "mismatch", f"evidence.json names images root {recorded_root}, but the "
                   f"cohort's images_root is {root}")
        return
    recorded = read_checksum_file(listing)
    differing = []
    for name, digest in recorded.items():
        try:
            path = resolve_inside(root, name)
        except ValueError:
            result.add("input images", "error", f"refused: images.sha256 names {name!r}, outside images_root")
            return
        if not path.is_file() or sha256_file(path) != digest:
            differing.append(name)
    if differing:
        result.add("input images", "mismatch",
                   f"{len(differing)} of {len(recorded)} images differ or are missing: {', '.join(differing[:5])}")
    else:
        result.add("input images", "ok", f"{len(recorded)} images")


def _recompute(run_dir: Path, evidence: dict[str, Any], result: Verification, intact: set[str]) -> None:
    try:
        loaded_spec, cohort = _stored_inputs(run_dir)
        selected = select_cases(cohort, loaded_spec.spec.cohort.filter, source="spec.yaml")
        tone = pd.read_parquet(run_dir / TONE_FILE) if (run_dir / TONE_FILE).is_file() else None
        predictions = pd.read_parquet(run_dir / PREDICTIONS_FILE)
        spec = loaded_spec.spec
        strata = _evaluation.strata_inputs(
            spec, selected.manifest, cohort_ids=set(cohort.manifest["image_id"].astype(str)),
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
        result.add(METRICS_FILE, "error", f"cannot recompute the metrics: {str(exc).splitlines()[0]}")
        return
    compare_json_file(run_dir, METRICS_FILE, metrics.to_dict(), result)
    compare_json_file(run_dir, COVERAGE_FILE, table.coverage, result)
    _derived.check_selection(evidence, loaded_spec, cohort, selected, run_dir, result)
    _derived.check_predictions(run_dir, cohort, selected, predictions, result)
    _derived.check_evidence_fields(run_dir, evidence, loaded_spec, result)
    _derived.check_outputs(run_dir, evidence, loaded_spec, result)


def _stored_inputs(run_dir: Path) -> tuple[LoadedSpec, Cohort]:
    spec_path = run_dir / "spec.yaml"
    spec = parse_spec(yaml.safe_load(spec_path.read_text(encoding="utf-8")), source=spec_path)
    loaded = LoadedSpec(spec=spec, source=spec_path.resolve(), name=spec.name or run_dir.parent.parent.name)
    cohort_dir = run_dir / "cohort"
    cohort_spec = CohortSpec.model_validate(yaml.safe_load((cohort_dir / "cohort.yaml").read_text(encoding="utf-8")))
    manifest = validate_manifest(pd.read_parquet(cohort_dir / "manifest.parquet"), cohort_spec,
                                 source=str(cohort_dir / "manifest.parquet"))
    return loaded, Cohort(root=cohort_dir, spec=cohort_spec, manifest=manifest)


def compare_json_file(run_dir: Path, name: str, recomputed: Any, result: Verification,
                      ignore: tuple[str, ...] = ()) -> None:
    """A stored JSON file of the run against recomputed values: one ``mismatch`` per differing key."""
    path = run_dir / name
    if not path.is_file():
        result.add(name, "missing", "cannot compare the recomputed values")
        return
    fresh = json.loads(json.dumps(recomputed, default=json_default))  # the form the file was written in
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        differences = list(differences_between(stored, fresh, ignore=ignore))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.add(name, "error", f"not valid JSON: {exc}")
        return
    except RecursionError:
        result.add(name, "error", "nested too deeply to be a file this run wrote")
        return
    for key, detail in differences[:MAX_DIFFERENCES]:
        result.add(name, "mismatch", detail, key=key)
    if len(differences) > MAX_DIFFERENCES:
        result.add(name, "mismatch", f"... and {len(differences) - MAX_DIFFERENCES} more differences")
    if not differences:
        result.add(name, "ok", "recomputed values match")


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
