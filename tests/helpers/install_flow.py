"""The audits a core install (``pip install fairderm``, no extras) must run end to end.

A synthetic cohort, an audit of a predictions Parquet (tone estimated from
the images) and an audit of a vision-language model behind an
OpenAI-compatible server (the scripted one of the inference tests), each
followed by ``gate``, ``card`` and ``verify``. Used by
``tests/test_core_install.py`` (torch, Streamlit and fairlearn blocked from
import) and by ``.ci/wheel_check.py`` (the built wheel in a fresh venv).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

OPTIONAL_MODULES = ("torch", "streamlit", "fairlearn")
"""What a core install must run without (each belongs to an extra)."""

POLICY = {
    "name": "core-install",
    "rules": [
        {"id": "accuracy-floor", "metric": "accuracy", "attribute": "fitzpatrick_group", "groups": "each",
         "statistic": "estimate", "comparator": ">=", "threshold": 0.1},
    ],
}


@dataclass
class Step:
    """One command of the flow and what it returned."""

    args: list[str]
    returncode: int
    output: str


def write_cohort(fairderm: Sequence[str], root: Path, *, n: int = 30, env: dict[str, str] | None = None) -> Path:
    """A synthetic cohort of ``n`` images in ``root/cohort`` (made by the CLI under test)."""
    cohort = root / "cohort"
    _run(fairderm, ["cohort", "synth", "--out", str(cohort), "--n", str(n), "--seed", "0"], root, env, ok=(0,))
    return cohort


def write_specs(root: Path, cohort: Path, endpoint: str) -> dict[str, Path]:
    """The two audit specs (``parquet`` and ``openai``), their predictions and policy, under ``root``."""
    manifest = pd.read_parquet(cohort / "manifest.parquet")
    labels = yaml.safe_load((cohort / "cohort.yaml").read_text(encoding="utf-8"))["labels"]
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(len(labels)), size=len(manifest))
    truth = manifest["label"].map(labels.index).to_numpy()
    probs[np.arange(len(manifest)), truth] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    predictions = pd.DataFrame(probs, columns=[f"prob_{label}" for label in labels])
    predictions.insert(0, "image_id", manifest["image_id"])
    predictions.to_parquet(root / "predictions.parquet", index=False)
    (root / "policy.yaml").write_text(yaml.safe_dump(POLICY), encoding="utf-8")
    audits = root / "audits"
    audits.mkdir(exist_ok=True)
    common = {
        "cohort": {"path": "../cohort"},
        "strata": {"attributes": ["fitzpatrick_group"], "min_n": 5},
        "bootstrap": {"n_boot": 200, "seed": 1},
        "policy": "../policy.yaml",
    }
    specs = {
        "parquet": {
            **common,
            "model": {"backend": "file", "model": "../predictions.parquet"},
            "tone": {"source": "estimate"},
            "metrics": ["accuracy", "sensitivity", "auroc"],
        },
        "openai": {
            **common,
            "model": {"backend": "openai", "model": "skingpt-r1-test", "endpoint": endpoint},
            "tone": {"source": "column", "column": "fitzpatrick_group"},
            "metrics": ["accuracy", "sensitivity"],
        },
    }
    paths = {}
    for name, spec in specs.items():
        paths[name] = audits / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return paths


def audit_gate_card_verify(
    fairderm: Sequence[str], spec: Path, *, env: dict[str, str] | None = None
) -> list[Step]:
    """``audit`` the spec, then ``gate``, ``card`` and ``verify`` its run; a step that errs raises."""
    root = spec.parent.parent
    steps = [_run(fairderm, ["audit", str(spec)], root, env, ok=(0, 1, 2))]
    runs = sorted((spec.parent / spec.stem / "runs").iterdir())
    run = str(runs[-1])
    steps.append(_run(fairderm, ["gate", run, "--policy", str(root / "policy.yaml")], root, env, ok=(0, 1, 2)))
    steps.append(_run(fairderm, ["card", run, "--out", str(root / f"card-{spec.stem}")], root, env, ok=(0,)))
    steps.append(_run(fairderm, ["verify", run], root, env, ok=(0,)))
    return steps


def _run(fairderm: Sequence[str], args: list[str], cwd: Path, env: dict[str, str] | None,
         *, ok: tuple[int, ...]) -> Step:
    done = subprocess.run([*fairderm, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    step = Step(args, done.returncode, done.stdout + done.stderr)
    if done.returncode not in ok:
        raise AssertionError(f"fairderm {' '.join(args)} exited {done.returncode}:\n{step.output[-3000:]}")
    return step


BLOCKING_LAUNCHER = '''
import sys

BLOCKED = set(sys.argv.pop(1).split(","))


class RefuseOptional:
    """Import as if the optional packages were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, RefuseOptional())
from fairderm.cli import main

code = main(sys.argv[1:])
leaked = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
if leaked:
    print(f"imported despite the block: {leaked}", file=sys.stderr)
    code = 99
sys.exit(code)
'''
"""A ``python -c`` program: ``fairderm ARGS`` with the comma-separated modules of its first argument unimportable."""
