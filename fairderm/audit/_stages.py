"""The work of each audit stage, writing its files into a given folder.

Each function here but :func:`run_card` is called only on a cache miss (see
:mod:`fairderm.audit._runner`); its outputs are stored in the stage cache and
copied into the run folder.

=========  =================================================================
stage      files
=========  =================================================================
tone       ``tone.parquet``; ``tone_validation.json`` when the cohort has a
           labelled tone column to measure the estimate against
inference  ``predictions.parquet``
reasoning  ``scores.parquet`` (the spec's ``reasoning:``: judge scores and
           deterministic checks of every report, :mod:`fairderm.reasoning`)
metrics    ``metrics.json``, ``coverage.json``
gate       ``gate.json``, ``junit.xml``, ``gate.md``
card       ``card.md``, ``card.html``, ``card.json``, ``figures/`` (rendered
           for every run, never cached: the card names its run)
=========  =================================================================
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from fairderm._io import atomic_write_json, atomic_write_parquet, read_parquet_metadata, sha256_file
from fairderm.audit import _evaluation
from fairderm.audit._spec import LoadedSpec
from fairderm.cohort import TONE_ATTRIBUTES, Cohort
from fairderm.errors import InputError
from fairderm.metrics import read_metrics
from fairderm.runs import (
    COVERAGE_FILE,
    GATE_FILE,
    GATE_SUMMARY_FILE,
    JUNIT_FILE,
    METRICS_FILE,
    POLICY_FILE,
    PREDICTIONS_FILE,
    TONE_FILE,
    RunFolder,
)

StageProgress = Callable[[int, int], None]

# run_inference's own keyword arguments, which a spec may give among model.options
_RUNNER_OPTIONS = ("class_map", "batch_size", "workers", "device", "cap_per_stratum", "seed")


def tone_reference_column(loaded: LoadedSpec, cohort: Cohort) -> str | None:
    """The labelled column the tone estimate is validated against, if any."""
    if loaded.spec.tone.reference:
        return loaded.spec.tone.reference
    for column in TONE_ATTRIBUTES:
        if column in cohort.manifest.columns and cohort.manifest[column].notna().any():
            return column
    return None


def run_tone(loaded: LoadedSpec, cohort: Cohort, out: Path, progress: StageProgress | None) -> None:
    """Estimate tone for the audited cases; validate it against labels when the cohort has them."""
    from fairderm.tone import ToneParameters, estimate_tone, load_calibration, validate_tone, write_tone

    tone = loaded.spec.tone
    calibration = load_calibration(loaded.resolve(tone.calibration)) if tone.calibration else None
    frame = estimate_tone(cohort, calibration=calibration, workers=tone.workers, method=tone.method,
                          lesion_masks=tone.lesion_masks, progress=progress, engine=loaded.spec.engine,
                          parameters=ToneParameters(exposure_sd=tone.exposure_sd,
                                                    white_reflectance=tone.white_reflectance))
    write_tone(out / TONE_FILE, frame, cohort)
    reference = tone_reference_column(loaded, cohort)
    if reference is not None:
        validation = validate_tone(cohort, frame, label=reference, seed=loaded.spec.bootstrap.seed)
        atomic_write_json(out / "tone_validation.json", validation.to_dict())


def run_tone_table(loaded: LoadedSpec, cohort: Cohort, out: Path) -> None:
    """The spec's tone table, cut to the audited cases (every one must be in it); validated against labels too."""
    from fairderm.tone import read_tone, validate_tone

    path = loaded.resolve(str(loaded.spec.tone.table))
    frame = read_tone(path)
    ids = cohort.manifest["image_id"].astype(str)
    indexed = frame.set_index(frame["image_id"].astype(str))
    missing = sorted(set(ids) - set(indexed.index))
    if missing:
        raise InputError(f"key 'tone.table': the tone table lacks {len(missing)} audited case(s), e.g. "
                         f"{missing[0]!r}", source=str(path))
    selected = indexed.loc[ids.tolist()].reset_index(drop=True)
    atomic_write_parquet(out / TONE_FILE, selected, metadata_json=read_parquet_metadata(path))
    reference = tone_reference_column(loaded, cohort)
    if reference is not None:
        selected.attrs = frame.attrs
        validation = validate_tone(cohort, selected, label=reference, seed=loaded.spec.bootstrap.seed)
        atomic_write_json(out / "tone_validation.json", validation.to_dict())


