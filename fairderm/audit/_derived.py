"""Re-deriving a run folder's derived files from its own data, for ``fairderm verify``.

A run folder holds inputs (the spec, the cohort copy, the policy), stored
results (predictions, tone, metrics) and files derived from them: the gate's
reports, the model card, the figures and the run log. Hashes in
``evidence.json`` show that no file changed since the evidence was written;
they cannot show that the files agree with one another, since whoever
rewrites a file can rewrite its hash. So verify derives every derived file
again from the folder's own data and compares:

=====================================  ==========================================================
file                                   derived from
=====================================  ==========================================================
``gate.json``                          ``metrics.json`` and ``policy.yaml`` (the gate re-run)
``junit.xml``, ``gate.md``             the re-run gate, rendered again (byte for byte)
``card.md``, ``card.html``,            the folder as it stood when the card was written (every
``card.json``                          file but ``run.json``, ``evidence.json`` and the signature),
                                       rendered again (byte for byte)
``figures/``                           ``metrics.json`` (byte for byte)
``run.json``                           the folder's name, the spec, the re-run gate and
                                       ``evidence.json``'s stages (field by field)
``predictions.parquet``                its ``pred`` against its probabilities and the cohort's
                                       label order; its cases against the selected ones
``evidence.json``                      its own fields (filter, case counts, selected ids, seeds,
                                       model, version, stages) against the spec, the cohort copy
                                       and the selection made again
=====================================  ==========================================================

Each difference is one check naming the file and the field.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from fairderm._engine import Engine
from fairderm._io import read_parquet_metadata, sha256_json
from fairderm.audit._evidence import EVIDENCE_FILE, SIGNATURE_FILE
from fairderm.audit._hashing import read_checksum_file
from fairderm.audit._runner import RUN_LOG_FILE, run_stages
from fairderm.audit._spec import LoadedSpec
from fairderm.cohort import Cohort
from fairderm.errors import FairdermError
from fairderm.runs import (
    GATE_FILE,
    GATE_SUMMARY_FILE,
    JUNIT_FILE,
    METRICS_FILE,
    POLICY_FILE,
    PREDICTIONS_FILE,
    RunFolder,
)

if TYPE_CHECKING:
    from fairderm.audit._verify import Verification

WRITTEN_AFTER_CARD = (RUN_LOG_FILE, EVIDENCE_FILE, SIGNATURE_FILE)
"""Files a run gets after its card: the card cannot list them, so it is rebuilt without them."""
GATE_REPORTS = (GATE_FILE, JUNIT_FILE, GATE_SUMMARY_FILE)
_CACHE_STATES = {"hit", "miss"}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _same(result: Verification, item: str, key: str, stored: Any, derived: Any) -> bool:
    """One field compared; a difference is a ``mismatch`` naming the file and the key."""
    if stored == derived and type(stored) is type(derived):
        return True
    result.add(item, "mismatch", f"says {stored!r}, the run gives {derived!r}", key=key)
    return False


def _compare_text(result: Verification, run_dir: Path, name: str, derived: str) -> None:
    path = run_dir / name
    if not path.is_file():
        result.add(name, "missing", "the run's data give this file, but it is not in the run folder")
    elif path.read_bytes() != derived.encode("utf-8"):
        result.add(name, "mismatch", "differs from the file rendered again from the run's own data")
    else:
        result.add(name, "ok", "rendered again: identical")


def _absent(result: Verification, run_dir: Path, names: tuple[str, ...], why: str) -> None:
    for name in names:
        if (run_dir / name).exists():
            result.add(name, "mismatch", f"should not exist: {why}")


# --- evidence.json's own fields -------------------------------------------------------------------------------


def check_selection(evidence: dict[str, Any], loaded: LoadedSpec, cohort: Cohort, selected: Cohort,
                    run_dir: Path, result: Verification) -> None:
    """``evidence.json``'s cohort and image fields against the selection made again from the run's copies."""
    inputs = evidence.get("inputs") if isinstance(evidence.get("inputs"), dict) else {}
    entry = inputs.get("cohort") if isinstance(inputs.get("cohort"), dict) else {}
    ids = selected.manifest["image_id"].astype(str).tolist()
    fields = {
        "filter": loaded.spec.cohort.filter, "name": cohort.spec.name, "synthetic": cohort.spec.synthetic,
        "n_cases": len(cohort.manifest), "n_selected": len(ids), "selected_ids_sha256": sha256_json(ids),
    }
    good = all([_same(result, EVIDENCE_FILE, f"inputs.cohort.{key}", entry.get(key), value)
                for key, value in fields.items()])
    images = inputs.get("images") if isinstance(inputs.get("images"), dict) else {}
    good &= _same(result, EVIDENCE_FILE, "inputs.images.count", images.get("count"), len(ids))
    good &= _same(result, EVIDENCE_FILE, "inputs.images.hashed", images.get("hashed"),
                  loaded.spec.outputs.hash_images)
    if images.get("hashed") and (run_dir / "images.sha256").is_file():
        good &= _check_image_listing(run_dir, loaded, selected, images, result)
    if good:
        result.add(EVIDENCE_FILE, "ok", "filter, case counts, selected ids and image list match the run")


def _check_image_listing(run_dir: Path, loaded: LoadedSpec, selected: Cohort, images: dict[str, Any],
                         result: Verification) -> bool:
    names = [str(PurePosixPath(str(n))) for n in selected.manifest["image"].tolist()]
    expected = set(names)
    tone = loaded.spec.tone
    if tone.source == "estimate" and tone.lesion_masks and "mask" in selected.manifest.columns:
        masks = [str(PurePosixPath(str(m))) for m in selected.manifest["mask"].tolist() if pd.notna(m) and str(m)]
        expected |= set(masks)
        if not _same(result, EVIDENCE_FILE, "inputs.images.masks", images.get("masks"), len(masks)):
            return False
    listed = set(read_checksum_file(run_dir / "images.sha256"))
    if listed == expected:
        return True
    extra, lacking = sorted(listed - expected), sorted(expected - listed)
    example = f"lists {extra[0]!r}, not a selected case" if extra else f"lacks {lacking[0]!r}"
    result.add("images.sha256", "mismatch",
               f"{len(extra)} names not selected, {len(lacking)} selected missing: {example}")
    return False


def check_evidence_fields(run_dir: Path, evidence: dict[str, Any], loaded: LoadedSpec,
                          result: Verification) -> None:
    """Run id, audit name, seeds, version, model, policy and stages of ``evidence.json`` against the run."""
    spec = loaded.spec
    inputs = evidence.get("inputs") if isinstance(evidence.get("inputs"), dict) else {}
    model = inputs.get("model") if isinstance(inputs.get("model"), dict) else {}
    seeds = {"bootstrap": spec.bootstrap.seed, "inference": int(spec.model.options.get("seed", 0))}
    checks = [
        ("run_id", evidence.get("run_id"), run_dir.name),
        ("audit", evidence.get("audit"), loaded.name),
        ("seeds", sorted(evidence["seeds"]) if isinstance(evidence.get("seeds"), dict) else None, sorted(seeds)),
        *((f"seeds.{key}", (evidence.get("seeds") or {}).get(key), value) for key, value in seeds.items()),
        ("inputs.model.backend", model.get("backend"), spec.model.backend),
        ("inputs.model.model", model.get("model"), spec.model.model),
        ("inputs.model.options", model.get("options"), json.loads(json.dumps(spec.model.options))),
        ("inputs.policy", inputs.get("policy") is not None, spec.policy is not None),
        ("inputs.tone_calibration", inputs.get("tone_calibration") is not None, spec.tone.calibration is not None),
    ]
    version = _gate_version(run_dir)
    if version is not None:
        checks.append(("fairderm_version", evidence.get("fairderm_version"), version))
    stages = evidence.get("stages")
    checks.append(("stages", sorted(stages) if isinstance(stages, dict) else stages, sorted(run_stages(loaded))))
    good = all([_same(result, EVIDENCE_FILE, key, stored, derived) for key, stored, derived in checks])
    if _timestamp(evidence.get("created_utc")) is None:
        result.add(EVIDENCE_FILE, "mismatch", f"not a time stamp: {evidence.get('created_utc')!r}",
                   key="created_utc")
        good = False
    if good:
        result.add(EVIDENCE_FILE, "ok", "run id, audit, seeds, model, version and stages match the run")


def _gate_version(run_dir: Path) -> str | None:
    """The fairderm version gate.json records (written by the same run; gate.json is checked on its own)."""
    try:
        version = json.loads((run_dir / GATE_FILE).read_text(encoding="utf-8"))["fairderm_version"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return version if isinstance(version, str) else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


# --- predictions.parquet ---------------------------------------------------------------------------------------


def check_predictions(run_dir: Path, cohort: Cohort, selected: Cohort, predictions: pd.DataFrame,
                      result: Verification) -> None:
    """``pred`` against the probabilities in the cohort's label order; the rows against the selected cases."""
    labels = [str(label) for label in cohort.spec.labels]
    meta = read_parquet_metadata(run_dir / PREDICTIONS_FILE)
    problems: list[tuple[str, str]] = []
    ids = predictions["image_id"].astype(str)
    wanted = selected.manifest["image_id"].astype(str)
    if ids.duplicated().any() or set(ids) != set(wanted):
        lacking = sorted(set(wanted) - set(ids))
        extra = sorted(set(ids) - set(wanted))
        problems.append(("image_id", f"{len(ids)} rows for {len(wanted)} selected cases "
                                     f"({len(lacking)} missing, {len(extra)} not selected, "
                                     f"{int(ids.duplicated().sum())} repeated)"))
    if meta.get("labels") is not None and list(meta["labels"]) != labels:
        problems.append(("labels", f"metadata labels {meta['labels']} are not the cohort's {labels}"))
    prob_columns = [c for c in predictions.columns if str(c).startswith("prob_")]
    if prob_columns and prob_columns != [f"prob_{label}" for label in labels]:
        problems.append(("prob_", f"probability columns {prob_columns} are not the cohort's labels in order"))
    elif prob_columns:
        problems += _pred_against_probabilities(predictions, labels, meta)
    for key, detail in problems:
        result.add(PREDICTIONS_FILE, "mismatch", detail, key=key)
    if not problems:
        result.add(PREDICTIONS_FILE, "ok", "cases, labels and pred agree with the probabilities")


