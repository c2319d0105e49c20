"""Running a predictor over a cohort: strata, resume, provenance, on this machine or on Ray.

Crash safety: the rows of every finished batch (on Ray, every finished
block) are written as one shard in ``<out>.shards/``
(:class:`fairderm.inference._shards.ShardStore`). A run that is killed loses
at most the batches in flight; the next run with the same model, cohort and
settings (the same *fingerprint*, whatever the engine) reads the shards,
skips the finished cases and, at the end, merges everything into ``<out>``
(atomically again) and removes the shards. A shard or output whose rows no
longer match their hash is never reused; its cases are run again, and the
run says so in one line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairderm._engine import Engine
from fairderm._extras import MissingExtraError, torch_available
from fairderm._io import (
    atomic_write_parquet,
    environment_info,
    output_lock,
    read_parquet_metadata,
    sha256_json,
)
from fairderm._terminal import printable
from fairderm.cohort import Cohort, load_cohort
from fairderm.errors import InputError
from fairderm.inference._images import CaseDataset, case_loader, plan_workers
from fairderm.inference._labels import map_classes
from fairderm.inference._predictions import PREDICTIONS_FORMAT, STATUSES, rows_problem, rows_sha256, typed_predictions
from fairderm.inference._predictor import Predictor, load_predictor
from fairderm.inference._report import PARSER_VERSION
from fairderm.inference._rows import RowBuilder, predict_batches
from fairderm.inference._run_records import InferenceRun, ProgressCallback, StratumProgress
from fairderm.inference._shards import ShardStore
from fairderm.inference._strata import Strata, resolve_strata, schedule

if TYPE_CHECKING:
    from fairderm.inference._ray import ModelSource


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
    engine: Engine | None = None,
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
    engine
        Where the model runs (:class:`fairderm._engine.Engine`): in this
        process (default) or on Ray, whose actors each load the model once
        (``actor_cpus``, ``actor_gpus`` each) and predict one block of cases
        per call. The predictions file is the same (probabilities within
        floating-point rounding of a different batching), and so is the
        shard folder a killed run of either engine resumes from.

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
            progress=progress, engine=engine or Engine(),
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
    engine: Engine,
) -> InferenceRun:
    labels = list(cohort.spec.labels)
    torch_device = _pick_device(device)
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
        source = None
        if engine.is_ray:
            from fairderm.inference._ray import ModelSource

            source = ModelSource(backend, None if model is None else str(model), dict(options or {}), labels,
                                 class_labels, device, batch_size)
        plan = _Plan(engine, source, workers)
        return _execute(
            cohort, out, predictor, RowBuilder(predictor, labels, class_labels), stratification, parts,
            cap=cap_per_stratum, seed=seed, batch_size=batch_size, device=torch_device, overwrite=overwrite,
            restart=restart, retry_errors=retry_errors, progress=progress, plan=plan,
        )
    finally:
        predictor.close()


def _pick_device(device: str | None) -> Any:
    """The torch device to run on; without torch, the CPU (models without torch run nowhere else)."""
    if torch_available():
        from fairderm.inference._backbone import pick_device

        return pick_device(device)
    if device not in (None, "cpu"):
        raise MissingExtraError(f"device {device!r}", "torch")
    return "cpu"


@dataclass(frozen=True)
class _Plan:
    """How the cases still to do are predicted: here with ``workers`` decoders, or on Ray from ``source``."""

    engine: Engine
    source: ModelSource | None
    workers: int | None


def _execute(
    cohort: Cohort,
    out: Path,
    predictor: Predictor,
    builder: RowBuilder,
    stratification: Strata,
    parts: dict[str, Any],
    *,
    cap: int | None,
    seed: int,
    batch_size: int | None,
    device: Any,
    overwrite: bool,
    restart: bool,
    retry_errors: bool,
    progress: ProgressCallback | None,
    plan: _Plan,
) -> InferenceRun:
    fingerprint = sha256_json(parts)
    store = ShardStore(out)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    order = schedule(stratification, cap=cap, seed=seed)
    ids = cohort.manifest["image_id"].astype(str).to_numpy()
    notes: list[str] = []
    previous = _previous_output(out, fingerprint, set(ids[order]), restart=restart, overwrite=overwrite, notes=notes)
    errors_to_retry = previous is not None and retry_errors and (previous.rows["status"] == "error").any()
    if previous is not None and previous.complete and not errors_to_retry:
        return _finished(out, previous.rows, previous.metadata)
    _open_store(store, fingerprint, out, started_at, restart=restart)
    if previous is not None:
        store.write(previous.rows)  # the output of the same run, before retrying its errors or completing it

    done = store.read()
    if retry_errors:
        done = done[done["status"] != "error"]
    finished = set(done["image_id"].astype(str))
    stratum_of = stratification.values
    tallies = _tallies(order, ids, stratum_of, done, finished)
    todo = [p for p in order if ids[p] not in finished]
    if progress is not None:
        progress(tallies)
    if todo:
        case_ids = [str(ids[p]) for p in todo]
        strata = [str(stratum_of[p]) for p in todo]
        paths: list[Path | None] = [None] * len(todo)
        if predictor.needs_images:
            every = cohort.image_paths()
            paths = [every[p] for p in todo]  # checked inside images_root as each is opened
        root = cohort.images_root if predictor.needs_images else None
        if plan.source is not None:
            from fairderm.inference._ray import predict_on_ray

            batches = predict_on_ray(plan.source, plan.engine, case_ids, strata, paths, root)
        else:
            batches = _predict_here(predictor, builder, case_ids, strata, paths, root, batch_size=batch_size,
                                    workers=plan.workers, device=device)
        _keep_batches(batches, store, builder, tallies, progress)
    return _merge(out, store, builder, predictor, cohort, ids[order], parts, fingerprint, tallies,
                  started_at=started_at, notes=notes + store.notes)


@dataclass(frozen=True)
class _PreviousOutput:
    rows: pd.DataFrame
    metadata: dict[str, Any]
    complete: bool


def _previous_output(
    out: Path, fingerprint: str, scheduled: set[str], *, restart: bool, overwrite: bool, notes: list[str]
) -> _PreviousOutput | None:
    """An existing output of this run that may be reused (None: there is none, or it is not reused).

    Raises
    ------
    InputError
        When ``out`` was made by a different run and ``overwrite`` is off.
    """
    if not out.exists():
        return None
    meta = read_parquet_metadata(out) if out.is_file() else {}
    if meta.get("fingerprint") != fingerprint or restart:
        if not overwrite:
            raise InputError(
                "output exists and was made by a different run; pass --overwrite to replace it",
                source=str(out),
            )
        return None
    previous = pd.read_parquet(out)
    problem = rows_problem(previous, meta)
    if problem is not None:
        notes.append(f"{printable(out.name)} {problem}: not reused, its cases are run again")
        return None
    # finished only when it holds exactly the scheduled cases: a short file is resumed, not trusted
    complete = len(previous) == len(scheduled) and set(previous["image_id"].astype(str)) == scheduled
    return _PreviousOutput(previous, meta, complete)


def _open_store(store: ShardStore, fingerprint: str, out: Path, started_at: str, *, restart: bool) -> None:
    """Start (or keep, to resume) the shard folder of this run; discard another run's only on ``restart``."""
    if restart or (store.fingerprint() not in (None, fingerprint)):
        if not restart and store.shard_paths():
            raise InputError(
                "unfinished shards of a different run are here; pass --restart to discard them",
                source=str(store.folder),
            )
        store.remove()
    store.start(fingerprint, {"out": str(out), "started_at": started_at})