def model_identity(loaded: LoadedSpec) -> dict[str, Any]:
    """What identifies a vision-language model beyond the spec's words, for the inference stage's cache key.

    For ``openai``: the servers' own answer about the model (``GET /models``:
    id, root, created...; the same on every server, else an error naming the
    one that differs), so that a server redeployed at the same endpoint
    with another model never gets the old predictions; for ``openai`` and
    ``vllm``: the model revision and the versions of fairderm's request
    format and report parser. Empty for the other backends, whose files are
    hashed.
    """
    model = loaded.spec.model
    if model.backend not in ("openai", "vllm"):
        return {}
    from fairderm.inference import PARSER_VERSION, PROMPT_VERSION, check_endpoints

    identity: dict[str, Any] = {
        "revision": model.revision, "prompt_version": PROMPT_VERSION, "parser_version": PARSER_VERSION,
    }
    if model.backend == "openai" and model.served_at:
        identity["served"] = check_endpoints(
            model.served_at, model.model, api_key_env=model.options.get("api_key_env", "OPENAI_API_KEY")).identity
    return {"model_identity": identity}


def run_predictions(
    loaded: LoadedSpec, cohort: Cohort, tone: pd.DataFrame | None, out: Path, progress: StageProgress | None,
    *, whole: Cohort | None = None, tone_file: Path | None = None,
) -> None:
    """Run the model over the audited cases (stratified by tone for scheduling).

    A predictions file (backend ``file``) usually covers the whole cohort
    while the audit selects some of it: it is imported against ``whole`` and
    cut down to the audited cases, keeping its provenance metadata. A router
    gets the tone stage's estimates as its tone input (``tone_file``), as in
    its training, unless the spec's options name a tone table.
    """
    from fairderm.inference import rows_sha256, run_inference

    model = loaded.spec.model
    options = dict(model.options)
    runner = {k: options.pop(k) for k in _RUNNER_OPTIONS if k in options}
    if model.served_at:
        options["endpoint"] = model.served_at
    if model.prompt:
        options["prompt"] = str(loaded.resolve(model.prompt))
    if model.architecture:
        options["architecture"] = loaded.architecture
    if model.revision:
        options["revision"] = model.revision
    if isinstance(options.get("feature_cache"), str):
        options["feature_cache"] = str(loaded.resolve(options["feature_cache"]))
    target = loaded.model_path if loaded.model_path is not None else model.model
    if model.backend == "router" and tone_file is not None and "tone" not in options:
        options["tone"] = str(tone_file)

    def report(tallies: dict[str, Any]) -> None:
        if progress is not None:
            progress(sum(t.done for t in tallies.values()), sum(t.total for t in tallies.values()))

    if model.backend == "file" and whole is not None and len(whole) != len(cohort):
        imported = out / "imported.parquet"
        run_inference(whole, imported, backend="file", model=target, options=options, progress=report, **runner)
        frame = pd.read_parquet(imported)
        keep = frame["image_id"].astype(str).isin(set(cohort.manifest["image_id"].astype(str)))
        selected = frame[keep].reset_index(drop=True)
        metadata = {**read_parquet_metadata(imported), "selected_from_whole_cohort": True,
                    "rows_sha256": rows_sha256(selected)}
        atomic_write_parquet(out / PREDICTIONS_FILE, selected, metadata_json=metadata)
        imported.unlink()
        return
    strata: dict[str, Any] = {}
    if tone is not None:
        strata["tone"] = tone
    elif loaded.spec.tone.source == "column":
        strata["strata"] = loaded.spec.tone.column
    run_inference(cohort, out / PREDICTIONS_FILE, backend=model.backend, model=target, options=options,
                  progress=report, engine=loaded.spec.engine, **strata, **runner)


REASONING_RESUME_FILE = "reasoning-judgements.parquet"


