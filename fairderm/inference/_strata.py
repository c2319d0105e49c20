"""Strata for scheduling: estimated tone groups, a labelled column, or none.

Cases run stratum by stratum, the smallest stratum first: in a skewed
cohort the rare (often darker) tones are the ones whose coverage an
interrupted or capped audit must not lose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import read_table, sha256_json
from fairderm.cohort import Cohort, fitzpatrick_to_group
from fairderm.errors import InputError

UNKNOWN = "unknown"


@dataclass
class Strata:
    """Stratum of every case (manifest order) and where it came from."""

    values: np.ndarray
    source: str
    column: str | None

    def counts(self) -> dict[str, int]:
        names, counts = np.unique(self.values, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts)}

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "column": self.column,
            "counts": self.counts(),
            "assignment_sha256": sha256_json(self.values.tolist()),
        }


def _read_tone(tone: str | os.PathLike[str] | pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    if isinstance(tone, pd.DataFrame):
        return tone
    try:  # the tone package validates its own files when it is there
        from fairderm.tone import read_tone
    except ImportError:
        return read_table(Path(tone), what="tone")
    return read_tone(tone, cohort)


def resolve_strata(
    cohort: Cohort,
    *,
    tone: str | os.PathLike[str] | pd.DataFrame | None = None,
    column: str | None = None,
) -> Strata:
    """Stratum labels per case: estimated tone groups, a manifest column, or one stratum.

    ``tone`` is a tone table (``fairderm tone`` output) whose
    ``fitzpatrick_est`` (1-6) is grouped into ``I-II``, ``III-IV``,
    ``V-VI``; ``column`` is a manifest column used as it is. Missing values
    form the stratum ``unknown``.
    """
    if tone is not None and column is not None:
        raise InputError("give either a tone file or a strata column, not both", column="strata")
    ids = cohort.manifest["image_id"].astype(str)
    if tone is not None:
        frame = _read_tone(tone, cohort)
        source = "tone" if isinstance(tone, pd.DataFrame) else str(tone)
        for needed in ("image_id", "fitzpatrick_est"):
            if needed not in frame.columns:
                raise InputError(
                    f"tone table lacks column {needed!r}", source=source, column=needed
                )
        est = (
            frame.assign(image_id=frame["image_id"].astype(str))
            .drop_duplicates("image_id")
            .set_index("image_id")
        )
        missing = sorted(set(ids) - set(est.index))
        if missing:
            raise InputError(
                f"tone table has no row for {len(missing)} cohort images (e.g. {missing[0]!r})",
                source=source,
                column="image_id",
            )
        types = pd.to_numeric(est["fitzpatrick_est"], errors="coerce").reindex(ids.tolist())
        groups = fitzpatrick_to_group(types.reset_index(drop=True))
        values = groups.astype(object).where(groups.notna(), UNKNOWN).astype(str).to_numpy()
        return Strata(values, source, "fitzpatrick_est")
    if column is not None:
        if column not in cohort.manifest.columns:
            raise InputError(
                f"strata column {column!r} is not in the manifest",
                source=str(cohort.manifest_path),
                column=column,
            )
        raw = cohort.manifest[column]
        values = raw.astype("string").fillna(UNKNOWN).astype(str).to_numpy()
        return Strata(values, "manifest", column)
    return Strata(np.full(len(ids), "all", dtype=object), "none", None)


def schedule(strata: Strata, *, cap: int | None, seed: int) -> list[int]:
    """Case positions in run order: smallest stratum first, each capped at ``cap``.

    Within a stratum the order is the manifest's; a cap keeps a seeded
    random sample of that stratum (then in manifest order).
    """
    rng = np.random.default_rng(seed)
    counts = strata.counts()
    order: list[int] = []
    for name in sorted(counts, key=lambda n: (counts[n], n)):
        positions = np.flatnonzero(strata.values == name)
        if cap is not None and len(positions) > cap:
            positions = np.sort(rng.choice(positions, size=cap, replace=False))
        order.extend(positions.tolist())
    return order
