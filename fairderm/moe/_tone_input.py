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

Probabilities of the groups I-II, III-IV and V-VI are sums of these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from fairderm.errors import InputError

N_TYPES = 6
FITZPATRICK_TYPE_NAMES: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI")

# ITA (degrees) boundaries between Fitzpatrick types I|II, II|III, ..., V|VI:
# the ITA skin categories of Del Bino & Bernerd (2013) read as Fitzpatrick types
# (very light > 55 > light > 41 > intermediate > 28 > tan > 10 > brown > -30 > dark),
# the correspondence used by Kinyanjui et al. (2020).
DEFAULT_ITA_CUT_POINTS: tuple[float, ...] = (55.0, 41.0, 28.0, 10.0, -30.0)

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
        Five decreasing ITA boundaries between types I..VI.

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
    if cuts.shape != (N_TYPES - 1,) or np.any(np.diff(cuts) >= 0):
        raise ValueError("cut_points must be 5 strictly decreasing ITA values")
    ita = pd.to_numeric(tone["ita"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    low = pd.to_numeric(tone["ita_low"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    high = pd.to_numeric(tone["ita_high"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    usable = (tone["status"].astype("string") == "ok").fillna(False).to_numpy() & np.isfinite(ita)

    sigma = np.where(np.isfinite(low) & np.isfinite(high), (high - low) / (2 * _Z95), 0.0)
    sigma = np.clip(sigma, 0.0, None)
    # Upper tail beyond each cut point: P(ITA > c_j), from type I downwards.
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (cuts[None, :] - ita[:, None]) / sigma[:, None]
    point_mass = (ita[:, None] > cuts[None, :]).astype(float)
    above = np.where(sigma[:, None] > 0, norm.sf(z), point_mass)
    upper = np.concatenate([np.ones((len(ita), 1)), above, np.zeros((len(ita), 1))], axis=1)
    probs = upper[:, :-1] - upper[:, 1:]
    probs = np.clip(probs, 0.0, None)
    probs[~usable] = 1.0 / N_TYPES
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(np.float32)


def group_probabilities(type_probs: np.ndarray) -> np.ndarray:
    """Collapse six type probabilities to the groups I-II, III-IV, V-VI."""
    return type_probs.reshape(len(type_probs), 3, 2).sum(axis=2)
