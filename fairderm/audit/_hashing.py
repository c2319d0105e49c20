"""Content hashes of an audit's inputs: images, model files, any file or folder.

An audit hashes every input so that its stage cache is keyed by content and
its evidence names exactly what was used. Re-hashing gigabytes of model
weights on every run would make an unchanged rerun slow, so the audit keeps a
memo of digests keyed by (path, size, modification time), as ``git`` does for
its index; ``fairderm verify`` never uses the memo and always reads the bytes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fairderm._io import atomic_write_text, sha256_bytes, sha256_file


class FileHasher:
    """SHA-256 of files, optionally remembered by (path, size, mtime).

    Parameters
    ----------
    memo
        JSON file holding remembered digests; ``None`` hashes every file
        every time.
    """

    def __init__(self, memo: Path | None = None) -> None:
        self.memo_path = memo
        self._memo: dict[str, list[Any]] = {}
        self._dirty = False
        if memo is not None and memo.is_file():
            try:
                self._memo = json.loads(memo.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._memo = {}  # a damaged memo only costs re-hashing

    def digest(self, path: Path) -> str:
        """Hex SHA-256 of one file (raises OSError when it cannot be read)."""
        if self.memo_path is None:
            return sha256_file(path)
        stat = path.stat()
        key = str(path.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns]
        known = self._memo.get(key)
        if known is not None and known[:2] == stamp:
            return str(known[2])
        value = sha256_file(path)
        self._memo[key] = [*stamp, value]
        self._dirty = True
        return value

    def digests(self, paths: Sequence[Path]) -> list[str | None]:
        """Digests of many files in parallel threads (None for an unreadable file)."""

        def one(path: Path) -> str | None:
            try:
                return self.digest(path)
            except OSError:
                return None

        # hashing is I/O and C code that releases the GIL: threads scale
        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
            return list(pool.map(one, paths))

    def save(self) -> None:
        """Write the memo back (atomically) when it changed."""
        if self.memo_path is not None and self._dirty:
            atomic_write_text(self.memo_path, json.dumps(self._memo, sort_keys=True))
            self._dirty = False


def _escaped(name: str) -> tuple[str, str]:
    """GNU ``sha256sum``'s escaping: a name holding ``\\``, a line feed or a carriage return gets them
    written as ``\\\\``, ``\\n`` and ``\\r`` and its line a leading ``\\``."""
    if not any(c in name for c in "\\\n\r"):
        return "", name
    return "\\", name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _unescaped(name: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), name)


def checksum_lines(names: Iterable[str], digests: Iterable[str | None]) -> str:
    """``sha256sum``-style text: one ``<digest>  <name>`` line per file.

    Unreadable files get the digest ``-`` so that they are still listed. A
    name holding a line break is escaped as GNU ``sha256sum`` does, so that
    every file keeps one line and ``sha256sum -c`` still reads the list.
    """
    lines = []
    for name, digest in zip(names, digests):
        flag, text = _escaped(name)
        lines.append(f"{flag}{digest or '-'}  {text}\n")
    return "".join(lines)


def parse_checksum_lines(text: str) -> dict[str, str]:
    """Inverse of :func:`checksum_lines`: name -> digest.

    Lines end at ``\\n`` only: other characters that :meth:`str.splitlines`
    would break at (``\\x0b``, ``\\x1c``, U+2028...) are valid in file names.
    """
    out: dict[str, str] = {}
    for line in text.split("\n"):
        escaped = line.startswith("\\")
        digest, sep, name = line[escaped:].partition("  ")
        if sep:
            out[_unescaped(name) if escaped else name] = digest
    return out


def read_checksum_file(path: Path) -> dict[str, str]:
    """:func:`parse_checksum_lines` of a file, read without newline translation."""
    return parse_checksum_lines(path.read_bytes().decode("utf-8"))


def tree_digests(path: Path, hasher: FileHasher | None = None) -> dict[str, str]:
    """Digest of every file under ``path`` (or of ``path`` itself when it is a file).

    Keys are POSIX paths relative to ``path`` (the file's own name for a file),
    sorted; hidden files and folders (``.name``) are left out, since they are
    caches and editor state, not the model.
    """
    hasher = hasher or FileHasher()
    if path.is_file():
        return {path.name: hasher.digest(path)}
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    names = [p.relative_to(path).as_posix() for p in files]
    return dict(zip(names, (hasher.digest(p) for p in files)))


def combined_digest(digests: dict[str, str]) -> str:
    """One digest for a set of named digests (the SHA-256 of their checksum lines)."""
    return sha256_bytes(checksum_lines(sorted(digests), (digests[k] for k in sorted(digests))).encode())
