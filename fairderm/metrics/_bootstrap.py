"""Vectorised resampling engine: stratified and clustered bootstrap weights,
weighted-statistic kernels, the leave-one-unit-out jackknife, and percentile
and BCa intervals.

Replicates are never looped over in Python. A chunk of ``b`` replicates is a
(b, n) matrix of resampling counts built with one ``bincount``; every linear
statistic of every group is then one matrix product with the group's per-case
feature matrix, and AUROC is a weighted Mann-Whitney numerator from a
cumulative sum over cases sorted once by score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import ndtr, ndtri

from fairderm._processes import default_workers
from fairderm._threads import thread_limits

#: Target number of elements of one chunk's (b, n) float32 weight matrix: bounds
#: memory (a few copies of it are alive per thread) independently of B.
CHUNK_ELEMENTS = 1 << 24
MIN_CHUNK_ROWS = 64
DRAW_ROWS = 32


@dataclass(frozen=True)
class Design:
    """How cases are resampled.

    Cases are held in a canonical order: by stratum (cell: the crossing of all
    attributes), then by a content key, so that results do not depend on the
    order of the input rows. Units are the cases themselves or, with a cluster
    column, the (cell, cluster) pairs; units are numbered cell by cell.

    Attributes
    ----------
    order
        Canonical position -> input row.
    cell
        Cell of each canonical position.
    unit
        Unit of each canonical position.
    unit_cell
        Cell of each unit.
    cell_unit_start, cell_unit_count
        First unit and number of units of each cell.
    clustered
        Whether units are clusters.
    """

    order: np.ndarray
    cell: np.ndarray
    unit: np.ndarray
    unit_cell: np.ndarray
    cell_unit_start: np.ndarray
    cell_unit_count: np.ndarray
    clustered: bool

    @property
    def n(self) -> int:
        return int(self.order.size)

    @property
    def n_units(self) -> int:
        return int(self.unit_cell.size)


def build_design(strata: np.ndarray, content_keys: Sequence[np.ndarray], cluster: np.ndarray | None) -> Design:
    """Canonical order, cells and resampling units.

    Parameters
    ----------
    strata
        (n, a) integer codes of the attributes that define the strata (may
        have zero columns: one stratum).
    content_keys
        Per-case arrays that, together, tell cases apart (score, label,
        probabilities...); the first is the most significant after the cell.
    cluster
        Cluster code per case, or None to resample cases.
    """
    n = strata.shape[0]
    if strata.shape[1]:
        _, cell_of_row = np.unique(strata, axis=0, return_inverse=True)
        cell_of_row = cell_of_row.reshape(-1)
    else:
        cell_of_row = np.zeros(n, dtype=np.int64)
    keys = [k for k in reversed(content_keys)]
    if cluster is not None:
        keys = [cluster, *keys]
    order = np.lexsort([*keys, cell_of_row]) if keys else np.argsort(cell_of_row, kind="stable")
    cell = cell_of_row[order]
    if cluster is None:
        unit = np.arange(n)
        unit_cell = cell
    else:
        pairs = cell.astype(np.int64) * (int(cluster.max()) + 1) + cluster[order]
        uniques, unit = np.unique(pairs, return_inverse=True)
        unit = unit.reshape(-1)
        unit_cell = uniques // (int(cluster.max()) + 1)
    n_cells = int(cell.max()) + 1 if n else 0
    count = np.bincount(unit_cell, minlength=n_cells)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return Design(order, cell, unit, unit_cell, start, count, cluster is not None)


def chunk_bounds(n_boot: int, n: int) -> list[tuple[int, int]]:
    """Replicate ranges of the chunks; a function of (B, n) only, so results are reproducible.

    At least :data:`MIN_CHUNK_ROWS` replicates per chunk: BLAS products with
    few rows are several times slower per element.
    """
    size = max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // max(n, 1))
    size = min(n_boot, size) if n_boot else 1
    return [(lo, min(lo + size, n_boot)) for lo in range(0, n_boot, size)]


def draw_weights(rng: np.random.Generator, design: Design, b: int) -> np.ndarray:
    """(b, n) float32 resampling counts in canonical order.

    Each replicate draws, in every cell, as many units as the cell has, with
    replacement (stratified bootstrap: stratum sizes fixed; with clusters, the
    number of clusters per stratum is fixed and a case's weight is its
    cluster's count). Counts come from one ``bincount`` per block of
    :data:`DRAW_ROWS` replicates, which bounds the int64 temporaries.
    """
    n_units = design.n_units
    counts = np.empty((b, n_units), dtype=np.float32)
    for lo in range(0, b, DRAW_ROWS):
        rows = min(DRAW_ROWS, b - lo)
        draws = np.empty((rows, n_units), dtype=np.int64)
        for start, count in zip(design.cell_unit_start, design.cell_unit_count):
            if count:
                draws[:, start:start + count] = rng.integers(start, start + count, size=(rows, count))
        draws += (np.arange(rows, dtype=np.int64) * n_units)[:, None]
        counts[lo:lo + rows] = np.bincount(draws.ravel(), minlength=rows * n_units).reshape(rows, n_units)
    if design.clustered:
        return np.take(counts, design.unit, axis=1)
    return counts


def n_workers(requested: int | None) -> int:
    """Bootstrap threads: as asked, else fairderm's one default (the usable cores), at most 4."""
    if requested is not None:
        return max(1, int(requested))
    return min(default_workers(), 4)


def run_chunks(
    seed: int,
    n_boot: int,
    design: Design,
    consume: Callable[[np.ndarray, int, int], None],
    *,
    workers: int,
) -> None:
    """Draw the weights chunk by chunk and hand each (W, lo, hi) to ``consume``.

    Each chunk has its own generator spawned from ``seed``, so the replicates
    are the same whatever the number of threads.
    """
    bounds = chunk_bounds(n_boot, design.n)
    seeds = np.random.SeedSequence(seed).spawn(len(bounds))

    def task(index: int) -> None:
        lo, hi = bounds[index]
        weights = draw_weights(np.random.default_rng(seeds[index]), design, hi - lo)
        consume(weights, lo, hi)

    run_in_threads([lambda i=i: task(i) for i in range(len(bounds))], workers)


# ---------------------------------------------------------------------------
# AUROC: weighted Mann-Whitney numerators.


@dataclass(frozen=True)
class RankPlan:
    """Cases of one group sorted once by one score, for AUROC of one event.

    ``order`` (None when the group's rows are already in score order) maps
    sorted position -> group position; ``positive`` is the event indicator in
    sorted order. ``tied`` (None without ties) lists the sorted positions that
    belong to runs of equal scores, the run of each, and each run's first and
    last index into that list.
    """

    order: np.ndarray | None
    positive: np.ndarray
    tied: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None

    @classmethod
    def build(cls, score: np.ndarray, positive: np.ndarray) -> RankPlan:
        order = np.argsort(score, kind="stable")
        sorted_score = score[order]
        if np.array_equal(order, np.arange(score.size)):
            order = None
        pos = (positive if order is None else positive[order]).astype(np.float32)
        tied = None
        same = sorted_score[1:] == sorted_score[:-1]
        if same.any():
            in_run = np.r_[same, False] | np.r_[False, same]
            columns = np.flatnonzero(in_run)
            starts_run = np.r_[True, ~same[columns[1:] - 1]] if columns.size > 1 else np.array([True])
            run = np.cumsum(starts_run) - 1
            first = np.flatnonzero(starts_run)
            last = np.r_[first[1:], columns.size] - 1
            tied = (columns, run, first, last)
        return cls(order, pos, tied)


def auc_numerators(weights: np.ndarray, plan: RankPlan) -> np.ndarray:
    """Weighted Mann-Whitney numerator per row of ``weights`` (group order).

    sum over positive i, negative j of w_i w_j ([s_i > s_j] + 0.5 [s_i = s_j])
    (Mann & Whitney 1947; Hanley & McNeil 1982 for AUC = U / (n_pos n_neg)),
    from one cumulative sum of negative weight over the score-sorted cases.
    """
    ordered = weights if plan.order is None else np.take(weights, plan.order, axis=1)
    positive = plan.positive.astype(ordered.dtype, copy=False)
    negatives = ordered * (1 - positive)
    np.cumsum(negatives, axis=1, out=negatives)
    # A positive case adds no negative weight, so the inclusive cumulative sum at
    # its position is exactly the negative weight ranked below it (in sorted order).
    negatives *= ordered
    numerator = (negatives @ positive).astype(np.float64)
    if plan.tied is not None:
        numerator += _tie_correction(ordered, positive, plan.tied)
    return numerator


def _tie_correction(ordered: np.ndarray, positive: np.ndarray, tied: tuple[np.ndarray, ...]) -> np.ndarray:
    """Turn "negatives sorted before me in my run of ties" into "half of my run's negatives".

    Only the columns inside runs of ties are touched, so the cost follows the
    number of tied cases, not n.
    """
    columns, run, first, last = tied
    local = np.take(ordered, columns, axis=1)
    pos = positive[columns]
    neg_w = local * (1 - pos)
    pos_w = local * pos
    cum_neg = np.cumsum(neg_w, axis=1)
    cum_pos = np.cumsum(pos_w, axis=1)
    before_neg = np.take(cum_neg, first, axis=1) - np.take(neg_w, first, axis=1)
    before_pos = np.take(cum_pos, first, axis=1) - np.take(pos_w, first, axis=1)
    run_neg = np.take(cum_neg, last, axis=1) - before_neg
    run_pos = np.take(cum_pos, last, axis=1) - before_pos
    counted = ((cum_neg - np.take(before_neg, run, axis=1)) * pos_w).sum(axis=1, dtype=np.float64)
    return 0.5 * (run_pos.astype(np.float64) * run_neg).sum(axis=1) - counted


def pair_contributions(
    score: np.ndarray, positive: np.ndarray, segment: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-case Mann-Whitney contributions and per-segment numerators (unit weights).

    A positive case contributes the negatives ranked below it (+ half the tied
    ones), a negative case the positives ranked above it (+ half the ties),
    counting only cases in the same segment.

    Returns
    -------
    contribution
        (n,) per case, input order.
    numerator
        (n_segments,) Mann-Whitney numerator within each segment.
    """
    n = score.size
    segment = np.zeros(n, dtype=np.int64) if segment is None else segment
    order = np.lexsort((score, segment))
    s, p, g = score[order], positive[order].astype(np.float64), segment[order]
    new_block = np.r_[True, (s[1:] != s[:-1]) | (g[1:] != g[:-1])] if n else np.zeros(0, bool)
    block = np.cumsum(new_block) - 1
    pos_b = np.bincount(block, weights=p)
    neg_b = np.bincount(block, weights=1 - p)
    block_segment = g[new_block]
    new_segment = np.r_[True, block_segment[1:] != block_segment[:-1]] if block_segment.size else np.zeros(0, bool)
    segment_of_block = np.cumsum(new_segment) - 1
    cum_neg, cum_pos = np.cumsum(neg_b), np.cumsum(pos_b)
    neg_offset = (cum_neg - neg_b)[new_segment][segment_of_block]
    pos_offset = (cum_pos - pos_b)[new_segment][segment_of_block]
    pos_total = np.bincount(segment_of_block, weights=pos_b)[segment_of_block]
    neg_below = cum_neg - neg_b - neg_offset + 0.5 * neg_b
    pos_above = pos_total - (cum_pos - pos_offset) + 0.5 * pos_b
    per_case_sorted = np.where(p > 0, neg_below[block], pos_above[block])
    contribution = np.empty(n)
    contribution[order] = per_case_sorted
    numerator = np.bincount(g, weights=p * per_case_sorted, minlength=int(segment.max()) + 1 if n else 0)
    return contribution, numerator


# ---------------------------------------------------------------------------
# Groups: one feature matrix and its AUROC plans.


@dataclass
class GroupStats:
    """What one group needs to turn weights into statistics, for one model."""

    rows: slice | np.ndarray
    features: np.ndarray
    features32: np.ndarray
    ranks: tuple[RankPlan, ...]
    rank_scores: tuple[np.ndarray, ...]

    def statistics(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(linear (b, m), auroc numerators (b, T)) for weights over all cases (canonical order)."""
        local = weights[:, self.rows]
        features = self.features32 if local.dtype == np.float32 else self.features
        linear = (local @ features).astype(np.float64)
        if not self.ranks:
            return linear, np.zeros((local.shape[0], 0))
        auc = np.stack([auc_numerators(local, plan) for plan in self.ranks], axis=1)
        return linear, auc

    def point(self) -> tuple[np.ndarray, np.ndarray]:
        """Unweighted statistics (one row)."""
        ones = np.ones((1, self.features.shape[0]))
        return self.statistics_full(ones)

    def statistics_full(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`statistics`, for weights already restricted to the group."""
        linear = local @ self.features
        auc = (
            np.stack([auc_numerators(local, plan) for plan in self.ranks], axis=1)
            if self.ranks else np.zeros((local.shape[0], 0))
        )
        return linear, auc

    def jackknife(self, unit: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-unit-out statistics: (U, m) linear and (U, T) AUROC numerators.

        ``unit`` gives each of the group's cases (group order) its unit, 0..U-1.
        """
        total = self.features.sum(axis=0)
        if unit.size == n_units and np.array_equal(unit, np.arange(n_units)):
            unit_sums = self.features
        else:
            indicator = sparse.csr_matrix(
                (np.ones(unit.size), (unit, np.arange(unit.size))), shape=(n_units, unit.size)
            )
            unit_sums = np.asarray(indicator @ self.features)
        linear = total[None, :] - unit_sums
        columns = []
        for score, plan in zip(self.rank_scores, self.ranks):
            positive = plan.positive if plan.order is None else _unsort(plan.positive, plan.order)
            contribution, numerator = pair_contributions(score, positive)
            removed = np.bincount(unit, weights=contribution, minlength=n_units)
            _, within = pair_contributions(score, positive, unit)
            within = np.pad(within, (0, n_units - within.size))
            columns.append(numerator[0] - removed + within)
        auc = np.stack(columns, axis=1) if columns else np.zeros((n_units, 0))
        return linear, auc


def _unsort(sorted_values: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(sorted_values)
    out[order] = sorted_values
    return out


# ---------------------------------------------------------------------------
# Intervals.


def acceleration(jack: np.ndarray, strata: np.ndarray) -> float:
    """BCa acceleration from leave-one-unit-out values, stratified.

    With jackknife influence values l_si = (n_s - 1)(mean_s - theta_(si)) in
    stratum s (non-negative integer codes) of n_s units, a = sum_s n_s^-3 sum_i l_si^3 /
    (6 (sum_s n_s^-2 sum_i l_si^2)^(3/2)) (Efron 1987; Davison & Hinkley 1997,
    sec. 3.7 and 5.3). One stratum gives the usual jackknife formula.
    """
    finite = np.isfinite(jack)
    if finite.sum() < 3:
        return 0.0
    jack, stratum = jack[finite], strata[finite]
    sizes = np.bincount(stratum).astype(np.float64)
    with np.errstate(invalid="ignore"):
        means = np.bincount(stratum, weights=jack) / sizes
    size = sizes[stratum]
    influence = (size - 1) * (means[stratum] - jack)
    scaled = influence / size
    denominator = (scaled ** 2).sum()
    if denominator <= 0 or not np.isfinite(denominator):
        return 0.0
    return float((scaled ** 3).sum() / (6.0 * denominator ** 1.5))


def _interpolated_quantiles(values: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles of sorted finite ``values`` (numpy's default rule)."""
    position = probabilities * (values.size - 1)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, values.size - 1)
    fraction = position - lower
    with np.errstate(invalid="ignore"):
        return values[lower] + fraction * (values[upper] - values[lower])


MIN_VALID_REPLICATES = 10


def interval(
    replicates: np.ndarray,
    estimate: float,
    *,
    method: str,
    confidence: float,
    accel: float = 0.0,
) -> tuple[float, float]:
    """Percentile or BCa interval from bootstrap replicates (NaN ones dropped).

    BCa (Efron 1987): z0 = Phi^-1(#{theta* < theta} + #{theta* = theta}/2) / B,
    quantile levels Phi(z0 + (z0 + z_a) / (1 - a (z0 + z_a))). The mid-rank for
    ties keeps z0 centred for discrete statistics such as proportions.
    """
    values = replicates[~np.isnan(replicates)]
    if not np.isfinite(estimate) and not np.isneginf(estimate):
        return math.nan, math.nan
    if values.size < MIN_VALID_REPLICATES:
        return math.nan, math.nan
    values = np.sort(values)
    alpha = (1.0 - confidence) / 2.0
    levels = np.array([alpha, 1.0 - alpha])
    if method == "bca":
        below = np.searchsorted(values, estimate, side="left")
        through = np.searchsorted(values, estimate, side="right")
        share = (below + 0.5 * (through - below)) / values.size
        share = min(max(share, 0.5 / values.size), 1.0 - 0.5 / values.size)
        z0 = ndtri(share)
        z = ndtri(levels)
        denominator = 1.0 - accel * (z0 + z)
        if np.all(denominator > 0):
            levels = ndtr(z0 + (z0 + z) / denominator)
    low, high = _interpolated_quantiles(values, levels)
    return float(low), float(high)


def run_in_threads(tasks: list[Callable[[], None]], workers: int) -> None:
    """Run independent tasks on ``workers`` threads (numpy releases the GIL in its kernels).

    BLAS is held to one thread meanwhile: its products here have few rows,
    where OpenBLAS threads cost more than they give (measured 5x slower at
    10 rows), and nested threading would oversubscribe the cores.
    """
    with thread_limits(1, "blas"):
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                task()
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(task) for task in tasks]:
                future.result()
