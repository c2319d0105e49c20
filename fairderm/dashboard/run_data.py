"""Read-only access to audit run folders, confined to one runs folder.

The dashboard is given a runs folder and must never read outside it: a run
named in the URL (``?run=...``) or chosen in a widget is looked up among the
run folders discovered under the root, and every path is resolved (symlinks
included) and checked to lie inside the root before it is opened. The one
exception is the run's images, read from its cohort's ``images_root`` and
confined to it in the same way.

A run folder is any folder holding ``metrics.json`` (the audit writes them as
``NAME/runs/RUN_ID/``). Optional files that a run lacks load as ``None`` so
that each page can say "not available in this run".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fairderm.errors import InputError
from fairderm.metrics import EvaluationResult
from fairderm.runs import (
    CARD_HTML,
    CARD_JSON,
    CARD_MARKDOWN,
    ENVIRONMENT_FILE,
    EVIDENCE_FILE,
    GATE_FILE,
    METRICS_FILE,
    MITIGATION_FILE,
    PREDICTIONS_FILE,
    SCORES_FILE,
    TONE_FILE,
    TONE_VALIDATION_JSON,
    RunFolder,
)

RUN_MARKER = METRICS_FILE
DOWNLOADABLE = (CARD_MARKDOWN, CARD_HTML, CARD_JSON, EVIDENCE_FILE, METRICS_FILE, GATE_FILE)


def resolve_inside(root: Path, relative: str | Path) -> Path:
    """Resolve ``relative`` against ``root`` and refuse anything outside it.

    Parameters
    ----------
    root
        The runs folder (already resolved).
    relative
        A path relative to ``root``, e.g. from a URL query parameter.

    Raises
    ------
    InputError
        When the path is absolute, empty, or resolves (through ``..`` or a
        symlink) to a place outside ``root``.
    """
    text = str(relative)
    if not text.strip() or "\x00" in text:
        raise InputError("empty or invalid path", source=text)
    if Path(text).is_absolute():
        raise InputError(f"absolute path {text!r} refused: paths are relative to the runs folder")
    target = (root / text).resolve()
    if not target.is_relative_to(root):
        raise InputError(f"path {text!r} is outside the runs folder; refused")
    return target


@dataclass(frozen=True)
class RunsRoot:
    """The runs folder the dashboard was given, and the runs inside it."""

    root: Path

    @classmethod
    def open(cls, path: str | Path) -> RunsRoot:
        """Open a runs folder (InputError when it is not a folder)."""
        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise InputError(f"runs folder {str(path)!r} does not exist or is not a folder")
        return cls(root)

    def run_ids(self) -> list[str]:
        """Run folders under the root, as paths relative to it, newest first."""
        found = []
        for marker in self.root.rglob(RUN_MARKER):
            run_dir = marker.parent.resolve()
            # Run folders sit in a ``runs`` folder (NAME/runs/RUN_ID); a stage
            # cache also holds metrics.json files and is not a run.
            is_run = marker.parent.parent.name == "runs" or run_dir == self.root
            if is_run and run_dir.is_relative_to(self.root):
                found.append((marker.stat().st_mtime, run_dir.relative_to(self.root).as_posix()))
        return [rel for _, rel in sorted(found, key=lambda t: (-t[0], t[1]))]

    def run_dir(self, run_id: str) -> Path:
        """The folder of a discovered run; InputError for anything else."""
        path = resolve_inside(self.root, run_id)
        if run_id not in self.run_ids():
            raise InputError(f"{run_id!r} is not a run folder under the runs folder; refused")
        return path

    def file(self, run_id: str, name: str) -> Path:
        """A file inside a run folder, refused when it escapes the runs folder."""
        return resolve_inside(self.root, f"{run_id}/{name}")


@dataclass
class RunData:
    """Everything a run folder holds that the dashboard shows.

    Attributes are ``None`` when the run does not have that file.
    """

    run_id: str
    path: Path
    metrics: EvaluationResult
    gate: dict[str, Any] | None = None
    card_json: dict[str, Any] | None = None
    card_md: str | None = None
    evidence: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    mitigation: dict[str, Any] | None = None
    tone_validation: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    predictions: pd.DataFrame | None = field(default=None, repr=False)
    tone: pd.DataFrame | None = field(default=None, repr=False)
    scores: pd.DataFrame | None = field(default=None, repr=False)
    manifest: pd.DataFrame | None = field(default=None, repr=False)
    images_root: Path | None = None
    cohort_note: str = ""

    def table(self, key: str) -> pd.DataFrame:
        """A table of the run's metrics as a frame (``groups``, ``disparities``, ``tests``, ``calibration``,
        ``case_mix``, ``power``)."""
        metrics = self.metrics
        tables = {"groups": lambda: metrics.to_frame(full=True),
                  "disparities": lambda: metrics.disparities.to_frame(full=True),
                  "tests": lambda: metrics.tests, "calibration": lambda: metrics.calibration,
                  "case_mix": lambda: metrics.case_mix, "power": lambda: metrics.power}
        return tables[key]().copy()

    def image_path(self, relative: str) -> Path | None:
        """Absolute path of a cohort image, or None when it is not inside the cohort's ``images_root``."""
        from fairderm.cohort import checked_image_path

        if self.images_root is None or Path(relative).is_absolute():
            return None
        try:
            return checked_image_path(self.images_root, self.images_root / relative)
        except ValueError:
            return None


