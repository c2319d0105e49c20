"""The metrics.json numbers of fixed seeded inputs are pinned to a golden file.

``refactor_identity_golden.json`` was written by the code before the engine was
split into modules; a restructuring of :mod:`fairderm.metrics` must leave every
number unchanged. Only a deliberate change of behaviour may rewrite it
(``FAIRDERM_WRITE_GOLDEN=1 pytest tests/metrics/test_refactor_identity.py``),
and its commit says which part changed and why.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fairderm.metrics import StrataErrorModel, compare, evaluate

GOLDEN = Path(__file__).with_name("refactor_identity_golden.json")
#: Config keys that name the installed software, not the computation.
UNPINNED_CONFIG = ("fairderm", "versions")


def _pinned(data: dict[str, Any]) -> dict[str, Any]:
    if "results" in data:
        return {**data, "results": {name: _pinned(result) for name, result in data["results"].items()},
                "config": {k: v for k, v in data["config"].items() if k not in UNPINNED_CONFIG}}
    return {**data, "config": {k: v for k, v in data["config"].items() if k not in UNPINNED_CONFIG}}


def _outputs(binary, multiclass) -> dict[str, Any]:
    groups = {"tone": binary.group, "sex": binary.sex}
    rating = np.where(np.arange(binary.y.size) % 7 == 0, np.nan, (np.arange(binary.y.size) % 6).astype(float))
    covariates = pd.DataFrame({"site": np.where(np.arange(binary.y.size) % 3 == 0, "trunk", "limb")})
    other = np.clip(binary.score + np.where(binary.group == "V-VI", 0.05, -0.02), 0.0, 1.0)
    true_tone = np.where(np.arange(binary.y.size) % 4 == 0, binary.group, None)
    runs = {
        "binary_independent": evaluate(binary.y, binary.score, groups, intersections="all", scores={"rating": rating},
                                       covariates=covariates, n_bins=5, n_boot=200, n_perm=200, seed=3, workers=1),
        "binary_clustered": evaluate(binary.y, binary.score, groups, cluster=pd.Series(binary.patient, name="patient"),
                                     reference={"tone": "I-II"}, n_bins=5, n_boot=200, n_perm=200, seed=5,
                                     workers=1),
        "multiclass": evaluate(multiclass.y, multiclass.proba, multiclass.group, ci="percentile", n_boot=200,
                               n_perm=200, seed=1, workers=1),
        "multiclass_positive": evaluate(multiclass.y, multiclass.proba, multiclass.group,
                                        positive_label=["melanoma", "bcc"], n_boot=200, n_perm=100, seed=2,
                                        workers=1),
        "strata_corrected": evaluate(binary.y, binary.score, {"tone": binary.group}, true_groups=true_tone,
                                     case_mix=False, power=False, n_boot=200, n_perm=100, seed=4, workers=1),
        "strata_bounded": evaluate(binary.y, binary.score, {"tone": binary.group},
                                   strata_error=StrataErrorModel.published(), case_mix=False, power=False,
                                   n_boot=200, n_perm=100, seed=6, workers=1),
        "comparison": compare(binary.y, binary.score, other, {"tone": binary.group}, names=("base", "tuned"),
                              n_boot=200, n_perm=100, seed=8, workers=1),
    }
    return {name: _pinned(json.loads(result.to_json())) for name, result in runs.items()}


def _differences(got: Any, want: Any, path: str) -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{path}: keys {sorted(set(got) ^ set(want))} differ"]
        return [d for key in want for d in _differences(got[key], want[key], f"{path}.{key}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items, golden {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in _differences(g, w, f"{path}[{i}]")]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        # Relative 1e-9: equal computations on another BLAS or CPU may differ in the last bits only.
        return [] if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {got!r} != {want!r}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def _golden_text(outputs: dict[str, Any]) -> str:
    """JSON with one record per line, so that a deliberate change shows as a readable diff."""
    def lines(value: Any, indent: str) -> str:
        if isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
            items = [f"{indent} {json.dumps(k)}: {lines(v, indent + ' ')}" for k, v in sorted(value.items())]
            return "{\n" + ",\n".join(items) + f"\n{indent}}}"
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = [f"{indent} {json.dumps(v, sort_keys=True)}" for v in value]
            return "[\n" + ",\n".join(items) + f"\n{indent}]"
        return json.dumps(value, sort_keys=True)

    return lines(outputs, "") + "\n"


def test_metrics_json_numbers_equal_the_golden_file(binary, multiclass):
    outputs = _outputs(binary, multiclass)
    if os.environ.get("FAIRDERM_WRITE_GOLDEN"):
        GOLDEN.write_text(_golden_text(outputs))
        pytest.skip(f"wrote {GOLDEN.name}")
    differences = _differences(outputs, json.loads(GOLDEN.read_text()), "golden")
    assert not differences, f"{len(differences)} differences, first: {differences[:5]}"
