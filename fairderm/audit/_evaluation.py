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

Estimated strata
----------------
``fitzpatrick_est`` is an estimate, and metrics.json says so (basis
``estimated``). With validation labels (``tone.validation_labels`` or
``tone.validation_column``) the metrics engine adds ``fitzpatrick_est:true``,
metrics by true group corrected for the estimate's errors (basis
``corrected``); without them, ``tone.strata_error`` (default: the published
agreement of colour estimates with dermatologists) adds
``fitzpatrick_est:bounds``, the range of each rate metric and gap that the
error model allows (basis ``bounded``). See :mod:`fairderm.metrics._strata`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm.audit._spec import AuditSpec
from fairderm.cohort import CohortSpec, fitzpatrick_to_group
from fairderm.errors import InputError
from fairderm.metrics import EvaluationResult, StrataErrorModel

MISSING = "missing"
#: The estimated attribute that validation labels and error models apply to.
ESTIMATED_GROUP = "fitzpatrick_est"
#: Label values read as "no label" (the labeller could not tell).
NO_LABEL = frozenset({"", "cannot_tell", "cannot tell", "unknown", "na", "n/a"})
_GROUP_OF = {"1": "I-II", "2": "I-II", "3": "III-IV", "4": "III-IV", "5": "V-VI", "6": "V-VI",
             "i": "I-II", "ii": "I-II", "iii": "III-IV", "iv": "III-IV", "v": "V-VI", "vi": "V-VI",
             "i-ii": "I-II", "iii-iv": "III-IV", "v-vi": "V-VI"}


@dataclass
class StrataInputs:
    """How far the estimated strata can be trusted: validation labels or an error model.

    Attributes
    ----------
    true_group
        Per manifest image id: the labelled Fitzpatrick group (I-II, III-IV,
        V-VI), only for labelled cases.
    inclusion
        Per labelled image id: its inclusion probability, when recorded.
    error_model
        The error model that bounds the metrics when nothing is labelled.
    source
        Where the labels came from, in words.
    """

    true_group: dict[str, str] = field(default_factory=dict)
    inclusion: dict[str, float] = field(default_factory=dict)
    error_model: StrataErrorModel | None = None
    source: str = ""
    #: Sampled images without an answer (not yet labelled, or "cannot tell").
    n_cannot_tell: int = 0


