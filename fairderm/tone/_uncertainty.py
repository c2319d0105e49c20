"""What a tone table's intervals say about its strata: type probabilities and the measurement's repeatability.

The tone estimator gives each image an individual typology angle (ITA,
Chardon et al. 1991) with an uncertainty interval ``[ita_low, ita_high]``
(the skin's variation across the photograph, the colour cast left after
correction and the exposure; ``docs/tone.md``). We read the estimate as a
normal distribution,

    ITA ~ N(ita, sigma),   sigma = (ita_high - ita_low) / (2 * 1.96),

(the interval taken as a 95% interval) and integrate it over the ITA cut
points that define the Fitzpatrick types, ``P(type j) = Phi((c_{j-1} - ita) /
sigma) - Phi((c_j - ita) / sigma)`` with the cut points in decreasing order
(ITA falls as skin darkens). An interval of zero width gives a point mass.

Two uses:

- :func:`tone_probabilities`, the router's tone input: an image on which
  the estimator abstained or failed gets the uniform vector (1/6 each), i.e.
  the router is told nothing about its tone;
- :func:`measurement_repeatability`, a label-free figure for the strata:
  the share of measured images whose ITA, varied within its own interval,
  stays in its group (I-II / III-IV / V-VI). It is the repeatability of the
  colour measurement under its modelled error, not its accuracy: colour
  (ITA) methods agree with dermatologists on clinical photographs for
  0.41-0.49 of images in three groups, against 0.69-0.76 between
  dermatologists (Groh et al. 2022, :data:`REPEATABILITY_IS_NOT_ACCURACY`);
  only ``fairderm tone validate`` on labelled images measures agreement.

The cut points are those behind the tone table's own ``fitzpatrick_est``
(:func:`tone_cut_points`: a fitted calibration, else the named published
scheme), so that the probabilities and ``fitzpatrick_est`` share their
boundaries. With a wide interval the most probable type may be a wider
neighbour of the estimated one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri  # the standard normal's CDF and quantile

from fairderm.errors import InputError
from fairderm.tone._provenance import DEFAULT_ITA_CUT_POINTS, N_TYPES, ToneProvenance
from fairderm.tone._scales import category_index

FITZPATRICK_TYPE_NAMES: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI")

_Z95 = float(ndtri(0.975))

REPEATABILITY_IS_NOT_ACCURACY = (
    "repeatability is not accuracy: colour (ITA) methods agree with dermatologists on clinical photographs "
    "for about 0.41-0.49 of images in three groups, against 0.69-0.76 between dermatologists "
    "(Groh et al. 2022, CSCW)"
)
"""The line printed wherever :func:`measurement_repeatability` is: the published agreement of colour methods
with dermatologists (Groh, Harris, Daneshjou, Badri & Koochek 2022, "Towards transparency in dermatology image
datasets with skin tone annotations by experts, crowds, and an algorithm", Proc. ACM HCI 6, CSCW2)."""


def tone_probabilities(
    tone: pd.DataFrame, *, cut_points: tuple[float, ...] = DEFAULT_ITA_CUT_POINTS
) -> np.ndarray:
    """Per-image probabilities of the six Fitzpatrick types from ITA estimates.

    Parameters
    ----------
    tone
        A tone table (:func:`fairderm.tone.read_tone`): columns ``ita``,
        ``ita_low``, ``ita_high`` and ``status``.
    cut_points
        Five non-increasing ITA boundaries between types I..VI (equal
        neighbours leave a type empty, as a fitted calibration may).

    Returns
    -------
    numpy.ndarray
        ``(n, 6)`` float32, rows summing to 1; uniform for rows whose status is
        not ``ok`` or whose ITA is missing.
    """
    cuts = np.asarray(cut_points, dtype=float)
    if cuts.shape != (N_TYPES - 1,) or np.any(np.diff(cuts) > 0):
        raise ValueError("cut_points must be 5 non-increasing ITA values")
    ita, sigma, usable, _ = _estimates(tone)
    probs = category_probabilities(ita, sigma, cuts)
    probs[~usable] = 1.0 / N_TYPES
    return probs.astype(np.float32)


def category_probabilities(ita: np.ndarray, sigma: np.ndarray, cut_points: np.ndarray) -> np.ndarray:
    """``(n, len(cut_points) + 1)`` probabilities of the ITA categories under ``N(ita, sigma)``.

    Category 0 lies above the first (highest) cut point. ``sigma`` 0 gives a
    point mass; rows with a missing ITA come out as NaN.
    """
    cuts = np.asarray(cut_points, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (cuts[None, :] - ita[:, None]) / sigma[:, None]
    point_mass = (ita[:, None] < cuts[None, :]).astype(float)
    below = np.where(sigma[:, None] > 0, ndtr(z), point_mass)
    # P(ITA < c_0 = +inf) = 1, then P(ITA < c_j), then P(ITA < -inf) = 0;
    # category j's probability is the drop between consecutive cut points.
    lower = np.concatenate([np.ones((len(ita), 1)), below, np.zeros((len(ita), 1))], axis=1)
    probs = np.clip(lower[:, :-1] - lower[:, 1:], 0.0, None)
    with np.errstate(invalid="ignore"):
        probs /= probs.sum(axis=1, keepdims=True)
    probs[~np.isfinite(ita)] = np.nan
    return probs


def _estimates(tone: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ITA, its normal sigma from the 95% interval (0 without one), which rows are usable (status ok,
    ITA known), and which have an interval."""
    missing = [c for c in ("ita", "ita_low", "ita_high", "status") if c not in tone.columns]
    if missing:
        raise InputError(f"tone table lacks column {missing[0]!r}", column=missing[0])
    ita = pd.to_numeric(tone["ita"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    low = pd.to_numeric(tone["ita_low"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    high = pd.to_numeric(tone["ita_high"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    usable = (tone["status"].astype("string") == "ok").fillna(False).to_numpy() & np.isfinite(ita)
    has_interval = np.isfinite(low) & np.isfinite(high)
    sigma = np.where(has_interval, (high - low) / (2 * _Z95), 0.0)
    return ita, np.clip(sigma, 0.0, None), usable, has_interval


def tone_cut_points(tone: pd.DataFrame | ToneProvenance) -> tuple[float, ...]:
    """The ITA cut points that produced a tone table's ``fitzpatrick_est``.

    From the table's provenance (:meth:`ToneProvenance.cut_points`): a
    :class:`ToneProvenance`, or a table that carries it (from the estimator
    or :func:`fairderm.tone.read_tone`).

    Raises
    ------
    InputError
        When a table carries no provenance (see :meth:`ToneProvenance.of`).
    """
    return _provenance(tone).cut_points()


def _provenance(tone: pd.DataFrame | ToneProvenance, provenance: ToneProvenance | None = None) -> ToneProvenance:
    if provenance is not None:
        return provenance
    return tone if isinstance(tone, ToneProvenance) else ToneProvenance.of(tone)


def group_probabilities(type_probs: np.ndarray) -> np.ndarray:
    """Collapse six type probabilities to the groups I-II, III-IV, V-VI."""
    return type_probs.reshape(len(type_probs), 3, 2).sum(axis=2)


GROUP_NAMES: tuple[str, ...] = ("I-II", "III-IV", "V-VI")


def group_cut_points(tone: pd.DataFrame | ToneProvenance) -> tuple[float, float]:
    """The two ITA boundaries, I-II | III-IV and III-IV | V-VI, behind a tone table's ``fitzpatrick_group_est``.

    See :meth:`ToneProvenance.group_cut_points`; a table without provenance is refused as by
    :func:`tone_cut_points`.
    """
    return _provenance(tone).group_cut_points()


def _measured_groups(
    tone: pd.DataFrame, provenance: ToneProvenance | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows measured with an interval (status ``ok``), their group probabilities and estimated groups, and
    the group cut points."""
    ita, sigma, usable, has_interval = _estimates(tone)
    cuts = np.asarray(_provenance(tone, provenance).group_cut_points())
    measured = usable & has_interval  # skin-tone-classifier's rows carry no interval: nothing to say
    probs = category_probabilities(ita[measured], sigma[measured], cuts)
    return measured, probs, category_index(ita[measured], cuts), cuts


def own_group_probability(tone: pd.DataFrame, provenance: ToneProvenance | None = None) -> np.ndarray:
    """Per row, the probability that the ITA, varied within its interval, stays in the estimated group.

    NaN unless measured with an interval.

    Skin-tone-classifier's rows carry no interval, so nothing is said of them.
    ``provenance`` gives the cut points (default: the table's own, see
    :func:`tone_cut_points`).
    """
    measured, probs, estimated, _ = _measured_groups(tone, provenance)
    own = np.full(len(measured), np.nan)
    own[measured] = probs[np.arange(len(estimated)), estimated]
    return own


def measurement_repeatability(tone: pd.DataFrame, provenance: ToneProvenance | None = None) -> dict[str, Any]:
    """How repeatable the colour measurement's group is: the share of measured images whose ITA stays in its group.

    For each image with status ``ok`` and an interval, the probability that
    its ITA, varied as its own interval says (``ITA ~ N(ita, sigma)``: the
    skin's variation across the photograph, the colour cast left after
    correction and the exposure), stays in the ITA group (I-II / III-IV /
    V-VI, :func:`group_cut_points`) the estimate put it in; the mean over
    images, the mean within each estimated group, and the expected counts of
    estimated group against the group the varied ITA falls in. No labels are
    used. It is a property of the measurement, not its accuracy: it says
    nothing of whether the photograph's colour reads the skin's true colour
    beyond the modelled error, nor of how ITA maps to a labelled
    Fitzpatrick type. Colour (ITA) methods agree with dermatologists on
    clinical photographs for 0.41-0.49 of images in three groups, against
    0.69-0.76 between dermatologists (Groh et al. 2022), whatever their
    repeatability; only ``fairderm tone validate`` on labelled images
    measures agreement.

    ``provenance`` gives the cut points (default: the table's own, see
    :func:`tone_cut_points`; a table without provenance is refused).

    Returns
    -------
    dict
        ``n`` (images with status ``ok`` and an interval),
        ``repeatability`` (NaN when none), ``by_group`` (estimated group ->
        ``{"n", "repeatability"}``), ``interval_counts`` (estimated group ->
        group of the varied ITA -> expected number of images) and
        ``cut_points``.
    """
    _, probs, estimated, cuts = _measured_groups(tone, provenance)
    own = probs[np.arange(len(estimated)), estimated]
    by_group: dict[str, dict[str, Any]] = {}
    counts: dict[str, dict[str, float]] = {}
    for k, name in enumerate(GROUP_NAMES):
        rows = estimated == k
        by_group[name] = {
            "n": int(rows.sum()),
            "repeatability": float(own[rows].mean()) if rows.any() else float("nan"),
        }
        counts[name] = {varied: float(probs[rows, j].sum()) for j, varied in enumerate(GROUP_NAMES)}
    return {
        "n": int(len(own)),
        "repeatability": float(own.mean()) if len(own) else float("nan"),
        "by_group": by_group,
        "interval_counts": counts,
        "cut_points": [float(c) for c in cuts],
    }
