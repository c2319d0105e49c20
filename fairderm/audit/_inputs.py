"""The audit's inputs: the selected cases and the content hashes of everything used.

What is hashed (all SHA-256):

* the cohort's ``cohort.yaml`` and ``manifest.parquet``;
* every selected image, and its lesion mask when the tone stage uses the
  cohort's masks (``images.sha256`` in the run folder lists them, in
  ``sha256sum`` format relative to the cohort's ``images_root``; their
  combined digest is the SHA-256 of that file);
* the model: every file of a model folder (or the checkpoint file), or for a
  served model its name and prompt file (its endpoints are recorded as
  locations, outside the cache keys, like paths);
* the policy, the tone calibration and the spec file itself.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairderm._io import sha256_bytes, sha256_json
from fairderm.audit._hashing import FileHasher, checksum_lines, combined_digest, tree_digests
from fairderm.audit._spec import LoadedSpec
from fairderm.audit._spec_sections import TONE_DERIVED
from fairderm.cohort import SPEC_FILE, Cohort, checked_image_path, parse_filter
from fairderm.errors import InputError


def select_cases(cohort: Cohort, expression: str | None, *, source: str) -> Cohort:
    """The cohort restricted to the rows ``expression`` selects (see :func:`fairderm.cohort.parse_filter`).

    The filter is parsed by fairderm, never evaluated as Python or pandas
    code: ``fairderm verify`` applies the filter stored in a run folder that
    someone else wrote.

    Raises
    ------
    InputError
        For an expression outside the filter language, a column the manifest
        lacks, or one that selects nothing.
    """
    if not expression:
        return cohort
    manifest = cohort.manifest
    try:
        mask = parse_filter(expression).mask(manifest)
    except InputError as exc:
        raise InputError(f"key 'cohort.filter': cannot evaluate {expression!r}: {exc.reason}", source=source) from None
    selected = manifest[mask].reset_index(drop=True)
    if selected.empty:
        raise InputError(f"key 'cohort.filter': {expression!r} selects no cases", source=source)
    return Cohort(root=cohort.root, spec=cohort.spec, manifest=selected)


def check_columns(loaded: LoadedSpec, cohort: Cohort) -> None:
    """Every attribute, tone column and cluster column the spec names is in the manifest."""
    spec = loaded.spec
    columns = set(cohort.manifest.columns)
    source = str(loaded.source)
    if spec.tone.source == "column" and spec.tone.column not in columns:
        raise InputError(f"key 'tone.column': no column {spec.tone.column!r} in the cohort's manifest", source=source)
    for attribute in loaded.spec.stratum_attributes():
        if attribute not in columns and attribute not in TONE_DERIVED:
            raise InputError(f"key 'strata.attributes': no column {attribute!r} in the cohort's manifest",
                             source=source)
    for combo in spec.strata.intersections:
        for attribute in combo:
            if attribute not in columns and attribute not in TONE_DERIVED:
                raise InputError(f"key 'strata.intersections': no column {attribute!r} in the cohort's manifest",
                                 source=source)
    if spec.tone.reference and spec.tone.reference not in columns:
        raise InputError(f"key 'tone.reference': no column {spec.tone.reference!r} in the cohort's manifest",
                         source=source)
    for covariate in spec.metrics.covariates:
        if covariate not in columns:
            raise InputError(f"key 'metrics.covariates': no column {covariate!r} in the cohort's manifest",
                             source=source)
    cluster = spec.bootstrap.cluster
    if cluster not in (None, "auto") and cluster not in columns:
        raise InputError(f"key 'bootstrap.cluster': no column {cluster!r} in the cohort's manifest", source=source)


def cluster_column(loaded: LoadedSpec, cohort: Cohort) -> str | None:
    """The resampling cluster column with 'auto' resolved."""
    cluster = loaded.spec.bootstrap.cluster
    if cluster == "auto":
        manifest = cohort.manifest
        has_patients = "patient_id" in manifest.columns and manifest["patient_id"].notna().all()
        return "patient_id" if has_patients else None
    return cluster


@dataclass
class AuditInputs:
    """Identities of everything an audit reads.

    Attributes
    ----------
    record
        JSON-safe description (evidence.json ``inputs``): paths and SHA-256.
    image_checksums
        ``images.sha256`` text (empty when image hashing is off).
    files
        Input files to copy into the run folder: run-relative name -> source path.
    """

    record: dict[str, Any]
    image_checksums: str = ""
    files: dict[str, Path] = field(default_factory=dict)

    def digest(self, *names: str) -> dict[str, Any]:
        """The SHA-256 entries of the named inputs, for a stage's cache key."""
        return {name: _hashes_only(self.record.get(name)) for name in names}


