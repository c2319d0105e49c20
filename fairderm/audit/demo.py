"""``fairderm demo``: the whole pipeline on a synthetic, tone-imbalanced cohort.

Steps
-----
1. synthesise a cohort whose train split is tone-imbalanced (Fitzpatrick
   I-VI weighted 0.3, 0.3, 0.15, 0.15, 0.05, 0.05: dark skin is rare, as in
   most dermatology datasets) and whose validation and test splits have
   every type equally often (as DDI was built for auditing), so that the
   router's constraints and the audit see enough of the darkest group;
2. estimate skin tone for every image (the router's input and groups);
3. extract frozen EfficientNet-Lite0 features once (cached in ``DIR/cache``);
4. train the demo classifier: a linear head on the train split (``erm``);
5. train the parity-constrained router and its baselines (``router``);
6. audit both on the held-out test split with the same spec, gated by the
   example policy: two ordinary run folders under ``DIR/audits/*/runs/``.

The output folder
-----------------
``DIR`` must not exist, be empty, or hold an earlier demo (marked by the file
``.fairderm-demo``), which is replaced. A demo that fails removes what it
wrote, so no half-made demo is left behind.

=============================  ==============================================
``cohort/``                    the synthetic cohort (images, masks, manifest)
``tone/tone.parquet``          tone estimates of every image
``tone/validation_labels.csv`` 150 test images' true types (a stand-in
                               for a dermatologist's labels; ``.json``: the draw)
``models/erm/``                the classifier (head.safetensors + head.json)
``models/router/``             the router, its baselines, evaluation.json
``audits/policy.yaml``         the release policy both audits are gated with
``audits/erm.yaml``            audit spec of the classifier
``audits/router.yaml``         audit spec of the router
``audits/erm/runs/RUN_ID/``    the classifier's audit run folder
``audits/router/runs/RUN_ID/`` the router's audit run folder
``cache/``                     backbone features, by image hash
=============================  ==============================================
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fairderm._io import atomic_write_json, atomic_write_text, output_lock
from fairderm.audit._runner import AuditRun, ProgressCallback, run_audit
from fairderm.cohort import WHITE_REFERENCE_REFLECTANCE
from fairderm.errors import InputError
from fairderm.runs import POLICY_FILE, TONE_FILE

DEMO_MARKER = ".fairderm-demo"
DEMO_ENTRIES: tuple[str, ...] = ("cohort", "tone", "cache", "models", "audits")
"""What the demo writes at the top of its folder, beside :data:`DEMO_MARKER`."""
DEMO_TONE_WEIGHTS: tuple[float, ...] = (0.3, 0.3, 0.15, 0.15, 0.05, 0.05)
DEMO_EVAL_TONE_WEIGHTS: tuple[float, ...] = (1, 1, 1, 1, 1, 1)
DEMO_TRAIN_FILTER = "split == 'train'"
DEMO_TEST_FILTER = "split == 'test'"
DEMO_N = 1000
#: Images of the test split given a "dermatologist's" tone label (the generator's true type stands in).
DEMO_VALIDATION_LABELS = 150
DEMO_METRICS: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "sensitivity", "specificity", "auroc", "brier", "ece",
)
EXAMPLE_POLICY = Path(__file__).resolve().parent / "policy.example.yaml"
"""The example policy, ``audits/policy.example.yaml``, shipped in the package (a
symlink in the source tree, a copy in a wheel) so that an installed fairderm
finds it too."""

LogCallback = Callable[[str], None]


@dataclass
class DemoResult:
    """What :func:`run_demo` made.

    Attributes
    ----------
    out
        The demo folder.
    runs
        The audit runs by name (``erm``, ``router``).
    router_evaluation
        The router's ``evaluation.json`` (every method on its test split).
    timings
        Seconds per step.
    """

    out: Path
    runs: dict[str, AuditRun]
    router_evaluation: dict[str, Any] = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out), "seconds": round(self.seconds, 1),
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "runs": {name: run.to_dict() for name, run in self.runs.items()},
        }

    def summary(self) -> str:
        lines = [f"fairderm demo in {self.out} ({self.seconds:.0f} s)"]
        for name, run in self.runs.items():
            lines.append(f"  {name:<7} {run.verdict} (exit {run.exit_code})  {run.run_dir}")
        return "\n".join(lines)


def demo_spec(name: str, *, backend: str, model: str, description: str, card: dict[str, Any],
              n_boot: int = 2000) -> dict[str, Any]:
    """The audit spec the demo writes (as a mapping), paths relative to ``DIR/audits``.

    ``audits/demo.yaml`` in the repository holds the same settings for the
    classifier, with paths from the repository root.
    """
    return {
        "name": name,
        "description": description,
        "cohort": {"path": "../cohort", "filter": DEMO_TEST_FILTER},
        # the features extracted for training are reused by image hash: no image is embedded twice
        "model": {"backend": backend, "model": model, "options": {"feature_cache": "../cache"}},
        # the synthetic cohort's rulers and paper reflect 0.65 (fairderm.cohort's renderer), real paper about 0.85
        "tone": {"source": "estimate", "method": "fairderm", "white_reflectance": WHITE_REFERENCE_REFLECTANCE,
                 # a validation sample: the metrics by estimated tone are corrected to the true tone groups
                 "validation_labels": "../tone/validation_labels.csv"},
        "strata": {"attributes": ["fitzpatrick_est", "sex"], "intersections": [["fitzpatrick_est", "sex"]],
                   "min_n": 30},
        "metrics": list(DEMO_METRICS),
        "bootstrap": {"n_boot": n_boot, "ci": "bca", "cluster": "patient_id", "seed": 0},
        "policy": POLICY_FILE,
        "outputs": {"cache_dir": "cache"},  # one stage cache: the second audit reuses the tone stage
        "card": card,
    }


def _validation_labels(cohort: Any, tone: Any, tone_path: Path, out: Path, seed: int) -> None:
    """A validation sample of the audited test split, as ``fairderm tone label`` draws it, answered with the
    synthetic cohort's true Fitzpatrick types where a dermatologist would answer."""
    from fairderm.audit._inputs import select_cases
    from fairderm.tone import new_label_sample, write_labels

    test = select_cases(cohort, DEMO_TEST_FILTER, source="demo")
    labels = new_label_sample(test, tone, tone_path=tone_path, scale="fitzpatrick", n=DEMO_VALIDATION_LABELS,
                              seed=seed)
    truth = test.manifest.set_index(test.manifest["image_id"].astype(str))["fitzpatrick"]
    frame = labels.frame
    frame["label"] = truth.reindex(frame["image_id"].astype(str)).astype(int).astype(str).to_numpy()
    frame["labeller"] = "synthetic-truth"
    frame["labelled_at"] = labels.draw["created_at"]
    write_labels(out, labels)