def _pred_against_probabilities(predictions: pd.DataFrame, labels: list[str],
                                meta: dict[str, Any]) -> list[tuple[str, str]]:
    # pred is the most probable label unless the model gave its own (an imported file with both
    # columns); runs from before pred_source was recorded: every backend but 'file' took the argmax
    source = meta.get("pred_source")
    if source is None and meta.get("backend") != "file":
        source = "argmax"
    if source != "argmax":
        return []
    probs = predictions[[f"prob_{label}" for label in labels]].to_numpy(dtype=np.float64)
    ok = (predictions["status"].astype(str) == "ok").to_numpy() & np.isfinite(probs).all(axis=1)
    derived = np.asarray(labels, dtype=object)[probs.argmax(axis=1)]
    stored = predictions["pred"].astype(object).to_numpy()
    wrong = np.flatnonzero(ok & (stored != derived))
    if not len(wrong):
        return []
    k = wrong[0]
    return [("pred", f"{len(wrong)} cases' pred is not their most probable label (e.g. "
                     f"{predictions['image_id'].iat[k]!r}: pred {stored[k]!r}, most probable {derived[k]!r})")]


# --- gate reports, run log, card, figures ------------------------------------------------------------------------


def check_outputs(run_dir: Path, evidence: dict[str, Any], loaded: LoadedSpec, result: Verification) -> None:
    """The gate's reports, the run log, the card and the figures, derived again and compared."""
    gate = _check_gate_reports(run_dir, loaded, result)
    _check_run_log(run_dir, evidence, loaded, gate, result)
    outputs = loaded.spec.outputs
    if outputs.card:
        _check_card(run_dir, result)
        if outputs.figures:
            _check_figures(run_dir, result)
        else:
            _absent(result, run_dir, ("figures",), "the spec's outputs.figures is false")
    else:
        _absent(result, run_dir, ("card.md", "card.html", "card.json", "figures"),
                "the spec's outputs.card is false")


