"""``fairderm audit``: tone -> inference -> metrics -> gate -> card, each stage cached.

Caching
-------
Each stage's outputs are stored under ``<cache_dir>/<stage>/<key>/`` where
the key is the SHA-256 of the stage's inputs: the content hashes of the files
it reads (manifest, images, model files, calibration, policy, the upstream
stage's outputs) and the spec settings it depends on. A rerun with nothing
changed finds every key and does no work beyond hashing; changing, say, the
bootstrap seed reruns metrics, gate and card but reuses tone and inference.
See :mod:`fairderm.audit._cache`.

The run folder
--------------
``<runs_dir>/RUN_ID/`` is built under a temporary name and renamed into place
when complete, so a failed audit leaves no run folder. ``RUN_ID`` is the UTC
start time to the millisecond, the first 8 hex digits of the SHA-256 of the
audit's inputs and 6 random hex digits (``20250101T120000.123Z-1a2b3c4d-0f9e8d``):
run folders sort by time, two runs with the same middle part audited the same
inputs with the same settings, and two audits started at the same moment, in
any processes, never share a run id.

Concurrency
-----------
Every folder an audit writes is held under an OS lock
(:func:`fairderm._io.output_lock`): its run folder while it is built, and each
cache entry while its stage runs. A second audit of the same spec either waits
(``wait`` seconds) for the first to publish a stage, then reuses it from the
cache, or is refused with one line naming the entry.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fairderm._engine import Engine
from fairderm._io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    output_lock,
    sha256_file,
    sha256_json,
)
from fairderm.audit import _evaluation, _stages
from fairderm.audit._cache import StageCache
from fairderm.audit._evidence import write_evidence
from fairderm.audit._hashing import FileHasher
from fairderm.audit._inputs import (
    AuditInputs,
    add_run_relative_paths,
    check_columns,
    cluster_column,
    collect_inputs,
    select_cases,
)
from fairderm.audit._spec import LoadedSpec, dump_spec, load_spec
from fairderm.cohort import Cohort, load_cohort
from fairderm.errors import InputError, OutputBusyError
from fairderm.runs import COVERAGE_FILE, GATE_FILE, METRICS_FILE, POLICY_FILE, PREDICTIONS_FILE, TONE_FILE

STAGES: tuple[str, ...] = ("tone", "inference", "reasoning", "metrics", "gate", "card")
"""Every stage, in order; ``reasoning`` runs (and is listed in a run) only when the spec has a reasoning section."""


def run_stages(loaded: LoadedSpec) -> tuple[str, ...]:
    """The stages a run of this spec lists, in order."""
    return tuple(s for s in STAGES if s != "reasoning" or loaded.spec.reasoning is not None)
RUN_LOG_FILE = "run.json"

ProgressCallback = Callable[[str, int, int], None]
"""``progress(stage, done, total)`` during the long stages (tone, inference)."""
LogCallback = Callable[[str], None]


@dataclass
class StageRecord:
    """One stage of one run: its cache key, whether it was a hit, and its time."""

    stage: str
    key: str | None
    cache: str  # "hit", "miss", "skipped" or "rendered" (the card: never cached)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "cache": self.cache, "seconds": round(self.seconds, 3),
                "files": self.files, "reason": self.reason}


@dataclass
class AuditRun:
    """The outcome of :func:`run_audit`.

    Attributes
    ----------
    run_dir
        The finished run folder.
    run_id
        Its name.
    verdict
        The gate's verdict (``PASS``, ``FAIL``, ``INSUFFICIENT_EVIDENCE``,
        ``ERROR``), or None when the spec has no policy.
    exit_code
        The gate's exit code (0 without a policy).
    stages
        What each stage did.
    """

    run_dir: Path
    run_id: str
    audit: str
    verdict: str | None
    exit_code: int
    stages: list[StageRecord]
    coverage: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def cache_hits(self) -> list[str]:
        """Stages whose outputs came from the cache."""
        return [s.stage for s in self.stages if s.cache == "hit"]

    def to_frame(self) -> pd.DataFrame:
        """One row per stage: stage, key, cache, seconds, files, reason."""
        return pd.DataFrame([s.to_dict() for s in self.stages])

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "audit": self.audit, "run_dir": str(self.run_dir), "verdict": self.verdict,
            "exit_code": self.exit_code, "stages": [s.to_dict() for s in self.stages], "coverage": self.coverage,
        }

    def summary(self) -> str:
        lines = [f"audit {self.audit}: run {self.run_id}", f"  folder  {self.run_dir}"]
        for s in self.stages:
            key = (s.key or "")[:12]
            extra = f" ({s.reason})" if s.reason else ""
            lines.append(f"  {s.stage:<10}{s.cache:<8}{s.seconds:7.1f} s  {key}{extra}")
        coverage = self.coverage.get("all", {})
        if coverage:
            lines.append(f"  cases   {coverage.get('evaluated')} evaluated of {coverage.get('selected')} selected "
                         f"({coverage.get('error')} errors, {coverage.get('unparseable')} unparseable)")
        verdict = self.verdict or "not gated (no policy)"
        lines.append(f"  verdict {verdict} (exit {self.exit_code})")
        return "\n".join(lines)


class _Stages:
    """Runs stages through the cache and records what each did."""

    def __init__(self, cache: StageCache, run_dir: Path, log: LogCallback | None, wait: float = 0.0) -> None:
        self.cache = cache
        self.run_dir = run_dir
        self.log = log
        self.wait = wait
        self.records: list[StageRecord] = []

    def run(self, stage: str, inputs: dict[str, Any], work: Callable[[Path], None]) -> Path:
        """Outputs of ``stage`` for ``inputs``, from the cache or by running ``work(folder)``."""
        key = StageCache.key(stage, inputs)
        started = time.perf_counter()
        folder = self.cache.lookup(stage, key)
        reason = None
        problem = self.cache.integrity_problem(folder) if folder is not None else None
        if problem is not None:
            reason = f"cache entry not reused: {problem}; recomputed"
            if self.log:
                self.log(f"{stage}: {reason}")
            self.cache.discard(stage, key)
            folder = None
        hit = folder is not None
        if folder is None:

            def logged_work(staging: Path) -> None:
                if self.log:
                    self.log(f"{stage}: running")
                work(staging)

            folder, built = self.cache.build(stage, key, inputs, logged_work, wait=self.wait)
            hit = not built
        files = _stages.copy_outputs(folder, self.run_dir)
        record = StageRecord(stage, key, "hit" if hit else "miss", time.perf_counter() - started, files, reason)
        self.records.append(record)
        if self.log:
            self.log(f"{stage}: {'cached' if hit else 'done'} ({record.seconds:.1f} s)")
        return folder

    def skip(self, stage: str, reason: str) -> None:
        self.records.append(StageRecord(stage, None, "skipped", reason=reason))
        if self.log:
            self.log(f"{stage}: skipped ({reason})")


def _file_sha(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def latest_run(runs_dir: str | Path) -> Path:
    """The newest complete run folder of a runs folder (``audits/NAME/runs``).

    Run ids start with their UTC time, so the newest sorts last; folders an
    audit is still building (``.RUN_ID.partial``) are hidden and skipped.

    Raises
    ------
    InputError
        When the folder does not exist or holds no run folder.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise InputError("runs folder not found", source=str(runs_dir))
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not runs:
        raise InputError("no run folder in this runs folder (run `fairderm audit SPEC` first)", source=str(runs_dir))
    return runs[-1]


