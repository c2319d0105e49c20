"""Agreement of the judge with dermatologists, and of dermatologists with each other.

Before a judge's scores are trusted, they are compared with human ratings of
the same reports (CSV: ``image_id, rater, dimension, score``, scores 1-5).
For every dimension, overall and per tone group:

- quadratic-weighted kappa (Cohen 1968) of the judge with each rater and of
  each pair of raters, over the cases both rated, on the fixed categories
  1-5: ``kappa = 1 - sum(w * O) / sum(w * E)`` with ``w_ij = (i - j)^2 / 16``,
  ``O`` the observed and ``E`` the chance-expected (outer product of the
  marginals) proportions;
- ICC(2,1), two-way random effects, absolute agreement, single rater
  (Shrout & Fleiss 1979; McGraw & Wong 1996 ICC(A,1)), of the raters and of
  the raters with the judge, over the cases every one of them rated:
  ``(MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)``.

Intervals are percentile bootstrap intervals (Efron & Tibshirani 1993)
resampling cases, vectorised over replicates: a replicate is a vector of case
counts, and every statistic is computed from count-weighted sums.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairderm.errors import InputError
from fairderm.reasoning._rubric import SCORE_MAX, SCORE_MIN
from fairderm.reasoning._scores import ScoreTable

JUDGE_RATER = "judge"
RATING_COLUMNS = ("image_id", "rater", "dimension", "score")
_CATEGORIES = SCORE_MAX - SCORE_MIN + 1


def read_ratings(path: str | os.PathLike[str], *, dimensions: Sequence[str] | None = None) -> pd.DataFrame:
    """Read dermatologists' ratings (CSV ``image_id, rater, dimension, score``).

    Raises
    ------
    InputError
        Naming the file, row and column: a missing column, a score that is
        not a whole number 1-5, an unknown dimension, a rating given twice,
        or a rater named ``judge`` (reserved for the judge model).
    """
    source = str(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the ratings ({error})", source=source) from None
    for column in RATING_COLUMNS:
        if column not in frame.columns:
            raise InputError(f"no column {column!r} (have {list(frame.columns)})", source=source, column=column)
    frame = frame[list(RATING_COLUMNS)].apply(lambda c: c.str.strip())
    scores = []
    for row, (rater, dimension, text) in enumerate(zip(frame["rater"], frame["dimension"], frame["score"]),
                                                   start=1):
        if not rater:
            raise InputError("empty rater", source=source, row=row, column="rater")
        if rater == JUDGE_RATER:
            raise InputError(f"rater name {JUDGE_RATER!r} is reserved for the judge model", source=source,
                             row=row, column="rater")
        if dimensions is not None and dimension not in dimensions:
            raise InputError(f"dimension {dimension!r} is not in the rubric ({', '.join(dimensions)})",
                             source=source, row=row, column="dimension")
        try:
            value = float(text)
        except ValueError:
            value = np.nan
        if not (value.is_integer() and SCORE_MIN <= value <= SCORE_MAX):
            raise InputError(f"score {text!r} is not a whole number {SCORE_MIN}-{SCORE_MAX}", source=source,
                             row=row, column="score")
        scores.append(int(value))
    frame["score"] = np.array(scores, dtype=np.int64)
    twice = frame.duplicated(["image_id", "rater", "dimension"])
    if twice.any():
        row = int(np.flatnonzero(twice.to_numpy())[0]) + 1
        raise InputError("this rater rated this case on this dimension twice", source=source, row=row,
                         column="image_id")
    if frame.empty:
        raise InputError("no ratings", source=source)
    return frame.reset_index(drop=True)


def _kappa_weighted(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Quadratic-weighted kappa for each row of case ``counts`` (B x n); ``a``, ``b`` categories 0..C-1."""
    onehot = np.zeros((a.size, _CATEGORIES * _CATEGORIES))
    onehot[np.arange(a.size), a * _CATEGORIES + b] = 1.0
    observed = (counts @ onehot).reshape(-1, _CATEGORIES, _CATEGORIES)
    total = observed.sum(axis=(1, 2))[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = observed / total
        expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :]
        grid = np.arange(_CATEGORIES)
        weights = (grid[:, None] - grid[None, :]) ** 2 / (_CATEGORIES - 1) ** 2
        disagreement = (weights * expected).sum(axis=(1, 2))
        return np.where(disagreement > 0, 1.0 - (weights * observed).sum(axis=(1, 2)) / disagreement, np.nan)


