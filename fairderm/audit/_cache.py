"""The stage cache: each stage's outputs stored under the hash of its inputs.

Layout: ``<cache_dir>/<stage>/<key>/`` holds the stage's files plus
``_inputs.json`` (the inputs the key was computed from, for a reader who wants
to know why two keys differ). A stage is built in ``<stage>/.<key>.partial/``
while its entry's lock (:func:`fairderm._io.output_lock`) is held, and moved
into place only once it has finished, so a folder that exists is complete. A
stage that fails with an error leaves nothing behind; one that is killed or
interrupted leaves its ``.partial`` folder, which the next build of the same
key (the same inputs, so the same outputs) takes over: the inference stage
resumes from the shards in it rather than from zero, and the folder is gone
once the entry is published. ``_inputs.json`` also records the SHA-256 of every
file stored: an entry whose files no longer match is not reused
(:meth:`StageCache.integrity_problem`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fairderm._io import atomic_write_json, output_lock, sha256_file, sha256_json
from fairderm._terminal import printable
from fairderm._version import __version__

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
        with output_lock(folder):
            aside = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".discarded", dir=folder.parent))
            with contextlib.suppress(FileNotFoundError):
                os.replace(folder, aside / key)
            shutil.rmtree(aside, ignore_errors=True)

    def build(
        self, stage: str, key: str, inputs: Mapping[str, Any], work: Callable[[Path], None], *, wait: float = 0.0
    ) -> tuple[Path, bool]:
        """The entry of ``stage`` for ``key``: found, or built by ``work(staging)`` under the entry's lock.

        Returns the entry's folder and whether this call built it. A process
        that waited for the lock while another built the same key finds the
        finished entry and does no work.

        Raises
        ------
        OutputBusyError
            When another process still builds the entry after ``wait`` seconds.
        """
        with output_lock(self.folder(stage, key), wait=wait):
            found = self.lookup(stage, key)
            if found is not None:
                return found, False
            with self._staged(stage, key, inputs) as staging:
                work(staging)
        return self.folder(stage, key), True

    @contextlib.contextmanager
    def store(self, stage: str, key: str, inputs: Mapping[str, Any], *, wait: float = 0.0) -> Iterator[Path]:
        """Build a stage's outputs in its staging folder under the entry's lock; publish them on success."""
        with output_lock(self.folder(stage, key), wait=wait), self._staged(stage, key, inputs) as staging:
            yield staging

    @contextlib.contextmanager
    def _staged(self, stage: str, key: str, inputs: Mapping[str, Any]) -> Iterator[Path]:
        # the caller holds the entry's lock: nobody else uses its staging folder or its place
        target = self.folder(stage, key)
        staging = target.with_name(f".{key}.partial")
        if target.exists() and not (target / INPUTS_FILE).is_file():
            shutil.rmtree(target)  # an unfinished entry at the key's place (older fairderm)
        if staging.is_dir():
            # a killed build of the same key: keep its inference shards, drop everything else
            for entry in staging.iterdir():
                if entry.is_dir() and not entry.is_symlink() and entry.name.endswith(".shards"):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        staging.mkdir(parents=True, exist_ok=True)
        try:
            yield staging
            atomic_write_json(staging / INPUTS_FILE, {"stage": stage, "key": key, "inputs": inputs,
                                                      "files": _file_digests(staging)})
        except Exception:
            # a stage that failed is not resumed; an interrupt (KeyboardInterrupt, SIGKILL) keeps it to resume
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.replace(staging, target)


def _file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a cache entry but its ``_inputs.json``, by relative path."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != INPUTS_FILE
    }
