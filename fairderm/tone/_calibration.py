"""Calibrated ITA -> tone-scale mapping: ordinal cut-points fitted on labelled images.

Published ITA cut-points were fitted to other cameras, lighting and
populations. With tone labels for some images of a cohort (or of a similar
one), :func:`fit_calibration` finds the descending ITA cut-points that
minimise the total absolute category error, an exact dynamic programme over
the images sorted by ITA (the L1 analogue of isotonic regression, whose
least-squares form is Barlow et al. 1972). The fit is saved as JSON and used
with ``fairderm tone estimate --calibration``.

A fit is only kept when it earns its place: its exact agreement with the
labels out of fold (k-fold cross-validation, folds of whole patients when
patient ids are given, so that one patient's photographs never sit on both
sides; Roberts et al. 2017 on blocked cross-validation) must beat the
published mapping's agreement on the same images, and it must not collapse
the scale to one or two categories (as a fit to labels that the ITA does
not track does: on PAD every image became type II). Otherwise
:func:`fit_calibration` refuses it.
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
from fairderm.cohort import FITZPATRICK_GROUPS
from fairderm.errors import InputError
from fairderm.tone._scales import (
    DEFAULT_FITZPATRICK_SCHEME,
    category_index,
    fitzpatrick_group,
    ita_to_fitzpatrick,
    lab_to_monk,
)

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
    cross_validation
        ``n_folds``, ``grouped_by`` (the column whose groups formed the
        folds, or None), ``agreement`` (out-of-fold exact agreement of the
        fitted mapping), ``published`` (name of the published mapping) and
        ``published_agreement`` (its exact agreement on the same images);
        empty for a calibration written before they were recorded.
    """

    scale: str
    cutpoints: tuple[float, ...]
    n: int
    counts: dict[str, int]
    training_agreement: float
    source: dict[str, Any] = field(default_factory=dict)
    cross_validation: dict[str, Any] = field(default_factory=dict)

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
            "cross_validation": self.cross_validation,
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
        cv = self.cross_validation
        if cv:
            folds = f"{cv['n_folds']}-fold" + (f", folds of whole {cv['grouped_by']}" if cv["grouped_by"] else "")
            lines.append(f"  exact agreement out of fold ({folds}): {cv['agreement']:.3f}; "
                         f"published cut-points ({cv['published']}) on the same images: "
                         f"{cv['published_agreement']:.3f}")
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


