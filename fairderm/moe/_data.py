"""Assemble the router's arrays from a cohort, its tone estimates and backbone features.

All input checks of the router live here (validate at the edge): the tone
table must describe exactly the cohort's images, the constraint groups must be
at least two and each must have training cases.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from fairderm.cohort import FITZPATRICK_GROUPS, Cohort, fitzpatrick_to_group
from fairderm.errors import InputError
from fairderm.tone import DEFAULT_ITA_CUT_POINTS, tone_cut_points, tone_probabilities

SPLITS: tuple[str, ...] = ("train", "val", "test")
TONE_GROUP_SOURCE = "fitzpatrick_est"


#: The group label of cases outside every constraint group (no tone estimate, or a value not constrained).
NO_GROUP = "(none)"


@dataclass
class RouterDataset:
    """Everything the router and the baselines train and are evaluated on.

    Attributes
    ----------
    image_ids
        Image ids of the rows used, in manifest order.
    features
        ``(n, d)`` float32 backbone features.
    tone
        ``(n, 6)`` float32 Fitzpatrick-type probabilities (router input).
    y
        Class index per row.
    classes
        Class names (``negative``/``positive`` for a binary task).
    groups
        Constraint-group index per row; -1 for rows outside every group.
    group_names
        The constraint groups, in index order.
    group_source
        Where the groups come from (``fitzpatrick_est`` from the tone file, or
        a manifest column).
    split
        ``train``/``val``/``test`` per row.
    cluster
        Patient id per row (for clustered bootstrap), or None.
    task
        ``multiclass`` or ``binary``.
    positive_classes
        The labels counted as positive (binary task).
    label_column
        Manifest column holding the labels.
    split_source
        ``manifest``, ``manifest+val`` (the manifest's train and test, a
        validation split carved out of its train) or ``generated``
        (patient-grouped, stratified).
    split_note
        What was done to the manifest's split, in words (empty if nothing).
    excluded
        Rows left out and why (``reason -> count``), and rows outside the
        constraint groups.
    tone_cut_points
        ITA cut points between Fitzpatrick types used for ``tone`` (those of
        the tone table's own estimates).
    """

    image_ids: np.ndarray
    features: np.ndarray
    tone: np.ndarray
    y: np.ndarray
    classes: list[str]
    groups: np.ndarray
    group_names: list[str]
    group_source: str
    split: np.ndarray
    cluster: np.ndarray | None
    task: str
    positive_classes: list[str]
    label_column: str
    split_source: str
    excluded: dict[str, Any] = field(default_factory=dict)
    tone_cut_points: tuple[float, ...] = DEFAULT_ITA_CUT_POINTS
    split_note: str = ""

    def subset(self, split: str) -> np.ndarray:
        """Boolean mask of one split's rows."""
        return self.split == split

    def group_counts(self) -> dict[str, dict[str, int]]:
        """Cases per constraint group and split (plus ``(none)`` for rows outside)."""
        counts: dict[str, dict[str, int]] = {}
        names = [*self.group_names, NO_GROUP]
        for index, name in enumerate(names):
            member = self.groups == (index if index < len(self.group_names) else -1)
            counts[name] = {s: int(np.sum(member & (self.split == s))) for s in SPLITS}
        return counts

    def group_labels(self) -> np.ndarray:
        """Group name per row (``(none)`` outside every group), for the metrics engine."""
        names = np.asarray([*self.group_names, NO_GROUP], dtype=object)
        return names[np.where(self.groups >= 0, self.groups, len(self.group_names))]


def check_tone_matches(tone: pd.DataFrame, cohort: Cohort, *, source: str) -> pd.DataFrame:
    """Return the tone rows in manifest order, or raise if the ids differ."""
    if "image_id" not in tone.columns:
        raise InputError("tone table has no image_id column", source=source, column="image_id")
    ids = cohort.manifest["image_id"].astype(str)
    tone_ids = tone["image_id"].astype(str)
    missing = ids[~ids.isin(set(tone_ids))]
    extra = tone_ids[~tone_ids.isin(set(ids))]
    if len(missing) or len(extra) or tone_ids.duplicated().any():
        detail = (
            f"{len(missing)} cohort images have no tone estimate (first: {missing.iloc[0]!r})"
            if len(missing)
            else f"{len(extra)} tone rows are not in the cohort (first: {extra.iloc[0]!r})"
            if len(extra)
            else "duplicate image_id rows"
        )
        raise InputError(f"tone file does not match the cohort: {detail}", source=source, column="image_id")
    return tone.set_index(tone_ids).loc[ids.to_numpy()].reset_index(drop=True)


def make_split(
    labels: np.ndarray, groups: np.ndarray, clusters: np.ndarray, *, seed: int, n_splits: int = 5
) -> np.ndarray:
    """A patient-grouped train/val/test split (~60/20/20 with five folds), stratified by label and group.

    ``n_splits`` stratified group folds (scikit-learn's ``StratifiedGroupKFold``
    on the label-and-group cell): the last is test, with five folds the one
    before it val, the others train. A stratum with fewer cases than folds
    is spread as well as it can be (scikit-learn's warning about it is
    silenced: the split's group counts are in ``evaluation.json``).
    """
    strata = pd.Series(labels).astype(str) + "|" + pd.Series(groups).astype(str)
    folds = np.zeros(len(labels), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), strata, clusters)):
            folds[held] = fold
    val = n_splits - 2 if n_splits == 5 else -1
    return np.where(folds == val, "val", np.where(folds == n_splits - 1, "test", "train"))