def _read_marker(out: Path) -> dict[str, Any] | None:
    """The demo's record of its own files; ``{"files": None}`` for a demo that did not finish; None: no demo."""
    marker = out / DEMO_MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {"files": None}  # an earlier fairderm's plain-text marker, or one cut short
    files = record.get("files") if isinstance(record, dict) else None
    return {"files": files if isinstance(files, list) else None}


def _tree(out: Path) -> tuple[list[str], list[str]]:
    """Files (and symlinks, never followed) and folders under ``out``, relative, the marker left out."""
    files, folders = [], []
    for folder, dirnames, filenames in os.walk(out):
        base = Path(folder).relative_to(out)
        for name in list(dirnames):
            if (Path(folder) / name).is_symlink():
                dirnames.remove(name)
                files.append((base / name).as_posix())
            else:
                folders.append((base / name).as_posix())
        files += [(base / name).as_posix() for name in filenames if (base / name).as_posix() != DEMO_MARKER]
    return files, folders


def _prepare(out: Path) -> None:
    """Refuse a folder holding anything the demo did not write; remove what an earlier demo wrote.

    A finished demo recorded every file it wrote in :data:`DEMO_MARKER`: a
    file not in that list (or any symlink) means the folder is not only a
    demo's, and nothing is deleted. An unfinished demo's folder may hold
    only :data:`DEMO_ENTRIES`.
    """
    if out.exists() and (not out.is_dir() or out.is_symlink()):
        raise InputError("output is not a folder; choose a new folder", source=str(out))
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    record = _read_marker(out)
    if record is None:
        raise InputError("output exists, is not empty and is not an earlier demo; choose a new folder",
                         source=str(out))
    files, folders = _tree(out)
    written = record["files"]
    if written is None:
        foreign = sorted(
            [p.name for p in out.iterdir() if p.name != DEMO_MARKER and (p.name not in DEMO_ENTRIES or p.is_symlink())]
            + [f for f in files if (out / f).is_symlink()]
        )
    else:
        known = {str(f) for f in written}
        foreign = sorted(f for f in files if f not in known or (out / f).is_symlink())
    if foreign:
        raise InputError(f"output holds {foreign[0]!r}, which no earlier demo wrote; choose a new folder",
                         source=str(out))
    for file in files:
        (out / file).unlink()
    for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        (out / folder).rmdir()
    (out / DEMO_MARKER).unlink()