def reasoning_judge(loaded: LoadedSpec) -> tuple[Any, Any]:
    """The spec's rubric and judge (None without ``reasoning.endpoint(s)``: checks only).

    Building the judge asks its server what it serves, so that the stage's
    cache key holds the judge's identity; close the judge when done.
    """
    from fairderm.reasoning import Judge, load_rubric

    section = loaded.spec.reasoning
    assert section is not None
    rubric = load_rubric(loaded.resolve(section.rubric) if section.rubric else None)
    if not section.served_at:
        return rubric, None
    options = {k: v for k, v in section.options.items() if k != "batch_size"}
    return rubric, Judge(section.model, rubric, endpoint=section.served_at, **options)


def run_reasoning(
    loaded: LoadedSpec, cohort: Cohort, predictions: pd.DataFrame, rubric: Any, judge: Any, out: Path,
    progress: StageProgress | None,
) -> None:
    """Score every report (scores.parquet); judgements of earlier runs are reused by their cache key.

    The last scores table is kept beside the stage cache
    (``REASONING_RESUME_FILE``), so that a run after a change of predictions
    or an interrupted run asks the judge only for what it has not answered.
    """
    from fairderm.reasoning import score_reports

    resume = loaded.cache_dir / REASONING_RESUME_FILE
    target = out / "scores.parquet"
    if resume.is_file():
        shutil.copyfile(resume, target)
    truth = dict(zip(cohort.manifest["image_id"].astype(str), cohort.manifest["label"].astype(str)))
    batch_size = int(loaded.spec.reasoning.options.get("batch_size", 32)) if loaded.spec.reasoning else 32
    score_reports(predictions, truth=truth, labels=cohort.spec.labels, out=target, rubric=rubric, judge=judge,
                  batch_size=batch_size, progress=progress)
    resume.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target, resume)


def run_metrics(
    loaded: LoadedSpec, cohort: Cohort, tone: pd.DataFrame | None, predictions: pd.DataFrame,
    cluster: str | None, out: Path, *, strata: _evaluation.StrataInputs | None = None, scores: Any = None,
) -> None:
    """Per-group metrics, disparities, tests and power (metrics.json) and coverage (coverage.json).

    ``scores`` (a :class:`fairderm.reasoning.ScoreTable`) adds ``mean_score:<dimension>`` and
    ``mean_score:<check>`` per group.
    """
    table = _evaluation.evaluation_table(cohort.manifest, cohort.spec, tone, predictions, loaded.spec, cluster=cluster,
                                         trust=strata, scores=scores)
    folder = RunFolder(out)
    folder.write_metrics(_evaluation.compute_metrics(table, loaded.spec))
    folder.write_json(COVERAGE_FILE, table.coverage)


def gate_result(metrics_file: Path, policy_file: Path) -> Any:
    """The policy checked against a metrics.json (a :class:`fairderm.gate.GateResult`)."""
    from fairderm.gate import evaluate_gate, load_policy

    return evaluate_gate(
        read_metrics(metrics_file), load_policy(policy_file),
        metrics_sha256=sha256_file(metrics_file), metrics_source=METRICS_FILE, policy_source=POLICY_FILE,
    )


def run_gate(metrics_file: Path, policy_file: Path, out: Path) -> None:
    """Check the policy against metrics.json: gate.json, junit.xml and gate.md."""
    from fairderm.gate import write_gate_reports

    write_gate_reports(gate_result(metrics_file, policy_file), gate_json=out / GATE_FILE,
                       junit=out / JUNIT_FILE, summary=out / GATE_SUMMARY_FILE)


def run_card(run_dir: Path, loaded: LoadedSpec, out: Path) -> None:
    """The model card (card.md, card.html, card.json) and figures/ of a run folder being built."""
    from fairderm.audit._figures import write_figures
    from fairderm.cards import write_card

    if loaded.spec.outputs.figures:
        write_figures(run_dir, out / "figures")
    write_card(run_dir, out)


def copy_outputs(source: Path, target: Path) -> list[str]:
    """Copy a stage's cached files (not its ``_inputs.json``) into the run folder."""
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if not path.is_file() or relative.as_posix() == "_inputs.json":
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        copied.append(relative.as_posix())
    return copied
