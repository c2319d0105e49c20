"""How :func:`~fairderm.metrics.evaluate` and :func:`~fairderm.metrics.compare`
compute: one typed, validated set of options, each with one default and one
allowed range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fairderm.errors import InputError
from fairderm.metrics._bootstrap import n_workers
from fairderm.metrics._significance import P_ADJUST_METHODS

MAX_RESAMPLES = 1_000_000
"""Bootstrap replicates or permutations at most: a typo (1e12) is refused instead of running for ever."""
#: Options that are counts (0 allowed: ``n_boot=0`` gives point estimates only, ``n_perm=0`` no permutation tests).
_COUNTS = ("n_boot", "n_perm", "min_group_size", "min_positives", "seed")
CI_METHODS = ("bca", "percentile")


@dataclass(frozen=True)
class EvaluationOptions:
    """Validated options of :func:`~fairderm.metrics.evaluate` and :func:`~fairderm.metrics.compare`.

    Attributes
    ----------
    n_boot
        Bootstrap replicates B, 0 to 1,000,000 (0: point estimates only).
    ci
        ``bca`` (Efron 1987) or ``percentile``.
    confidence
        Two-sided coverage of every interval, in (0, 1).
    seed
        Seed of every random draw (>= 0); equal inputs and seed give equal results.
    threshold
        Decision threshold on the positive-event score, in (0, 1].
    min_group_size, min_positives
        Small-sample rules of the ``insufficient`` flag (>= 0).
    reference
        Reference group for ``diff_vs_ref`` and case mix: a value, a full group
        name, or ``{attribute: value}``; default (None) the largest group. Given
        explicitly, it is also the comparator of the power analysis (else the
        rest of the cases).
    top_k
        k of ``top_k_accuracy`` (>= 1).
    n_bins
        Equal-mass bins of ECE and of the reliability curves (>= 1).
    p_adjust
        ``holm`` (confirmatory), ``fdr_bh`` or ``bh`` (exploratory),
        ``bonferroni`` or ``none``.
    n_perm
        Permutations per permutation test, 0 to 1,000,000.
    tests, case_mix, power
        Whether to compute these tables.
    workers
        Threads for the bootstrap and the permutation tests (None: the cores
        this process may use, :func:`fairderm._processes.default_workers`, at
        most 4).
    alpha, target_power
        Significance level and power of the minimum detectable difference.

    Raises
    ------
    fairderm.errors.InputError
        When an option is out of its range; the message names the parameter.
    """

    n_boot: int = 2000
    ci: str = "bca"
    confidence: float = 0.95
    seed: int = 0
    threshold: float = 0.5
    min_group_size: int = 30
    min_positives: int = 10
    reference: str | Mapping[str, str] | None = None
    top_k: int = 2
    n_bins: int = 10
    p_adjust: str = "holm"
    n_perm: int = 1000
    tests: bool = True
    case_mix: bool = True
    power: bool = True
    workers: int | None = None
    alpha: float = 0.05
    target_power: float = 0.8

    def __post_init__(self) -> None:
        if self.ci not in CI_METHODS:
            raise InputError(f"ci must be 'bca' or 'percentile', got {self.ci!r}", column="ci")
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise InputError(f"must be a non-negative integer, got {value!r}", column=name)
        for name in ("n_boot", "n_perm"):
            if getattr(self, name) > MAX_RESAMPLES:
                raise InputError(f"at most {MAX_RESAMPLES:,} resamples, got {getattr(self, name):,}", column=name)
        if not 0.0 < float(self.confidence) < 1.0:
            raise InputError(f"must lie in (0, 1), got {self.confidence!r}", column="confidence")
        if not 0.0 < float(self.threshold) <= 1.0:
            raise InputError(f"must lie in (0, 1], got {self.threshold!r}", column="threshold")
        if int(self.top_k) < 1:
            raise InputError(f"must be >= 1, got {self.top_k!r}", column="top_k")
        if int(self.n_bins) < 1:
            raise InputError(f"must be >= 1, got {self.n_bins!r}", column="n_bins")
        if self.p_adjust not in P_ADJUST_METHODS:
            raise InputError(f"unknown p-value adjustment {self.p_adjust!r}; use one of {sorted(P_ADJUST_METHODS)}",
                             column="p_adjust")
        # numpy integers and integral floats become Python ints, so that config and JSON hold plain numbers.
        for name in (*_COUNTS, "top_k", "n_bins"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def threads(self) -> int:
        """Threads of the bootstrap and the permutation tests: ``workers``, else the default rule."""
        return n_workers(self.workers)

