"""From a run's tables to the metrics engine's inputs, and back to ``metrics.json``.

The audit and ``fairderm verify`` both go through :func:`evaluation_table`
and :func:`compute_metrics`, so that verification recomputes the metrics
exactly as the audit did, from the files stored in the run folder.

Which cases are evaluated
-------------------------
Every selected case whose prediction has status ``ok``. Cases whose
prediction failed (``error``) or could not be parsed (``unparseable``) are
left out of the metrics and counted in ``coverage`` per stratum, so that a
model that fails more often on dark skin is visible rather than flattered.

Strata values
-------------
``fitzpatrick_est`` is the tone stage's estimated type grouped into I-II,
III-IV, V-VI; ``fitzpatrick_est_type`` the type 1-6; ``monk_est`` 1-10.
A case whose tone estimate abstained, or whose attribute value is missing,
gets no value (None); the metrics engine collects those cases in the group
``missing`` of that attribute and reports it like any group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fairderm.audit._spec import AuditSpec
from fairderm.cohort import CohortSpec, fitzpatrick_to_group
from fairderm.errors import InputError

MISSING = "missing"


@dataclass
class EvaluationTable:
    """The arrays the metrics engine is called with, and what was left out.

    Attributes
    ----------
    image_ids
        Evaluated cases, in manifest order.
    y_true
        Labels (0/1 for a binary task, label names for a multiclass one).
    y_score
        Positive-class score (binary), class probabilities (n x k,
        multiclass) or predicted labels when the model gives no probabilities.
    labels
        Label set, in the column order of ``y_score``.
    groups
        Attribute name -> group value per case.
    intersections
        Attribute combinations to cross.
    cluster
        Resampling clusters per case (None: cases are resampled).
    positive_label
        The positive event: 1 for a binary task, the cohort's positive
        classes for task 'auto' when it has them, else None.
    covariates
        Case-mix covariates per case (manifest columns), or None.
    coverage
        Selected and evaluated cases and prediction statuses, overall and per
        stratum of each attribute.
    """

    image_ids: np.ndarray
    y_true: np.ndarray
    y_score: np.ndarray
    labels: list[Any]
    groups: dict[str, np.ndarray]
    intersections: list[list[str]]
    cluster: np.ndarray | None
    positive_label: Any
    covariates: pd.DataFrame | None = None
    coverage: dict[str, Any] = field(default_factory=dict)


def _task(spec: AuditSpec, cohort_spec: CohortSpec) -> str:
    task = spec.metrics.task
    if task == "binary" and not cohort_spec.positive_classes:
        raise InputError("key 'metrics.task': 'binary' needs the cohort's positive_classes (cohort.yaml)")
    return task


def strata_frame(manifest: pd.DataFrame, tone: pd.DataFrame | None, attributes: list[str]) -> pd.DataFrame:
    """Group value of every case for each attribute (None when missing)."""
    out = pd.DataFrame(index=manifest.index)
    estimates = None
    if tone is not None:
        ok = tone.assign(image_id=tone["image_id"].astype(str)).set_index("image_id")
        ok = ok.reindex(manifest["image_id"].astype(str))
        usable = (ok["status"] == "ok").fillna(False).to_numpy()
        types = ok["fitzpatrick_est"].astype("Int8").where(usable)
        estimates = {
            "fitzpatrick_est": fitzpatrick_to_group(types.astype("Int8")),
            "fitzpatrick_est_type": types,
            "monk_est": ok["monk_est"].astype("Int8").where(usable),
        }
    for attribute in attributes:
        if estimates is not None and attribute in estimates:
            values = pd.Series(estimates[attribute].to_numpy(), index=manifest.index)
        elif attribute in manifest.columns:
            values = manifest[attribute]
        else:
            raise InputError(f"no column {attribute!r} for strata (neither in the manifest nor from tone)")
        text = values.astype("string")
        out[attribute] = [None if pd.isna(v) else str(v) for v in text]
    return out


def _coverage(status: pd.Series, strata: pd.DataFrame) -> dict[str, Any]:
    def counts(mask: np.ndarray) -> dict[str, int]:
        values = status[mask]
        return {
            "selected": int(mask.sum()),
            "evaluated": int((values == "ok").sum()),
            "error": int((values == "error").sum()),
            "unparseable": int((values == "unparseable").sum()),
            "missing": int(values.isna().sum()),
        }

    everyone = np.ones(len(status), dtype=bool)
    by_attribute = {}
    for attribute in strata.columns:
        labels = strata[attribute].fillna(MISSING).astype(str)
        by_attribute[attribute] = {g: counts((labels == g).to_numpy()) for g in sorted(set(labels))}
    return {"all": counts(everyone), "by_attribute": by_attribute}


def evaluation_table(
    manifest: pd.DataFrame,
    cohort_spec: CohortSpec,
    tone: pd.DataFrame | None,
    predictions: pd.DataFrame,
    spec: AuditSpec,
    *,
    cluster: str | None,
) -> EvaluationTable:
    """Join the selected manifest rows, tone estimates and predictions.

    Parameters
    ----------
    manifest
        The audited cases (the spec's filter applied), manifest order.
    cohort_spec
        The cohort's ``cohort.yaml`` (labels, positive classes).
    tone
        The tone table, or None when tone comes from a column or is off.
    predictions
        The predictions table (one row per audited case).
    spec
        The audit spec (strata, metrics task).
    cluster
        Resolved cluster column, or None.
    """
    manifest = manifest.reset_index(drop=True)
    attributes = list(dict.fromkeys(spec.stratum_attributes() + [a for c in spec.strata.intersections for a in c]))
    strata = strata_frame(manifest, tone, attributes)
    ids = manifest["image_id"].astype(str)
    preds = predictions.assign(image_id=predictions["image_id"].astype(str)).drop_duplicates("image_id")
    preds = preds.set_index("image_id").reindex(ids)
    status = preds["status"].astype("string").reset_index(drop=True)
    coverage = _coverage(status, strata)
    keep = (status == "ok").fillna(False).to_numpy(dtype=bool)
    if not keep.any():
        raise InputError("no case has a usable prediction (status ok); nothing to evaluate", column="status")

    labels = list(cohort_spec.labels)
    prob_columns = [f"prob_{label}" for label in labels]
    has_probs = all(c in preds.columns for c in prob_columns) and preds.loc[ids[keep], prob_columns].notna().all().all()
    y_label = manifest["label"].astype(str).to_numpy()[keep]
    task = _task(spec, cohort_spec)
    positives = list(cohort_spec.positive_classes)
    if task == "binary":
        y_true: np.ndarray = np.isin(y_label, positives).astype(np.int64)
        if has_probs:
            y_score = preds.loc[ids[keep], [f"prob_{p}" for p in positives]].to_numpy(dtype=np.float64).sum(axis=1)
            y_score = np.clip(y_score, 0.0, 1.0)  # float round-off of a sum of probabilities
        else:
            y_score = np.isin(preds["pred"].astype(str).to_numpy()[keep], positives).astype(np.int64)
        eval_labels: list[Any] = [0, 1]
        positive_label: Any = 1
    else:
        y_true = y_label.astype(object)
        if has_probs:
            y_score = preds.loc[ids[keep], prob_columns].to_numpy(dtype=np.float64)
        else:
            y_score = preds["pred"].astype(str).to_numpy(dtype=object)[keep]
        eval_labels = labels
        positive_label = positives if task == "auto" and positives else None
    cluster_values = None
    if cluster is not None:
        # a case without a cluster id is a cluster of its own, never pooled with the others
        own = "case:" + manifest["image_id"].astype("string")
        cluster_values = manifest[cluster].astype("string").fillna(own).to_numpy(dtype=object)[keep]
    return EvaluationTable(
        image_ids=ids.to_numpy(dtype=object)[keep],
        y_true=y_true,
        y_score=y_score,
        labels=eval_labels,
        groups={a: strata[a].to_numpy(dtype=object)[keep] for a in attributes},
        intersections=[list(c) for c in spec.strata.intersections],
        cluster=cluster_values,
        positive_label=positive_label,
        covariates=(manifest.loc[keep, list(spec.metrics.covariates)].reset_index(drop=True)
                    if spec.metrics.covariates else None),
        coverage=coverage,
    )


def metrics_config(spec: AuditSpec, table: EvaluationTable) -> dict[str, Any]:
    """Keyword arguments of :func:`fairderm.metrics.evaluate` for this spec."""
    return {
        "labels": table.labels,
        "metrics": list(spec.metrics.names),
        "n_boot": spec.bootstrap.n_boot,
        "ci": spec.bootstrap.ci,
        "confidence": spec.bootstrap.confidence,
        "seed": spec.bootstrap.seed,
        "threshold": spec.metrics.threshold,
        "positive_label": table.positive_label,
        "min_group_size": spec.strata.min_n,
        "min_positives": spec.strata.min_pos,
        "reference": dict(spec.strata.reference) or None,
        "intersections": table.intersections or None,
        "p_adjust": spec.metrics.p_adjust,
        "n_perm": spec.metrics.n_perm,
    }


def compute_metrics(table: EvaluationTable, spec: AuditSpec) -> dict[str, Any]:
    """Run the metrics engine; returns ``EvaluationResult.to_dict()`` (the content of metrics.json)."""
    from fairderm.metrics import evaluate

    result = evaluate(table.y_true, table.y_score, table.groups, cluster=table.cluster,
                      covariates=table.covariates, **metrics_config(spec, table))
    return result.to_dict()