def _remove_written(out: Path, created: bool) -> None:
    """After a failed demo: remove what it wrote (its entries and marker), and the folder if it made it."""
    for name in DEMO_ENTRIES:
        entry = out / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
    (out / DEMO_MARKER).unlink(missing_ok=True)
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _training_text(n: int, head: dict[str, Any]) -> str:
    counts = head.get("training", {}).get("class_counts_train", {})
    mix = ", ".join(f"{k} {v}" for k, v in counts.items())
    weights = ", ".join(f"{w:g}" for w in DEMO_TONE_WEIGHTS)
    return (f"The train split of a synthetic cohort of {n} images generated by fairderm, Fitzpatrick I-VI "
            f"weighted {weights}: dark skin is rare on purpose (the val and test splits have every type "
            f"equally often). Training cases by diagnosis: {mix}.")


def run_demo(
    out: str | Path = "demo-output",
    *,
    n: int = DEMO_N,
    seed: int = 0,
    n_boot: int = 2000,
    policy: str | Path | None = None,
    progress: ProgressCallback | None = None,
    log: LogCallback | None = None,
) -> DemoResult:
    """Run the demo: synthesise, estimate tone, train the classifier and the router, audit both.

    Parameters
    ----------
    out
        The demo folder (see the module docstring).
    n
        Images in the synthetic cohort. Fewer run faster but leave the darkest
        group too small to say anything (the gate then answers
        INSUFFICIENT_EVIDENCE for every model).
    seed
        Seed of the cohort, the training and the bootstrap.
    n_boot
        Bootstrap replicates of the audits.
    policy
        Release policy (default: the example policy, :data:`EXAMPLE_POLICY`).
    progress
        ``progress(step, done, total)`` during long steps.
    log
        Called with one line as each step starts.
    """
    policy_path = Path(policy) if policy is not None else EXAMPLE_POLICY
    if not policy_path.is_file():
        raise InputError("policy file not found (give one with --policy)", source=str(policy_path))
    if n < 100:
        raise InputError(f"the demo needs at least 100 images, got {n}", column="n")
    out = Path(out)
    with output_lock(out):
        return _run_demo(out, n=n, seed=seed, n_boot=n_boot, policy_path=policy_path, progress=progress, log=log)