def _cohort_candidates(spec: dict[str, Any] | None, run_dir: Path, root: Path) -> list[Path]:
    if not spec:
        return []
    value = spec.get("cohort")
    if isinstance(value, dict):
        value = value.get("path") or value.get("root")
    if not isinstance(value, str):
        return []
    # The audit writes NAME/runs/RUN_ID/ beside NAME.yaml, whose folder the
    # cohort path is relative to: try that folder first, then the others up to the root.
    bases = [*run_dir.parents[2:3], run_dir, *run_dir.parents]
    bases = [b for b in bases if b.is_relative_to(root)]
    return [(b / value) for b in bases]


def _load_manifest(
    spec: dict[str, Any] | None, run_dir: Path, root: Path, evidence: dict[str, Any] | None
) -> tuple[pd.DataFrame | None, Path | None, str]:
    """The run's cohort: manifest, images root (or None) and why something is missing.

    Every audit keeps a copy of its cohort's ``cohort.yaml`` and manifest in
    the run folder (``cohort/``); the images stay in the cohort's
    ``images_root``, found from the cohort folder that ``evidence.json``
    records (relative to the run first, so that a moved tree still works).
    Runs without the copy fall back to a cohort inside the runs folder.
    """
    from fairderm.cohort import MANIFEST_FILE, SPEC_FILE, Cohort, load_cohort

    try:
        copy = resolve_inside(root, (run_dir / "cohort").relative_to(root))
        for name in (SPEC_FILE, MANIFEST_FILE):
            resolve_inside(root, (copy / name).relative_to(root))
    except (ValueError, InputError):
        copy = None
    if copy is not None and (copy / SPEC_FILE).is_file() and (copy / MANIFEST_FILE).is_file():
        kept = load_cohort(copy)
        manifest = kept.manifest
        folder = _recorded_cohort_folder(evidence, run_dir)
        if folder is None and not Path(kept.spec.images_root).is_absolute():
            return manifest, None, "the run's cohort folder was not found, so its images cannot be shown"
        images_root = Cohort(root=folder or copy, spec=kept.spec, manifest=manifest).images_root.resolve()
        if not images_root.is_dir():
            return manifest, None, f"the cohort's images_root {images_root} is not a folder here"
        return manifest, images_root, ""
    for candidate in _cohort_candidates(spec, run_dir, root):
        try:
            resolved = resolve_inside(root, candidate.resolve().relative_to(root))
            for name in (SPEC_FILE, MANIFEST_FILE):
                resolve_inside(root, (resolved / name).relative_to(root))
        except (ValueError, InputError):
            continue
        if (resolved / SPEC_FILE).is_file():
            cohort = load_cohort(resolved)
            return cohort.manifest, cohort.images_root.resolve(), ""
    return None, None, "the run's cohort was not found inside the runs folder"


def _recorded_cohort_folder(evidence: dict[str, Any] | None, run_dir: Path) -> Path | None:
    record = ((evidence or {}).get("inputs") or {}).get("cohort") or {}
    relative, absolute = record.get("path_from_run"), record.get("path")
    candidates = [run_dir / relative if isinstance(relative, str) else None,
                  Path(absolute) if isinstance(absolute, str) else None]
    return next((c.resolve() for c in candidates if c is not None and c.is_dir()), None)


def load_run(runs: RunsRoot, run_id: str) -> RunData:
    """Load one run folder (read-only); optional files become ``None``."""
    run_dir = runs.run_dir(run_id)
    folder = RunFolder(run_dir, root=runs.root)
    spec = folder.spec()
    evidence = folder.json(EVIDENCE_FILE)
    manifest, images_root, note = _load_manifest(spec, run_dir, runs.root, evidence)
    return RunData(
        run_id=run_id,
        path=run_dir,
        metrics=folder.metrics(),
        gate=folder.json(GATE_FILE),
        card_json=folder.json(CARD_JSON),
        card_md=folder.text(CARD_MARKDOWN),
        evidence=evidence,
        environment=folder.json(ENVIRONMENT_FILE),
        mitigation=folder.json(MITIGATION_FILE),
        tone_validation=folder.json(TONE_VALIDATION_JSON),
        spec=spec,
        predictions=folder.table(PREDICTIONS_FILE),
        tone=folder.table(TONE_FILE),
        scores=folder.table(SCORES_FILE),
        manifest=manifest,
        images_root=images_root,
        cohort_note=note,
    )


