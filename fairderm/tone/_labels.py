"""Validation labels of skin tone: a stratified sample to label, the labels file, and its reader.

A labels file is a CSV with one row per sampled image::

    image_id, stratum, inclusion_prob, label, labeller, labelled_at

``stratum`` is the image's estimated Fitzpatrick group (``I-II``, ``III-IV``,
``V-VI``) or ``abstained`` when the colour estimator gave none;
``inclusion_prob`` is the probability that the draw picked the image; ``label``
is empty until the image is labelled, then a value of the file's scale or
``cannot tell``. A JSON sidecar (``labels.json`` beside ``labels.csv``) records
the scale and the draw: seed, requested size, the tone table's SHA-256, the
cohort's manifest SHA-256, and each stratum's size and sample size.

The sample is stratified by estimated group with equal allocation (Cochran
1977, section 5.5): each stratum gets ``n / H`` images, a stratum smaller than
that gives all its images, and the rest is shared among the others until
``n`` is reached. An image of stratum h is drawn with probability
``n_h / N_h`` (simple random sampling without replacement within the stratum),
which is what an estimator of cohort-wide quantities from the labelled images
must weight by (Horvitz & Thompson 1952). Equal allocation gives the rare
groups, where an estimator errs most, as many labels as the common ones.

Labels already in a manifest column for part of the rows
(:func:`labels_from_column`) get the same table; their inclusion probability is
*estimated* as the labelled share of their estimated group, which is right
only if labels were given at random within each estimated group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import atomic_write_json, atomic_write_text, read_table, sha256_file
from fairderm.cohort import Cohort
from fairderm.errors import InputError
from fairderm.tone._calibration import SCALE_CATEGORIES
from fairderm.tone._scales import FITZPATRICK_GROUP_OF_TYPE
from fairderm.tone._store import align_to_cohort

LABELS_FORMAT = "fairderm-tone-labels/1"
LABEL_FILE_COLUMNS: tuple[str, ...] = ("image_id", "stratum", "inclusion_prob", "label", "labeller", "labelled_at")
CANNOT_TELL = "cannot tell"
ABSTAINED = "abstained"
SCALES: tuple[str, ...] = tuple(SCALE_CATEGORIES)


@dataclass
class ToneLabels:
    """A labels file: sampled images, their inclusion probabilities and the labels given so far.

    Attributes
    ----------
    frame
        Columns :data:`LABEL_FILE_COLUMNS`, one row per sampled image in
        labelling order; ``label`` is missing where not yet labelled.
    scale
        ``fitzpatrick``, ``fitzpatrick_group`` or ``monk``.
    draw
        How the sample was drawn (the sidecar JSON), or where the labels came from.
    source
        The file read, or a description of the labels' origin.
    """

    frame: pd.DataFrame
    scale: str
    draw: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def categories(self) -> tuple[str, ...]:
        """The scale's values as written in the file, lightest first."""
        return scale_values(self.scale)

    def answered(self) -> pd.Series:
        """Which rows have an answer (a scale value or ``cannot tell``)."""
        return self.frame["label"].notna()

    def labelled(self) -> pd.DataFrame:
        """The rows with a scale value (answered, and not ``cannot tell``)."""
        return self.frame[self.answered() & (self.frame["label"] != CANNOT_TELL)].reset_index(drop=True)

    def next_unlabelled(self, after: int = -1) -> int | None:
        """Position of the first unanswered row after ``after`` (wrapping round); None when all are answered."""
        open_rows = np.flatnonzero(~self.answered().to_numpy())
        if open_rows.size == 0:
            return None
        later = open_rows[open_rows > after]
        return int(later[0] if later.size else open_rows[0])

    def label_index(self) -> np.ndarray:
        """0-based position on the scale of each row's label; -1 where unanswered or ``cannot tell``."""
        lookup = {value: i for i, value in enumerate(self.categories)}
        return self.frame["label"].map(lookup).fillna(-1).astype(np.int64).to_numpy()


def scale_values(scale: str) -> tuple[str, ...]:
    """The values of a scale as written in a labels file (``"1"``... or ``"I-II"``...), lightest first."""
    if scale not in SCALE_CATEGORIES:
        raise InputError(f"unknown tone scale {scale!r}; choose one of {list(SCALES)}", column="scale")
    return tuple(str(value) for value in SCALE_CATEGORIES[scale])