def _run_demo(
    out: Path, *, n: int, seed: int, n_boot: int, policy_path: Path, progress: ProgressCallback | None,
    log: LogCallback | None,
) -> DemoResult:
    from fairderm._extras import import_optional
    from fairderm.cohort import synthesize_cohort

    train_router = import_optional("fairderm.moe", "fairderm demo").train_router
    import_optional("fairlearn", "fairderm demo (the router's fairlearn baselines)")
    from fairderm.inference import extract_features, train_head
    from fairderm.tone import ToneParameters, estimate_tone, write_tone

    created = not out.exists()
    _prepare(out)
    say = log or (lambda _line: None)

    def step(name: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(name, done, total)) if progress else None

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    try:
        atomic_write_json(out / DEMO_MARKER, {"made_by": "fairderm demo", "files": None})
        say(f"synthesising {n} images (train: Fitzpatrick I-VI weighted "
            f"{', '.join(map(str, DEMO_TONE_WEIGHTS))}; val and test: every type equally often)")
        cohort = synthesize_cohort(out / "cohort", n=n, seed=seed, tone_weights=list(DEMO_TONE_WEIGHTS),
                                   eval_tone_weights=list(DEMO_EVAL_TONE_WEIGHTS),
                                   progress=step("synthesise"))
        lap("synthesise")
        say("estimating skin tone from healthy skin")
        # told the synthetic rulers' and paper's reflectance, as the audits are (demo_spec): the router then trains
        # on the tone groups and tone inputs the audits measure, not on ones read 0.4 stop too light
        tone = estimate_tone(cohort, parameters=ToneParameters(white_reflectance=WHITE_REFERENCE_REFLECTANCE),
                             progress=step("tone"))
        tone_path = out / "tone" / TONE_FILE
        write_tone(tone_path, tone, cohort)
        _validation_labels(cohort, tone, tone_path, out / "tone" / "validation_labels.csv", seed)
        lap("tone")
        say("extracting EfficientNet-Lite0 features")
        features = extract_features(cohort, cache_dir=out / "cache", progress=step("features"))
        lap("features")
        say("training the classifier (linear head, train split)")
        head = train_head(cohort, out / "models" / "erm", train_filter=DEMO_TRAIN_FILTER, seed=seed,
                          features=features)
        lap("train classifier")
        say("training the parity-constrained router and its baselines")
        router = train_router(cohort, out / "models" / "router", tone=tone_path, seed=seed,
                              features=features.features, cache_dir=out / "cache",
                              stage=lambda name: say(f"  router: {name}"))
        lap("train router")

        audits = out / "audits"
        audits.mkdir()
        shutil.copyfile(policy_path, audits / POLICY_FILE)
        training = _training_text(n, head.config)
        specs = {
            "erm": demo_spec(
                "erm", backend="backbone", model="../models/erm", n_boot=n_boot,
                description="The demo classifier: a linear head on frozen EfficientNet-Lite0 features, trained "
                "by plain empirical risk minimisation on a tone-imbalanced synthetic cohort.",
                card={"intended_use": "Demonstration of a skin-tone fairness audit; not for clinical use.",
                      "training_data": training, "out_of_scope_uses": ["Any diagnosis of real patients."]},
            ),
            "router": demo_spec(
                "router", backend="router", model="../models/router", n_boot=n_boot,
                description="fairderm's mixture-of-experts router with per-group loss-parity constraints "
                "(epsilon 0.02), on the same features and training split as the classifier.",
                card={"intended_use": "Demonstration of a fairness mitigation; not for clinical use.",
                      "training_data": training, "out_of_scope_uses": ["Any diagnosis of real patients."]},
            ),
        }
        runs = {}
        for name, spec in specs.items():
            spec_path = audits / f"{name}.yaml"
            atomic_write_text(spec_path, yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
            say(f"auditing {name}")
            runs[name] = run_audit(spec_path, progress=progress, log=lambda line: say(f"  {line}"))
            lap(f"audit {name}")
        # the record of every file written, last: only these may a later demo delete
        atomic_write_json(out / DEMO_MARKER, {"made_by": "fairderm demo", "files": sorted(_tree(out)[0])})
    except BaseException:
        _remove_written(out, created)
        raise
    return DemoResult(out=out, runs=runs, router_evaluation=router.evaluation, timings=timings)
