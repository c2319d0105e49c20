"""How far estimated tone agrees with labels: agreement, kappa, Spearman, abstention, with CIs.

Every figure comes with a 95% percentile bootstrap interval (Efron &
Tibshirani 1993). When the manifest has ``patient_id`` the bootstrap
resamples patients, not images (a cluster bootstrap; Field & Welsh 2007),
because one patient's photographs are not independent. All replicates are
computed at once as weighted statistics: replicate b gives row i the weight
"how many times its cluster was drawn", so no Python loop runs over
replicates.

Metrics
-------
exact_agreement, within_one
    Share of evaluated images whose estimated category equals the label, or
    is at most one category away.
kappa_quadratic
    Cohen's kappa with quadratic weights (Cohen 1968; Fleiss & Cohen 1973).
spearman
    Spearman's rank correlation between -ITA and the label (positive when
    darker labels go with lower ITA).
abstention_rate
    Share of labelled images without an estimate (status abstain or error).
consistency_icc
    Label-free: ICC(1) of ITA across the photographs of each patient
    (Shrout & Fleiss 1979), over patients with at least two estimates.
measurement_repeatability
    Label-free, over the evaluated images: the mean probability that an
    image's ITA, varied within its own interval, stays in its estimated
    group (:func:`fairderm.tone.measurement_repeatability`). It is the
    repeatability of the colour measurement, not an agreement: set beside
    the agreement with labels it shows how much of the disagreement the
    measurement's own modelled error could explain, the rest being the
    photograph's colour and the mapping from ITA to the labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import json_safe, package_versions, to_json_text
from fairderm.cohort import Cohort
from fairderm.errors import InputError
from fairderm.tone._calibration import SCALE_CATEGORIES
from fairderm.tone._scales import FITZPATRICK_GROUP_OF_TYPE
from fairderm.tone._store import align_to_cohort
from fairderm.tone._uncertainty import REPEATABILITY_IS_NOT_ACCURACY, own_group_probability

LABEL_COLUMNS: tuple[str, ...] = tuple(SCALE_CATEGORIES)
METRICS: tuple[str, ...] = (
    "exact_agreement", "within_one", "kappa_quadratic", "spearman", "abstention_rate", "consistency_icc",
    "measurement_repeatability",
)
CI_LEVEL = 0.95


@dataclass
class ToneValidation:
    """Agreement of a tone table with reference labels, with bootstrap intervals.

    Attributes
    ----------
    label
        The manifest column compared against.
    n_images, n_labelled, n_evaluated
        Cohort size, images with a label, labelled images with an estimate.
    metrics
        name -> {"estimate", "ci_low", "ci_high"}.
    per_group
        Exact agreement per labelled category (records with group, n,
        estimate, ci_low, ci_high).
    confusion
        {"labels": categories, "counts": rows = label, columns = estimate}.
    config
        n_boot, seed, ci method and level, cluster column, tone method,
        package versions.
    """

    label: str
    n_images: int
    n_labelled: int
    n_evaluated: int
    metrics: dict[str, dict[str, float]]
    per_group: list[dict[str, Any]]
    confusion: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: metric, group, estimate, ci_low, ci_high, n."""
        rows = [
            {"metric": name, "group": "all", **values,
             "n": self.n_labelled if name == "abstention_rate" else self.n_evaluated}
            for name, values in self.metrics.items()
        ]
        rows += [
            {"metric": "exact_agreement", "group": str(g["group"]), "estimate": g["estimate"],
             "ci_low": g["ci_low"], "ci_high": g["ci_high"], "n": g["n"]}
            for g in self.per_group
        ]
        return pd.DataFrame(rows, columns=["metric", "group", "estimate", "ci_low", "ci_high", "n"])

    def confusion_frame(self) -> pd.DataFrame:
        """Confusion matrix: rows are labels, columns estimated categories."""
        labels = [str(c) for c in self.confusion["labels"]]
        return pd.DataFrame(self.confusion["counts"], index=pd.Index(labels, name=self.label),
                            columns=pd.Index(labels, name="estimated"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN written as null)."""
        return json_safe({
            "label": self.label,
            "n_images": self.n_images,
            "n_labelled": self.n_labelled,
            "n_evaluated": self.n_evaluated,
            "metrics": self.metrics,
            "per_group": self.per_group,
            "confusion": self.confusion,
            "config": self.config,
        })

    def to_json(self) -> str:
        return to_json_text(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToneValidation:
        def restore(values: dict[str, Any]) -> dict[str, float]:
            return {k: (float("nan") if v is None else float(v)) for k, v in values.items()}

        return cls(
            label=data["label"],
            n_images=int(data["n_images"]),
            n_labelled=int(data["n_labelled"]),
            n_evaluated=int(data["n_evaluated"]),
            metrics={name: restore(values) for name, values in data["metrics"].items()},
            per_group=[{**g, **restore({k: g[k] for k in ("estimate", "ci_low", "ci_high")})}
                       for g in data["per_group"]],
            confusion=data["confusion"],
            config=data.get("config", {}),
        )

    @classmethod
    def from_json(cls, text: str) -> ToneValidation:
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """A plain-text table a reviewer can read."""
        level = int(round(100 * self.config.get("ci_level", CI_LEVEL)))
        lines = [
            f"Tone estimates vs '{self.label}': {self.n_evaluated} of {self.n_labelled} labelled images "
            f"evaluated ({self.n_images} in the cohort)",
            f"{level}% {self.config.get('ci', 'percentile')} bootstrap intervals, B={self.config.get('n_boot')}, "
            f"resampling {self.config.get('cluster') or 'images'}",
            f"{'metric':<26}{'group':<9}{'estimate':>9}  {'interval':<17}{'n':>6}",
        ]
        for row in self.to_frame().itertuples(index=False):
            interval = f"[{row.ci_low:.3f}, {row.ci_high:.3f}]" if np.isfinite(row.ci_low) else "-"
            estimate = f"{row.estimate:.3f}" if np.isfinite(row.estimate) else "-"
            lines.append(f"{row.metric:<26}{row.group:<9}{estimate:>9}  {interval:<17}{row.n:>6}")
        if "measurement_repeatability" in self.metrics:
            lines.append(f"measurement_repeatability is label-free; {REPEATABILITY_IS_NOT_ACCURACY}")
        return "\n".join(lines)


def _category_ranks(values: pd.Series, label: str) -> np.ndarray:
    """0-based rank of each category (-1 where missing)."""
    lookup = {str(c): k for k, c in enumerate(SCALE_CATEGORIES[label])}
    text = values.astype("string")
    ranks = text.map(lookup)
    unknown = text.notna() & ranks.isna()
    if unknown.any():
        raise InputError(f"{text[unknown].iloc[0]!r} is not a {label} category", column=label)
    return ranks.fillna(-1).to_numpy(dtype=np.int64)


def _estimated_categories(tone: pd.DataFrame, label: str) -> pd.Series:
    if label == "fitzpatrick":
        return tone["fitzpatrick_est"]
    if label == "monk":
        return tone["monk_est"]
    if "fitzpatrick_group_est" in tone.columns:
        return tone["fitzpatrick_group_est"]
    return pd.Series(tone["fitzpatrick_est"], dtype="Int8").map(FITZPATRICK_GROUP_OF_TYPE)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _weighted_midranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-ranks each row would have in every replicate sample (B, n); ties share a rank."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    group_of_sorted = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, values.size]))
    counts = np.add.reduceat(weights[:, order], starts, axis=1)
    midrank = np.cumsum(counts, axis=1) - counts / 2.0 + 0.5
    ranks = np.empty_like(weights, dtype=np.float64)
    ranks[:, order] = midrank[:, group_of_sorted]
    return ranks


def _weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1, keepdims=True)
    mean_x = (weights * x).sum(axis=1, keepdims=True) / total
    mean_y = (weights * y).sum(axis=1, keepdims=True) / total
    dx, dy = x - mean_x, y - mean_y
    covariance = (weights * dx * dy).sum(axis=1)
    spread = np.sqrt((weights * dx * dx).sum(axis=1) * (weights * dy * dy).sum(axis=1))
    return _ratio(covariance, spread)


def _quadratic_kappa(true: np.ndarray, estimated: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa for every replicate (rows of ``weights``)."""
    cell = true * k + estimated
    onehot = np.zeros((true.size, k * k))
    onehot[np.arange(true.size), cell] = 1.0
    observed = (weights @ onehot).reshape(-1, k, k)
    total = observed.sum(axis=(1, 2))
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :]
    expected = expected / np.where(total > 0, total, 1)[:, None, None]
    index = np.arange(k)
    penalty = (index[:, None] - index[None, :]) ** 2 / max(1, (k - 1) ** 2)
    disagreement = (observed * penalty).sum(axis=(1, 2))
    chance = (expected * penalty).sum(axis=(1, 2))
    return 1.0 - _ratio(disagreement, chance)