def prepare_dataset(
    cohort: Cohort,
    tone: pd.DataFrame | None,
    features: np.ndarray,
    *,
    label_column: str = "label",
    positive_classes: list[str] | None = None,
    group_column: str | None = None,
    group_values: list[str] | None = None,
    seed: int = 0,
    tone_source: str = "tone file",
) -> RouterDataset:
    """Rows, labels, groups and split for the router, with every input check.

    Parameters
    ----------
    cohort
        The loaded cohort.
    tone
        Its tone table (:func:`fairderm.tone.read_tone`), or None when the
        router neither sees tone nor takes its groups from it.
    features
        ``(n, d)`` backbone features in manifest order (NaN rows for images that
        failed).
    label_column
        Manifest column with the diagnoses.
    positive_classes
        When given, a binary task: these labels against the rest.
    group_column
        Manifest column with the constraint groups; default the tone file's
        ``fitzpatrick_est`` mapped to I-II/III-IV/V-VI.
    group_values
        Keep only these groups as constraint groups; rows in others (and rows
        without a group) stay in training and in the overall metrics, outside
        the constraints.
    seed
        Seed of a generated split (when the manifest has none).
    tone_source
        Name of the tone input for error messages.

    Raises
    ------
    InputError
        Tone table not matching the cohort; fewer than two groups; a group
        without training cases; unknown label column or positive class.
    """
    manifest = cohort.manifest.reset_index(drop=True)
    if label_column not in manifest.columns:
        raise InputError(f"no column {label_column!r} in the manifest", column=label_column)
    cut_points = DEFAULT_ITA_CUT_POINTS
    if tone is not None:
        cut_points = tone_cut_points(tone)
        tone = check_tone_matches(tone, cohort, source=tone_source)
    labels = manifest[label_column].astype("string")
    excluded: dict[str, Any] = {}

    keep = labels.notna().to_numpy().copy()
    excluded["no_label"] = int((~keep).sum())
    finite = np.isfinite(features).all(axis=1)
    excluded["no_features"] = int((keep & ~finite).sum())
    keep &= finite

    classes, y_all, task = _labels(labels, keep, label_column, positive_classes, cohort.spec.labels)
    group_names, group_index, group_source = _groups(manifest, tone, keep, group_column, group_values)
    cluster_all = manifest["patient_id"].astype("string").to_numpy() if "patient_id" in manifest.columns else None
    split_all, split_source, split_note = _split(manifest, keep, y_all, group_index, cluster_all, seed=seed)

    split = split_all[keep].astype(str)
    groups = group_index[keep]
    for index, name in enumerate(group_names):
        in_group = groups == index
        if not np.any(in_group & (split == "train")):
            counts = ", ".join(f"{s}: {int(np.sum(in_group & (split == s)))}" for s in ("val", "test"))
            raise InputError(
                f"group {name!r} has no training cases ({counts}); its constraint cannot be learnt",
                column=group_column or TONE_GROUP_SOURCE,
            )
    tone_probs = (
        tone_probabilities(tone, cut_points=cut_points)[keep]
        if tone is not None
        else np.full((int(keep.sum()), 6), 1.0 / 6, dtype=np.float32)
    )
    excluded["outside_groups"] = int(np.sum(groups < 0))
    return RouterDataset(
        image_ids=manifest["image_id"].astype(str).to_numpy()[keep],
        features=np.asarray(features, dtype=np.float32)[keep],
        tone=tone_probs,
        y=y_all[keep],
        classes=classes,
        groups=groups,
        group_names=group_names,
        group_source=group_source,
        split=split,
        cluster=None if cluster_all is None else cluster_all[keep],
        task=task,
        positive_classes=list(positive_classes or []),
        label_column=label_column,
        split_source=split_source,
        split_note=split_note,
        excluded=excluded,
        tone_cut_points=cut_points,
    )


def _labels(
    labels: pd.Series, keep: np.ndarray, label_column: str, positive_classes: list[str] | None,
    spec_labels: list[str],
) -> tuple[list[str], np.ndarray, str]:
    """Class names, class index per manifest row (-1: none) and the task."""
    if positive_classes:
        known = set(labels.dropna().unique())
        unknown = [c for c in positive_classes if c not in known]
        if unknown:
            raise InputError(
                f"positive class {unknown[0]!r} is not a value of {label_column!r} "
                f"(values: {sorted(known)})",
                column="--positive-classes",
            )
        classes = ["negative", "positive"]
        y_all = labels.isin(positive_classes).astype(int).to_numpy()
        task = "binary"
    else:
        classes = _ordered_labels(labels[keep], spec_labels)
        y_all = labels.map({c: i for i, c in enumerate(classes)}).fillna(-1).astype(int).to_numpy()
        task = "multiclass"
    return classes, y_all, task


