"""What an inference run reports: per-stratum progress and the finished run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm._terminal import printable
from fairderm.inference._predictions import STATUSES


@dataclass
class StratumProgress:
    """Where one stratum stands during (and after) a run."""

    stratum: str
    total: int
    done: int = 0
    ok: int = 0
    error: int = 0
    unparseable: int = 0
    resumed: int = 0
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        computed = self.done - self.resumed
        return computed / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stratum": self.stratum,
            "total": self.total,
            "done": self.done,
            "ok": self.ok,
            "error": self.error,
            "unparseable": self.unparseable,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "images_per_s": None if np.isnan(self.images_per_s) else round(self.images_per_s, 3),
        }


ProgressCallback = Callable[[dict[str, StratumProgress]], None]


@dataclass
class InferenceRun:
    """The outcome of :func:`run_inference`.

    Attributes
    ----------
    path
        The predictions Parquet file.
    predictions
        Its rows (one per case, manifest order).
    metadata
        The provenance stored in its schema metadata.
    strata
        Per-stratum counts, failures and throughput of this run.
    notes
        One line per earlier result that was not reused (an edited shard or output).
    """

    path: Path
    predictions: pd.DataFrame = field(repr=False)
    metadata: dict[str, Any] = field(repr=False)
    strata: dict[str, StratumProgress] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per stratum: total, done, ok, error, unparseable, seconds, images_per_s."""
        return pd.DataFrame([s.to_dict() for s in self.strata.values()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "strata": [s.to_dict() for s in self.strata.values()],
            "metadata": self.metadata,
            "notes": self.notes,
        }

    def error_reasons(self, top: int = 5) -> list[tuple[str, int]]:
        failed = self.predictions[self.predictions["status"] != "ok"]
        counts = failed["reason"].fillna("").value_counts().head(top)
        return [(str(k), int(v)) for k, v in counts.items()]

    def summary(self) -> str:
        """Counts, per-stratum throughput and the top failure reasons, safe to print on a terminal."""
        counts = self.predictions["status"].value_counts()
        lines = [
            *self.notes,
            f"predictions: {self.path} ({len(self.predictions)} cases; "
            + ", ".join(f"{s} {int(counts.get(s, 0))}" for s in STATUSES)
            + ")",
            f"backend {self.metadata.get('backend')}, model {self.metadata.get('model', {}).get('model')}",
        ]
        if self.strata:
            lines.append(
                f"{'stratum':<12}{'cases':>7}{'ok':>7}{'error':>7}{'unpars.':>8}{'img/s':>9}"
            )
            for s in self.strata.values():
                rate = "-" if np.isnan(s.images_per_s) else f"{s.images_per_s:.1f}"
                lines.append(
                    f"{s.stratum:<12}{s.done:>7}{s.ok:>7}{s.error:>7}{s.unparseable:>8}{rate:>9}"
                )
        for reason, n in self.error_reasons():
            lines.append(f"  {n} x {' '.join(reason.split())}")
        # reasons and the model name may come from a server: no escape sequence reaches the terminal
        return printable("\n".join(lines))
