"""Small audits for the audit tests: a tiny cohort, a predictions file, a policy, a spec.

The model is the ``file`` backend (predictions made elsewhere), so no image is
decoded. ``fake_metrics`` replaces the metrics engine with a small
deterministic one where a test is about the audit's plumbing, not metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.audit_runs import POLICY, fake_compute_metrics, write_predictions, write_tiny_cohort


@pytest.fixture
def tiny_cohort_dir(tmp_path: Path) -> Path:
    """90 cases of 30 patients, Fitzpatrick groups 40/30/20, split test/train."""
    return write_tiny_cohort(tmp_path / "cohort")


@pytest.fixture
def predictions_file(tiny_cohort_dir: Path) -> Path:
    """Class probabilities for every case: right 70% of the time."""
    return write_predictions(tiny_cohort_dir)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY), encoding="utf-8")
    return path


@pytest.fixture
def write_spec(tmp_path: Path, tiny_cohort_dir: Path, predictions_file: Path, policy_file: Path) -> Callable[..., Path]:
    """Write ``audits/NAME.yaml`` (paths relative to it); keyword overrides merge into the defaults."""
    audits = tmp_path / "audits"
    audits.mkdir(exist_ok=True)

    def _write(name: str = "tiny", **overrides: Any) -> Path:
        spec: dict[str, Any] = {
            "cohort": {"path": "../cohort", "filter": "split == 'test'"},
            "model": {"backend": "file", "model": "../model_predictions.csv"},
            "tone": {"source": "column", "column": "fitzpatrick_group"},
            "metrics": ["accuracy", "sensitivity"],
            "bootstrap": {"n_boot": 200, "seed": 3},
            "policy": "../policy.yaml",
            "outputs": {"figures": False, "card": False},  # rendering a card takes ~1 s
        }
        for key, value in overrides.items():
            if value is None:
                spec.pop(key, None)
            elif isinstance(value, dict) and isinstance(spec.get(key), dict):
                spec[key] = {**spec[key], **value}
            else:
                spec[key] = value
        path = audits / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def fake_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use :func:`fake_compute_metrics` in place of the metrics engine (audit and verify alike)."""
    monkeypatch.setattr("fairderm.audit._evaluation.compute_metrics", fake_compute_metrics)
