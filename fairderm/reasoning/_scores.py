"""The scores table: every report's judge scores, justifications and deterministic checks, resumable.

Schema (Parquet; one row per case of the predictions table, in its order)
-----------------------------------------------------------------------
``image_id``             The case.
``status``               ``ok`` (judged on every dimension), ``error`` (the judge's answer was
                         unusable or never came: see ``reason``), ``checked`` (no judge was
                         asked; checks only) or ``no_report`` (the prediction has no text).
``reason``               Why a case is ``error`` or ``no_report`` (one printable line).
``report_sha256``        SHA-256 of the report text (None without one).
``judge_key``            SHA-256 of (report hash, reference diagnosis, rubric hash, judge
                         identity): the cache key of the case's judgement.
``judge_<dimension>``    The judge's score 1-5 per rubric dimension (NaN unless ``ok``).
``why_<dimension>``      The judge's justification (printable; None unless ``ok``).
``check_<check>``        The deterministic checks (:mod:`fairderm.reasoning._checks`), for
                         every case with a report.
``judge_latency_s``,     Of the judge's request (None when reused or not asked).
``judge_attempts``

The file's Parquet metadata (key ``fairderm``) records ``format``, the
rubric (``rubric``, ``rubric_sha256``) and the judge (``judge``: model,
the server's ``/models`` answer, sampling, prompt version; ``judge_sha256``)
and, not part of the judge's identity, the reports each of its servers
answered in the last run (``judge_served_by``).

Resuming
--------
A rerun into an existing file keeps every ``ok`` row whose ``judge_key`` is
unchanged and asks the judge only for the others (errors, new cases, changed
reports, another rubric or judge). Rows are written after every batch, so
an interrupted run loses at most one batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import atomic_write_parquet, read_parquet_metadata, sha256_bytes, sha256_json
from fairderm.errors import InputError
from fairderm.reasoning._checks import CHECK_NAMES, report_checks
from fairderm.reasoning._judge import Judge
from fairderm.reasoning._rubric import Rubric

SCORES_FORMAT = 1
STATUSES = ("ok", "error", "checked", "no_report")
ScoreProgress = Callable[[int, int], None]


@dataclass
class ScoreTable:
    """A scores table and what produced it.

    Attributes
    ----------
    frame
        The table (see the module's schema).
    rubric
        The rubric the judge scored against.
    judge
        The judge's identity, or None when only the checks ran.
    reused, judged
        Cases whose judgement came from an earlier run / was asked for now.
    """

    frame: pd.DataFrame
    rubric: Rubric
    judge: dict[str, Any] | None
    reused: int = 0
    judged: int = 0

    @property
    def errors(self) -> pd.DataFrame:
        """``image_id, reason`` of the cases the judge could not score."""
        return self.frame.loc[self.frame["status"] == "error", ["image_id", "reason"]].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        """Cases per status."""
        return {s: int((self.frame["status"] == s).sum()) for s in STATUSES}

    def score_columns(self, image_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-case values for the metrics engine, aligned to ``image_ids``.

        ``{dimension: judge score, check: check value}``; NaN where a case is
        not scored (the metrics engine leaves such cases out of that mean).
        """
        indexed = self.frame.assign(image_id=self.frame["image_id"].astype(str)).set_index("image_id")
        indexed = indexed.reindex([str(i) for i in image_ids])
        out = {}
        if self.judge is not None:
            for name in self.rubric.names:
                out[name] = indexed[f"judge_{name}"].to_numpy(dtype=np.float64)
        for name in CHECK_NAMES:
            out[name] = indexed[f"check_{name}"].to_numpy(dtype=np.float64)
        return out

    def summary(self) -> str:
        counts = self.counts()
        lines = [f"{len(self.frame)} reports: {counts['ok']} judged, {counts['error']} judge errors, "
                 f"{counts['checked']} checked only, {counts['no_report']} without a report "
                 f"({self.judged} asked now, {self.reused} reused)"]
        scored = self.frame[self.frame["status"] == "ok"]
        if self.judge is not None and len(scored):
            means = ", ".join(f"{n} {scored[f'judge_{n}'].mean():.2f}" for n in self.rubric.names)
            lines.append(f"mean scores: {means}")
        return "\n".join(lines)


def _columns(rubric: Rubric) -> list[str]:
    return (["image_id", "status", "reason", "report_sha256", "judge_key"]
            + [f"judge_{n}" for n in rubric.names] + [f"why_{n}" for n in rubric.names]
            + [f"check_{n}" for n in CHECK_NAMES] + ["judge_latency_s", "judge_attempts"])


def _typed(rows: list[dict[str, Any]], rubric: Rubric) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=_columns(rubric))
    for column in frame.columns:
        if column.startswith(("judge_", "check_")) and column != "judge_key":
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
        elif column != "judge_attempts":
            frame[column] = frame[column].astype("string")
    frame["judge_attempts"] = pd.to_numeric(frame["judge_attempts"], errors="coerce").astype("Int64")
    return frame


def _previous(path: Path, rubric: Rubric) -> dict[str, dict[str, Any]]:
    """The ``ok`` rows of an earlier run's file, by judge key (nothing when the file is of another make)."""
    if not path.is_file():
        return {}
    try:
        meta = read_parquet_metadata(path)
        frame = pd.read_parquet(path)
    except (OSError, ValueError):
        return {}
    if meta.get("format") != SCORES_FORMAT or not set(_columns(rubric)) <= set(frame.columns):
        return {}
    ok = frame[frame["status"] == "ok"]
    return {str(row["judge_key"]): row for row in ok.to_dict("records")}


