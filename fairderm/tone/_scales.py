"""Skin-tone scales: ITA categories, Fitzpatrick types from ITA, Monk tones from CIELAB.

Chardon categories (Chardon, Cretois & Hourseau 1991; Del Bino et al. 2006)
---------------------------------------------------------------------------
very light > 55 >= light > 41 >= intermediate > 28 >= tan > 10 >= brown > -30 >= dark

Fitzpatrick from ITA
--------------------
There is no physical mapping from ITA to the Fitzpatrick type (a phototype:
how skin burns and tans); published cut-points differ:

- ``kinyanjui``: 55 / 41 / 28 / 19 / 10 (Kinyanjui et al. 2020, after the
  Chardon categories; derived for colorimetry-like ITA of dermoscopy images),
- ``groh``: 45 / 28 / 17 / 5 / -20 (Groh et al. 2021, fitted to
  Fitzpatrick17k clinical photographs).

The default is ``groh``: the estimator measures photographs, whose ITA runs
lower than a colorimeter's, and these cut-points were fitted to photographs.
The choice is written into every output's ``method`` column. A cohort with
tone labels should use a fitted calibration instead
(:func:`fairderm.tone.fit_calibration`).

Monk Skin Tone scale (Monk 2019)
--------------------------------
The nearest of the ten public swatches in CIELAB by CIEDE2000.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairderm.errors import InputError
from fairderm.tone._color import hex_to_lab, nearest_by_ciede2000

CHARDON_CATEGORIES: tuple[str, ...] = ("very light", "light", "intermediate", "tan", "brown", "dark")
CHARDON_CUTPOINTS: tuple[float, ...] = (55.0, 41.0, 28.0, 10.0, -30.0)

FITZPATRICK_CUTPOINTS: dict[str, tuple[float, ...]] = {
    "groh": (45.0, 28.0, 17.0, 5.0, -20.0),
    "kinyanjui": (55.0, 41.0, 28.0, 19.0, 10.0),
}
DEFAULT_FITZPATRICK_SCHEME = "groh"

MONK_HEX: tuple[str, ...] = (
    "f6ede4", "f3e7db", "f7ead0", "eadaba", "d7bd96", "a07e56", "825c43", "604134", "3a312a", "292420",
)
MONK_LAB: np.ndarray = hex_to_lab(MONK_HEX)

FITZPATRICK_GROUP_OF_TYPE: dict[int, str] = {1: "I-II", 2: "I-II", 3: "III-IV", 4: "III-IV", 5: "V-VI", 6: "V-VI"}


def category_index(ita: np.ndarray, cutpoints: tuple[float, ...] | list[float]) -> np.ndarray:
    """0-based category of each ITA for descending cut-points; -1 where ITA is NaN.

    Category 0 is ``ita > cutpoints[0]``; category k is
    ``cutpoints[k-1] >= ita > cutpoints[k]``; the last is ``ita <= cutpoints[-1]``.
    """
    ita = np.asarray(ita, dtype=np.float64)
    cuts = np.asarray(cutpoints, dtype=np.float64)
    # count of cut-points at or above each ITA = index of its category
    index = (cuts[None, :] >= ita[..., None]).sum(axis=-1)
    return np.where(np.isnan(ita), -1, index)


def ita_to_chardon(ita: np.ndarray | list[float]) -> pd.Series:
    """Chardon/Del Bino category name of each ITA (missing where ITA is NaN)."""
    index = category_index(np.asarray(ita, dtype=np.float64), CHARDON_CUTPOINTS)
    names = np.array(CHARDON_CATEGORIES, dtype=object)
    return pd.Series(np.where(index >= 0, names[np.maximum(index, 0)], None), dtype="string")


def fitzpatrick_cutpoints(scheme: str) -> tuple[float, ...]:
    """The ITA cut-points of a named Fitzpatrick scheme (``groh`` or ``kinyanjui``)."""
    try:
        return FITZPATRICK_CUTPOINTS[scheme]
    except KeyError:
        raise InputError(
            f"unknown Fitzpatrick cut-point scheme {scheme!r}; choose one of {sorted(FITZPATRICK_CUTPOINTS)}",
            column="fitzpatrick_scheme",
        ) from None


def ita_to_fitzpatrick(ita: np.ndarray | list[float], scheme: str = DEFAULT_FITZPATRICK_SCHEME) -> pd.Series:
    """Fitzpatrick type 1-6 (nullable Int8) from ITA with a published cut-point scheme."""
    index = category_index(np.asarray(ita, dtype=np.float64), fitzpatrick_cutpoints(scheme))
    return pd.Series(np.where(index >= 0, index + 1, 0), dtype="Int8").mask(index < 0)


def fitzpatrick_group(types: pd.Series) -> pd.Series:
    """``I-II`` / ``III-IV`` / ``V-VI`` from Fitzpatrick types 1-6 (missing stays missing)."""
    return pd.Series(types, dtype="Int8").map(FITZPATRICK_GROUP_OF_TYPE).astype("string")


def lab_to_monk(lab: np.ndarray) -> pd.Series:
    """Monk tone 1-10 (nullable Int8) of each CIELAB colour: nearest swatch by CIEDE2000."""
    lab = np.atleast_2d(np.asarray(lab, dtype=np.float64))
    known = np.isfinite(lab).all(axis=1)
    tones = np.zeros(lab.shape[0], dtype=np.int64)
    if known.any():
        tones[known] = nearest_by_ciede2000(lab[known], MONK_LAB) + 1
    return pd.Series(tones, dtype="Int8").mask(~known)