def _check_gate_reports(run_dir: Path, loaded: LoadedSpec, result: Verification) -> Any:
    """The gate re-run from ``metrics.json`` and ``policy.yaml``; its three reports compared."""
    from fairderm.audit._stages import gate_result
    from fairderm.audit._verify import compare_json_file
    from fairderm.gate import junit_xml, markdown_summary

    if loaded.spec.policy is None:
        _absent(result, run_dir, (POLICY_FILE, *GATE_REPORTS), "the spec names no policy")
        return None
    try:
        gate = gate_result(run_dir / METRICS_FILE, run_dir / POLICY_FILE)
    except (FairdermError, OSError, ValueError, RecursionError) as exc:
        result.add(GATE_FILE, "error", f"cannot re-run the gate: {_one_line(exc)}")
        return None
    compare_json_file(run_dir, GATE_FILE, gate.to_dict(), result)
    _compare_text(result, run_dir, JUNIT_FILE, junit_xml(gate))
    _compare_text(result, run_dir, GATE_SUMMARY_FILE, markdown_summary(gate))
    return gate


def _check_run_log(run_dir: Path, evidence: dict[str, Any], loaded: LoadedSpec, gate: Any,
                   result: Verification) -> None:
    path = run_dir / RUN_LOG_FILE
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        result.add(RUN_LOG_FILE, "missing", "every run has one")
        return
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        result.add(RUN_LOG_FILE, "error", f"not valid JSON: {_one_line(exc)}")
        return
    if not isinstance(log, dict):
        result.add(RUN_LOG_FILE, "mismatch", "not a JSON object")
        return
    derived = {
        "run_id": run_dir.name, "audit": loaded.name,
        "verdict": gate.verdict.value if gate is not None else None,
        "exit_code": gate.exit_code if gate is not None else 0,
    }
    good = all([_same(result, RUN_LOG_FILE, key, log.get(key), value) for key, value in derived.items()])
    extra = sorted(set(log) - {*derived, "started_utc", "finished_utc", "stages", "engine"})
    if extra:
        result.add(RUN_LOG_FILE, "mismatch", f"holds keys a run log never has: {extra}", key=extra[0])
        good = False
    if "engine" in log and not _is_engine(log["engine"]):
        result.add(RUN_LOG_FILE, "mismatch", "engine is not an engine (name local or ray, and its settings)",
                   key="engine")
        good = False
    good &= _check_times(log, evidence, result)
    good &= _check_stages(log.get("stages"), evidence, loaded, result)
    if good:
        result.add(RUN_LOG_FILE, "ok", "verdict, names, times and stages match the run")