def _groups(
    manifest: pd.DataFrame, tone: pd.DataFrame | None, keep: np.ndarray, group_column: str | None,
    group_values: list[str] | None,
) -> tuple[list[str], np.ndarray, str]:
    """Constraint groups (at least two), group index per manifest row (-1: none) and their source."""
    if group_column is None:
        if tone is None:
            raise InputError("groups come from the tone file by default: give --tone or --group-column")
        raw_groups = fitzpatrick_to_group(pd.to_numeric(tone["fitzpatrick_est"], errors="coerce").astype("Int8"))
        group_source = TONE_GROUP_SOURCE
    else:
        if group_column not in manifest.columns:
            raise InputError(f"no column {group_column!r} in the manifest", column=group_column)
        raw_groups = manifest[group_column].astype("string")
        group_source = group_column
    raw_groups = raw_groups.astype("string").reset_index(drop=True)
    if group_values:
        absent = [g for g in group_values if g not in set(raw_groups.dropna())]
        if absent:
            raise InputError(
                f"group {absent[0]!r} does not occur in {group_source!r}", column="--groups"
            )
        raw_groups = raw_groups.where(raw_groups.isin(group_values))
    present = raw_groups[keep].dropna().unique().tolist()
    group_names = [g for g in FITZPATRICK_GROUPS if g in present] + sorted(
        g for g in present if g not in FITZPATRICK_GROUPS
    )
    if len(group_names) < 2:
        only = f"only {group_names[0]!r}" if group_names else "no group at all"
        raise InputError(
            f"parity constraints need at least two groups, {group_source!r} gives {only}",
            column=group_column or TONE_GROUP_SOURCE,
        )
    group_index = raw_groups.map({g: i for i, g in enumerate(group_names)}).fillna(-1).astype(int).to_numpy()
    return group_names, group_index, group_source


def _split(
    manifest: pd.DataFrame, keep: np.ndarray, y_all: np.ndarray, group_index: np.ndarray,
    cluster_all: np.ndarray | None, *, seed: int,
) -> tuple[np.ndarray, str, str]:
    """Split per manifest row, its source, and a note when the manifest's split was completed.

    A manifest split with train and test but no val keeps its test split and
    gives a quarter of its training patients (stratified like
    :func:`make_split`) to validation, which early stopping, the multipliers
    and ThresholdOptimizer need; other values than train/val/test are refused.
    """
    clusters = cluster_all if cluster_all is not None else manifest["image_id"].astype(str).to_numpy()
    clusters = np.where(pd.isna(clusters), manifest["image_id"].astype(str).to_numpy(), clusters)
    if "split" in manifest.columns and manifest.loc[keep, "split"].notna().all():
        split_all = manifest["split"].astype("string").to_numpy(dtype=object)
        unknown = sorted(set(split_all[keep]) - set(SPLITS))
        if unknown:
            raise InputError(f"split values must be train, val or test, found {unknown[0]!r}", column="split")
        present = set(split_all[keep])
        if "val" in present or not {"train", "test"} <= present:
            return split_all, "manifest", ""
        train = keep & (split_all == "train")
        carved = make_split(y_all[train], group_index[train], clusters[train], seed=seed, n_splits=4)
        split_all = split_all.copy()
        split_all[np.flatnonzero(train)] = np.where(carved == "test", "val", "train")
        n_val = int(np.sum(split_all[keep] == "val"))
        return split_all, "manifest+val", (
            f"the manifest's split has no val: {n_val} cases (a quarter of the training patients) became "
            "the validation split; test is unchanged"
        )
    split_all = np.full(len(manifest), "", dtype=object)
    split_all[keep] = make_split(y_all[keep], group_index[keep], clusters[keep], seed=seed)
    return split_all, "generated", ""


def _ordered_labels(labels: pd.Series, spec_labels: list[str]) -> list[str]:
    """The cohort's label order, restricted to labels that occur, then any others sorted."""
    present = set(labels.dropna().unique())
    return [c for c in spec_labels if c in present] + sorted(present - set(spec_labels))


def balanced_view_counts(groups: np.ndarray, n_groups: int, max_views: int) -> np.ndarray:
    """Extra (turned or mirrored) views per training case of each constraint group.

    A group of ``n_k`` cases gets ``round(n_max / n_k) - 1`` views per case,
    at most ``max_views``, so that with its views it approaches the largest
    group's count: the largest group gets none, a group a tenth its size
    ``min(9, max_views)``. ``groups`` holds the training rows' group indices
    (-1 outside every group, never given views).
    """
    if max_views < 0:
        raise InputError(f"views must be >= 0, got {max_views}", column="--views")
    sizes = np.bincount(groups[groups >= 0], minlength=n_groups)
    per_group = np.zeros(n_groups, dtype=int)
    if sizes.max(initial=0) == 0:
        return per_group
    present = sizes > 0
    per_group[present] = np.clip(np.rint(sizes.max() / sizes[present]).astype(int) - 1, 0, max_views)
    return per_group
