"""The stage cache: each stage's outputs stored under the hash of its inputs.

Layout: ``<cache_dir>/<stage>/<key>/`` holds the stage's files plus
``_inputs.json`` (the inputs the key was computed from, for a reader who wants
to know why two keys differ). A folder is moved into place only once the stage
has finished (see :func:`fairderm._io.atomic_output_dir`), so a folder that
exists is complete; a crashed stage leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fairderm._io import atomic_output_dir, atomic_write_json, sha256_json
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
                atomic_write_json(staging / INPUTS_FILE, {"stage": stage, "key": key, "inputs": inputs})
        except (InputError, OSError):
            if self.lookup(stage, key) is None:
                raise