def case_table(run: RunData) -> pd.DataFrame:
    """Predictions joined to the manifest (label, tone, image) and the tone estimate.

    ``correct`` is the prediction against the manifest label, ``confidence``
    the largest class probability and ``tone_group`` the estimated tone group
    (``tone_group_est``) or else the labelled ``fitzpatrick_group``; each is
    missing when its inputs are.
    """
    if run.predictions is None:
        return pd.DataFrame()
    cases = run.predictions.copy()
    if run.manifest is not None:
        keep = [c for c in run.manifest.columns if c not in cases.columns or c == "image_id"]
        cases = cases.merge(run.manifest[keep], on="image_id", how="left")
    if run.tone is not None:
        tone_cols = ["image_id", "ita", "fitzpatrick_est", "monk_est"]
        tone = run.tone[[c for c in tone_cols if c in run.tone.columns]]
        cases = cases.merge(tone.drop(columns=[c for c in tone.columns if c in cases.columns and c != "image_id"]),
                            on="image_id", how="left")
    prob_cols = [c for c in cases.columns if c.startswith("prob_")]
    if prob_cols:
        cases["confidence"] = cases[prob_cols].astype(float).max(axis=1)
    if "label" in cases.columns and "pred" in cases.columns:
        cases["correct"] = cases["label"].astype("string") == cases["pred"].astype("string")
    if "fitzpatrick_est" in cases.columns:
        est = pd.to_numeric(cases["fitzpatrick_est"], errors="coerce")
        cases["tone_group_est"] = pd.cut(est, [0, 2, 4, 6], labels=["I-II", "III-IV", "V-VI"]).astype("string")
    # The tone group pages filter by: estimated where the run estimated tone, else the labelled one.
    for source in ("tone_group_est", "fitzpatrick_group"):
        if source in cases.columns:
            cases["tone_group"] = cases[source].astype("string")
            break
    return cases


def _stratum(cases: pd.DataFrame, attribute: str) -> pd.Series | None:
    """The case column behind a metrics attribute (estimated tone groups for ``fitzpatrick_est``)."""
    if attribute == "fitzpatrick_est" and "tone_group_est" in cases:
        return cases["tone_group_est"]
    return cases.get(attribute)


def paired_differences(run_a: RunData, run_b: RunData, *, n_boot: int, seed: int = 0) -> pd.DataFrame:
    """Paired-bootstrap differences ``B - A`` per group, from the stored predictions.

    Uses :func:`fairderm.metrics.compare` on the cases both runs answered,
    with run A's labels, positive classes and threshold, over the
    single attributes of run A's ``metrics.json`` that the cases carry.

    Raises
    ------
    InputError
        When the runs are not on the same cases, or predictions or labels are missing.
    """
    from fairderm.metrics import compare

    a, b = case_table(run_a), case_table(run_b)
    if a.empty or b.empty or "label" not in a:
        raise InputError("paired differences need both runs' predictions and the cohort's labels")
    if set(a["image_id"]) != set(b["image_id"]):
        raise InputError("the two runs are not on the same cases; a paired comparison needs the same cases")
    config = run_a.metrics.config
    labels = list(config.get("labels") or [c.removeprefix("prob_") for c in a if c.startswith("prob_")])
    prob_cols = [f"prob_{label}" for label in labels]
    both = a.merge(b[["image_id", "status", *prob_cols]], on="image_id", suffixes=("", "_b"))
    both = both[(both["status"] == "ok") & (both["status_b"] == "ok")]
    groups = {}
    for attribute in run_a.metrics.attributes:
        column = None if attribute == "all" or "&" in attribute else _stratum(both, attribute)
        if column is not None:
            groups[attribute] = column.astype(object).to_numpy()
    result = compare(both["label"].to_numpy(), both[prob_cols].to_numpy(float),
                     both[[f"{c}_b" for c in prob_cols]].to_numpy(float), groups or None,
                     names=(run_a.run_id, run_b.run_id), labels=labels,
                     positive_label=config.get("positive_label"), threshold=config.get("threshold", 0.5),
                     n_boot=n_boot, ci="percentile", seed=seed, tests=False, case_mix=False, power=False)
    diffs = result.differences.copy()
    # compare() reports a - b; the page reads B - A (the second run against the first).
    diffs[["difference", "ci_low", "ci_high"]] = -diffs[["difference", "ci_high", "ci_low"]].to_numpy()
    return diffs
