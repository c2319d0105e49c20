"""What is in a cohort: counts by label and tone, missingness, patients, image sizes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm.cohort._images import checked_image_path, image_size
from fairderm.cohort._schema import TONE_ATTRIBUTES
from fairderm.cohort._store import Cohort

MISSING = "missing"


@dataclass
class CohortDescription:
    """Summary of a cohort, for people (``summary()``) and machines (``to_dict()``).

    Attributes
    ----------
    name, n_images, labels
        The cohort's name, size and label set.
    label_counts
        Images per label.
    tone_counts
        For each tone attribute present: a label x tone-value table of counts
        (missing values counted under ``"missing"``).
    missingness
        Fraction of empty values per manifest column.
    patients
        Number of patients and images per patient (min, median, max), when
        ``patient_id`` exists.
    image_sizes
        Width and height quantiles in pixels.
    """

    name: str
    synthetic: bool
    n_images: int
    labels: list[str]
    label_counts: dict[str, int]
    tone_counts: dict[str, pd.DataFrame] = field(repr=False)
    missingness: dict[str, float]
    patients: dict[str, Any]
    image_sizes: dict[str, Any]
    notes: list[str]

    def tone_totals(self, attribute: str) -> dict[str, int]:
        """Images per value of a tone attribute (``"missing"`` included)."""
        return {str(k): int(v) for k, v in self.tone_counts[attribute].sum(axis=0).items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "synthetic": self.synthetic,
            "n_images": self.n_images,
            "labels": self.labels,
            "label_counts": self.label_counts,
            "tone_counts": {
                attribute: {str(label): {str(k): int(v) for k, v in row.items()}
                            for label, row in table.iterrows()}
                for attribute, table in self.tone_counts.items()
            },
            "tone_totals": {a: self.tone_totals(a) for a in self.tone_counts},
            "missingness": self.missingness,
            "patients": self.patients,
            "image_sizes": self.image_sizes,
            "notes": self.notes,
        }

    def summary(self) -> str:
        """Plain-text report."""
        lines = [f"Cohort {self.name!r}: {self.n_images} images" + (" (synthetic)" if self.synthetic else "")]
        lines.append("Labels: " + ", ".join(f"{k} {v}" for k, v in self.label_counts.items()))
        for attribute in self.tone_counts:
            lines.append(f"{attribute}: " + ", ".join(f"{k} {v}" for k, v in self.tone_totals(attribute).items()))
        if self.patients:
            lines.append(f"Patients: {self.patients['n_patients']}")
        return "\n".join(lines)


def _tone_order(attribute: str, values: pd.Series) -> list[str]:
    present = [str(v) for v in values.dropna().unique()]
    if attribute in {"fitzpatrick", "monk"}:
        present = sorted(present, key=int)
    else:
        present = sorted(present)
    return present + ([MISSING] if values.isna().any() else [])


def describe_cohort(cohort: Cohort, *, read_image_sizes: bool = True) -> CohortDescription:
    """Describe a cohort.

    Parameters
    ----------
    cohort
        A loaded cohort.
    read_image_sizes
        Read each image's header for its size when the manifest has no
        ``width``/``height`` columns (headers only: no pixel decoding).
    """
    manifest = cohort.manifest
    labels = list(cohort.spec.labels)
    label_counts = {label: int((manifest["label"] == label).sum()) for label in labels}
    tone_counts: dict[str, pd.DataFrame] = {}
    for attribute in TONE_ATTRIBUTES:
        if attribute not in manifest.columns:
            continue
        values = manifest[attribute].astype("string")
        order = _tone_order(attribute, values)
        table = pd.crosstab(manifest["label"], values.fillna(MISSING)).reindex(
            index=labels, columns=order, fill_value=0
        )
        tone_counts[attribute] = table.astype(int)
    missingness = {c: float(manifest[c].isna().mean()) for c in manifest.columns}
    patients: dict[str, Any] = {}
    if "patient_id" in manifest.columns and manifest["patient_id"].notna().any():
        per_patient = manifest.groupby("patient_id").size()
        patients = {
            "n_patients": int(per_patient.size),
            "images_per_patient": {
                "min": int(per_patient.min()),
                "median": float(per_patient.median()),
                "max": int(per_patient.max()),
            },
            "patients_with_several_images": int((per_patient > 1).sum()),
        }
    image_sizes: dict[str, Any] = {}
    if {"width", "height"} <= set(manifest.columns):
        widths = pd.to_numeric(manifest["width"], errors="coerce").to_numpy(dtype=float)
        heights = pd.to_numeric(manifest["height"], errors="coerce").to_numpy(dtype=float)
    elif read_image_sizes:
        with ThreadPoolExecutor(max_workers=8) as pool:
            sizes = list(pool.map(lambda path: _size_inside(cohort.images_root, path), cohort.image_paths()))
        widths = np.array([s[0] if s else np.nan for s in sizes], dtype=float)
        heights = np.array([s[1] if s else np.nan for s in sizes], dtype=float)
    else:
        widths = heights = np.array([], dtype=float)
    if widths.size and np.isfinite(widths).any():
        image_sizes = {
            dim: {
                "min": int(np.nanmin(arr)), "median": float(np.nanmedian(arr)), "max": int(np.nanmax(arr)),
            }
            for dim, arr in (("width", widths), ("height", heights))
        }
        shapes = pd.Series([f"{int(w)}x{int(h)}" for w, h in zip(widths, heights) if pd.notna(w) and pd.notna(h)])
        image_sizes["most_common"] = shapes.value_counts().head(5).to_dict()
    return CohortDescription(
        name=cohort.spec.name,
        synthetic=cohort.spec.synthetic,
        n_images=len(manifest),
        labels=labels,
        label_counts=label_counts,
        tone_counts=tone_counts,
        missingness=missingness,
        patients=patients,
        image_sizes=image_sizes,
        notes=list(cohort.spec.notes),
    )


def _size_inside(root: Path, path: Path) -> tuple[int, int] | None:
    """The image's size, or None when it cannot be read or now lies outside ``root``."""
    try:
        return image_size(checked_image_path(root, path))
    except ValueError:
        return None
