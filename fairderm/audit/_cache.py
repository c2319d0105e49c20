"""The stage cache: each stage's outputs stored under the hash of its inputs.

Layout: ``<cache_dir>/<stage>/<key>/`` holds the stage's files plus
``_inputs.json`` (the inputs the key was computed from, for a reader who wants
to know why two keys differ, and the SHA-256 of every file stored). A folder
is moved into place only once the stage has finished (see
:func:`fairderm._io.atomic_output_dir`), so a folder that exists is complete;
a crashed stage leaves nothing behind. An entry whose files no longer match
their stored hashes is not reused (:meth:`StageCache.integrity_problem`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fairderm._io import atomic_output_dir, atomic_write_json, sha256_file, sha256_json
from fairderm._terminal import printable
from fairderm._version import __version__
from fairderm.errors import InputError

INPUTS_FILE = "_inputs.json"


class StageCache:
    """Content-addressed storage of stage outputs.

    Parameters
    ----------
    root
        The cache folder (``audits/NAME/cache`` by default).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    def key(stage: str, inputs: Mapping[str, Any]) -> str:
        """The stage's cache key: SHA-256 of the canonical JSON of its inputs.

        The fairderm version is part of every key, so that an upgrade never
        reuses outputs of older code.
        """
        return sha256_json({"stage": stage, "fairderm": __version__, "inputs": inputs})

    def folder(self, stage: str, key: str) -> Path:
        """Where the outputs of ``stage`` for ``key`` live."""
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> Path | None:
        """The finished outputs' folder, or None on a miss."""
        folder = self.folder(stage, key)
        return folder if (folder / INPUTS_FILE).is_file() else None

    def integrity_problem(self, folder: Path) -> str | None:
        """Why a cache entry's files are not those it stored (one line), or None when they are."""
        try:
            recorded = json.loads((folder / INPUTS_FILE).read_text(encoding="utf-8")).get("files")
        except (OSError, ValueError, AttributeError):
            return f"its {INPUTS_FILE} cannot be read"
        if not isinstance(recorded, dict):
            return "it holds no file hashes"
        actual = _file_digests(folder)
        for name in sorted(set(recorded) | set(actual)):
            if name not in actual:
                return f"{printable(name)} was removed after it was stored"
            if name not in recorded:
                return f"{printable(name)} was added after it was stored"
            if recorded[name] != actual[name]:
                return f"{printable(name)} was changed after it was stored"
        return None

    def discard(self, stage: str, key: str) -> None:
        """Remove an entry that may not be reused; it is moved aside first, so no reader finds it half gone."""
        folder = self.folder(stage, key)
        aside = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".discarded", dir=folder.parent))
        with contextlib.suppress(FileNotFoundError):
            os.replace(folder, aside / key)
        shutil.rmtree(aside, ignore_errors=True)

    @contextlib.contextmanager
    def store(self, stage: str, key: str, inputs: Mapping[str, Any]) -> Iterator[Path]:
        """Build a stage's outputs in a staging folder; publish them on success.

        Yields the staging folder. When another process published the same
        key meanwhile, its (identical by construction) outputs are kept.
        """
        target = self.folder(stage, key)
        if target.exists() and not (target / INPUTS_FILE).is_file():
            # an empty or foreign folder at the key's place: not a finished entry
            with contextlib.suppress(OSError):
                target.rmdir()
        try:
            with atomic_output_dir(target) as staging:
                yield staging
                atomic_write_json(staging / INPUTS_FILE, {"stage": stage, "key": key, "inputs": inputs,
                                                          "files": _file_digests(staging)})
        except (InputError, OSError):
            if self.lookup(stage, key) is None:
                raise


def _file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a cache entry but its ``_inputs.json``, by relative path."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != INPUTS_FILE
    }
