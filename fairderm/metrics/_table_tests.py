"""Tests of any difference across an attribute's groups, one per metric
(see :mod:`fairderm.metrics._significance` for the tests and the adjustment)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fairderm.metrics import _catalogue as cat
from fairderm.metrics._bootstrap import CHUNK_ELEMENTS, run_in_threads
from fairderm.metrics._engine import Engine, build_group_stats, target_arrays
from fairderm.metrics._result import TEST_COLUMNS
from fairderm.metrics._significance import adjust_pvalues, group_range, permutation_pvalue, proportion_test


def test_rows(engine: Engine, m: int) -> pd.DataFrame:
    """One test per attribute and metric over the groups flagged ``ok``, p-values adjusted together.

    As for gaps and ratios, a group flagged ``insufficient`` (or ``undefined``,
    ``missing_value``) is left out: a handful of cases must not drive the test.
    With fewer than two ``ok`` groups the test is not done and its row says so.
    """
    rows: list[dict[str, Any]] = []
    clustered = engine.cases.cluster is not None
    for attribute in engine.cases.attributes:
        present = engine.present_slots(attribute.name)
        permuted: dict[tuple[int, ...], list[int]] = {}
        for k, metric in enumerate(engine.metrics):
            ids = [s for s in present if engine.flag(m, s, k) == "ok"]
            if len(ids) < 2:
                rows.append(_untested_row(engine, attribute.name, metric.name, ids, present))
            elif metric.is_proportion and not clustered:
                counts = [engine.counts[m][s][k] for s in ids]
                result = proportion_test([c.successes for c in counts], [c.trials for c in counts],
                                         seed=engine.options.seed)
                tested = [engine.slots[s].name for s, c in zip(ids, counts) if c.trials]
                rows.append({"metric": metric.name, "attribute": attribute.name, "n_groups": len(tested),
                             "groups": tested, "n_perm": None, "flag": "ok", **result})
            else:
                permuted.setdefault(tuple(ids), []).append(k)
        # Metrics with the same ok groups share one set of permutations.
        for ids, ks in permuted.items():
            rows.extend(_permutation_rows(engine, m, attribute.name, list(ids), ks))
    frame = pd.DataFrame(rows, columns=TEST_COLUMNS)
    frame["method"] = engine.options.p_adjust
    frame["p_adjusted"] = adjust_pvalues(frame["p_value"].to_numpy(dtype=np.float64), engine.options.p_adjust)
    return frame


def _untested_row(engine: Engine, attribute: str, metric: str, ids: list[int], present: list[int]) -> dict[str, Any]:
    """The row of a test not done: fewer than two groups flagged ok."""
    single = len(present) < 2
    return {"metric": metric, "attribute": attribute, "test": "none", "statistic": math.nan, "dof": None,
            "p_value": math.nan, "n_groups": len(ids), "groups": [engine.slots[s].name for s in ids],
            "n_perm": None, "flag": "single_group" if single else "insufficient",
            "note": "fewer than two groups with cases" if single else "fewer than two groups flagged ok"}


def _permutation_rows(engine: Engine, m: int, attribute: str, ids: list[int], ks: list[int]) -> list[dict[str, Any]]:
    names = [engine.metrics[k].name for k in ks]
    base = {"attribute": attribute, "test": "permutation", "statistic": math.nan, "dof": None,
            "p_value": math.nan, "n_groups": len(ids), "groups": [engine.slots[s].name for s in ids],
            "n_perm": engine.options.n_perm, "flag": "ok"}
    if not engine.options.n_perm:
        return [{**base, "metric": name, "note": "n_perm = 0"} for name in names]
    observed, permuted = _permute(engine, m, ids, ks)
    p = permutation_pvalue(observed, permuted)
    unit = "clusters" if engine.cases.cluster is not None else "cases"
    return [{**base, "metric": name, "statistic": float(observed[i]), "p_value": float(p[i]),
             "note": f"max-min range across groups; group labels permuted over {unit}"}
            for i, name in enumerate(names)]


def _permute(engine: Engine, m: int, ids: list[int], ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Observed and permuted max-min ranges of the metrics ``ks`` across the groups ``ids``."""
    cases, model = engine.cases, engine.models[m]
    rows = np.concatenate([engine.slots[s].rows for s in ids])
    labels = np.repeat(np.arange(len(ids)), [engine.slots[s].n for s in ids])
    # Ranked by the first AUROC score, so that its permuted numerators need no gather.
    if engine.layout.targets and model.proba is not None:
        key = target_arrays(cases, model, engine.layout.targets[0])[0][engine.design.order[rows]]
        order = np.lexsort((rows, key))
    else:
        order = np.argsort(rows, kind="stable")
    rows, labels = rows[order], labels[order]
    original = engine.design.order[rows]
    calibration = cat.calibration_inputs(cases, model)
    edges = None if calibration is None else cat.equal_mass_edges(calibration[0][original], engine.options.n_bins)
    stats = build_group_stats(cases, model, engine.layout, original, edges, slice(None))
    if cases.cluster is not None:
        width = int(cases.cluster.max()) + 1
        unit_keys, unit_of_case = np.unique(labels * width + cases.cluster[original], return_inverse=True)
        unit_labels = unit_keys // width
        unit_of_case = unit_of_case.reshape(-1)
    else:
        unit_labels, unit_of_case = labels, None

    def ranges(case_labels: np.ndarray) -> np.ndarray:
        per_group = []
        for g in range(len(ids)):
            weights = (case_labels == g).astype(np.float32)
            lin, auc = stats.statistics(weights)
            per_group.append(engine.values(lin, auc)[:, ks])
        return group_range(np.stack(per_group, axis=-1))

    observed_per_group = []
    for g in range(len(ids)):
        lin, auc = stats.statistics((labels == g).astype(np.float64)[None, :])
        observed_per_group.append(engine.values(lin, auc)[:, ks])
    observed = group_range(np.stack(observed_per_group, axis=-1))[0]
    P = engine.options.n_perm
    size = max(1, min(P, CHUNK_ELEMENTS // 4 // max(rows.size, 1)))
    bounds = [(lo, min(lo + size, P)) for lo in range(0, P, size)]
    seeds = np.random.SeedSequence([engine.options.seed, 7919]).spawn(len(bounds))
    permuted = np.full((P, len(ks)), np.nan)

    def task(i: int) -> None:
        lo, hi = bounds[i]
        rng = np.random.default_rng(seeds[i])
        shuffled = rng.permuted(np.tile(unit_labels.astype(np.int32), (hi - lo, 1)), axis=1)
        case_labels = shuffled if unit_of_case is None else np.take(shuffled, unit_of_case, axis=1)
        permuted[lo:hi] = ranges(case_labels)

    run_in_threads([lambda i=i: task(i) for i in range(len(bounds))], engine.options.threads)
    return observed, permuted
