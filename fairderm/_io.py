"""Crash-safe file output, hashing and run provenance shared by all stages.

Every artefact fairderm writes goes through these helpers, so that a failed
or interrupted command never leaves a partial file or folder behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fairderm.errors import InputError, OutputBusyError

_HASH_CHUNK = 1 << 20
_LOCK_POLL_S = 0.1
# mkstemp creates files readable by the owner only; artefacts are meant to be shared.
_FILE_MODE = 0o644


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of the canonical JSON form of ``obj`` (sorted keys)."""
    return sha256_bytes(canonical_json(obj).encode())


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace, for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default)


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: the JSON form of a value json cannot write (see :func:`json_safe`)."""
    safe = json_safe(obj)
    if safe is obj:
        raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
    return safe


def json_safe(obj: Any) -> Any:
    """The one JSON-safe form of a value, recursively (JSON has no NaN, numpy or paths).

    NaN, infinities, None, ``pd.NA`` and ``NaT`` -> None; numpy scalars and
    arrays -> Python numbers and lists; tuples -> lists; mapping keys -> str;
    paths -> str; pydantic models -> their JSON dump. Everything else is
    returned as it is. What :func:`to_json_text` writes; also for a dict
    returned beside the file it was written to, so that both say the same.
    """
    import numpy as np

    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Mapping):
        return {str(key): json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(value) for value in obj.tolist()]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if _is_missing(obj):
        return None
    return obj


def _is_missing(obj: Any) -> bool:
    """pandas' missing-value markers (``pd.NA``, ``NaT``), without importing pandas for other values."""
    kind = type(obj)
    return kind.__module__.startswith("pandas") and kind.__name__ in ("NAType", "NaTType")


def to_json_text(obj: Any) -> str:
    """Readable JSON (indent 2, sorted keys) that handles numpy scalars.

    NaN and infinities are written as null, so that every file stays valid JSON.
    """
    return json.dumps(
        json_safe(obj), indent=2, sort_keys=True, default=json_default, allow_nan=False
    ) + "\n"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as readable JSON atomically."""
    atomic_write_text(path, to_json_text(obj))


def atomic_write_parquet(
    path: str | os.PathLike[str],
    frame: pd.DataFrame,
    metadata_json: dict[str, Any] | None = None,
) -> None:
    """Write a DataFrame as Parquet atomically, with optional JSON schema metadata.

    ``metadata_json`` is stored under the ``fairderm`` key of the Parquet
    schema metadata and read back by :func:`read_parquet_metadata`.
    """
    path = Path(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata_json is not None:
        meta = dict(table.schema.metadata or {})
        meta[b"fairderm"] = to_json_text(metadata_json).encode()
        table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_parquet_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON stored by :func:`atomic_write_parquet` (empty dict if none)."""
    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(b"fairderm")
    return json.loads(raw) if raw else {}


def read_table(path: str | os.PathLike[str], *, what: str = "table") -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a DataFrame, with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", source=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        sep = "\t" if suffix in {".tsv", ".tab"} else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {what}: {exc}".splitlines()[0], source=str(path)) from exc


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of an output: ``.NAME.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str], *, wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive OS lock on the output ``path`` for as long as the block runs.

    The lock is ``fcntl.flock`` on :func:`lock_path`, so the operating system
    releases it when its holder dies (even by SIGKILL): a lock never goes
    stale. The holder removes the lock file on release; a waiter that got
    the lock on a file removed meanwhile (its inode no longer the path's)
    tries again, so two processes can never both hold one output.

    Parameters
    ----------
    path
        The file or folder about to be written.
    wait
        Seconds to wait for another writer to finish; 0 refuses at once.

    Raises
    ------
    OutputBusyError
        When another process still holds the lock after ``wait`` seconds.
    """
    if wait < 0:
        raise InputError(f"wait must be >= 0 seconds, got {wait}", column="wait")
    target = lock_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                waited = f" (waited {wait:g} s)" if wait else ""
                raise OutputBusyError(
                    f"another fairderm process is writing this output{waited}; try again once it has finished",
                    source=str(path),
                ) from None
            time.sleep(_LOCK_POLL_S)
            continue
        try:
            current = os.stat(target)
        except FileNotFoundError:
            current = None
        held = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
            break
        os.close(fd)  # the holder before us removed this file: lock the one now at the path
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        os.close(fd)


def ensure_new_output_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that exists and is not empty."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InputError("output exists and is not empty; choose a new folder", source=str(path))
    return path


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place on success.

    On any exception the temporary folder is removed, so a failed command
    leaves no partial output. The target must not exist or be empty. The
    target's :func:`output_lock` is held throughout: a second process
    writing the same folder is refused.
    """
    with output_lock(path):
        target = ensure_new_output_dir(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        try:
            yield staging
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


_TRACKED_PACKAGES = (
    "fairderm", "numpy", "pandas", "pyarrow", "scipy", "statsmodels", "scikit-learn",
    "scikit-image", "pillow", "torch", "fairlearn", "transformers", "vllm", "streamlit",
)


def package_versions(names: tuple[str, ...] = _TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that can change a result."""
    return {name: version for name in names if (version := _installed_version(name)) is not None}


@functools.cache
def _installed_version(name: str) -> str | None:
    """``name``'s version, looked up once per process.

    A look-up reads the package's metadata files (about 2 ms each) and every
    ``evaluate`` records five: a simulation of many audits spent a tenth of its
    time here. A package upgraded while the process runs keeps the version
    first seen (as an imported package keeps the code first imported).
    """
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment_info() -> dict[str, Any]:
    """Python, platform, package versions and the GPU (if this process imported torch and has one), for provenance."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "gpu": None,
    }
    # Only a process that imported torch can have used a GPU: importing it here
    # would cost a core install's audit a second and record a GPU it never used.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = {
            "name": torch.cuda.get_device_name(0),
            "count": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
        }
    return info
