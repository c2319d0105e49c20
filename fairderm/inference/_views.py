"""Turned and mirrored views of the cohort's images, embedded and cached like the plain features.

The constrained router trains on extra views of its under-represented
groups' cases (:mod:`fairderm.moe`); each view is embedded by the backbone,
or by another :class:`~fairderm.inference.Embedder` (the LoRA experts'
trunk), and cached under its own key.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairderm.cohort import Cohort, load_cohort
from fairderm.errors import InputError
from fairderm.inference._backbone import (
    Backbone,
    Embedder,
    FeatureCache,
    ProgressCallback,
    _cached_features,
    default_cache_dir,
    feature_cache_key,
    feature_identity,
)
from fairderm.inference._efficientnet import FEATURE_DIM

# The seven non-identity symmetries of the square (the dihedral group D4): a
# skin lesion photographed turned or mirrored is the same lesion, and the
# frozen backbone's pooled features are not invariant to these, so each view
# is a further, genuinely different training case of the same label.
DIHEDRAL_VIEWS: tuple[str, ...] = (
    "rot90", "rot180", "rot270", "flip", "flip_rot90", "flip_rot180", "flip_rot270",
)


def dihedral_view(pixels: torch.Tensor, name: str) -> torch.Tensor:
    """``pixels`` (..., H, W) turned counter-clockwise and/or mirrored left-right, per ``name``."""
    if name not in DIHEDRAL_VIEWS:
        raise ValueError(f"unknown view {name!r}; expected one of {list(DIHEDRAL_VIEWS)}")
    turned = pixels.flip(-1) if name.startswith("flip") else pixels
    quarter_turns = int(name.rsplit("rot", 1)[1]) // 90 if "rot" in name else 0
    return torch.rot90(turned, quarter_turns, dims=(-2, -1)).contiguous()


def _view_of_file(path: Path, name: str) -> torch.Tensor:
    """The backbone's preprocessing of ``path``, then the view ``name`` (module level: DataLoader workers pickle it)."""
    return dihedral_view(Backbone.preprocess(path), name)


def extract_view_features(
    cohort: Cohort | str | os.PathLike[str],
    positions: Sequence[int],
    counts: Sequence[int],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    device: str | torch.device | None = None,
    use_cache: bool = True,
    embedder: Embedder | None = None,
    identity: dict[str, Any] | None = None,
    with_plain: bool = False,
) -> tuple[np.ndarray, dict[str, str]]:
    """Features of the first ``counts[i]`` :data:`DIHEDRAL_VIEWS` of the images at manifest ``positions``.

    Each view is extracted like the plain features (:func:`extract_features`),
    under its own cache key (the backbone identity plus the view's name), so
    a view is computed once per image.

    Parameters
    ----------
    embedder, identity
        Another :class:`Embedder` than the backbone (the LoRA experts' trunk)
        and what its rows depend on (its cache key); both or neither.
    with_plain
        Also the plain image of every position, first on the view axis.

    Returns
    -------
    features, errors
        float32 ``(len(positions), max(counts) [+ 1], width)``: NaN beyond an
        image's count and for images that failed; ``image_id -> reason`` for those.
    """
    if (embedder is None) != (identity is None):
        raise ValueError("an embedder needs the identity its cache is keyed by, and only an embedder has one")
    if len(positions) != len(counts):
        raise ValueError(f"{len(positions)} positions but {len(counts)} view counts")
    if any(c < 0 or c > len(DIHEDRAL_VIEWS) for c in counts):
        raise InputError(f"view counts must lie in 0..{len(DIHEDRAL_VIEWS)}", column="views")
    if not isinstance(cohort, Cohort):
        cohort = load_cohort(cohort)
    n_views, first = max(counts, default=0), int(with_plain)
    width = FEATURE_DIM if embedder is None else embedder.width
    out = np.full((len(positions), first + n_views, width), np.nan, dtype=np.float32)
    errors: dict[str, str] = {}
    image_ids = cohort.manifest["image_id"].astype(str).tolist()
    paths = cohort.image_paths()
    identity = identity or feature_identity()
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    done, total = 0, int(sum(counts)) + first * len(positions)
    names: list[str | None] = [None] * first + list(DIHEDRAL_VIEWS[:n_views])
    for view, name in enumerate(names):
        rows = [row for row, count in enumerate(counts) if count + first > view]
        key = identity if name is None else {**identity, "view": name}
        out[rows, view], failed, _ = _cached_features(
            [paths[positions[r]] for r in rows], [image_ids[positions[r]] for r in rows],
            FeatureCache(root, feature_cache_key(key)) if use_cache else None, root=cohort.images_root,
            preprocess=None if name is None else functools.partial(_view_of_file, name=name),
            device=device, batch_size=batch_size, workers=workers, progress=progress,
            done_before=done, total=total, embedder=embedder,
        )
        errors.update(failed)
        done += len(rows)
    return out, errors