def _label_group(value: Any, where: str, row: int, column: str) -> str | None:
    """A Fitzpatrick group from a type 1-6, a roman type or a group name; None for no label."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if text.lower() in NO_LABEL:
        return None
    group = _GROUP_OF.get(text.lower())
    if group is None:
        raise InputError(f"label {text!r} is not a Fitzpatrick type (1-6, I-VI) or group (I-II, III-IV, V-VI)",
                         source=where, row=row, column=column)
    return group


def strata_inputs(spec: AuditSpec, manifest: pd.DataFrame, *, cohort_ids: set[str], labels: Path | None,
                  error_model: Path | None) -> StrataInputs | None:
    """Validation labels (from the labels CSV or a manifest column) or the strata error model of a spec.

    ``manifest`` holds the audited cases, ``cohort_ids`` every image id of the
    cohort. ``labels`` and ``error_model`` are the files to read (the spec's,
    or the run folder's copies when verify recomputes).
    """
    tone = spec.tone
    if not tone.estimated:
        return None
    ids = manifest["image_id"].astype(str)
    if tone.validation_column:
        column = tone.validation_column
        if column not in manifest.columns:
            raise InputError(f"key 'tone.validation_column': the manifest has no column {column!r}")
        out = StrataInputs(source=f"manifest column {column!r}")
        for row, (image_id, value) in enumerate(zip(ids, manifest[column]), start=1):
            group = _label_group(value, "manifest", row, column)
            if group is not None:
                out.true_group[image_id] = group
        if tone.validation_inclusion:
            if tone.validation_inclusion not in manifest.columns:
                raise InputError(f"key 'tone.validation_inclusion': the manifest has no column "
                                 f"{tone.validation_inclusion!r}")
            probs = pd.to_numeric(manifest[tone.validation_inclusion], errors="coerce")
            out.inclusion = {i: float(p) for i, p in zip(ids, probs) if i in out.true_group}
        return out
    if labels is not None:
        return _labels_file(labels, cohort_ids, set(ids))
    if tone.strata_error == "none":
        return None
    model = StrataErrorModel.published() if error_model is None else StrataErrorModel.from_csv(error_model)
    return StrataInputs(error_model=model, source=model.source)


def _labels_file(path: Path, cohort_ids: set[str], audited: set[str]) -> StrataInputs:
    """The labels CSV (``fairderm tone label`` writes it; any CSV with image_id and label will do).

    Images of the cohort outside the audited cases are left out (a filter
    that does not look at the labels keeps the design valid). Sampled images
    without an answer -- not yet labelled, or "cannot tell" -- are taken as
    missing at random within their stratum: with a ``stratum`` column, the
    inclusion probability of an answered image is the draw's times its
    stratum's answer rate.
    """
    try:
        frame = pd.read_csv(path, dtype={"image_id": str}, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the validation labels ({error})", source=str(path)) from None
    for column in ("image_id", "label"):
        if column not in frame.columns:
            raise InputError(f"no column {column!r} (have {list(frame.columns)})", source=str(path), column=column)
    out = StrataInputs(source=f"validation labels {path.name}")
    seen: set[str] = set()
    has_prob = "inclusion_prob" in frame.columns
    answered = np.zeros(len(frame), dtype=bool)
    groups: list[str | None] = []
    probabilities = np.full(len(frame), np.nan)
    for row, record in enumerate(frame.itertuples(index=False), start=1):
        image_id = str(record.image_id)
        if image_id not in cohort_ids:
            raise InputError(f"image id {image_id!r} is not in the cohort", source=str(path), row=row,
                             column="image_id")
        if image_id in seen:
            raise InputError(f"image id {image_id!r} is listed twice", source=str(path), row=row, column="image_id")
        seen.add(image_id)
        if has_prob:
            value = pd.to_numeric(pd.Series([record.inclusion_prob]), errors="coerce").iloc[0]
            if not (0 < value <= 1):
                raise InputError(f"inclusion probability {record.inclusion_prob!r} is outside (0, 1]",
                                 source=str(path), row=row, column="inclusion_prob")
            probabilities[row - 1] = float(value)
        group = _label_group(record.label, str(path), row, "label")
        groups.append(group)
        answered[row - 1] = group is not None
    rate = np.ones(len(frame))
    if "stratum" in frame.columns:
        stratum = frame["stratum"].astype(str).to_numpy()
        for value in set(stratum):
            members = stratum == value
            rate[members] = answered[members].mean()
    for row, image_id in enumerate(frame["image_id"].astype(str)):
        if not answered[row]:
            out.n_cannot_tell += 1
            continue
        if image_id not in audited:
            continue
        out.true_group[image_id] = str(groups[row])
        if has_prob:
            out.inclusion[image_id] = float(probabilities[row] * rate[row])
    if not out.true_group:
        raise InputError("no image is labelled", source=str(path), column="label")
    return out


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
    true_groups: np.ndarray | None = None
    inclusion_prob: np.ndarray | None = None
    strata_error: StrataErrorModel | None = None
    estimated: list[str] = field(default_factory=list)
    scores: dict[str, np.ndarray] = field(default_factory=dict)


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
    trust: StrataInputs | None = None,
    scores: Any = None,
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
    trust
        Validation labels or the strata error model (:func:`strata_inputs`), or None.
    scores
        The reports' scores (a :class:`fairderm.reasoning.ScoreTable`), or None.
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
    kept_ids = ids.to_numpy(dtype=object)[keep]
    estimated = [a for a in attributes if a in ("fitzpatrick_est", "fitzpatrick_est_type", "monk_est")]
    true_groups = inclusion = error_model = None
    if trust is not None and ESTIMATED_GROUP in attributes:
        if trust.true_group:
            true_groups = np.array([trust.true_group.get(i) for i in kept_ids], dtype=object)
            if trust.inclusion:
                inclusion = np.array([trust.inclusion.get(i, np.nan) for i in kept_ids], dtype=np.float64)
        else:
            error_model = trust.error_model
    return EvaluationTable(
        image_ids=kept_ids,
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
        true_groups=true_groups,
        inclusion_prob=inclusion,
        strata_error=error_model,
        estimated=estimated,
        scores=scores.score_columns(kept_ids) if scores is not None else {},
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


def compute_metrics(table: EvaluationTable, spec: AuditSpec) -> EvaluationResult:
    """Run the metrics engine: the run's metrics (written as metrics.json)."""
    from fairderm.metrics import evaluate

    # the estimated group first: an error model bounds the first estimated attribute
    estimated = sorted(table.estimated, key=lambda attribute: attribute != ESTIMATED_GROUP)
    strata: dict[str, Any] = {"estimated": estimated or None}
    if table.true_groups is not None:
        strata.update(true_groups={ESTIMATED_GROUP: table.true_groups}, inclusion_prob=table.inclusion_prob)
    elif table.strata_error is not None:
        strata["strata_error"] = table.strata_error
    config = metrics_config(spec, table)
    if table.scores:
        # every score column is audited: the judge's dimensions and the deterministic checks
        config["metrics"] += [f"mean_score:{name}" for name in table.scores if f"mean_score:{name}" not in
                              config["metrics"]]
    return evaluate(table.y_true, table.y_score, table.groups, cluster=table.cluster,
                    covariates=table.covariates, scores=table.scores or None, **strata, **config)