def _tallies(
    order: np.ndarray, ids: np.ndarray, stratum_of: np.ndarray, done: pd.DataFrame, finished: set[str]
) -> dict[str, StratumProgress]:
    """Per stratum: the scheduled cases, and those already finished with their statuses."""
    set_order = set(order)
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
    return tallies


def _count(tally: StratumProgress, status: str) -> None:
    if status == "ok":
        tally.ok += 1
    elif status == "unparseable":
        tally.unparseable += 1
    else:
        tally.error += 1


def _predict_here(
    predictor: Predictor,
    builder: RowBuilder,
    case_ids: list[str],
    strata: list[str],
    paths: list[Path | None],
    root: Path | None,
    *,
    batch_size: int | None,
    workers: int | None,
    device: Any,
) -> Iterator[list[dict[str, Any]]]:
    """The rows of each batch, predicted in this process (images decoded by DataLoader workers)."""
    predictor.to(device)
    device_type = getattr(device, "type", "cpu")
    loader = case_loader(
        CaseDataset(paths, predictor.preprocess, root=root),
        predictor.collate,
        batch_size=batch_size or predictor.batch_size,
        workers=plan_workers(workers if predictor.needs_images else 0, device_type),
        pin_memory=device_type == "cuda",
    )
    return predict_batches(predictor, builder, loader, case_ids, strata)


def _keep_batches(
    batches: Iterable[list[dict[str, Any]]],
    store: ShardStore,
    builder: RowBuilder,
    tallies: dict[str, StratumProgress],
    progress: ProgressCallback | None,
) -> None:
    """Write each batch of rows as one shard and count it into ``tallies``."""
    clock = time.perf_counter()
    for rows in batches:
        store.write(
            typed_predictions(pd.DataFrame(rows), builder.labels, has_probs=builder.has_probs,
                              has_text=builder.has_text)
        )
        now = time.perf_counter()
        elapsed, clock = now - clock, now
        for row in rows:
            tally = tallies[row["stratum"]]
            tally.done += 1
            tally.seconds += elapsed / max(1, len(rows))
            _count(tally, row["status"])
        if progress is not None:
            progress(tallies)


def _merge(
    out: Path,
    store: ShardStore,
    builder: RowBuilder,
    predictor: Predictor,
    cohort: Cohort,
    scheduled: np.ndarray,
    parts: dict[str, Any],
    fingerprint: str,
    tallies: dict[str, StratumProgress],
    *,
    started_at: str,
    notes: list[str],
) -> InferenceRun:
    """Merge the shards into ``out`` (the scheduled cases in manifest order, with provenance) and remove them."""
    ids = cohort.manifest["image_id"].astype(str)
    merged = store.read()
    merged = merged[merged["image_id"].isin(set(scheduled))]
    manifest_rank = {image_id: k for k, image_id in enumerate(ids)}
    merged = (
        merged.assign(_rank=merged["image_id"].map(manifest_rank))
        .sort_values("_rank")
        .drop(columns="_rank")
    )
    merged = typed_predictions(merged, builder.labels, has_probs=builder.has_probs, has_text=builder.has_text)
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
    if predictor.served_by() is not None:
        metadata["served_by"] = predictor.served_by()
    atomic_write_parquet(out, merged, metadata_json=metadata)
    store.remove()
    return InferenceRun(out, merged, metadata, tallies, notes=notes)


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