def icc1(values: np.ndarray, groups: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """ICC(1) (one-way random effects, Shrout & Fleiss 1979) per replicate.

    ``groups`` are integer codes 0..G-1; ``weights`` (B, G) says how many
    times each group is drawn in each replicate (default: once each).
    Missing values are dropped, then groups with fewer than two values.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups)
    n_groups = int(groups.max()) + 1 if groups.size else 0
    if weights is None:
        weights = np.ones((1, n_groups))
    keep = np.isfinite(values)
    n = np.bincount(groups[keep], minlength=n_groups).astype(np.float64)
    sums = np.bincount(groups[keep], weights=values[keep], minlength=n_groups)
    squares = np.bincount(groups[keep], weights=values[keep] ** 2, minlength=n_groups)
    n[n < 2] = 0.0
    mean = _ratio(sums, n)
    mean = np.where(n > 0, mean, 0.0)
    within = np.where(n > 0, squares - n * mean * mean, 0.0)
    if int((n > 0).sum()) < 2:
        return np.full(weights.shape[0], np.nan)
    weights = weights * (n > 0)
    total = weights @ n
    groups_drawn = weights.sum(axis=1)
    grand = _ratio(weights @ (n * mean), total)
    between = weights @ (n * mean * mean) - total * grand * grand
    ms_between = _ratio(between, groups_drawn - 1)
    ms_within = _ratio(weights @ within, total - groups_drawn)
    n0 = _ratio(total - _ratio(weights @ (n * n), total), groups_drawn - 1)
    return _ratio(ms_between - ms_within, ms_between + (n0 - 1) * ms_within)


def validate_tone(
    cohort: Cohort,
    tone: pd.DataFrame,
    label: str = "fitzpatrick",
    *,
    n_boot: int = 2000,
    seed: int = 0,
    cluster: str | None = "patient_id",
) -> ToneValidation:
    """Compare a tone table with a cohort's tone labels.

    Parameters
    ----------
    cohort
        The cohort whose manifest holds the labels.
    tone
        The tone table (:func:`estimate_tone` or :func:`read_tone`); its
        image_ids must be the cohort's.
    label
        ``fitzpatrick``, ``fitzpatrick_group`` or ``monk``.
    n_boot
        Bootstrap replicates.
    seed
        Seed of the bootstrap.
    cluster
        Manifest column to resample by (default ``patient_id``; images are
        resampled when the column is absent or None is given).
    """
    if label not in LABEL_COLUMNS:
        raise InputError(f"label must be one of {list(LABEL_COLUMNS)}, got {label!r}", column="label")
    manifest = cohort.manifest
    if label not in manifest.columns or manifest[label].isna().all():
        raise InputError(f"the cohort has no '{label}' labels", source=str(cohort.root), column=label)
    if n_boot < 100:
        raise InputError(f"n_boot must be at least 100, got {n_boot}", column="n_boot")
    tone = align_to_cohort(tone, cohort)
    true = _category_ranks(manifest[label], label)
    estimated = _category_ranks(_estimated_categories(tone, label), label)
    ok = tone["status"].eq("ok").to_numpy()
    labelled = true >= 0
    evaluated = labelled & ok & (estimated >= 0)
    ita = tone["ita"].to_numpy(dtype=np.float64)

    cluster_used = cluster if cluster and cluster in manifest.columns and manifest[cluster].notna().all() else None
    if cluster_used:
        cluster_ids = pd.factorize(manifest[cluster_used].astype(str))[0]
    else:
        cluster_ids = np.arange(len(manifest))
    n_clusters = int(cluster_ids.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot)
    # row 0: the sample itself; rows 1..B: the replicates
    cluster_weights = np.vstack([np.ones((1, n_clusters)), draws]).astype(np.float64)
    weights = cluster_weights[:, cluster_ids]

    k = len(SCALE_CATEGORIES[label])
    w_eval = weights[:, evaluated]
    t, e = true[evaluated], estimated[evaluated]
    values: dict[str, np.ndarray] = {
        "exact_agreement": _ratio(w_eval @ (t == e), w_eval.sum(axis=1)),
        "within_one": _ratio(w_eval @ (np.abs(t - e) <= 1), w_eval.sum(axis=1)),
        "kappa_quadratic": _quadratic_kappa(t, e, w_eval, k),
        "spearman": _weighted_pearson(
            _weighted_midranks(-ita[evaluated], w_eval), _weighted_midranks(t.astype(np.float64), w_eval), w_eval
        ) if evaluated.sum() >= 3 else np.full(n_boot + 1, np.nan),
        "abstention_rate": _ratio(weights[:, labelled] @ (~ok[labelled]), weights[:, labelled].sum(axis=1)),
    }
    if cluster_used:
        # the same patient draws as the other metrics, restricted to estimated rows
        values["consistency_icc"] = icc1(
            np.where(ok, ita, np.nan), cluster_ids, cluster_weights
        ) if ok.sum() >= 4 else np.full(n_boot + 1, np.nan)
    own = own_group_probability(tone)
    interval = evaluated & np.isfinite(own)
    if interval.any():
        values["measurement_repeatability"] = _ratio(
            weights[:, interval] @ own[interval], weights[:, interval].sum(axis=1)
        )
    alpha = (1 - CI_LEVEL) / 2
    metrics = {name: _summarise(v, alpha) for name, v in values.items()}
    per_group = []
    for rank, category in enumerate(SCALE_CATEGORIES[label]):
        in_group = t == rank
        if not in_group.any():
            continue
        agreement = _ratio(w_eval[:, in_group] @ (e[in_group] == rank), w_eval[:, in_group].sum(axis=1))
        per_group.append({"group": category, "n": int(in_group.sum()), **_summarise(agreement, alpha)})
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (t, e), 1)
    return ToneValidation(
        label=label,
        n_images=len(manifest),
        n_labelled=int(labelled.sum()),
        n_evaluated=int(evaluated.sum()),
        metrics=metrics,
        per_group=per_group,
        confusion={"labels": list(SCALE_CATEGORIES[label]), "counts": counts.tolist()},
        config={
            "n_boot": n_boot, "seed": seed, "ci": "percentile", "ci_level": CI_LEVEL,
            "cluster": cluster_used, "n_clusters": n_clusters,
            "tone_method": str(tone["method"].iloc[0]) if len(tone) else None,
            "versions": package_versions(),
        },
    )


def _summarise(values: np.ndarray, alpha: float) -> dict[str, float]:
    estimate = float(values[0])
    replicates = values[1:][np.isfinite(values[1:])]
    if not np.isfinite(estimate) or replicates.size < 10:
        return {"estimate": estimate, "ci_low": float("nan"), "ci_high": float("nan")}
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high)}
