"""Reading and writing cohort folders (``cohort.yaml`` + ``manifest.parquet``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from pydantic import ValidationError

from fairderm._io import atomic_output_dir, atomic_write_parquet, sha256_file
from fairderm._version import __version__
from fairderm.cohort._images import check_images, resolve_inside
from fairderm.cohort._schema import (
    MANIFEST_FILE,
    SOURCE_ROW,
    SPEC_FILE,
    CohortSpec,
    validate_manifest,
)
from fairderm.errors import InputError


@dataclass
class Cohort:
    """A validated cohort: its folder, its spec and its manifest.

    Attributes
    ----------
    root
        The cohort folder (holding ``cohort.yaml`` and ``manifest.parquet``).
    spec
        The parsed ``cohort.yaml``.
    manifest
        One row per image, columns as documented in :mod:`fairderm.cohort._schema`.
    """

    root: Path
    spec: CohortSpec
    manifest: pd.DataFrame = field(repr=False)

    @property
    def images_root(self) -> Path:
        """Absolute folder the manifest's image paths are relative to."""
        root = Path(self.spec.images_root)
        return root if root.is_absolute() else (self.root / root)

    def image_path(self, relative: str) -> Path:
        """Absolute path of an image or mask given relative to ``images_root``."""
        return resolve_inside(self.images_root, relative)

    def image_paths(self) -> list[Path]:
        """Absolute image paths, in manifest order.

        Not yet checked: whatever opens one first passes it through
        :func:`fairderm.cohort.checked_image_path`, at the moment it reads.
        """
        root = self.images_root.resolve()
        return [root / p for p in self.manifest["image"].tolist()]

    def mask_paths(self) -> list[Path | None]:
        """Absolute lesion-mask paths in manifest order; None where a case has none (all None without a mask column).

        Checked, like :meth:`image_paths`, by whatever opens them.
        """
        if "mask" not in self.manifest.columns:
            return [None] * len(self.manifest)
        root = self.images_root.resolve()
        return [None if pd.isna(m) or not str(m) else root / str(m) for m in self.manifest["mask"].tolist()]

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_FILE

    def manifest_sha256(self) -> str:
        """SHA-256 of ``manifest.parquet``: the cohort's identity in provenance."""
        return sha256_file(self.manifest_path)

    def __len__(self) -> int:
        return len(self.manifest)


def read_spec(root: Path) -> CohortSpec:
    """Parse ``cohort.yaml`` with an error that names the key at fault."""
    path = root / SPEC_FILE
    if not path.is_file():
        raise InputError(f"not a cohort folder: {SPEC_FILE} is missing", source=str(root))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {str(exc).splitlines()[0]}", source=str(path)) from None
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of keys", source=str(path))
    try:
        return CohortSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(first["msg"], source=str(path), column=key) from None


def load_cohort(root: str | Path, *, check_files: bool = False) -> Cohort:
    """Load and validate a cohort folder.

    Parameters
    ----------
    root
        The cohort folder.
    check_files
        Also check that every image exists inside ``images_root`` and decodes.
    """
    root = Path(root)
    spec = read_spec(root)
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise InputError(f"{MANIFEST_FILE} is missing", source=str(root))
    try:
        frame = pd.read_parquet(manifest_path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise InputError(f"cannot read manifest: {exc}".splitlines()[0], source=str(manifest_path)) from None
    manifest = validate_manifest(frame, spec, source=str(manifest_path))
    cohort = Cohort(root=root, spec=spec, manifest=manifest)
    if check_files:
        check_images(manifest, cohort.images_root, source=str(manifest_path))
    return cohort


def _portable_images_root(images_root: Path, out: Path) -> str:
    """Store images_root relative to the cohort folder when that is possible."""
    images_root = images_root.resolve()
    out = out.resolve()
    try:
        return str(images_root.relative_to(out)) or "."
    except ValueError:
        return str(images_root)


def write_cohort(
    out: str | Path,
    spec: CohortSpec,
    manifest: pd.DataFrame,
    *,
    images_root: Path | None = None,
    check_files: bool = True,
    source: str = "manifest",
    extra_files: dict[str, bytes] | None = None,
) -> Cohort:
    """Validate a manifest and write a cohort folder atomically.

    Nothing is written unless every row is valid: the folder is built under a
    temporary name and renamed into place at the end.

    Parameters
    ----------
    out
        New cohort folder; must not exist or be empty.
    spec
        Cohort description; ``images_root`` is overridden by ``images_root``.
    manifest
        Rows to validate and store.
    images_root
        Where the image paths are relative to (kept in place, not copied).
    check_files
        Check that each image is inside the root, present and decodable.
    source
        Name of the input (a file path) used in error messages.
    extra_files
        Further files (name -> bytes) to write inside the cohort folder, e.g.
        generated images for a synthetic cohort.
    """
    out = Path(out)
    clean = validate_manifest(manifest, spec, source=source)
    if images_root is not None:
        spec = spec.model_copy(update={"images_root": _portable_images_root(images_root, out)})
    spec = spec.model_copy(update={"created_with": f"fairderm {__version__}"})
    if check_files and images_root is not None:
        check_images(clean, images_root, source=source)
    with atomic_output_dir(out) as staging:
        for name, data in (extra_files or {}).items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if check_files and images_root is None:
            check_images(clean, staging, source=source)
        (staging / SPEC_FILE).write_text(
            yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )
        atomic_write_parquet(staging / MANIFEST_FILE, clean.drop(columns=[SOURCE_ROW], errors="ignore"))
    return load_cohort(out)