def _icc_weighted(matrix: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ICC(2,1) for each row of case ``counts`` (B x n); ``matrix`` is cases x raters."""
    k = matrix.shape[1]
    n = counts.sum(axis=1)
    row_sum = matrix.sum(axis=1)
    row_mean = row_sum / k
    grand = counts @ row_sum / (n * k)
    ss_rows = k * (counts @ row_mean**2 - 2 * grand * (counts @ row_mean) + n * grand**2)
    col_mean = (counts @ matrix) / n[:, None]
    ss_cols = n * ((col_mean - grand[:, None]) ** 2).sum(axis=1)
    ss_total = counts @ (matrix**2).sum(axis=1) - 2 * grand * (counts @ row_sum) + n * k * grand**2
    ss_error = ss_total - ss_rows - ss_cols
    with np.errstate(divide="ignore", invalid="ignore"):
        ms_rows = ss_rows / (n - 1)
        ms_cols = ss_cols / (k - 1)
        ms_error = ss_error / ((n - 1) * (k - 1))
        denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
        return np.where(np.abs(denominator) > 1e-12, (ms_rows - ms_error) / denominator, np.nan)


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Quadratic-weighted kappa (Cohen 1968) of two raters' scores 1-5 of the same cases."""
    x = np.asarray(a, dtype=np.int64) - SCORE_MIN
    y = np.asarray(b, dtype=np.int64) - SCORE_MIN
    return float(_kappa_weighted(x, y, np.ones((1, x.size)))[0])


def icc_2_1(matrix: Any) -> float:
    """ICC(2,1) (Shrout & Fleiss 1979) of a cases x raters matrix with no missing value."""
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2 or np.isnan(values).any():
        raise InputError("ICC(2,1) needs a complete cases x raters matrix with two raters or more")
    return float(_icc_weighted(values, np.ones((1, values.shape[0])))[0])


@dataclass
class AgreementResult:
    """Agreement figures with bootstrap intervals.

    Attributes
    ----------
    table
        One row per (dimension, comparison, group): ``dimension``,
        ``comparison`` (``judge vs A``, ``A vs B``, ``raters``, ``raters +
        judge``), ``statistic`` (``kappa_qw`` or ``icc_2_1``), ``group``
        (``all`` or ``<attribute>=<value>``), ``n`` cases, ``estimate``,
        ``lower``, ``upper``.
    n_boot, confidence, seed
        Of the percentile bootstrap over cases.
    """

    table: pd.DataFrame
    n_boot: int
    confidence: float
    seed: int

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def to_dict(self) -> dict[str, Any]:
        rows = self.table.astype(object).where(self.table.notna(), None).to_dict("records")
        return {"method": "percentile bootstrap over cases (Efron & Tibshirani 1993)", "n_boot": self.n_boot,
                "confidence": self.confidence, "seed": self.seed, "rows": rows}

    def summary(self) -> str:
        lines = [f"{'dimension':<24}{'comparison':<22}{'statistic':<10}{'group':<24}{'n':>5}  estimate [interval]"]
        for r in self.table.itertuples(index=False):
            estimate = "-" if np.isnan(r.estimate) else f"{r.estimate:.3f}"
            interval = "" if np.isnan(r.lower) else f" [{r.lower:.3f}, {r.upper:.3f}]"
            lines.append(f"{r.dimension:<24}{r.comparison:<22}{r.statistic:<10}{r.group:<24}{r.n:>5}  "
                         f"{estimate}{interval}")
        return "\n".join(lines)


def _judge_ratings(scores: ScoreTable) -> pd.DataFrame:
    ok = scores.frame[scores.frame["status"] == "ok"]
    parts = [pd.DataFrame({"image_id": ok["image_id"].astype(str), "rater": JUDGE_RATER, "dimension": name,
                           "score": ok[f"judge_{name}"].astype(np.int64)}) for name in scores.rubric.names]
    return pd.concat(parts, ignore_index=True)


def _interval(estimate: float, replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if np.isnan(estimate) or finite.size < 0.99 * replicates.size:
        return np.nan, np.nan
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def agreement(
    ratings: pd.DataFrame,
    *,
    scores: ScoreTable | None = None,
    groups: Mapping[str, Any] | None = None,
    group_name: str = "group",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AgreementResult:
    """Judge-versus-rater and rater-versus-rater agreement per dimension, overall and per group.

    Parameters
    ----------
    ratings
        Human ratings, as :func:`read_ratings` returns them.
    scores
        The judge's scores table; None compares the raters only.
    groups
        Image id -> group (e.g. the Fitzpatrick group); cases without one
        count only overall.
    group_name
        The attribute the groups are of, for naming rows (``fitzpatrick=V-VI``).
    n_boot, confidence, seed
        The percentile bootstrap over cases.
    """
    if n_boot < 100:
        raise InputError(f"n_boot must be at least 100, not {n_boot}")
    if not 0.5 < confidence < 1:
        raise InputError(f"confidence must be between 0.5 and 1, not {confidence}")
    long = ratings[list(RATING_COLUMNS)].assign(image_id=ratings["image_id"].astype(str))
    if scores is not None:
        judged = _judge_ratings(scores)
        long = pd.concat([long, judged[judged["dimension"].isin(set(long["dimension"]))]], ignore_index=True)
    rng = np.random.default_rng(seed)
    rows = []
    for dimension in sorted(set(long["dimension"]), key=list(long["dimension"]).index):
        wide = long[long["dimension"] == dimension].pivot(index="image_id", columns="rater", values="score")
        raters = [r for r in wide.columns if r != JUDGE_RATER]
        subsets: list[tuple[str, np.ndarray]] = [("all", np.ones(len(wide), dtype=bool))]
        if groups is not None:
            labels = np.array([groups.get(i) for i in wide.index], dtype=object)
            for value in sorted({v for v in labels if v is not None and not pd.isna(v)}, key=str):
                subsets.append((f"{group_name}={value}", labels == value))
        comparisons: list[tuple[str, str, list[str]]] = []
        if JUDGE_RATER in wide.columns:
            comparisons += [(f"judge vs {r}", "kappa_qw", [JUDGE_RATER, r]) for r in raters]
        comparisons += [(f"{a} vs {b}", "kappa_qw", [a, b]) for a, b in itertools.combinations(raters, 2)]
        if len(raters) >= 2:
            comparisons.append(("raters", "icc_2_1", raters))
        if JUDGE_RATER in wide.columns and raters:
            comparisons.append(("raters + judge", "icc_2_1", [*raters, JUDGE_RATER]))
        for comparison, statistic, who in comparisons:
            for group, member in subsets:
                block = wide.loc[member, who].dropna()
                n = len(block)
                values = block.to_numpy(dtype=np.float64)
                estimate, low, high = np.nan, np.nan, np.nan
                if n >= 2:
                    draws = rng.integers(0, n, size=(n_boot, n))
                    counts = np.zeros((n_boot, n))
                    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
                    counts = np.vstack([np.ones((1, n)), counts])
                    if statistic == "kappa_qw":
                        cats = values.astype(np.int64) - SCORE_MIN
                        stats = _kappa_weighted(cats[:, 0], cats[:, 1], counts)
                    else:
                        stats = _icc_weighted(values, counts)
                    estimate = float(stats[0])
                    low, high = _interval(estimate, stats[1:], confidence)
                rows.append({"dimension": dimension, "comparison": comparison, "statistic": statistic,
                             "group": group, "n": n, "estimate": estimate, "lower": low, "upper": high})
    if not rows:
        raise InputError("no dimension has two raters (or a rater and the judge) to compare")
    return AgreementResult(pd.DataFrame(rows), n_boot, confidence, seed)