def estimated_strata(tone: pd.DataFrame) -> pd.Series:
    """Each image's stratum for sampling: its estimated Fitzpatrick group, or ``abstained``.

    ``tone`` is a tone table (:func:`fairderm.tone.read_tone`); rows whose
    status is not ``ok`` or whose type is missing are ``abstained``.
    """
    types = pd.to_numeric(tone["fitzpatrick_est"], errors="coerce")
    groups = types.map(FITZPATRICK_GROUP_OF_TYPE)
    measured = (tone["status"].astype("string") == "ok").fillna(False) & groups.notna()
    return pd.Series(np.where(measured, groups, ABSTAINED), index=tone.index, dtype="string")


def allocate_equal(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Equal allocation of ``n`` draws over strata of the given sizes, capped at each stratum's size.

    A stratum smaller than its share gives all its images and the remainder
    is shared equally among the strata that still have images (the leftover
    of an uneven split goes to the largest strata first).
    """
    if n < 1:
        raise InputError(f"sample size must be at least 1, got {n}", column="n")
    allocation = dict.fromkeys(sizes, 0)
    remaining = min(n, sum(sizes.values()))
    while remaining > 0:
        open_strata = sorted((s for s in sizes if allocation[s] < sizes[s]), key=lambda s: (-sizes[s], s))
        share, extra = divmod(remaining, len(open_strata))
        for rank, stratum in enumerate(open_strata):
            want = share + (1 if rank < extra else 0)
            take = min(want, sizes[stratum] - allocation[stratum])
            allocation[stratum] += take
            remaining -= take
    return allocation


def draw_label_sample(image_ids: pd.Series, strata: pd.Series, n: int, seed: int) -> pd.DataFrame:
    """Draw a stratified sample of images to label, with each image's inclusion probability.

    Parameters
    ----------
    image_ids, strata
        Aligned: every image of the cohort and its stratum
        (:func:`estimated_strata`).
    n
        Sample size (all images when the cohort is smaller).
    seed
        Seed of the draw; the same seed, ids and strata give the same sample.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LABEL_FILE_COLUMNS` (labels empty), rows in a random
        labelling order so that a labeller who stops early leaves a sample
        that is still spread over the strata.
    """
    ids = pd.Series(image_ids, dtype="string").reset_index(drop=True)
    groups = pd.Series(strata, dtype="string").reset_index(drop=True)
    sizes = {str(s): int(c) for s, c in groups.value_counts(sort=False).sort_index().items()}
    allocation = allocate_equal(sizes, n)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    probability: list[float] = []
    for stratum in sorted(sizes):
        members = np.flatnonzero((groups == stratum).to_numpy())
        take = allocation[stratum]
        chosen.extend(rng.choice(members, size=take, replace=False).tolist())
        probability.extend([take / sizes[stratum]] * take)
    order = rng.permutation(len(chosen))
    picked = np.asarray(chosen, dtype=np.int64)[order]
    return pd.DataFrame({
        "image_id": ids.iloc[picked].to_numpy(),
        "stratum": groups.iloc[picked].to_numpy(),
        "inclusion_prob": np.asarray(probability, dtype=np.float64)[order],
        "label": pd.Series([None] * len(picked), dtype="string"),
        "labeller": pd.Series([None] * len(picked), dtype="string"),
        "labelled_at": pd.Series([None] * len(picked), dtype="string"),
    })


def sidecar_path(path: str | Path) -> Path:
    """The JSON beside a labels CSV (``labels.csv`` -> ``labels.json``)."""
    return Path(path).with_suffix(".json")


def new_label_sample(
    cohort: Cohort, tone: pd.DataFrame, *, tone_path: str | Path, scale: str, n: int, seed: int
) -> ToneLabels:
    """A stratified sample of the cohort to label, with its draw recorded (nothing written)."""
    scale_values(scale)
    aligned = align_to_cohort(tone, cohort)
    strata = estimated_strata(aligned)
    frame = draw_label_sample(aligned["image_id"], strata, n, seed)
    sizes = strata.value_counts(sort=False).sort_index()
    drawn = frame["stratum"].value_counts()
    draw = {
        "format": LABELS_FORMAT,
        "scale": scale,
        "design": "stratified by estimated Fitzpatrick group (abstentions a stratum), equal allocation "
                  "capped at the stratum size; simple random sampling within strata",
        "n_requested": n,
        "n_drawn": len(frame),
        "seed": seed,
        "strata": {str(s): {"N": int(size), "n": int(drawn.get(s, 0)), "inclusion_prob": int(drawn.get(s, 0)) / size}
                   for s, size in sizes.items()},
        "tone": {"path": str(tone_path), "sha256": sha256_file(tone_path),
                 "method": str(aligned["method"].iloc[0]) if len(aligned) else None},
        "cohort": {"name": cohort.spec.name, "manifest_sha256": cohort.manifest_sha256(), "n_images": len(cohort)},
        "created_at": utc_now(),
    }
    return ToneLabels(frame, scale, draw)


def labels_from_column(cohort: Cohort, tone: pd.DataFrame, column: str, scale: str | None = None) -> ToneLabels:
    """Turn a manifest column that holds tone labels for part of the rows into a labels table.

    Parameters
    ----------
    cohort
        The cohort; ``column`` must be one of its tone columns
        (``fitzpatrick``, ``fitzpatrick_group``, ``monk``).
    tone
        Its tone table: the estimated groups are the strata.
    column
        The manifest column with the labels.
    scale
        The labels' scale (default: the column's own); a ``fitzpatrick``
        column may be given as ``fitzpatrick_group``.

    Notes
    -----
    The labelled rows were not drawn by fairderm, so their inclusion
    probabilities are estimated: the labelled share of each estimated group,
    ``n_h / N_h``. That is unbiased only if which images were labelled does
    not depend on their true tone within an estimated group; the draw record
    says so. With every row labelled the probabilities are all 1 and the
    labels are the truth for the whole cohort.
    """
    scale = scale or column
    if column not in SCALE_CATEGORIES:
        raise InputError(f"label column must be one of {list(SCALES)}, got {column!r}", column="column")
    if column not in cohort.manifest.columns:
        raise InputError(f"the cohort has no '{column}' column", source=str(cohort.manifest_path), column=column)
    if scale != column and (column, scale) != ("fitzpatrick", "fitzpatrick_group"):
        raise InputError(f"labels in column '{column}' cannot be read on the {scale!r} scale", column="scale")
    raw = cohort.manifest[column].reset_index(drop=True)
    if scale == "fitzpatrick_group" and column == "fitzpatrick":
        raw = pd.to_numeric(raw, errors="coerce").map(FITZPATRICK_GROUP_OF_TYPE)
    values = raw.astype("string")
    if scale != "fitzpatrick_group":
        values = pd.to_numeric(raw, errors="coerce").astype("Int64").astype("string")
    aligned = align_to_cohort(tone, cohort)
    strata = estimated_strata(aligned).reset_index(drop=True)
    has = values.notna().to_numpy()
    if not has.any():
        raise InputError(f"column '{column}' holds no labels", source=str(cohort.manifest_path), column=column)
    share = pd.Series(has).groupby(strata.to_numpy()).mean()
    frame = pd.DataFrame({
        "image_id": cohort.manifest["image_id"].astype("string").to_numpy()[has],
        "stratum": strata.to_numpy()[has],
        "inclusion_prob": strata[has].map(share).to_numpy(dtype=np.float64),
        "label": values[has].to_numpy(),
        "labeller": pd.Series([f"manifest:{column}"] * int(has.sum()), dtype="string"),
        "labelled_at": pd.Series([None] * int(has.sum()), dtype="string"),
    })
    every = bool(has.all())
    draw = {
        "format": LABELS_FORMAT,
        "scale": scale,
        "design": (f"every row of manifest column '{column}' is labelled: the labels are used directly "
                   "(inclusion probability 1)") if every else
                  (f"labels from manifest column '{column}' (not drawn by fairderm); inclusion probability "
                   "estimated as the labelled share of each estimated group, which assumes the images were "
                   "labelled at random within estimated group"),
        "every_row_labelled": every,
        "n_drawn": len(frame),
        "strata": {str(s): {"N": int((strata == s).sum()), "n": int((strata[has] == s).sum()),
                            "inclusion_prob": float(share[s])} for s in share.index},
        "tone": {"method": str(aligned["method"].iloc[0]) if len(aligned) else None},
        "cohort": {"name": cohort.spec.name, "manifest_sha256": cohort.manifest_sha256(), "n_images": len(cohort)},
        "created_at": utc_now(),
    }
    return ToneLabels(frame, scale, draw, source=f"manifest column '{column}'")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-01-31T12:00:00Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_labels(path: str | Path, labels: ToneLabels) -> None:
    """Write the labels CSV atomically, and its sidecar JSON (the draw) when it differs or is missing.

    The CSV goes through a temporary file and a rename, so a reader (or a
    crash) never sees a half-written file.
    """
    path = Path(path)
    frame = labels.frame.loc[:, list(LABEL_FILE_COLUMNS)]
    atomic_write_text(path, frame.to_csv(index=False, lineterminator="\n"))
    sidecar = sidecar_path(path)
    draw = {**labels.draw, "scale": labels.scale, "labels_file": path.name}
    if not sidecar.is_file() or json.loads(sidecar.read_text(encoding="utf-8")) != json.loads(json.dumps(draw)):
        atomic_write_json(sidecar, draw)


def record_answer(
    path: str | Path, labels: ToneLabels, position: int, answer: str, labeller: str, *, when: str | None = None
) -> ToneLabels:
    """Set one row's answer, with the labeller and UTC time, and write the file atomically.

    Parameters
    ----------
    path
        The labels CSV.
    labels
        Its current content.
    position
        0-based row.
    answer
        A value of the scale or :data:`CANNOT_TELL`.
    labeller
        Who answered.
    when
        UTC time stamp (default: now).

    Returns
    -------
    ToneLabels
        The new content (the argument is not changed).
    """
    if answer not in (*labels.categories, CANNOT_TELL):
        raise InputError(f"{answer!r} is not a {labels.scale} value or {CANNOT_TELL!r}", column="label")
    if not labeller.strip():
        raise InputError("a labeller id is needed", column="labeller")
    frame = labels.frame.copy()
    frame.loc[position, ["label", "labeller", "labelled_at"]] = [answer, labeller, when or utc_now()]
    updated = ToneLabels(frame, labels.scale, labels.draw, labels.source)
    write_labels(path, updated)
    return updated


def read_tone_labels(path: str | Path, cohort: Cohort | None = None, scale: str | None = None) -> ToneLabels:
    """Read and check a labels file.

    Parameters
    ----------
    path
        The labels CSV (its sidecar JSON, when present, gives the scale and the draw).
    cohort
        With a cohort, every image id must be one of its images.
    scale
        The expected scale; needed when the file has no sidecar.

    Raises
    ------
    InputError
        One line naming the file and row: a missing column, a duplicate or
        unknown image id, a label outside the scale, an inclusion probability
        outside (0, 1], or a scale that contradicts the sidecar's.
    """
    path = Path(path)
    source = str(path)
    sidecar = sidecar_path(path)
    draw: dict[str, Any] = {}
    if sidecar.is_file():
        try:
            draw = json.loads(sidecar.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc}", source=str(sidecar)) from None
    recorded = draw.get("scale")
    if scale is not None and recorded is not None and scale != recorded:
        raise InputError(f"labels are on the {recorded!r} scale, not {scale!r}", source=str(sidecar), column="scale")
    scale = scale or recorded
    if scale is None:
        raise InputError(f"no scale: {sidecar.name} is missing, so give the scale", source=source, column="scale")
    allowed = (*scale_values(scale), CANNOT_TELL)
    raw = read_table(path, what="labels")
    missing = [c for c in ("image_id", "label", "inclusion_prob") if c not in raw.columns]
    if missing:
        raise InputError(f"not a labels file: column missing: {missing[0]}", source=source, column=missing[0])
    frame = raw.copy()
    for column in LABEL_FILE_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame.loc[:, list(LABEL_FILE_COLUMNS)]
    for column in ("image_id", "stratum", "label", "labeller", "labelled_at"):
        frame[column] = frame[column].astype("string").str.strip()
    _check_rows(frame, source, allowed, scale)
    frame["inclusion_prob"] = pd.to_numeric(frame["inclusion_prob"], errors="coerce").astype("float64")
    if cohort is not None:
        known = set(cohort.manifest["image_id"].astype(str))
        unknown = ~frame["image_id"].isin(known)
        if unknown.any():
            row = _first(unknown)
            raise InputError(f"image_id {frame['image_id'].iloc[row]!r} is not in cohort {cohort.spec.name!r}",
                             source=source, row=row + 1, column="image_id")
    return ToneLabels(frame.reset_index(drop=True), scale, draw, source)


def _check_rows(frame: pd.DataFrame, source: str, allowed: tuple[str, ...], scale: str) -> None:
    blank = frame["image_id"].isna() | (frame["image_id"] == "")
    if blank.any():
        raise InputError("empty image_id", source=source, row=_first(blank) + 1, column="image_id")
    duplicated = frame["image_id"].duplicated()
    if duplicated.any():
        row = _first(duplicated)
        raise InputError(f"duplicate image_id {frame['image_id'].iloc[row]!r}", source=source, row=row + 1,
                         column="image_id")
    outside = frame["label"].notna() & ~frame["label"].isin(allowed)
    if outside.any():
        row = _first(outside)
        raise InputError(f"label {frame['label'].iloc[row]!r} is not on the {scale} scale "
                         f"({', '.join(allowed)})", source=source, row=row + 1, column="label")
    probability = pd.to_numeric(frame["inclusion_prob"], errors="coerce")
    bad = ~((probability > 0) & (probability <= 1)).fillna(False)
    if bad.any():
        row = _first(bad)
        raise InputError(f"inclusion probability {frame['inclusion_prob'].iloc[row]!r} is not in (0, 1]",
                         source=source, row=row + 1, column="inclusion_prob")


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])