def _hashes_only(entry: Any) -> Any:
    # cache keys use content, never locations: moving an audit folder keeps its cache
    if isinstance(entry, dict):
        return {k: _hashes_only(v) for k, v in entry.items() if k not in _LOCATION_KEYS}
    return entry


_LOCATION_KEYS = frozenset({"path", "path_from_run", "root", "root_from_run", "copy", "endpoints"})


def add_run_relative_paths(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Add ``<key>_from_run`` beside each ``path``/``root``: the input relative to the run folder.

    ``fairderm verify`` looks for the inputs there first, so that a tree
    moved as a whole (an audits folder with its cohort and models) still
    verifies against its originals.
    """
    out: dict[str, Any] = {}
    for name, entry in record.items():
        if isinstance(entry, dict):
            entry = dict(entry)
            for key in ("path", "root"):
                if entry.get(key):
                    entry[f"{key}_from_run"] = os.path.relpath(entry[key], run_dir)
        out[name] = entry
    return out


#: The run folder's copies of the tone validation labels and of the strata error model.
TONE_VALIDATION_FILE = "tone_validation.csv"
STRATA_ERROR_FILE = "strata_error.csv"


def _file_entry(path: Path, hasher: FileHasher) -> dict[str, Any]:
    return {"path": str(path), "sha256": hasher.digest(path)}


def _image_entry(
    cohort: Cohort, hash_images: bool, hasher: FileHasher, *, masks: bool = False
) -> tuple[dict[str, Any], str]:
    """The selected images (and, when the tone stage uses them, their lesion masks), hashed or stamped."""
    names = cohort.manifest["image"].astype(str).tolist()
    paths = cohort.image_paths()
    counts = {"count": len(names)}
    mask_paths = [path for path in cohort.mask_paths() if path is not None] if masks else []
    for column, path in [("image", p) for p in paths] + [("mask", p) for p in mask_paths]:
        try:
            checked_image_path(cohort.images_root, path)
        except ValueError as exc:
            # a manifest or symlink changed since import: nothing outside images_root is read or hashed
            raise InputError(f"cannot be used: {exc}", source=str(cohort.manifest_path), column=column) from None
    if masks:
        counts["masks"] = len(mask_paths)
        names += [path.relative_to(cohort.images_root.resolve()).as_posix() for path in mask_paths]
        paths += mask_paths
    if not hash_images:
        # without content hashes the selection is identified by its paths and file stamps
        stamps = []
        for path in paths:
            try:
                stat = path.stat()
                stamps.append([stat.st_size, stat.st_mtime_ns])
            except OSError:
                stamps.append(None)
        return {**counts, "hashed": False, "stamps_sha256": sha256_json([names, stamps])}, ""
    digests = hasher.digests(paths)
    unreadable = [n for n, d in zip(names, digests) if d is None]
    if unreadable:
        raise InputError(f"image cannot be read: {unreadable[0]}", source=str(cohort.images_root), column="image")
    text = checksum_lines(names, digests)
    return {
        **counts, "hashed": True, "root": str(cohort.images_root.resolve()),
        "list": "images.sha256", "sha256": sha256_bytes(text.encode()),
    }, text


def _model_entry(loaded: LoadedSpec, hasher: FileHasher) -> dict[str, Any]:
    model = loaded.spec.model
    entry: dict[str, Any] = {"backend": model.backend, "model": model.model, "options": model.options}
    path = loaded.model_path
    if path is not None:
        # a torch model.json named as a file loads weights from beside it: the whole folder is the model
        files = tree_digests(path.parent if model.backend == "torch" and path.is_file() else path, hasher)
        entry.update(path=str(path), files=files, sha256=combined_digest(files))
    else:
        entry.update(endpoints=model.served_at, sha256=sha256_json([model.backend, model.model]))
    if model.prompt:
        entry["prompt"] = _file_entry(loaded.resolve(model.prompt), hasher)
    if model.architecture:
        # the user's own code builds the model: its file is part of the model's identity
        entry["architecture"] = {"name": model.architecture, **_file_entry(_architecture_file(loaded), hasher)}
    return entry


def _architecture_file(loaded: LoadedSpec) -> Path:
    """The file defining the spec's own model class (``model.architecture``), to hash."""
    module_part = str(loaded.architecture).partition(":")[0]
    if module_part.endswith(".py"):
        return Path(module_part)
    try:
        # finding a submodule imports its parent packages: the user's code, named in the user's spec
        found = importlib.util.find_spec(module_part)
    except (ImportError, ValueError) as exc:
        raise InputError(f"key 'model.architecture': cannot find {module_part!r}: {exc}",
                         source=str(loaded.source)) from None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise InputError(f"key 'model.architecture': no source file for {module_part!r}", source=str(loaded.source))
    return Path(found.origin)


def collect_inputs(loaded: LoadedSpec, cohort: Cohort, selected: Cohort, hasher: FileHasher) -> AuditInputs:
    """Hash every input of an audit.

    Parameters
    ----------
    loaded
        The resolved spec.
    cohort
        The whole cohort (its files are hashed).
    selected
        The audited cases (their images are hashed).
    hasher
        Digest source (with or without a memo).
    """
    spec = loaded.spec
    cohort_entry = {
        "path": str(cohort.root.resolve()),
        "name": cohort.spec.name,
        "synthetic": cohort.spec.synthetic,
        "cohort_yaml_sha256": hasher.digest(cohort.root / SPEC_FILE),
        "manifest_sha256": hasher.digest(cohort.manifest_path),
        "filter": spec.cohort.filter,
        "n_cases": len(cohort),
        "n_selected": len(selected),
        "selected_ids_sha256": sha256_json(selected.manifest["image_id"].astype(str).tolist()),
        "copy": {"cohort.yaml": "cohort/cohort.yaml", "manifest.parquet": "cohort/manifest.parquet"},
    }
    masks = spec.tone.source == "estimate" and spec.tone.lesion_masks
    images, checksums = _image_entry(selected, spec.outputs.hash_images, hasher, masks=masks)
    record: dict[str, Any] = {
        "spec": _file_entry(loaded.source, hasher),
        "cohort": cohort_entry,
        "images": images,
        "model": _model_entry(loaded, hasher),
        "policy": _file_entry(loaded.policy_path, hasher) if loaded.policy_path else None,
        "tone_calibration": (
            _file_entry(loaded.resolve(spec.tone.calibration), hasher) if spec.tone.calibration else None
        ),
        "tone_table": _file_entry(loaded.resolve(spec.tone.table), hasher) if spec.tone.table else None,
    }
    files = {"cohort/cohort.yaml": cohort.root / SPEC_FILE, "cohort/manifest.parquet": cohort.manifest_path}
    if loaded.policy_path:
        files["policy.yaml"] = loaded.policy_path
        record["policy"]["copy"] = "policy.yaml"
    # The strata's validation labels and error model are inputs of the metrics: the run keeps a copy of
    # each, so that verify recomputes the corrected or bounded rows from the run folder alone.
    for key, value, copy in (("tone_validation", spec.tone.validation_labels, TONE_VALIDATION_FILE),
                             ("strata_error", spec.tone.strata_error_file, STRATA_ERROR_FILE)):
        record[key] = None
        if value:
            record[key] = {**_file_entry(loaded.resolve(value), hasher), "copy": copy}
            files[copy] = loaded.resolve(value)
    return AuditInputs(record=record, image_checksums=checksums, files=files)
