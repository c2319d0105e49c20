"""The predictions table: its columns and types, the hash of its rows, and its reader.

Every shard and the merged output carry the SHA-256 of their own rows
(``rows_sha256`` in the Parquet metadata): a file edited after it was written
is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fairderm._io import read_parquet_metadata
from fairderm.cohort import Cohort
from fairderm.errors import InputError
from fairderm.inference._predictor import raise_at_first_row

PREDICTIONS_FORMAT = "fairderm.predictions/1"
STATUSES = ("ok", "error", "unparseable")
TEXT_EXTRAS = ("latency_s", "prompt_tokens", "completion_tokens", "attempts")
_FLOAT_EXTRAS = {"latency_s"}


def _string_columns(has_text: bool) -> list[str]:
    columns = ["image_id", "stratum", "status", "reason", "pred"]
    return columns + (["text", "differential"] if has_text else [])


def typed_predictions(
    frame: pd.DataFrame, labels: Sequence[str], *, has_probs: bool, has_text: bool
) -> pd.DataFrame:
    """Fix column order and dtypes so that every shard has one schema."""
    columns = _string_columns(has_text)
    if has_probs:
        columns += [f"prob_{label}" for label in labels]
    if has_text:
        columns += list(TEXT_EXTRAS)
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        values = (
            frame[column]
            if column in frame.columns
            else pd.Series(None, index=frame.index, dtype=object)
        )
        if column.startswith("prob_") or column in _FLOAT_EXTRAS:
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif column in TEXT_EXTRAS:
            out[column] = pd.to_numeric(values, errors="coerce").astype("Int64")
        else:
            out[column] = values.astype("string")
    return out.reset_index(drop=True)


def rows_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a predictions table's column names and values (row order included, index not)."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def rows_problem(frame: pd.DataFrame, meta: dict[str, Any]) -> str | None:
    """Why a stored table may not be reused, or None when its rows are those it was written with."""
    stored = meta.get("rows_sha256")
    if stored is None:
        return "carries no content hash"
    if stored != rows_sha256(frame):
        return "was changed after it was written (its rows do not match their hash)"
    return None


def one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_predictions(path: str | os.PathLike[str], cohort: Cohort | None = None) -> pd.DataFrame:
    """Read and validate a predictions file written by :func:`run_inference`.

    Parameters
    ----------
    path
        The predictions Parquet file.
    cohort
        When given, every ``image_id`` must be one of the cohort's and every
        ``pred`` one of its labels.

    Returns
    -------
    pandas.DataFrame
        The rows, with the run metadata in ``frame.attrs["fairderm"]``.

    Raises
    ------
    InputError
        For a missing file, missing columns, unknown statuses, labels or
        image ids, or probabilities outside 0-1.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("predictions file not found", source=str(path))
    try:
        frame = pd.read_parquet(path)
        meta = read_parquet_metadata(path)
    except Exception as exc:  # noqa: BLE001  pyarrow raises many types for a corrupt file
        raise InputError(f"cannot read predictions: {one_line(exc)}", source=str(path)) from None
    source = str(path)
    for column in ("image_id", "status", "reason", "pred"):
        if column not in frame.columns:
            raise InputError(f"required column missing: {column}", source=source, column=column)
    status, pred, ids = frame["status"], frame["pred"], frame["image_id"].astype(str)
    raise_at_first_row(
        ~status.isin(STATUSES),
        lambda k: f"status {status.iat[k]!r} is not one of {list(STATUSES)}",
        source=source,
        column="status",
    )
    raise_at_first_row(
        ids.duplicated(),
        lambda k: f"duplicate image_id {ids.iat[k]!r}",
        source=source,
        column="image_id",
    )
    raise_at_first_row(
        (status == "ok") & pred.isna(),
        lambda k: "status ok without a pred",
        source=source,
        column="pred",
    )
    for column in (c for c in frame.columns if c.startswith("prob_")):
        values = pd.to_numeric(frame[column], errors="coerce")
        raise_at_first_row(
            values.notna() & ((values < 0) | (values > 1 + 1e-6)),
            lambda k, v=values: f"probability {v.iat[k]} outside 0-1",
            source=source,
            column=column,
        )
    labels = list(cohort.spec.labels) if cohort is not None else meta.get("labels")
    if labels:
        raise_at_first_row(
            pred.notna() & ~pred.isin(labels),
            lambda k: f"pred {pred.iat[k]!r} is not one of the labels {labels}",
            source=source,
            column="pred",
        )
    if cohort is not None:
        known = set(cohort.manifest["image_id"].astype(str))
        raise_at_first_row(
            ~ids.isin(known),
            lambda k: f"image_id {ids.iat[k]!r} is not in cohort {cohort.spec.name!r}",
            source=source,
            column="image_id",
        )
    frame.attrs["fairderm"] = meta
    return frame