def published_categories(tone: pd.DataFrame, scale: str) -> tuple[pd.Series, str]:
    """The published mapping's category of every row of a tone table on ``scale``, and the mapping's name.

    Fitzpatrick types and groups come from ITA with the table's published
    scheme (:data:`fairderm.tone.FITZPATRICK_CUTPOINTS`; the default when
    the table was made with a Fitzpatrick calibration), Monk tones from the
    skin colour's nearest swatch (:func:`fairderm.tone.lab_to_monk`), so
    that a calibration is compared with what it would replace.
    """
    if scale not in SCALE_CATEGORIES:
        raise InputError(f"unknown tone scale {scale!r}; choose one of {sorted(SCALE_CATEGORIES)}", column="scale")
    ok = tone["status"].astype("string").eq("ok").fillna(False).to_numpy()
    if scale == "monk":
        lab = np.where(ok[:, None], tone[["skin_L", "skin_a", "skin_b"]].to_numpy(dtype=np.float64, na_value=np.nan),
                       np.nan)
        return lab_to_monk(lab).set_axis(tone.index), "monk-swatches"
    scheme = (tone.attrs.get("fairderm_tone") or {}).get("fitzpatrick_scheme") or DEFAULT_FITZPATRICK_SCHEME
    ita = np.where(ok, pd.to_numeric(tone["ita"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
                   np.nan)
    types = ita_to_fitzpatrick(ita, scheme)
    categories = types if scale == "fitzpatrick" else fitzpatrick_group(types)
    return categories.set_axis(tone.index), scheme


def _folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of every image: whole groups are dealt to the folds in a seeded random order.

    An image without a group (missing patient id) is a group of its own.
    """
    codes = pd.factorize(pd.Series(groups).astype("string"))[0]
    missing = codes < 0
    codes[missing] = codes.max() + 1 + np.arange(int(missing.sum()))
    order = np.random.default_rng(seed).permutation(int(codes.max()) + 1)
    fold_of_group = np.empty_like(order)
    fold_of_group[order] = np.arange(order.size) % n_folds
    return fold_of_group[codes]


def _out_of_fold(values: np.ndarray, ranks: np.ndarray, folds: np.ndarray, n_categories: int) -> np.ndarray:
    """Category of every image predicted by cut-points fitted on the other folds."""
    predicted = np.empty_like(ranks)
    for fold in np.unique(folds):
        held = folds == fold
        cuts = _l1_ordinal_fit(values[~held], ranks[~held], n_categories)
        predicted[held] = category_index(values[held], cuts)
    return predicted


def fit_calibration(
    ita: np.ndarray | pd.Series,
    labels: pd.Series,
    scale: CalibrationScale,
    *,
    published: pd.Series | None = None,
    published_name: str = DEFAULT_FITZPATRICK_SCHEME,
    groups: np.ndarray | pd.Series | None = None,
    grouped_by: str | None = None,
    n_folds: int = 5,
    seed: int = 0,
    source: dict[str, Any] | None = None,
    min_images: int = 20,
) -> ToneCalibration:
    """Fit ordinal ITA cut-points for ``scale`` on labelled images, and keep them only if they beat the published ones.

    Parameters
    ----------
    ita
        Estimated ITA per image (NaN rows, e.g. abstentions, are dropped).
    labels
        The reference tone per image (missing rows are dropped).
    scale
        Which scale the labels are on.
    published
        The published mapping's category per image on ``scale``
        (:func:`published_categories`); by default, for the Fitzpatrick
        scales, ITA through the ``published_name`` scheme. A Monk
        calibration needs it.
    published_name
        Name of the published mapping, recorded and printed.
    groups
        Per image, the patient (or other cluster) it belongs to: the folds
        then hold whole groups. None: images are dealt to folds singly.
    grouped_by
        Name of the column ``groups`` came from, recorded.
    n_folds
        Folds of the cross-validation (fewer when there are fewer groups).
    seed
        Seed of the fold assignment.
    source
        Provenance to store with the fit.
    min_images
        Refuse to fit on fewer usable images than this.

    Raises
    ------
    InputError
        Too few usable images; a fit that puts the labelled images in fewer
        than three categories (or fewer than the labels hold, if they hold
        fewer); a fit whose out-of-fold exact agreement is no better than
        the published mapping's on the same images.
    """
    if scale not in SCALE_CATEGORIES:
        raise InputError(f"unknown tone scale {scale!r}; choose one of {sorted(SCALE_CATEGORIES)}", column="scale")
    if n_folds < 2:
        raise InputError(f"n_folds must be at least 2, got {n_folds}", column="n_folds")
    ita = pd.Series(np.asarray(ita, dtype=np.float64), index=labels.index)
    usable = ita.notna() & labels.notna()
    if int(usable.sum()) < min_images:
        raise InputError(
            f"only {int(usable.sum())} images have both an ITA estimate and a {scale} label; "
            f"need at least {min_images} to fit a calibration",
            column=scale,
        )
    if published is None:
        if scale == "monk":
            raise InputError("a Monk calibration is compared with the published swatches: pass published",
                             column="published")
        types = ita_to_fitzpatrick(ita.to_numpy(), published_name)
        published = types if scale == "fitzpatrick" else fitzpatrick_group(types)
    published = pd.Series(np.asarray(published, dtype=object), index=labels.index)
    ranks = _label_ranks(labels[usable], scale)
    values = ita[usable].to_numpy()
    categories = SCALE_CATEGORIES[scale]
    cutpoints = _l1_ordinal_fit(values, ranks, len(categories))
    predicted = category_index(values, cutpoints)
    counts = {str(c): int((ranks == k).sum()) for k, c in enumerate(categories)}

    used = np.unique(predicted)
    needed = min(3, int(np.unique(ranks).size))
    if used.size < needed:
        names = ", ".join(str(categories[k]) for k in used)
        raise InputError(
            f"calibration refused: the cut-points fitted to these labels put all {int(usable.sum())} images in "
            f"{used.size} of {len(categories)} categories ({names}): the ITA does not track the labels; "
            f"keep the published cut-points",
            column=scale,
        )
    group_values = np.arange(int(usable.sum())) if groups is None else np.asarray(groups, dtype=object)[usable]
    folds = _folds(group_values, n_folds, seed)
    n_used_folds = int(np.unique(folds).size)
    if n_used_folds < 2:
        raise InputError(f"cross-validation needs at least 2 {grouped_by or 'groups'}, got 1", column=scale)
    out_of_fold = float(np.mean(_out_of_fold(values, ranks, folds, len(categories)) == ranks))
    # an image the published mapping leaves without a category counts as a disagreement
    published_ranks = published[usable].astype("string").map(
        {str(c): k for k, c in enumerate(categories)}
    ).fillna(-1).to_numpy(dtype=np.int64)
    published_agreement = float(np.mean(published_ranks == ranks))
    folds_text = f"{n_used_folds}-fold" + (f", folds of whole {grouped_by}" if grouped_by else "")
    if out_of_fold <= published_agreement:
        raise InputError(
            f"calibration refused: out of fold ({folds_text}) the fitted cut-points agree with these labels for "
            f"{out_of_fold:.3f} of {int(usable.sum())} images, no better than the published {published_name} "
            f"mapping on the same images ({published_agreement:.3f}); keep the published cut-points",
            column=scale,
        )
    return ToneCalibration(
        scale=scale,
        cutpoints=cutpoints,
        n=int(usable.sum()),
        counts=counts,
        training_agreement=float(np.mean(predicted == ranks)),
        source=source or {},
        cross_validation={
            "n_folds": n_used_folds, "grouped_by": grouped_by, "seed": seed, "agreement": out_of_fold,
            "published": published_name, "published_agreement": published_agreement,
        },
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
        cross_validation=raw.get("cross_validation") or {},
    )
