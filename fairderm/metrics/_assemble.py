"""One model's :class:`~fairderm.metrics.EvaluationResult`: every table and the configuration."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import package_versions
from fairderm._version import __version__
from fairderm.metrics._casemix import CASE_MIX_COLUMNS
from fairderm.metrics._engine import Engine
from fairderm.metrics._result import POWER_COLUMNS, TEST_COLUMNS, Disparities, EvaluationResult
from fairderm.metrics._table_calibration import calibration_rows
from fairderm.metrics._table_case_mix import case_mix_rows
from fairderm.metrics._table_groups import disparity_rows, group_rows
from fairderm.metrics._table_power import power_rows
from fairderm.metrics._table_tests import test_rows


def config(engine: Engine, models: Sequence[int]) -> dict[str, Any]:
    """Everything needed to reproduce the numbers of the models ``models``."""
    cases, options = engine.cases, engine.options

    def plain(label: Any) -> Any:
        return label.item() if hasattr(label, "item") else label

    return {
        "n_cases": cases.n,
        "task": "binary" if cases.binary else "multiclass",
        "labels": [plain(label) for label in cases.labels],
        "positive_label": [plain(cases.labels[i]) for i in cases.positive] or None,
        "threshold": options.threshold,
        "y_score": engine.models[models[0]].kind if len(models) == 1
        else [engine.models[m].kind for m in models],
        "metrics": [metric.name for metric in engine.metrics],
        "top_k": options.top_k,
        "n_bins": options.n_bins,
        "attributes": [a.name for a in cases.attributes],
        "intersections": [list(a.members) for a in cases.attributes if len(a.members) > 1],
        "reference": {a: engine.slots[s].name for a, s in engine.references.items()},
        "n_boot": options.n_boot,
        "ci": options.ci,
        "disparity_ci": "percentile",
        "confidence": options.confidence,
        "seed": options.seed,
        "cluster": cases.cluster_name,
        "n_clusters": None if cases.cluster is None else int(np.unique(cases.cluster).size),
        "resampling": (
            f"stratified by {' x '.join(a.name for a in cases.attributes if len(a.members) == 1) or 'nothing'}"
            + (f"; clusters ({cases.cluster_name}) resampled within strata" if cases.cluster is not None
               else "; cases resampled within strata")
        ),
        "min_group_size": options.min_group_size,
        "min_positives": options.min_positives,
        "p_adjust": options.p_adjust,
        "n_perm": options.n_perm,
        "inputs_sha256": inputs_hash(engine, models),
        "fairderm": __version__,
        "versions": package_versions(("numpy", "scipy", "pandas", "statsmodels", "scikit-learn")),
    }


def inputs_hash(engine: Engine, models: Sequence[int]) -> str:
    """SHA-256 of the labels, groups, clusters, scores and model outputs the numbers came from."""
    digest = hashlib.sha256()
    arrays = [engine.cases.y] + [a.codes for a in engine.cases.attributes]
    if engine.cases.cluster is not None:
        arrays.append(engine.cases.cluster)
    arrays.extend(engine.cases.scores.values())
    for m in models:
        model = engine.models[m]
        arrays.append(model.pred if model.proba is None else model.proba)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr([str(label) for label in engine.cases.labels]).encode())
    return digest.hexdigest()


def evaluation_result(engine: Engine, m: int) -> EvaluationResult:
    """Every table of model ``m`` with the configuration that produced it."""
    options = engine.options
    return EvaluationResult(
        groups=group_rows(engine, m),
        disparities=Disparities(disparity_rows(engine, m)),
        tests=test_rows(engine, m) if options.tests else pd.DataFrame(columns=TEST_COLUMNS),
        calibration=calibration_rows(engine, m),
        case_mix=case_mix_rows(engine, m) if options.case_mix else pd.DataFrame(columns=CASE_MIX_COLUMNS),
        power=power_rows(engine, m) if options.power else pd.DataFrame(columns=POWER_COLUMNS),
        config=config(engine, [m]),
    )
