"""``<out>.shards/``: the batches of an unfinished inference run, each written as it finishes.

After every batch (or, on Ray, every block) its rows are written as one
Parquet shard through a temporary file and a rename. A run that is killed
loses at most the batches in flight; the next run with the same
fingerprint reads the shards and skips the finished cases.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from fairderm._io import atomic_write_json, atomic_write_parquet, read_parquet_metadata
from fairderm._terminal import printable
from fairderm.inference._predictions import rows_problem, rows_sha256

_RUN_FILE = "run.json"


class ShardStore:
    """``<out>.shards/``: ``run.json`` with the fingerprint, and ``shard-NNNNNN.parquet`` files.

    ``notes`` collects one line per shard that is not reused because its rows
    no longer match the hash it was written with.
    """

    def __init__(self, out: Path) -> None:
        self.folder = out.with_name(out.name + ".shards")
        self.notes: list[str] = []

    def fingerprint(self) -> str | None:
        run_file = self.folder / _RUN_FILE
        if not run_file.is_file():
            return None
        try:
            return json.loads(run_file.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            return None

    def start(self, fingerprint: str, description: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / _RUN_FILE, {"fingerprint": fingerprint, **description})

    def shard_paths(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.parquet")) if self.folder.is_dir() else []

    def read(self) -> pd.DataFrame:
        frames = []
        for path in self.shard_paths():
            # shards are written atomically: one that does not read is foreign; its cases are redone
            with contextlib.suppress(OSError, ValueError, pa.ArrowException):
                frame = pd.read_parquet(path)
                problem = rows_problem(frame, read_parquet_metadata(path))
                if problem is None:
                    frames.append(frame)
                    continue
                note = f"{printable(path.name)} {problem}: its {len(frame)} cases are run again"
                if note not in self.notes:
                    self.notes.append(note)
        if not frames:
            return pd.DataFrame(columns=["image_id", "status"])
        # a case retried after an error appears twice; the later shard wins
        return pd.concat(frames, ignore_index=True).drop_duplicates("image_id", keep="last")

    def write(self, frame: pd.DataFrame) -> None:
        existing = self.shard_paths()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        atomic_write_parquet(
            self.folder / f"shard-{number:06d}.parquet", frame, metadata_json={"rows_sha256": rows_sha256(frame)}
        )

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
