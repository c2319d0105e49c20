"""A tone table's provenance as a typed record, stored in the Parquet file's key-value metadata.

pandas keeps ``DataFrame.attrs`` through some operations and drops it on
others (``concat``, ``merge``), so provenance that travels there can vanish
between the reader and the code that needs it. The file is the record:
:func:`fairderm.tone.read_tone_table` returns the rows with a
:class:`ToneProvenance` read from the same file, and what needs the cut
points either gets the provenance or refuses the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fairderm.errors import InputError
from fairderm.tone._scales import DEFAULT_FITZPATRICK_SCHEME, FITZPATRICK_CUTPOINTS

TONE_FORMAT = "fairderm-tone/1"
#: Where a tone table held in memory keeps its estimation settings (see :meth:`ToneProvenance.attach`).
ATTRS_KEY = "fairderm_tone"
# ITA (degrees) boundaries between Fitzpatrick types I|II, II|III, ..., V|VI
# when an estimate recorded no scheme: the tone estimator's default scheme,
# so that the router's type probabilities agree with ``fitzpatrick_est``.
DEFAULT_ITA_CUT_POINTS: tuple[float, ...] = tuple(FITZPATRICK_CUTPOINTS[DEFAULT_FITZPATRICK_SCHEME])
N_TYPES = 6
N_GROUPS = 3


@dataclass(frozen=True)
class ToneProvenance:
    """How a tone table was made: the estimator's settings, the cohort, the status counts, the environment.

    ``estimation`` holds the estimator's settings as :func:`estimate_tone`
    (or the learned estimator) recorded them: ``method``,
    ``fitzpatrick_scheme``, ``calibration`` (``scale``, ``cutpoints``,
    ``sha256``), parameters and versions.
    """

    estimation: Mapping[str, Any] = field(default_factory=dict)
    cohort: Mapping[str, Any] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    format: str = TONE_FORMAT

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ToneProvenance:
        """The provenance stored under the Parquet metadata key ``fairderm``."""
        return cls(estimation=dict(metadata.get("estimation") or {}), cohort=dict(metadata.get("cohort") or {}),
                   counts=dict(metadata.get("counts") or {}), environment=dict(metadata.get("environment") or {}),
                   format=str(metadata.get("format") or TONE_FORMAT))

    def to_metadata(self) -> dict[str, Any]:
        """The Parquet metadata form (read back by :meth:`from_metadata`)."""
        return {"format": self.format, "estimation": dict(self.estimation), "cohort": dict(self.cohort),
                "counts": dict(self.counts), "environment": dict(self.environment)}

    @classmethod
    def of(cls, frame: pd.DataFrame) -> ToneProvenance:
        """The provenance a tone table in memory carries (from the estimator or :func:`read_tone`).

        Raises
        ------
        InputError
            When the table carries none: it was built by hand, or went
            through a pandas operation that drops ``attrs`` (``concat``,
            ``merge``). Read it with :func:`read_tone_table` and pass its
            provenance instead.
        """
        if ATTRS_KEY not in frame.attrs:
            raise InputError("tone table has no provenance (its cut points are unknown; pandas drops "
                             "DataFrame.attrs on concat and merge): read it with read_tone_table and pass its "
                             "provenance", column=ATTRS_KEY)
        return cls(estimation=dict(frame.attrs[ATTRS_KEY] or {}))

    def attach(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` carrying this provenance in ``attrs`` (in place; returned for chaining)."""
        frame.attrs[ATTRS_KEY] = dict(self.estimation)
        return frame

    @property
    def calibration(self) -> Mapping[str, Any] | None:
        """The fitted calibration's record (``scale``, ``cutpoints``, ``sha256``), if one was used."""
        calibration = self.estimation.get("calibration")
        return calibration if isinstance(calibration, Mapping) else None

    def cut_points(self) -> tuple[float, ...]:
        """The five ITA boundaries behind ``fitzpatrick_est``.

        A calibration on the Fitzpatrick scale wins, then the named scheme;
        an estimate that recorded neither used :data:`DEFAULT_ITA_CUT_POINTS`.
        """
        calibration = self.calibration or {}
        fitted = calibration.get("cutpoints") or []
        if calibration.get("scale") == "fitzpatrick" and len(fitted) == N_TYPES - 1:
            return tuple(float(c) for c in fitted)
        scheme = self.estimation.get("fitzpatrick_scheme")
        return tuple(FITZPATRICK_CUTPOINTS.get(scheme, DEFAULT_ITA_CUT_POINTS)) if scheme else DEFAULT_ITA_CUT_POINTS

    def group_cut_points(self) -> tuple[float, float]:
        """The two ITA boundaries I-II | III-IV and III-IV | V-VI behind ``fitzpatrick_group_est``.

        A calibration on the group scale gives them directly; otherwise they
        are the type boundaries II|III and IV|V of :meth:`cut_points`.
        """
        calibration = self.calibration or {}
        fitted = calibration.get("cutpoints") or []
        if calibration.get("scale") == "fitzpatrick_group" and len(fitted) == N_GROUPS - 1:
            return float(fitted[0]), float(fitted[1])
        types = self.cut_points()
        return float(types[1]), float(types[3])


@dataclass(frozen=True)
class ToneTable:
    """A tone table's rows and the provenance read from the same file."""

    frame: pd.DataFrame
    provenance: ToneProvenance