def _is_engine(value: Any) -> bool:
    """Whether a run log's ``engine`` is what the runner writes: where the stages ran (no part of any hash)."""
    try:
        Engine.model_validate(value)
    except ValidationError:
        return False
    return True


def _check_times(log: dict[str, Any], evidence: dict[str, Any], result: Verification) -> bool:
    started, finished = _timestamp(log.get("started_utc")), _timestamp(log.get("finished_utc"))
    created = _timestamp(evidence.get("created_utc"))
    if started is None or finished is None:
        result.add(RUN_LOG_FILE, "mismatch", "started_utc and finished_utc must be UTC time stamps",
                   key="started_utc" if started is None else "finished_utc")
        return False
    if not started <= finished or (created is not None and finished > created):
        result.add(RUN_LOG_FILE, "mismatch", f"times out of order: started {log['started_utc']}, finished "
                   f"{log['finished_utc']}, evidence written {evidence.get('created_utc')}", key="finished_utc")
        return False
    return True


def _expected_skip(stage: str, loaded: LoadedSpec) -> bool:
    spec = loaded.spec
    return {"tone": not spec.tone.estimated, "gate": spec.policy is None,
            "card": not spec.outputs.card}.get(stage, False)


def _check_stages(stages: Any, evidence: dict[str, Any], loaded: LoadedSpec,
                  result: Verification) -> bool:
    recorded = evidence.get("stages") if isinstance(evidence.get("stages"), dict) else {}
    expected = list(run_stages(loaded))
    if not isinstance(stages, list) or [s.get("stage") if isinstance(s, dict) else s for s in stages] != expected:
        result.add(RUN_LOG_FILE, "mismatch", f"stages must be {expected} in order", key="stages")
        return False
    artifacts = evidence.get("artifacts") if isinstance(evidence.get("artifacts"), dict) else {}
    good = True
    for record in stages:
        stage = record["stage"]
        skipped = _expected_skip(stage, loaded)
        if skipped or stage == "card":
            good &= _same(result, RUN_LOG_FILE, f"stages[{stage}].cache", record.get("cache"),
                          "skipped" if skipped else "rendered")
        elif record.get("cache") not in _CACHE_STATES:
            result.add(RUN_LOG_FILE, "mismatch", f"says {record.get('cache')!r}, a cached stage is a hit or a miss",
                       key=f"stages[{stage}].cache")
            good = False
        note = recorded.get(stage) if isinstance(recorded.get(stage), dict) else {}
        good &= _same(result, RUN_LOG_FILE, f"stages[{stage}].key", record.get("key"), note.get("key"))
        good &= _same(result, EVIDENCE_FILE, f"stages.{stage}.cache", note.get("cache"), record.get("cache"))
        if (record.get("key") is None) != (skipped or stage == "card"):
            result.add(RUN_LOG_FILE, "mismatch", "a stage has a cache key exactly when it ran through the cache",
                       key=f"stages[{stage}].key")
            good = False
        files = record.get("files")
        if not isinstance(files, list) or any(not isinstance(f, str) or f not in artifacts for f in files):
            result.add(RUN_LOG_FILE, "mismatch", "lists files that are not in the run folder's evidence",
                       key=f"stages[{stage}].files")
            good = False
        elif skipped and files:
            result.add(RUN_LOG_FILE, "mismatch", "a skipped stage wrote files", key=f"stages[{stage}].files")
            good = False
    return good


