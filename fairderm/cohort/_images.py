"""Checks of the image files a manifest points at: inside the root, present, decodable."""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image

from fairderm.cohort._schema import source_row
from fairderm.errors import InputError

# A photo larger than this many pixels is treated as a decompression bomb.
MAX_IMAGE_PIXELS = 120_000_000


def resolve_inside(root: Path, relative: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse anything that escapes it.

    Absolute paths, ``..`` components that leave the root and symlinks that
    point outside it are refused with :class:`ValueError` (the caller adds
    the row and column).
    """
    text = str(relative)
    if os.path.isabs(text) or PurePosixPath(text).is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise ValueError(f"absolute path {text!r} is not allowed; give it relative to images_root")
    root_real = root.resolve()
    candidate = (root_real / text).resolve()
    if not candidate.is_relative_to(root_real):
        raise ValueError(f"path {text!r} escapes images_root {str(root_real)!r}")
    return candidate


def checked_image_path(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` resolved now, symlinks followed; :class:`ValueError` when that leaves ``root``.

    The check every stage makes just before it opens an image or mask: a
    manifest rewritten or a symlink swapped after the cohort was imported
    (and validated) must not make fairderm read outside ``images_root``.
    Returns the resolved path, which the caller opens.
    """
    root_real = Path(root).resolve()
    real = Path(path).resolve()
    if not real.is_relative_to(root_real):
        try:
            shown = Path(path).relative_to(root_real).as_posix()
        except ValueError:
            shown = str(path)
        raise ValueError(f"path {shown!r} escapes images_root")
    return real


def image_problem(path: Path) -> str | None:
    """Why the image at ``path`` can't be used, or None when it decodes.

    JPEGs are decoded at reduced size (draft mode), which still reads the
    whole entropy-coded stream, so truncation is caught cheaply.
    """
    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "not a regular file"
    if path.stat().st_size == 0:
        return "file is empty (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    return f"image is {width}x{height}, above the {MAX_IMAGE_PIXELS} pixel limit"
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"cannot decode image: {detail}"
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header, without decoding pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError):
        return None


def check_images(
    manifest: pd.DataFrame,
    images_root: Path,
    *,
    source: str,
    columns: tuple[str, ...] = ("image", "mask"),
    workers: int | None = None,
) -> None:
    """Check every path column of a manifest; raise on the first bad row.

    Decoding runs in a thread pool (Pillow releases the GIL while decoding).
    """
    for column in columns:
        if column not in manifest.columns:
            continue
        values = manifest[column].tolist()
        paths: list[Path | None] = []
        for position, value in enumerate(values):
            if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                if column == "image":
                    raise InputError(
                        "empty value", source=source, row=source_row(manifest, position), column=column
                    )
                paths.append(None)
                continue
            try:
                paths.append(resolve_inside(images_root, str(value)))
            except ValueError as exc:
                raise InputError(
                    str(exc), source=source, row=source_row(manifest, position), column=column
                ) from None
        todo = [(i, p) for i, p in enumerate(paths) if p is not None]
        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
            problems = list(pool.map(lambda item: image_problem(item[1]), todo))
        for (position, _path), problem in zip(todo, problems):
            if problem is not None:
                raise InputError(
                    f"{problem}: {values[position]}",
                    source=source, row=source_row(manifest, position), column=column,
                )
