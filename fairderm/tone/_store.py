"""Tone tables on disk: Parquet with provenance, and a reader that checks them.

The Parquet schema metadata (key ``fairderm``) holds what is needed to
re-check a tone table: the estimator and its parameters, the calibration
hash, the cohort's name and manifest SHA-256, and package versions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fairderm._io import atomic_write_parquet, environment_info, read_parquet_metadata, read_table
from fairderm.cohort import Cohort
from fairderm.errors import InputError
from fairderm.tone._estimate import STATUSES, TONE_COLUMNS
from fairderm.tone._provenance import ToneProvenance, ToneTable


def write_tone(path: str | Path, frame: pd.DataFrame, cohort: Cohort) -> None:
    """Write a tone table atomically, with provenance in the Parquet metadata.

    Parameters
    ----------
    path
        Output ``.parquet`` file.
    frame
        The table from :func:`estimate_tone` (its ``attrs`` carry the settings).
    cohort
        The cohort it was estimated on; its manifest hash is recorded.

    Raises
    ------
    InputError
        When the table carries no estimation settings (see :meth:`ToneProvenance.of`).
    """
    _check_columns(frame, source="tone table")
    _check_ids(frame, cohort, source="tone table")
    provenance = ToneProvenance(
        estimation=ToneProvenance.of(frame).estimation,
        cohort={"name": cohort.spec.name, "manifest_sha256": cohort.manifest_sha256(), "n_images": len(cohort)},
        counts={status: int((frame["status"] == status).sum()) for status in STATUSES},
        environment=environment_info(),
    )
    clean = frame.copy()
    clean.attrs = {}
    atomic_write_parquet(path, clean, metadata_json=provenance.to_metadata())


def read_tone_table(path: str | Path, cohort: Cohort | None = None) -> ToneTable:
    """Read and check a tone table with its provenance; with ``cohort``, check it belongs to that cohort.

    Raises
    ------
    InputError
        If the file is missing, lacks a contract column, has an unknown
        status, or (with ``cohort``) its image_ids are not the cohort's.
    """
    path = Path(path)
    frame = read_table(path, what="tone")
    source = str(path)
    _check_columns(frame, source=source)
    metadata = read_parquet_metadata(path) if path.suffix.lower() in {".parquet", ".pq"} else {}
    for column in ("fitzpatrick_est", "monk_est"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int8")
    for column in ("ita", "ita_low", "ita_high", "skin_fraction"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["image_id"] = frame["image_id"].astype("string")
    bad = ~frame["status"].isin(STATUSES)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(f"status {frame['status'].iloc[row]!r} is not one of {list(STATUSES)}",
                         source=source, row=row + 1, column="status")
    if cohort is not None:
        _check_ids(frame, cohort, source=source)
    return ToneTable(frame=frame, provenance=ToneProvenance.from_metadata(metadata))


def read_tone(path: str | Path, cohort: Cohort | None = None) -> pd.DataFrame:
    """The rows of :func:`read_tone_table`, carrying their provenance in ``attrs`` for in-memory use.

    ``attrs["fairderm_tone"]`` holds the estimation settings and
    ``attrs["fairderm_tone_file"]`` the whole Parquet metadata. pandas drops
    ``attrs`` on ``concat`` and ``merge``: code that joins the table should
    read it with :func:`read_tone_table` and keep the provenance beside it.
    """
    table = read_tone_table(path, cohort)
    table.provenance.attach(table.frame)
    table.frame.attrs["fairderm_tone_file"] = table.provenance.to_metadata()
    return table.frame


def _check_columns(frame: pd.DataFrame, *, source: str) -> None:
    missing = [c for c in TONE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"not a tone table: column missing: {missing[0]}", source=source, column=missing[0])
    duplicated = frame["image_id"].duplicated()
    if duplicated.any():
        row = int(duplicated.to_numpy().nonzero()[0][0])
        raise InputError(f"duplicate image_id {frame['image_id'].iloc[row]!r}", source=source,
                         row=row + 1, column="image_id")


def _check_ids(frame: pd.DataFrame, cohort: Cohort, *, source: str) -> None:
    """The tone table must cover exactly the cohort's images."""
    tone_ids = set(frame["image_id"].astype(str))
    cohort_ids = set(cohort.manifest["image_id"].astype(str))
    if tone_ids == cohort_ids:
        return
    unknown = sorted(tone_ids - cohort_ids)
    missing = sorted(cohort_ids - tone_ids)
    parts = []
    if unknown:
        parts.append(f"{len(unknown)} image_id(s) not in cohort {cohort.spec.name!r} (first {unknown[0]!r})")
    if missing:
        parts.append(f"{len(missing)} cohort image(s) without a tone row (first {missing[0]!r})")
    raise InputError("tone table does not match the cohort: " + "; ".join(parts), source=source,
                     column="image_id")


def align_to_cohort(frame: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """The tone rows in manifest order (after :func:`read_tone` checked the ids)."""
    order = cohort.manifest["image_id"].astype(str)
    indexed = frame.set_index(frame["image_id"].astype(str))
    return indexed.loc[order.tolist()].reset_index(drop=True)