def _run_id(inputs_key: str) -> str:
    # milliseconds keep runs in order within a second; the random part keeps two audits apart in any process
    now = datetime.now(UTC)
    stamp = f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z"
    return f"{stamp}-{inputs_key[:8]}-{secrets.token_hex(3)}"


def _stage_progress(progress: ProgressCallback | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


_PARTIAL = ".partial"


def _sweep_partials(runs_dir: Path) -> None:
    """Remove run folders left half-built by killed audits (a live audit holds its run's lock)."""
    if not runs_dir.is_dir():
        return
    for holder in runs_dir.iterdir():
        if not (holder.name.startswith(".") and holder.name.endswith(_PARTIAL)) or holder.is_symlink():
            continue
        run_id = holder.name[1 : -len(_PARTIAL)]
        with contextlib.suppress(OutputBusyError), output_lock(runs_dir / run_id):
            shutil.rmtree(holder, ignore_errors=True)


@contextlib.contextmanager
def _building(target: Path) -> Iterator[Path]:
    """Build a run folder as ``.RUN_ID.partial/RUN_ID`` beside its place, locked; move it there on success.

    Unlike :func:`fairderm._io.atomic_output_dir`, the folder being built
    already has its final name, so anything that reads the run id from the
    folder's name (the model card) sees the right one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_partials(target.parent)
    with output_lock(target):
        holder = target.with_name(f".{target.name}{_PARTIAL}")
        staging = holder / target.name
        staging.mkdir(parents=True)
        try:
            yield staging
            os.rename(staging, target)  # fails, rather than merging, if the target appeared meanwhile
        finally:
            shutil.rmtree(holder, ignore_errors=True)


@contextlib.contextmanager
def _saved(hasher: FileHasher) -> Iterator[None]:
    try:
        yield
    finally:
        hasher.save()


def run_audit(
    spec: str | Path | LoadedSpec,
    *,
    runs_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    log: LogCallback | None = None,
    wait: float = 0.0,
    engine: Engine | None = None,
) -> AuditRun:
    """Audit a model as a spec describes; write a run folder.

    Parameters
    ----------
    spec
        The spec file (``audits/NAME.yaml``) or a loaded spec.
    runs_dir
        Where the run folder goes (default: the spec's ``outputs.runs_dir``,
        else ``NAME/runs`` beside the spec).
    progress
        ``progress(stage, done, total)`` during tone estimation and inference.
    log
        Called with one line as each stage starts and ends.
    wait
        Seconds to wait for a cache entry that another audit is building
        (see the module docstring); 0 refuses at once.
    engine
        Run the tone and inference stages here instead of on the spec's
        ``engine:``. Neither is part of the run id, ``spec.yaml`` or a cache
        key: the same spec run on either engine makes the same run folder.

    Returns
    -------
    AuditRun
        Its ``exit_code`` is the gate's: 0 PASS (or no policy), 1 FAIL,
        2 INSUFFICIENT_EVIDENCE, 3 ERROR.

    Raises
    ------
    InputError
        For a bad spec or input, before any run folder exists; nothing is
        left behind by a failure at any stage.
    OutputBusyError
        When another audit still builds a stage this one needs after ``wait`` seconds.
    """
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    if engine is not None:
        loaded = loaded.model_copy(update={"spec": loaded.spec.model_copy(update={"engine": engine})})
    source = str(loaded.source)
    cohort = load_cohort(loaded.cohort_path)
    selected = select_cases(cohort, loaded.spec.cohort.filter, source=source)
    check_columns(loaded, selected)
    cluster = cluster_column(loaded, selected)
    cache = StageCache(loaded.cache_dir)
    hasher = FileHasher(cache.root / "file-hashes.json")
    with _saved(hasher):
        inputs = collect_inputs(loaded, cohort, selected, hasher)
    resolved_spec = loaded.spec.model_copy(update={"name": loaded.name})
    # the engine says where the work ran, not what was audited: the same audit on Ray is the same run
    inputs_key = sha256_json({"inputs": inputs.digest(*inputs.record),
                              "spec": resolved_spec.model_dump(mode="json", exclude={"engine"})})
    target_runs = Path(runs_dir) if runs_dir is not None else loaded.runs_dir
    run_id = _run_id(inputs_key)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with _building(target_runs / run_id) as staging:
        atomic_write_text(staging / "spec.yaml", dump_spec(resolved_spec))
        for name, path in inputs.files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, staging / name)
        if inputs.image_checksums:
            atomic_write_text(staging / "images.sha256", inputs.image_checksums)
        atomic_write_json(staging / "environment.json", environment_info())
        stages = _Stages(cache, staging, log, wait)
        verdict, exit_code, coverage = _run_stages(loaded, cohort, selected, inputs, cluster, stages, progress)
        if loaded.spec.model.backend == "router" and loaded.model_path is not None:
            evaluation = loaded.model_path / "evaluation.json"
            if evaluation.is_file():
                shutil.copyfile(evaluation, staging / "mitigation.json")
        _card_stage(loaded, stages)
        run_log = {
            "run_id": run_id, "audit": loaded.name, "started_utc": started,
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "stages": [s.to_dict() for s in stages.records], "verdict": verdict, "exit_code": exit_code,
            "engine": loaded.spec.engine.model_dump(mode="json"),
        }
        atomic_write_json(staging / RUN_LOG_FILE, run_log)
        write_evidence(
            staging, run_id=run_id, audit=loaded.name,
            inputs=add_run_relative_paths(inputs.record, target_runs.resolve() / run_id),
            seeds={"bootstrap": loaded.spec.bootstrap.seed,
                   "inference": int(loaded.spec.model.options.get("seed", 0))},
            stages={s.stage: {"key": s.key, "cache": s.cache} for s in stages.records},
        )
    return AuditRun(target_runs / run_id, run_id, loaded.name, verdict, exit_code, stages.records, coverage)


def _run_stages(
    loaded: LoadedSpec, whole: Cohort, selected: Cohort, inputs: AuditInputs, cluster: str | None, stages: _Stages,
    progress: ProgressCallback | None,
) -> tuple[str | None, int, dict[str, Any]]:
    spec = loaded.spec
    cohort_inputs = inputs.digest("cohort", "images")
    tone_frame: pd.DataFrame | None = None
    tone_file: Path | None = None
    if spec.tone.source == "estimate":
        from fairderm.tone import ESTIMATOR_VERSION

        tone_inputs = {
            **cohort_inputs, "tone": spec.tone.model_dump(mode="json", exclude={"workers", "calibration"}),
            # a new estimator (e.g. wider intervals) must not reuse the old one's tables
            "estimator": ESTIMATOR_VERSION,
            **inputs.digest("tone_calibration"),
            "reference": _stages.tone_reference_column(loaded, selected),
            "seed": spec.bootstrap.seed,
        }
        folder = stages.run("tone", tone_inputs, lambda out: _stages.run_tone(
            loaded, selected, out, _stage_progress(progress, "tone")))
        tone_file = folder / TONE_FILE
        tone_frame = _read_tone(tone_file, selected)
    elif spec.tone.source == "table":
        tone_inputs = {**cohort_inputs, **inputs.digest("tone_table"),
                       "reference": _stages.tone_reference_column(loaded, selected), "seed": spec.bootstrap.seed}
        folder = stages.run("tone", tone_inputs, lambda out: _stages.run_tone_table(loaded, selected, out))
        tone_file = folder / TONE_FILE
        tone_frame = _read_tone(tone_file, selected)
    else:
        stages.skip("tone", f"tone.source is '{spec.tone.source}'")

    tone_sha = _file_sha(stages.run_dir / TONE_FILE)
    inference_inputs = {**cohort_inputs, **inputs.digest("model"), **_stages.model_identity(loaded),
                        "tone_parquet": tone_sha,
                        "tone_column": spec.tone.column if spec.tone.source == "column" else None}
    folder = stages.run("inference", inference_inputs, lambda out: _stages.run_predictions(
        loaded, selected, tone_frame, out, _stage_progress(progress, "inference"), whole=whole,
        tone_file=tone_file))
    predictions = _read_predictions(folder / PREDICTIONS_FILE, selected)
    scores = _reasoning_stage(loaded, selected, predictions, cohort_inputs, stages, progress)

    metrics_inputs = {
        **cohort_inputs, "tone_parquet": tone_sha,
        "predictions_parquet": sha256_file(stages.run_dir / PREDICTIONS_FILE),
        "spec": spec.model_dump(mode="json", include={"strata", "metrics", "bootstrap"}),
        "tone_source": spec.tone.source, "tone_column": spec.tone.column, "cluster": cluster,
        "strata_error": spec.tone.model_dump(
            mode="json", include={"validation_column", "validation_inclusion", "strata_error"}),
        **inputs.digest("tone_validation", "strata_error"),
        "scores_parquet": _file_sha(stages.run_dir / "scores.parquet"),
    }
    folder = stages.run("metrics", metrics_inputs, lambda out: _stages.run_metrics(
        loaded, selected, tone_frame, predictions, cluster, out, strata=_evaluation.strata_inputs(
            loaded.spec, selected.manifest, cohort_ids=set(whole.manifest["image_id"].astype(str)),
            labels=loaded.resolve(spec.tone.validation_labels) if spec.tone.validation_labels else None,
            error_model=loaded.resolve(spec.tone.strata_error_file) if spec.tone.strata_error_file else None),
        scores=scores))
    coverage = _json(folder / COVERAGE_FILE)

    if loaded.policy_path is None:
        stages.skip("gate", "the spec names no policy")
        return None, 0, coverage
    gate_inputs = {"metrics_json": sha256_file(stages.run_dir / METRICS_FILE), **inputs.digest("policy")}
    folder = stages.run("gate", gate_inputs, lambda out: _stages.run_gate(
        stages.run_dir / METRICS_FILE, stages.run_dir / POLICY_FILE, out))
    gate = _json(folder / GATE_FILE)
    return str(gate["verdict"]), int(gate.get("exit_code", _EXIT_CODES[str(gate["verdict"])])), coverage


def _reasoning_stage(
    loaded: LoadedSpec, selected: Cohort, predictions: pd.DataFrame, cohort_inputs: dict[str, Any], stages: _Stages,
    progress: ProgressCallback | None,
) -> Any:
    """Score the reports when the spec has ``reasoning:``; the scores table, or None."""
    if loaded.spec.reasoning is None:
        return None
    from fairderm.reasoning import CHECKS_VERSION, read_scores

    rubric, judge = _stages.reasoning_judge(loaded)
    try:
        reasoning_inputs = {
            **cohort_inputs, "predictions_parquet": sha256_file(stages.run_dir / PREDICTIONS_FILE),
            "rubric": rubric.sha256(), "judge": judge.identity() if judge is not None else None,
            "checks_version": CHECKS_VERSION,
        }
        folder = stages.run("reasoning", reasoning_inputs, lambda out: _stages.run_reasoning(
            loaded, selected, predictions, rubric, judge, out, _stage_progress(progress, "reasoning")))
    finally:
        if judge is not None:
            judge.close()
    return read_scores(folder / "scores.parquet")


_EXIT_CODES = {"PASS": 0, "FAIL": 1, "INSUFFICIENT_EVIDENCE": 2, "ERROR": 3}


def _card_stage(loaded: LoadedSpec, stages: _Stages) -> None:
    # The card names its run, so it differs from run to run: it is rendered every
    # time (well under a second) rather than cached.
    if not loaded.spec.outputs.card:
        stages.skip("card", "outputs.card is false")
        return
    started = time.perf_counter()
    _stages.run_card(stages.run_dir, loaded, stages.run_dir)
    files = sorted(p.relative_to(stages.run_dir).as_posix() for p in stages.run_dir.glob("card.*"))
    if (stages.run_dir / "figures").is_dir():
        files += sorted(p.relative_to(stages.run_dir).as_posix() for p in (stages.run_dir / "figures").iterdir())
    stages.records.append(StageRecord("card", None, "rendered", time.perf_counter() - started, files))
    if stages.log:
        stages.log(f"card: rendered ({time.perf_counter() - started:.1f} s)")


def _json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def _read_tone(path: Path, cohort: Cohort) -> pd.DataFrame:
    from fairderm.tone import read_tone

    return read_tone(path, cohort)


def _read_predictions(path: Path, cohort: Cohort) -> pd.DataFrame:
    from fairderm.inference import read_predictions

    frame = read_predictions(path, cohort)
    missing = set(cohort.manifest["image_id"].astype(str)) - set(frame["image_id"].astype(str))
    if missing:
        raise InputError(f"predictions lack {len(missing)} audited cases (e.g. {sorted(missing)[0]!r})",
                         source=str(path), column="image_id")
    return frame
