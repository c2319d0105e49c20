"""Soft Fitzpatrick-type probabilities from a tone estimate, for the router's input.

The tone estimator gives each image an individual typology angle (ITA,
Chardon et al. 1991) with an uncertainty interval ``[ita_low, ita_high]``. We
read the estimate as a normal distribution,

    ITA ~ N(ita, sigma),   sigma = (ita_high - ita_low) / (2 * 1.96),

(the interval taken as a 95% interval) and integrate it over the ITA cut
points that define the Fitzpatrick types, ``P(type j) = Phi((c_{j-1} - ita) /
sigma) - Phi((c_j - ita) / sigma)`` with the cut points in decreasing order
(ITA falls as skin darkens). An interval of zero width gives a point mass; an
image on which the estimator abstained or failed gets the uniform vector
(1/6 each), i.e. the router is told nothing about its tone.

The cut points are those behind the tone table's own ``fitzpatrick_est``
(:func:`tone_cut_points`: a fitted calibration, else the named published
scheme), so that the probabilities and ``fitzpatrick_est`` share their
boundaries. With a wide interval the most probable type may be a wider
neighbour of the estimated one.

Probabilities of the groups I-II, III-IV and V-VI are sums of these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from fairderm.errors import InputError
from fairderm.tone import DEFAULT_FITZPATRICK_SCHEME, FITZPATRICK_CUTPOINTS

N_TYPES = 6
FITZPATRICK_TYPE_NAMES: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI")

# ITA (degrees) boundaries between Fitzpatrick types I|II, II|III, ..., V|VI
# when a tone table does not say which it used: the tone estimator's default
# scheme, so that the router's type probabilities agree with ``fitzpatrick_est``.
DEFAULT_ITA_CUT_POINTS: tuple[float, ...] = tuple(FITZPATRICK_CUTPOINTS[DEFAULT_FITZPATRICK_SCHEME])

_Z95 = float(norm.ppf(0.975))


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
    missing = [c for c in ("ita", "ita_low", "ita_high", "status") if c not in tone.columns]
    if missing:
        raise InputError(f"tone table lacks column {missing[0]!r}", column=missing[0])
    cuts = np.asarray(cut_points, dtype=float)
    if cuts.shape != (N_TYPES - 1,) or np.any(np.diff(cuts) > 0):
        raise ValueError("cut_points must be 5 non-increasing ITA values")
    ita = pd.to_numeric(tone["ita"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    low = pd.to_numeric(tone["ita_low"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    high = pd.to_numeric(tone["ita_high"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    usable = (tone["status"].astype("string") == "ok").fillna(False).to_numpy() & np.isfinite(ita)

    sigma = np.where(np.isfinite(low) & np.isfinite(high), (high - low) / (2 * _Z95), 0.0)
    sigma = np.clip(sigma, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (cuts[None, :] - ita[:, None]) / sigma[:, None]
    point_mass = (ita[:, None] < cuts[None, :]).astype(float)
    below = np.where(sigma[:, None] > 0, norm.cdf(z), point_mass)
    # P(ITA < c_0 = +inf) = 1, then P(ITA < c_j) for j = 1..5, then P(ITA < -inf) = 0;
    # type j's probability is the drop between consecutive cut points.
    lower = np.concatenate([np.ones((len(ita), 1)), below, np.zeros((len(ita), 1))], axis=1)
    probs = lower[:, :-1] - lower[:, 1:]
    probs = np.clip(probs, 0.0, None)
    probs[~usable] = 1.0 / N_TYPES
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(np.float32)


def tone_cut_points(tone: pd.DataFrame) -> tuple[float, ...]:
    """The ITA cut points that produced a tone table's ``fitzpatrick_est``.

    Read from the table's provenance (``attrs["fairderm_tone"]``, set by
    :func:`fairderm.tone.read_tone`): a calibration on the Fitzpatrick scale
    wins, then the named scheme; a table without provenance gets
    :data:`DEFAULT_ITA_CUT_POINTS`.
    """
    settings = tone.attrs.get("fairderm_tone") or {}
    calibration = settings.get("calibration") or {}
    fitted = calibration.get("cutpoints") or []
    if calibration.get("scale") == "fitzpatrick" and len(fitted) == N_TYPES - 1:
        return tuple(float(c) for c in fitted)
    scheme = settings.get("fitzpatrick_scheme")
    return tuple(FITZPATRICK_CUTPOINTS.get(scheme, DEFAULT_ITA_CUT_POINTS)) if scheme else DEFAULT_ITA_CUT_POINTS


def group_probabilities(type_probs: np.ndarray) -> np.ndarray:
    """Collapse six type probabilities to the groups I-II, III-IV, V-VI."""
    return type_probs.reshape(len(type_probs), 3, 2).sum(axis=2)
