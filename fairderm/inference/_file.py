"""Importing predictions made by another system (``--backend file``).

The file (CSV, TSV or Parquet) has an ``image_id`` column and a ``pred``
column, ``prob_<class>`` columns, or both; optional ``status`` and
``reason`` columns carry failures over. Class names (in ``pred`` values and
``prob_`` suffixes) are mapped onto the cohort's labels like any model's.
Everything is checked when the file is read, naming the row and column.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import read_table, sha256_file
from fairderm.errors import InputError
from fairderm.inference._predictor import (
    Predictor,
    PredictorOutput,
    raise_at_first_row,
    reject_unknown_options,
)


def _texts(column: pd.Series) -> list[str | None]:
    """Stripped strings, None for missing or empty cells."""
    return [None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in column.tolist()]


class FilePredictor(Predictor):
    """Predictions read from a file instead of computed."""

    backend = "file"
    needs_images = False
    batch_size = 4096

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        frame = read_table(self.path, what="predictions")
        source = str(self.path)
        if "image_id" not in frame.columns:
            raise InputError("required column missing: image_id", source=source, column="image_id")
        ids = frame["image_id"].astype("string").str.strip()
        frame = frame.assign(image_id=ids)
        raise_at_first_row(
            ids.isna() | (ids == ""), lambda k: "empty value", source=source, column="image_id"
        )
        raise_at_first_row(
            ids.duplicated(),
            lambda k: f"duplicate image_id {ids.iat[k]!r}",
            source=source,
            column="image_id",
        )
        prob_columns = [c for c in frame.columns if str(c).startswith("prob_")]
        if "pred" not in frame.columns and not prob_columns:
            raise InputError("needs a 'pred' column or 'prob_<class>' columns", source=source)
        self.gives_probabilities = bool(prob_columns)
        self.probs: np.ndarray | None = None
        if prob_columns:
            self.probs = self._checked_probs(frame, prob_columns, source)
            self.classes = [str(c)[len("prob_") :] for c in prob_columns]
        else:
            self.classes = sorted(frame["pred"].dropna().astype(str).str.strip().unique().tolist())
        self.preds = _texts(frame["pred"]) if "pred" in frame.columns else None
        self.gives_predictions = self.preds is not None
        self.status = _texts(frame["status"]) if "status" in frame.columns else None
        if self.status is not None:
            given = self.status
            raise_at_first_row(
                [value not in (None, "ok", "error", "unparseable") for value in given],
                lambda k: f"status {given[k]!r} is not ok/error/unparseable",
                source=source,
                column="status",
            )
        self.reasons = _texts(frame["reason"]) if "reason" in frame.columns else None
        self.row_of = {image_id: k for k, image_id in enumerate(frame["image_id"].tolist())}

    @staticmethod
    def _checked_probs(frame: pd.DataFrame, columns: list[str], source: str) -> np.ndarray:
        values = np.empty((len(frame), len(columns)))
        for j, column in enumerate(columns):
            raw = frame[column]
            numeric = pd.to_numeric(raw, errors="coerce")
            raise_at_first_row(
                raw.notna() & numeric.isna(),
                lambda k, r=raw: f"{r.iat[k]!r} is not a number",
                source=source,
                column=column,
            )
            raise_at_first_row(
                ((numeric < 0) | (numeric > 1)).fillna(False),
                lambda k, v=numeric: f"probability {v.iat[k]} outside 0-1",
                source=source,
                column=column,
            )
            values[:, j] = numeric.to_numpy(dtype=float, na_value=np.nan)
        return values

    def check_cases(self, image_ids: Sequence[str]) -> None:
        foreign = sorted(set(self.row_of) - set(image_ids))
        if foreign:
            raise InputError(
                f"{len(foreign)} image_ids are not in the cohort (e.g. {foreign[0]!r})",
                source=str(self.path),
                column="image_id",
            )

    def preprocess(self, path: Path | None) -> None:
        return None

    def collate(self, items: list[Any]) -> None:
        return None

    def predict(self, inputs: Any, image_ids: Sequence[str]) -> PredictorOutput:
        n = len(image_ids)
        rows = [self.row_of.get(i) for i in image_ids]
        status: list[str | None] = [None] * n
        reason: list[str | None] = [None] * n
        probs = None
        if self.probs is not None:
            probs = np.zeros((n, len(self.classes)))
        preds: list[str | None] | None = [None] * n if self.preds is not None else None
        for j, row in enumerate(rows):
            if row is None:
                status[j], reason[j] = "error", "not in the predictions file"
                continue
            if self.status is not None and self.status[row] in ("error", "unparseable"):
                status[j] = self.status[row]
                given = self.reasons[row] if self.reasons is not None else None
                reason[j] = given or "failed in the imported system"
                continue
            if probs is not None:
                probs[j] = self.probs[row]
                if np.isnan(probs[j]).any():
                    status[j], reason[j] = "error", "missing probability in the predictions file"
            if preds is not None:
                preds[j] = self.preds[row]
        return PredictorOutput(probs=probs, pred=preds, status=status, reason=reason)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "file",
            "model": str(self.path),
            "files": {self.path.name: sha256_file(self.path)},
            "classes": self.classes,
        }

    def preprocessing(self) -> dict[str, Any]:
        return {"images": "not read (predictions imported from a file)"}


def file_predictor(
    model: str | os.PathLike[str] | None, *, labels: Any = None, device: Any = None, **options: Any
) -> FilePredictor:
    """Factory of the ``file`` backend: ``model`` is the predictions file."""
    reject_unknown_options(options, [], "file")
    if model is None:
        raise InputError("backend 'file' needs a model: the predictions file (CSV or Parquet)", column="model")
    return FilePredictor(model)
