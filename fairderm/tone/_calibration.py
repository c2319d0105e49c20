"""Calibrated ITA -> tone-scale mapping: ordinal cut-points fitted on labelled images.

Published ITA cut-points were fitted to other cameras, lighting and
populations. With tone labels for some images of a cohort (or of a similar
one), :func:`fit_calibration` finds the descending ITA cut-points that
minimise the total absolute category error, an exact dynamic programme over
the images sorted by ITA (the L1 analogue of isotonic regression, whose
least-squares form is Barlow et al. 1972). The fit is saved as JSON and used
with ``fairderm tone estimate --calibration``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairderm._io import atomic_write_json, sha256_json
from fairderm._version import __version__
from fairderm.cohort._schema import FITZPATRICK_GROUPS
from fairderm.errors import InputError
from fairderm.tone._scales import category_index

CalibrationScale = Literal["fitzpatrick", "fitzpatrick_group", "monk"]

SCALE_CATEGORIES: dict[str, tuple[Any, ...]] = {
    "fitzpatrick": (1, 2, 3, 4, 5, 6),
    "fitzpatrick_group": FITZPATRICK_GROUPS,
    "monk": tuple(range(1, 11)),
}
# The Fitzpatrick type written for a calibrated group: the lowest of the
# group, so that mapping it back to a group gives the group.
GROUP_REPRESENTATIVE_TYPE: dict[str, int] = {"I-II": 1, "III-IV": 3, "V-VI": 5}
CALIBRATION_FORMAT = "fairderm-tone-calibration/1"
ITA_BOUND = 180.0
"""ITA never exceeds this in magnitude (atan2 range): the cut-point of an unsupported category."""


@dataclass(frozen=True)
class ToneCalibration:
    """Fitted ordinal cut-points mapping ITA to one tone scale.

    Attributes
    ----------
    scale
        ``fitzpatrick``, ``fitzpatrick_group`` or ``monk``.
    cutpoints
        Descending ITA thresholds; category k (0-based, lightest first) is
        ``cutpoints[k-1] >= ITA > cutpoints[k]``. Equal neighbours mean a
        category the training data never supported.
    n
        Number of labelled images the fit used.
    counts
        Labelled images per category.
    training_agreement
        Exact agreement on the training images (optimistic).
    source
        Provenance: cohort manifest hash, tone file method, label column.
    """

    scale: str
    cutpoints: tuple[float, ...]
    n: int
    counts: dict[str, int]
    training_agreement: float
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def categories(self) -> tuple[Any, ...]:
        return SCALE_CATEGORIES[self.scale]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "scale": self.scale,
            "categories": list(self.categories),
            "cutpoints": [float(c) for c in self.cutpoints],
            "n": int(self.n),
            "counts": {str(k): int(v) for k, v in self.counts.items()},
            "training_agreement": float(self.training_agreement),
            "source": self.source,
            "fairderm_version": __version__,
        }

    @property
    def sha256(self) -> str:
        """Hash of the calibration's content, recorded in tone outputs."""
        return sha256_json(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write the calibration as JSON (atomically)."""
        atomic_write_json(path, self.to_dict())

    def apply(self, ita: np.ndarray) -> np.ndarray:
        """0-based category per ITA (-1 where ITA is NaN)."""
        return category_index(np.asarray(ita, dtype=np.float64), self.cutpoints)

    def summary(self) -> str:
        lines = [f"Tone calibration ({self.scale}), fitted on {self.n} labelled images"]
        bounds = [np.inf, *self.cutpoints, -np.inf]
        for k, category in enumerate(self.categories):
            low, high = bounds[k + 1], bounds[k]
            support = self.counts.get(str(category), 0)
            empty = "  (never predicted)" if low >= high or high <= -ITA_BOUND or low >= ITA_BOUND else ""
            lines.append(f"  {category!s:>7}: {low:7.1f} < ITA <= {high:7.1f}   n={support}{empty}")
        lines.append(f"  exact agreement on the training images: {self.training_agreement:.3f} (optimistic)")
        return "\n".join(lines)


def _label_ranks(labels: pd.Series, scale: str) -> np.ndarray:
    categories = SCALE_CATEGORIES[scale]
    lookup = {str(c): k for k, c in enumerate(categories)}
    ranks = labels.astype("string").map(lookup)
    if ranks.isna().any():
        bad = labels[ranks.isna()].iloc[0]
        raise InputError(f"{bad!r} is not a {scale} category {list(categories)}", column=scale)
    return ranks.to_numpy(dtype=np.int64)


def _l1_ordinal_fit(ita: np.ndarray, ranks: np.ndarray, n_categories: int) -> tuple[float, ...]:
    """Descending cut-points minimising sum |rank - predicted| (exact dynamic programme).

    Images sorted by descending ITA must get non-decreasing categories.
    ``cost[k]`` is the best total error so far with the current image in
    category k; one pass over the images, O(n K).
    """
    order = np.argsort(-ita, kind="stable")
    sorted_ita, sorted_rank = ita[order], ranks[order]
    categories = np.arange(n_categories)
    cost = np.abs(sorted_rank[0] - categories).astype(np.float64)
    choice = np.zeros((len(sorted_ita), n_categories), dtype=np.int64)
    for i in range(1, len(sorted_ita)):
        running = np.minimum.accumulate(cost)
        # index of the running minimum: the latest k' <= k that attains it
        best_index = np.maximum.accumulate(np.where(cost == running, categories, 0))
        choice[i] = best_index
        cost = running + np.abs(sorted_rank[i] - categories)
    assigned = np.empty(len(sorted_ita), dtype=np.int64)
    assigned[-1] = int(np.argmin(cost))
    for i in range(len(sorted_ita) - 1, 0, -1):
        assigned[i - 1] = choice[i][assigned[i]]
    cutpoints = []
    for k in range(n_categories - 1):
        # boundary between categories <= k and > k; an ITA beyond every
        # training image gets the nearest category the training supported
        upper = sorted_ita[assigned <= k]
        lower = sorted_ita[assigned > k]
        if upper.size and lower.size:
            cutpoints.append(float((upper.min() + lower.max()) / 2))
        else:
            cutpoints.append(ITA_BOUND if not upper.size else -ITA_BOUND)
    return tuple(cutpoints)


def fit_calibration(
    ita: np.ndarray | pd.Series,
    labels: pd.Series,
    scale: CalibrationScale,
    *,
    source: dict[str, Any] | None = None,
    min_images: int = 20,
) -> ToneCalibration:
    """Fit ordinal ITA cut-points for ``scale`` on labelled images.

    Parameters
    ----------
    ita
        Estimated ITA per image (NaN rows, e.g. abstentions, are dropped).
    labels
        The reference tone per image (missing rows are dropped).
    scale
        Which scale the labels are on.
    source
        Provenance to store with the fit.
    min_images
        Refuse to fit on fewer usable images than this.
    """
    if scale not in SCALE_CATEGORIES:
        raise InputError(f"unknown tone scale {scale!r}; choose one of {sorted(SCALE_CATEGORIES)}", column="--label")
    ita = pd.Series(np.asarray(ita, dtype=np.float64), index=labels.index)
    usable = ita.notna() & labels.notna()
    if int(usable.sum()) < min_images:
        raise InputError(
            f"only {int(usable.sum())} images have both an ITA estimate and a {scale} label; "
            f"need at least {min_images} to fit a calibration",
            column=scale,
        )
    ranks = _label_ranks(labels[usable], scale)
    values = ita[usable].to_numpy()
    categories = SCALE_CATEGORIES[scale]
    cutpoints = _l1_ordinal_fit(values, ranks, len(categories))
    predicted = category_index(values, cutpoints)
    counts = {str(c): int((ranks == k).sum()) for k, c in enumerate(categories)}
    return ToneCalibration(
        scale=scale,
        cutpoints=cutpoints,
        n=int(usable.sum()),
        counts=counts,
        training_agreement=float(np.mean(predicted == ranks)),
        source=source or {},
    )


def load_calibration(path: str | Path) -> ToneCalibration:
    """Read a calibration JSON written by :meth:`ToneCalibration.save`."""
    path = Path(path)
    if not path.is_file():
        raise InputError("calibration file not found", source=str(path))
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON: {exc}".splitlines()[0], source=str(path)) from None
    if not isinstance(raw, dict) or raw.get("format") != CALIBRATION_FORMAT:
        raise InputError(f"not a fairderm tone calibration (format {CALIBRATION_FORMAT!r} expected)",
                         source=str(path), column="format")
    scale = raw.get("scale")
    if scale not in SCALE_CATEGORIES:
        raise InputError(f"unknown scale {scale!r}", source=str(path), column="scale")
    cutpoints = raw.get("cutpoints")
    expected = len(SCALE_CATEGORIES[scale]) - 1
    if (
        not isinstance(cutpoints, list)
        or len(cutpoints) != expected
        or not all(isinstance(c, (int, float)) and np.isfinite(c) for c in cutpoints)
    ):
        raise InputError(f"expected {expected} finite numbers", source=str(path), column="cutpoints")
    if any(a < b for a, b in itertools.pairwise(cutpoints)):
        raise InputError("cut-points must be in descending order", source=str(path), column="cutpoints")
    return ToneCalibration(
        scale=scale,
        cutpoints=tuple(float(c) for c in cutpoints),
        n=int(raw.get("n", 0)),
        counts={str(k): int(v) for k, v in (raw.get("counts") or {}).items()},
        training_agreement=float(raw.get("training_agreement", float("nan"))),
        source=raw.get("source") or {},
    )
