"""Running a predictor over a cohort: strata, shards, resume, provenance.

Crash safety: after every batch the rows of that batch are written as one
Parquet shard through a temporary file and a rename, in ``<out>.shards/``
next to the output. A run that is killed loses at most the batch in flight;
the next run with the same model, cohort and settings (the same
*fingerprint*) reads the shards, skips the finished cases and, at the end,
merges everything into ``<out>`` (atomically again) and removes the shards.

Every shard and the merged output carry the SHA-256 of their own rows
(``rows_sha256`` in the Parquet metadata): a file edited after it was written
is never reused; its cases are run again, and the run says so in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fairderm._io import (
    atomic_write_json,
    atomic_write_parquet,
    environment_info,
    output_lock,
    read_parquet_metadata,
    sha256_json,
)
from fairderm._terminal import printable
from fairderm.cohort import Cohort, load_cohort
from fairderm.errors import InputError
from fairderm.inference._backbone import pick_device
from fairderm.inference._images import CaseDataset, case_loader, plan_workers
from fairderm.inference._labels import label_for_name, map_classes
from fairderm.inference._predictor import (
    Predictor,
    PredictorOutput,
    load_predictor,
    raise_at_first_row,
)
from fairderm.inference._report import PARSER_VERSION, parse_report
from fairderm.inference._strata import Strata, resolve_strata, schedule

PREDICTIONS_FORMAT = "fairderm.predictions/1"
STATUSES = ("ok", "error", "unparseable")
TEXT_EXTRAS = ("latency_s", "prompt_tokens", "completion_tokens", "attempts")
_FLOAT_EXTRAS = {"latency_s"}
_RUN_FILE = "run.json"


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


def _string_columns(has_text: bool) -> list[str]:
    columns = ["image_id", "stratum", "status", "reason", "pred"]
    return columns + (["text", "differential"] if has_text else [])


def _typed(
    frame: pd.DataFrame, labels: Sequence[str], *, has_probs: bool, has_text: bool
) -> pd.DataFrame:
    """Fix column order and dtypes so that every shard has one schema."""
    columns = _string_columns(has_text)
    if has_probs:
        columns += [f"prob_{label}" for label in labels]
    if has_text:
        columns += list(TEXT_EXTRAS)
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        values = (
            frame[column]
            if column in frame.columns
            else pd.Series(None, index=frame.index, dtype=object)
        )
        if column.startswith("prob_") or column in _FLOAT_EXTRAS:
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif column in TEXT_EXTRAS:
            out[column] = pd.to_numeric(values, errors="coerce").astype("Int64")
        else:
            out[column] = values.astype("string")
    return out.reset_index(drop=True)


def rows_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a predictions table's column names and values (row order included, index not)."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _rows_problem(frame: pd.DataFrame, meta: dict[str, Any]) -> str | None:
    """Why a stored table may not be reused, or None when its rows are those it was written with."""
    stored = meta.get("rows_sha256")
    if stored is None:
        return "carries no content hash"
    if stored != rows_sha256(frame):
        return "was changed after it was written (its rows do not match their hash)"
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _RowBuilder:
    """Turns a predictor's output for a batch into validated prediction rows."""

    def __init__(
        self, predictor: Predictor, labels: Sequence[str], class_labels: Sequence[str]
    ) -> None:
        self.labels = list(labels)
        self.n_classes = len(class_labels)
        self.has_text = predictor.writes_text
        self.has_probs = predictor.gives_probabilities
        # (n_classes, n_labels) 0/1 matrix: several model classes may sum into one label
        self.to_labels = np.zeros((self.n_classes, len(self.labels)))
        for k, label in enumerate(class_labels):
            self.to_labels[k, self.labels.index(label)] = 1.0
        self.class_to_label = dict(zip(map(str, predictor.classes), class_labels))

    def error_rows(self, ids: Sequence[str], reason: str) -> list[dict[str, Any]]:
        return [{"image_id": i, "status": "error", "reason": reason} for i in ids]

    def rows(self, ids: Sequence[str], output: PredictorOutput) -> list[dict[str, Any]]:
        n = len(ids)
        problem = self._shape_problem(output, n)
        if problem:
            return self.error_rows(ids, problem)
        rows = []
        for j, image_id in enumerate(ids):
            row: dict[str, Any] = {"image_id": image_id, "status": "ok", "reason": None}
            for key, values in output.extras.items():
                row[key] = values[j]
            if output.status is not None and output.status[j] not in (None, "ok"):
                row["status"] = output.status[j]
                row["reason"] = (output.reason or [None] * n)[j] or "predictor reported an error"
                if output.text is not None:
                    row["text"] = output.text[j]
                rows.append(row)
                continue
            if output.probs is not None:
                self._fill_probs(row, np.asarray(output.probs[j], dtype=np.float64))
            if output.pred is not None and row["status"] == "ok":
                self._fill_pred(row, output.pred[j])
            if output.text is not None:
                self._fill_text(row, output.text[j])
            rows.append(row)
        return rows

    def _shape_problem(self, output: PredictorOutput, n: int) -> str | None:
        if output.probs is not None:
            shape = tuple(np.shape(output.probs))
            if shape != (n, self.n_classes):
                return f"model output has shape {shape}, expected ({n}, {self.n_classes})"
        for name in ("text", "pred", "status", "reason"):
            values = getattr(output, name)
            if values is not None and len(values) != n:
                return f"predictor returned {len(values)} {name} values for {n} cases"
        for key, values in output.extras.items():
            if len(values) != n:
                return f"predictor returned {len(values)} {key} values for {n} cases"
        if output.probs is None and output.text is None and output.pred is None:
            return "predictor returned neither probabilities, predictions nor text"
        return None

    def _fill_probs(self, row: dict[str, Any], probs: np.ndarray) -> None:
        if not np.all(np.isfinite(probs)):
            row.update(status="error", reason="model output is NaN or infinite")
            return
        if np.any(probs < 0) or np.any(probs > 1 + 1e-6):
            row.update(status="error", reason="model output is not a probability (outside 0-1)")
            return
        by_label = probs @ self.to_labels
        for label, value in zip(self.labels, by_label):
            row[f"prob_{label}"] = float(value)
        row["pred"] = self.labels[int(np.argmax(by_label))]

    def _fill_pred(self, row: dict[str, Any], pred: str | None) -> None:
        if pred is None:
            if "pred" not in row:
                row.update(status="error", reason="no prediction for this case")
            return
        label = self.class_to_label.get(str(pred)) or label_for_name(str(pred), self.labels)
        if label is None:
            row.update(
                status="error", reason=f"prediction {pred!r} is not one of the model's classes"
            )
        else:
            row["pred"] = label

    def _fill_text(self, row: dict[str, Any], text: str | None) -> None:
        row["text"] = text
        parsed = parse_report(text, self.labels)
        row["status"] = parsed.status
        row["reason"] = parsed.reason
        row["pred"] = parsed.pred
        row["differential"] = "; ".join(parsed.differential) if parsed.differential else None