def _card_state(run_dir: Path) -> Any:
    """The run folder read as the card saw it: before the run log, the evidence and the signature existed."""
    from fairderm.cards import load_run

    run = load_run(run_dir)
    run.evidence = None
    run.file_hashes = {name: digest for name, digest in run.file_hashes.items() if name not in WRITTEN_AFTER_CARD}
    return run


def _check_card(run_dir: Path, result: Verification) -> None:
    from fairderm.cards import build_card

    try:
        texts = build_card(_card_state(run_dir)).texts()
    except (FairdermError, OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        result.add("card.json", "error", f"cannot render the card again: {_one_line(exc)}")
        return
    for name, text in texts.items():
        _compare_text(result, run_dir, name, text)


def _check_figures(run_dir: Path, result: Verification) -> None:
    from fairderm.audit._figures import figure_files

    try:
        files = figure_files(RunFolder(run_dir).metrics())
    except (OSError, ValueError, AttributeError, RecursionError) as exc:
        result.add("figures/metrics.html", "error", f"cannot draw the figures again: {_one_line(exc)}")
        return
    for name, text in files.items():
        _compare_text(result, run_dir, f"figures/{name}", text)
    folder = run_dir / "figures"
    extra = sorted(p.name for p in folder.iterdir() if p.name not in files) if folder.is_dir() else []
    for name in extra:
        result.add(f"figures/{name}", "mismatch", "not a figure of this run's metrics.json")

