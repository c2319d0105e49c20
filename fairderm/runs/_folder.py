"""One reader and one writer of a run folder's files, each file as its typed record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import yaml

from fairderm._io import atomic_write_json, read_parquet_metadata
from fairderm.errors import InputError
from fairderm.metrics import EvaluationResult, read_metrics
from fairderm.runs._layout import METRICS_FILE, PREDICTIONS_FILE, RUN_SPEC_FILE, TONE_FILE
from fairderm.tone import ToneTable, read_tone_table


def read_json_file(path: str | Path, *, what: str) -> Any:
    """Parse a JSON file, raising :class:`InputError` naming it when missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", source=str(path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}", source=str(path)) from None
    except RecursionError:
        raise InputError(f"{what} is nested too deeply to read", source=str(path)) from None


@dataclass(frozen=True)
class Predictions:
    """``predictions.parquet``: the rows (all columns, or those asked for) and the run metadata."""

    frame: pd.DataFrame
    metadata: dict[str, Any]

    def status_counts(self) -> dict[str, int]:
        """Cases per prediction status (``ok``, ``error``, ``unparseable``)."""
        return {str(k): int(v) for k, v in self.frame["status"].value_counts().items()}


@dataclass(frozen=True)
class RunFolder:
    """A run folder: its files by the names in :mod:`fairderm.runs`, read and written here only.

    Parameters
    ----------
    path
        The folder (``audits/NAME/runs/RUN_ID/``, or a stage's output folder).
    root
        When given, every file read must resolve (symlinks included) inside
        ``root``: a file that points elsewhere is refused (the dashboard
        serves one runs folder and nothing outside it).
    """

    path: Path
    root: Path | None = None

    @classmethod
    def open(cls, path: str | Path, *, root: Path | None = None) -> RunFolder:
        """A run folder that exists (InputError naming it otherwise)."""
        folder = Path(path)
        if not folder.is_dir():
            raise InputError("run folder not found", source=str(folder))
        return cls(folder, root)

    @property
    def name(self) -> str:
        """The run id: the folder's name."""
        return self.path.name

    def file(self, name: str) -> Path:
        """The path of one of the folder's files (see :mod:`fairderm.runs` for the names).

        Raises
        ------
        InputError
            With ``root`` set, when the file resolves outside it.
        """
        path = self.path / name
        if self.root is not None and not path.resolve().is_relative_to(self.root):
            raise InputError(f"{name} resolves outside the runs folder; refused", source=str(path))
        return path

    def has(self, name: str) -> bool:
        """Whether the folder holds the file."""
        return self.file(name).is_file()

    # readers ------------------------------------------------------------------------------------
    def metrics(self) -> EvaluationResult:
        """``metrics.json`` (required: InputError naming the file when missing or malformed)."""
        return read_metrics(self.file(METRICS_FILE))

    def json(self, name: str) -> dict[str, Any] | None:
        """An optional JSON file holding an object (None when absent; InputError naming it when malformed)."""
        path = self.file(name)
        if not path.exists():
            return None
        data = read_json_file(path, what=name)
        if not isinstance(data, dict):
            raise InputError(f"{name} must hold a JSON object", source=str(path))
        return data

    def text(self, name: str) -> str | None:
        """An optional text file (None when absent)."""
        path = self.file(name)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def spec(self) -> dict[str, Any] | None:
        """``spec.yaml``, the audit spec as run (None when absent)."""
        path = self.file(RUN_SPEC_FILE)
        if not path.is_file():
            return None
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"not valid YAML: {str(exc).splitlines()[0]}", source=str(path)) from None
        if data is not None and not isinstance(data, dict):
            raise InputError("the audit spec must be a mapping", source=str(path))
        return data

    def tone(self) -> ToneTable | None:
        """``tone.parquet`` with its provenance (None when absent)."""
        path = self.file(TONE_FILE)
        if not path.is_file():
            return None
        try:
            return read_tone_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read: {str(exc).splitlines()[0]}", source=str(path)) from None

    def predictions(self, columns: list[str] | None = None) -> Predictions | None:
        """``predictions.parquet`` (its ``columns`` only, when given) and its metadata; None when absent."""
        found = self._parquet(PREDICTIONS_FILE, columns)
        return None if found is None else Predictions(*found)

    def table(self, name: str) -> pd.DataFrame | None:
        """Another Parquet file of the folder (``scores.parquet``), None when absent."""
        found = self._parquet(name, None)
        return None if found is None else found[0]

    def _parquet(self, name: str, columns: list[str] | None) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        path = self.file(name)
        if not path.is_file():
            return None
        try:
            return pd.read_parquet(path, columns=columns), read_parquet_metadata(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise InputError(f"cannot read: {str(exc).splitlines()[0]}", source=str(path)) from None

    # writers ------------------------------------------------------------------------------------
    def write_metrics(self, result: EvaluationResult) -> Path:
        """Write ``metrics.json`` atomically; returns its path."""
        path = self.path / METRICS_FILE
        atomic_write_json(path, result.to_dict())
        return path

    def write_json(self, name: str, data: Any) -> Path:
        """Write one of the folder's JSON files atomically; returns its path."""
        path = self.path / name
        atomic_write_json(path, data)
        return path