class _ShardStore:
    """``<out>.shards/``: ``run.json`` with the fingerprint, and ``shard-NNNNNN.parquet`` files.

    ``notes`` collects one line per shard that is not reused because its rows
    no longer match the hash it was written with.
    """

    def __init__(self, out: Path) -> None:
        self.folder = out.with_name(out.name + ".shards")
        self.notes: list[str] = []

    def fingerprint(self) -> str | None:
        run_file = self.folder / _RUN_FILE
        if not run_file.is_file():
            return None
        try:
            return json.loads(run_file.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            return None

    def start(self, fingerprint: str, description: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / _RUN_FILE, {"fingerprint": fingerprint, **description})

    def shard_paths(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.parquet")) if self.folder.is_dir() else []

    def read(self) -> pd.DataFrame:
        frames = []
        for path in self.shard_paths():
            # shards are written atomically: one that does not read is foreign; its cases are redone
            with contextlib.suppress(OSError, ValueError, pa.ArrowException):
                frame = pd.read_parquet(path)
                problem = _rows_problem(frame, read_parquet_metadata(path))
                if problem is None:
                    frames.append(frame)
                    continue
                note = f"{printable(path.name)} {problem}: its {len(frame)} cases are run again"
                if note not in self.notes:
                    self.notes.append(note)
        if not frames:
            return pd.DataFrame(columns=["image_id", "status"])
        # a case retried after an error appears twice; the later shard wins
        return pd.concat(frames, ignore_index=True).drop_duplicates("image_id", keep="last")

    def write(self, frame: pd.DataFrame) -> None:
        existing = self.shard_paths()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        atomic_write_parquet(
            self.folder / f"shard-{number:06d}.parquet", frame, metadata_json={"rows_sha256": rows_sha256(frame)}
        )

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _fingerprint_parts(
    predictor: Predictor,
    cohort: Cohort,
    labels: Sequence[str],
    class_labels: Sequence[str],
    strata: Strata,
    cap: int | None,
    seed: int,
) -> dict[str, Any]:
    parts = {
        "format": PREDICTIONS_FORMAT,
        "backend": predictor.backend,
        "model": predictor.identity(),
        "preprocessing": predictor.preprocessing(),
        "cohort_manifest_sha256": cohort.manifest_sha256(),
        "labels": list(labels),
        "class_mapping": dict(zip(map(str, predictor.classes), class_labels)),
        "strata": strata.describe(),
        "cap_per_stratum": cap,
        "seed": seed,
    }
    if predictor.writes_text:
        # the same answers read by other parsing rules are other predictions
        parts["parser_version"] = PARSER_VERSION
    return parts


def run_inference(
    cohort: Cohort | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    backend: str | Predictor = "backbone",
    model: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    class_map: Mapping[str, str] | None = None,
    tone: str | os.PathLike[str] | pd.DataFrame | None = None,
    strata: str | None = None,
    cap_per_stratum: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    device: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    restart: bool = False,
    retry_errors: bool = False,
    progress: ProgressCallback | None = None,
    wait: float = 0.0,
) -> InferenceRun:
    """Run a model over a cohort, stratum by stratum, resumably; write predictions Parquet.

    Parameters
    ----------
    cohort
        A loaded cohort or its folder.
    out
        Predictions file (``.parquet``). Shards of an unfinished run live in
        ``<out>.shards/``.
    backend
        Registered backend name (``backbone``, ``hf``, ``torch``, ``openai``,
        ``vllm``, ``file``, ``router``) or a
        ready :class:`Predictor`.
    model
        Model path or name for the backend.
    options
        Backend options (e.g. ``endpoint``, ``prompt``, ``concurrency`` for
        ``openai``).
    class_map
        Explicit ``model class -> cohort label`` pairs, for classes that the
        built-in synonyms do not map.
    tone, strata
        Stratify by estimated tone groups from a tone table, or by a manifest
        column (not both). Default: one stratum.
    cap_per_stratum
        Run at most this many cases per stratum (a seeded sample): a quick audit.
    batch_size
        Cases per batch (and per shard); default the predictor's.
    workers
        DataLoader decoding processes (0 decodes in this process). Default:
        a quarter of the cores on CPU (none below 4 cores), the model's threads taking the rest;
        all cores but one on CUDA.
    device
        Torch device for local models (default CUDA when available).
    seed
        Seeds the per-stratum sample and is recorded.
    overwrite
        Replace an existing ``out`` made by a different run.
    restart
        Discard the shards of an unfinished run instead of resuming it.
    retry_errors
        On resume (or over a finished output of the same run), run the
        cases whose status is ``error`` again.
    progress
        Called after each batch with ``{stratum: StratumProgress}``.
    wait
        Seconds to wait while another process writes ``out`` (its lock,
        :func:`fairderm._io.output_lock`, is held for the whole run); 0
        refuses at once.

    Returns
    -------
    InferenceRun

    Raises
    ------
    InputError
        Before any inference: unknown backend or option, model classes that
        map onto no cohort label, bad strata, an output of a different run.
    OutputBusyError
        When another process is writing ``out``.
    """
    if not isinstance(cohort, Cohort):
        cohort = load_cohort(cohort)
    out = Path(out)
    if cap_per_stratum is not None and cap_per_stratum < 1:
        raise InputError("cap per stratum must be at least 1", column="cap_per_stratum")
    with output_lock(out, wait=wait):
        return _run_locked(
            cohort, out, backend=backend, model=model, options=options, class_map=class_map, tone=tone,
            strata=strata, cap_per_stratum=cap_per_stratum, batch_size=batch_size, workers=workers,
            device=device, seed=seed, overwrite=overwrite, restart=restart, retry_errors=retry_errors,
            progress=progress,
        )


def _run_locked(
    cohort: Cohort,
    out: Path,
    *,
    backend: str | Predictor,
    model: str | os.PathLike[str] | None,
    options: Mapping[str, Any] | None,
    class_map: Mapping[str, str] | None,
    tone: str | os.PathLike[str] | pd.DataFrame | None,
    strata: str | None,
    cap_per_stratum: int | None,
    batch_size: int | None,
    workers: int | None,
    device: str | None,
    seed: int,
    overwrite: bool,
    restart: bool,
    retry_errors: bool,
    progress: ProgressCallback | None,
) -> InferenceRun:
    labels = list(cohort.spec.labels)
    torch_device = pick_device(device)
    if isinstance(backend, Predictor):
        predictor = backend
    else:
        predictor = load_predictor(
            backend, model, labels=labels, device=torch_device, **dict(options or {})
        )
    try:
        class_labels = map_classes(
            predictor.classes, labels, class_map, source=str(model) if model else predictor.backend
        )
        predictor.check_cases(cohort.manifest["image_id"].astype(str).tolist())
        stratification = resolve_strata(cohort, tone=tone, column=strata)
        parts = _fingerprint_parts(
            predictor, cohort, labels, class_labels, stratification, cap_per_stratum, seed
        )
        fingerprint = sha256_json(parts)
        return _execute(
            cohort,
            out,
            predictor,
            labels,
            class_labels,
            stratification,
            parts,
            fingerprint,
            cap=cap_per_stratum,
            seed=seed,
            batch_size=batch_size,
            workers=workers,
            device=torch_device,
            overwrite=overwrite,
            restart=restart,
            retry_errors=retry_errors,
            progress=progress,
        )
    finally:
        predictor.close()


def _execute(
    cohort: Cohort,
    out: Path,
    predictor: Predictor,
    labels: list[str],
    class_labels: list[str],
    stratification: Strata,
    parts: dict[str, Any],
    fingerprint: str,
    *,
    cap: int | None,
    seed: int,
    batch_size: int | None,
    workers: int | None,
    device: Any,
    overwrite: bool,
    restart: bool,
    retry_errors: bool,
    progress: ProgressCallback | None,
) -> InferenceRun:
    store = _ShardStore(out)
    builder = _RowBuilder(predictor, labels, class_labels)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")

    order = schedule(stratification, cap=cap, seed=seed)
    ids = cohort.manifest["image_id"].astype(str).to_numpy()
    previous: pd.DataFrame | None = None
    notes: list[str] = []
    if out.exists():
        meta = read_parquet_metadata(out) if out.is_file() else {}
        if meta.get("fingerprint") == fingerprint and not restart:
            previous = pd.read_parquet(out)
            problem = _rows_problem(previous, meta)
            if problem is not None:
                notes.append(f"{printable(out.name)} {problem}: not reused, its cases are run again")
                previous = None
            else:
                # finished only when it holds exactly the scheduled cases: a short file is resumed, not trusted
                complete = len(previous) == len(order) and set(previous["image_id"].astype(str)) == set(ids[order])
                if complete and (not retry_errors or not (previous["status"] == "error").any()):
                    return _finished(out, previous, meta)
        elif not overwrite:
            raise InputError(
                "output exists and was made by a different run; pass --overwrite to replace it",
                source=str(out),
            )
    if restart or (store.fingerprint() not in (None, fingerprint)):
        if not restart and store.shard_paths():
            raise InputError(
                "unfinished shards of a different run are here; pass --restart to discard them",
                source=str(store.folder),
            )
        store.remove()
    store.start(fingerprint, {"out": str(out), "started_at": started_at})
    if previous is not None:
        store.write(previous)  # the output of the same run, before retrying its errors or completing it

    done = store.read()
    if retry_errors:
        done = done[done["status"] != "error"]
    finished = set(done["image_id"].astype(str))

    set_order = set(order)
    stratum_of = stratification.values
    tallies = {name: StratumProgress(name, 0) for name in sorted(set(stratum_of[order].tolist()))}
    for position in order:
        tally = tallies[stratum_of[position]]
        tally.total += 1
        if ids[position] in finished:
            tally.done += 1
            tally.resumed += 1
    position_of = {image_id: k for k, image_id in enumerate(ids)}
    for image_id, status in zip(done["image_id"].astype(str), done["status"].astype(str)):
        if image_id in finished and position_of.get(image_id) in set_order:
            _count(tallies[stratum_of[position_of[image_id]]], status)
    todo = [p for p in order if ids[p] not in finished]
    if progress is not None:
        progress(tallies)

    if todo:
        _predict_all(
            cohort,
            predictor,
            builder,
            todo,
            ids,
            stratum_of,
            tallies,
            store,
            batch_size=batch_size,
            workers=workers,
            device=device,
            progress=progress,
            labels=labels,
        )

    merged = store.read()
    selected = set(ids[order])
    merged = merged[merged["image_id"].isin(selected)]
    manifest_rank = {image_id: k for k, image_id in enumerate(ids)}
    merged = (
        merged.assign(_rank=merged["image_id"].map(manifest_rank))
        .sort_values("_rank")
        .drop(columns="_rank")
    )
    merged = _typed(merged, labels, has_probs=builder.has_probs, has_text=builder.has_text)
    metadata = {
        **parts,
        "fingerprint": fingerprint,
        # how pred relates to the prob_ columns, for `fairderm verify` to check
        "pred_source": "argmax" if builder.has_probs and not predictor.gives_predictions else "model",
        "cohort": {"name": cohort.spec.name, "root": str(cohort.root), "n_cases": len(ids)},
        "n_predictions": len(merged),
        "rows_sha256": rows_sha256(merged),
        "status_counts": {s: int((merged["status"] == s).sum()) for s in STATUSES},
        "strata_run": [t.to_dict() for t in tallies.values()],
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment_info(),
    }
    atomic_write_parquet(out, merged, metadata_json=metadata)
    store.remove()
    return InferenceRun(out, merged, metadata, tallies, notes=notes + store.notes)


def _count(tally: StratumProgress, status: str) -> None:
    if status == "ok":
        tally.ok += 1
    elif status == "unparseable":
        tally.unparseable += 1
    else:
        tally.error += 1


def _predict_all(
    cohort: Cohort,
    predictor: Predictor,
    builder: _RowBuilder,
    todo: list[int],
    ids: np.ndarray,
    stratum_of: np.ndarray,
    tallies: dict[str, StratumProgress],
    store: _ShardStore,
    *,
    batch_size: int | None,
    workers: int | None,
    device: Any,
    progress: ProgressCallback | None,
    labels: list[str],
) -> None:
    """Predict the cases ``todo`` (manifest positions) batch by batch, one shard per batch."""
    predictor.to(device)
    batch_size = batch_size or predictor.batch_size
    paths: list[Path | None] = [None] * len(todo)
    if predictor.needs_images:
        every = cohort.image_paths()
        paths = [every[position] for position in todo]  # checked inside images_root as each is opened
    else:
        workers = 0
    device_type = getattr(device, "type", "cpu")
    loader = case_loader(
        CaseDataset(paths, predictor.preprocess, root=cohort.images_root if predictor.needs_images else None),
        predictor.collate,
        batch_size=batch_size,
        workers=plan_workers(workers, device_type),
        pin_memory=device_type == "cuda",
    )
    offset = 0
    clock = time.perf_counter()
    for batch in loader:
        # dataset positions index `todo`; a batch covers offset .. offset + size - 1 in order
        size = len(batch.positions) + len(batch.failures)
        rows: dict[int, dict[str, Any]] = {}
        for k, reason in batch.failures:
            rows[k] = builder.error_rows([str(ids[todo[k]])], reason)[0]
        if batch.positions:
            good_ids = [str(ids[todo[k]]) for k in batch.positions]
            try:
                good_rows = builder.rows(good_ids, predictor.predict(batch.inputs, good_ids))
            except Exception as exc:  # noqa: BLE001  a crashing model fails its batch, never the run
                good_rows = builder.error_rows(
                    good_ids, f"model failed on this batch: {_one_line(exc)}"
                )
            rows.update(zip(batch.positions, good_rows))
        ordered = [rows[k] for k in range(offset, offset + size)]
        for k, row in zip(range(offset, offset + size), ordered):
            row["stratum"] = str(stratum_of[todo[k]])
        store.write(
            _typed(
                pd.DataFrame(ordered),
                labels,
                has_probs=builder.has_probs,
                has_text=builder.has_text,
            )
        )
        now = time.perf_counter()
        elapsed, clock = now - clock, now
        for row in ordered:
            tally = tallies[row["stratum"]]
            tally.done += 1
            tally.seconds += elapsed / max(1, size)
            _count(tally, row["status"])
        offset += size
        if progress is not None:
            progress(tallies)


def _finished(out: Path, frame: pd.DataFrame, meta: dict[str, Any]) -> InferenceRun:
    tallies: dict[str, StratumProgress] = {}
    for record in meta.get("strata_run", []):
        tally = StratumProgress(
            record["stratum"],
            record["total"],
            done=record["done"],
            ok=record["ok"],
            error=record["error"],
            unparseable=record["unparseable"],
            resumed=record["done"],
        )
        tallies[tally.stratum] = tally
    return InferenceRun(out, frame, meta, tallies)


def read_predictions(path: str | os.PathLike[str], cohort: Cohort | None = None) -> pd.DataFrame:
    """Read and validate a predictions file written by :func:`run_inference`.

    Parameters
    ----------
    path
        The predictions Parquet file.
    cohort
        When given, every ``image_id`` must be one of the cohort's and every
        ``pred`` one of its labels.

    Returns
    -------
    pandas.DataFrame
        The rows, with the run metadata in ``frame.attrs["fairderm"]``.

    Raises
    ------
    InputError
        For a missing file, missing columns, unknown statuses, labels or
        image ids, or probabilities outside 0-1.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("predictions file not found", source=str(path))
    try:
        frame = pd.read_parquet(path)
        meta = read_parquet_metadata(path)
    except Exception as exc:  # noqa: BLE001  pyarrow raises many types for a corrupt file
        raise InputError(f"cannot read predictions: {_one_line(exc)}", source=str(path)) from None
    source = str(path)
    for column in ("image_id", "status", "reason", "pred"):
        if column not in frame.columns:
            raise InputError(f"required column missing: {column}", source=source, column=column)
    status, pred, ids = frame["status"], frame["pred"], frame["image_id"].astype(str)
    raise_at_first_row(
        ~status.isin(STATUSES),
        lambda k: f"status {status.iat[k]!r} is not one of {list(STATUSES)}",
        source=source,
        column="status",
    )
    raise_at_first_row(
        ids.duplicated(),
        lambda k: f"duplicate image_id {ids.iat[k]!r}",
        source=source,
        column="image_id",
    )
    raise_at_first_row(
        (status == "ok") & pred.isna(),
        lambda k: "status ok without a pred",
        source=source,
        column="pred",
    )
    for column in (c for c in frame.columns if c.startswith("prob_")):
        values = pd.to_numeric(frame[column], errors="coerce")
        raise_at_first_row(
            values.notna() & ((values < 0) | (values > 1 + 1e-6)),
            lambda k, v=values: f"probability {v.iat[k]} outside 0-1",
            source=source,
            column=column,
        )
    labels = list(cohort.spec.labels) if cohort is not None else meta.get("labels")
    if labels:
        raise_at_first_row(
            pred.notna() & ~pred.isin(labels),
            lambda k: f"pred {pred.iat[k]!r} is not one of the labels {labels}",
            source=source,
            column="pred",
        )
    if cohort is not None:
        known = set(cohort.manifest["image_id"].astype(str))
        raise_at_first_row(
            ~ids.isin(known),
            lambda k: f"image_id {ids.iat[k]!r} is not in cohort {cohort.spec.name!r}",
            source=source,
            column="image_id",
        )
    frame.attrs["fairderm"] = meta
    return frame