def score_reports(
    predictions: pd.DataFrame,
    *,
    truth: dict[str, str],
    labels: Sequence[str],
    out: str | os.PathLike[str],
    rubric: Rubric,
    judge: Judge | None = None,
    batch_size: int = 32,
    progress: ScoreProgress | None = None,
) -> ScoreTable:
    """Score every report of a predictions table: judge (when given) and deterministic checks.

    Parameters
    ----------
    predictions
        A text model's predictions (``image_id``, ``text``; ``pred`` when
        parsed), as :func:`fairderm.inference.read_predictions` returns them.
    truth
        Image id -> true diagnosis (a cohort label).
    labels
        The cohort's labels.
    out
        The scores Parquet; an existing one is resumed (see the module).
    rubric
        The rubric the judge scores against.
    judge
        The judge, or None to run the checks only.
    batch_size
        Reports per request batch (the file is rewritten after each).
    progress
        ``progress(done, total)`` after each batch.

    Returns
    -------
    ScoreTable
    """
    if "text" not in predictions.columns:
        raise InputError("the predictions have no report text: score needs a text model's predictions",
                         column="text")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a whole number of at least 1, not {batch_size!r}")
    path = Path(out)
    rubric_sha = rubric.sha256()
    identity = judge.identity() if judge is not None else None
    judge_sha = sha256_json(identity) if identity is not None else None
    previous = _previous(path, rubric) if judge is not None else {}
    metadata = {"format": SCORES_FORMAT, "rubric": rubric.model_dump(mode="json"), "rubric_sha256": rubric_sha,
                "judge": identity, "judge_sha256": judge_sha, "checks": list(CHECK_NAMES)}

    rows: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    preds = predictions.get("pred")
    for k, record in enumerate(predictions[["image_id", "text"]].itertuples(index=False)):
        image_id = str(record.image_id)
        text = record.text if isinstance(record.text, str) else None
        row: dict[str, Any] = {"image_id": image_id}
        if text is None or not text.strip():
            row.update(status="no_report", reason="the prediction has no report text")
            row.update({f"check_{n}": np.nan for n in CHECK_NAMES})
            rows.append(row)
            continue
        reference = truth.get(image_id)
        pred = preds.iloc[k] if preds is not None and isinstance(preds.iloc[k], str) else None
        report_sha = sha256_bytes(text.encode("utf-8"))
        row["report_sha256"] = report_sha
        row.update({f"check_{n}": v for n, v in
                    report_checks(text, true_label=reference, labels=labels, pred=pred).items()})
        if judge is None:
            row["status"] = "checked"
            rows.append(row)
            continue
        row["judge_key"] = sha256_json({"report": report_sha, "reference": reference, "rubric": rubric_sha,
                                        "judge": judge_sha})
        earlier = previous.get(row["judge_key"])
        if earlier is not None:
            row.update({k2: earlier[k2] for k2 in earlier if k2.startswith(("judge_", "why_"))})
            row.update(status="ok", judge_latency_s=None, judge_attempts=None, reused=True)
            rows.append(row)
            continue
        row.update(text=text, reference=reference)
        rows.append(row)
        pending.append(row)

    total = len(rows)
    done = total - len(pending)
    if progress is not None:
        progress(done, total)
    finished = [r for r in rows if "text" not in r]
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        assert judge is not None
        for row, judgement in zip(batch, judge.judge([r["text"] for r in batch], [r["reference"] for r in batch],
                                                      labels)):
            row.update(status=judgement.status, reason=judgement.reason, judge_latency_s=judgement.latency_s,
                       judge_attempts=judgement.attempts)
            row.update({f"judge_{n}": s for n, s in judgement.scores.items()})
            row.update({f"why_{n}": w for n, w in judgement.justifications.items()})
            del row["text"], row["reference"]
            finished.append(row)
        atomic_write_parquet(path, _typed(finished, rubric), metadata_json=metadata)
        done += len(batch)
        if progress is not None:
            progress(done, total)
    reused = sum(1 for r in rows if r.pop("reused", False))
    frame = _typed(rows, rubric)
    if judge is not None:
        metadata["judge_served_by"] = judge.served_by()
    atomic_write_parquet(path, frame, metadata_json=metadata)
    return ScoreTable(frame, rubric, identity, reused=reused, judged=len(pending))


def read_scores(path: str | os.PathLike[str]) -> ScoreTable:
    """Read and check a scores table written by :func:`score_reports`.

    Raises
    ------
    InputError
        Naming the file and what is wrong.
    """
    source = str(path)
    try:
        meta = read_parquet_metadata(path)
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the scores table ({error})", source=source) from None
    if meta.get("format") != SCORES_FORMAT or not isinstance(meta.get("rubric"), dict):
        raise InputError("not a fairderm scores table (no format/rubric metadata)", source=source)
    rubric = Rubric.model_validate(meta["rubric"])
    missing = [c for c in _columns(rubric) if c not in frame.columns]
    if missing:
        raise InputError(f"no column {missing[0]!r}", source=source, column=missing[0])
    bad = sorted(set(frame["status"].dropna().astype(str)) - set(STATUSES))
    if bad:
        raise InputError(f"unknown status {bad[0]!r}", source=source, column="status")
    return ScoreTable(frame, rubric, meta.get("judge"))
