"""Case-mix adjustment: is a group's lower accuracy explained by what its
cases are (diagnosis, age, sex, body site) rather than by who they are?

A logistic regression of per-case correctness on the group (treatment-coded
against a reference group), the true diagnosis and optional covariates,
fitted as a binomial GLM with statsmodels; standard errors are
cluster-robust by patient when a cluster is given (Liang & Zeger 1986).
Adjusted odds ratios are reported beside the unadjusted ones from a model
with the group alone.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from fairderm.errors import InputError

CASE_MIX_COLUMNS = [
    "attribute", "group", "reference", "n", "accuracy", "raw_or", "raw_ci_low", "raw_ci_high",
    "adjusted_or", "ci_low", "ci_high", "p_value", "adjusted_for", "se", "flag",
]


def _dummies(values: pd.Series, prefix: str, reference: Any = None) -> pd.DataFrame:
    categories = pd.Categorical(values.astype(str))
    levels = list(categories.categories)
    if reference is not None and str(reference) in levels:
        levels = [str(reference)] + [v for v in levels if v != str(reference)]
    frame = pd.get_dummies(pd.Categorical(values.astype(str), categories=levels), prefix=prefix, prefix_sep="=",
                           dtype=np.float64)
    return frame.iloc[:, 1:]


def _covariate_matrix(covariates: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for column in covariates.columns:
        values = covariates[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            parts.append(values.astype(np.float64).rename(str(column)).to_frame())
        else:
            parts.append(_dummies(values, str(column)))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=covariates.index)


def _fit(y: np.ndarray, design: pd.DataFrame, cluster: np.ndarray | None):
    # imported here: statsmodels.api takes about a second to import, which every CLI command paid
    import statsmodels.api as sm

    model = sm.GLM(y, sm.add_constant(design, has_constant="add"), family=sm.families.Binomial())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cluster is not None:
            return model.fit(cov_type="cluster", cov_kwds={"groups": cluster})
        return model.fit()


def case_mix_adjustment(
    correct: Any,
    group: Any,
    diagnosis: Any,
    *,
    covariates: pd.DataFrame | None = None,
    cluster: Any = None,
    reference: Any = None,
    attribute: str = "group",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Adjusted odds ratios of a correct prediction for each group vs a reference.

    Parameters
    ----------
    correct
        Per-case correctness (bool or 0/1).
    group
        Group of each case (one attribute).
    diagnosis
        True label of each case (adjusted for as a categorical).
    covariates
        Optional further columns (numeric as is; others as categories).
        Rows with a missing covariate are left out of both models.
    cluster
        Patient (or lesion) id per case for cluster-robust standard errors.
    reference
        Reference group value; default the largest group.
    attribute
        Name written in the ``attribute`` column.
    confidence
        Coverage of the Wald intervals.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CASE_MIX_COLUMNS`, one row per non-reference group.
        ``flag``: ``ok``, ``separation`` (the group is all correct or all wrong:
        its odds ratio is not estimable and its rows are left out), or
        ``failed`` (the model could not be fitted).
    """
    frame = pd.DataFrame({
        "correct": np.asarray(correct, dtype=np.float64),
        "group": pd.Series(np.asarray(group, dtype=object)).astype(str).to_numpy(),
        "diagnosis": pd.Series(np.asarray(diagnosis, dtype=object)).astype(str).to_numpy(),
    })
    if cluster is not None:
        frame["cluster"] = pd.Series(np.asarray(cluster, dtype=object)).astype(str).to_numpy()
    extra = _covariate_matrix(covariates.reset_index(drop=True)) if covariates is not None else pd.DataFrame()
    if len(extra.columns):
        if len(extra) != len(frame):
            raise InputError(f"has {len(extra)} rows for {len(frame)} cases", column="covariates")
        keep = extra.notna().all(axis=1).to_numpy()
        frame, extra = frame[keep].reset_index(drop=True), extra[keep].reset_index(drop=True)
    sizes = frame["group"].value_counts()
    reference = str(reference) if reference is not None else str(sizes.idxmax())
    if reference not in sizes.index:
        raise InputError(f"reference group {reference!r} has no cases", column="reference")
    rates = frame.groupby("group")["correct"].mean()
    separated = [g for g, rate in rates.items() if rate in (0.0, 1.0)]
    rows = []
    kept = ~frame["group"].isin(separated).to_numpy()
    usable = frame[kept].reset_index(drop=True)
    extra_usable = extra[kept].reset_index(drop=True) if len(extra.columns) else extra
    z = float(ndtri(0.5 + confidence / 2.0))
    adjusted_for = ["diagnosis", *[str(c) for c in (covariates.columns if covariates is not None else [])]]
    se = "cluster-robust" if cluster is not None else "model-based"
    raw = adjusted = None
    if reference not in separated and usable["group"].nunique() >= 2:
        clusters = pd.factorize(usable["cluster"])[0] if cluster is not None else None
        groups = _dummies(usable["group"], "group", reference)
        try:
            raw = _fit(usable["correct"].to_numpy(), groups, clusters)
            design = pd.concat([groups, _dummies(usable["diagnosis"], "diagnosis"), extra_usable], axis=1)
            adjusted = _fit(usable["correct"].to_numpy(), design, clusters)
        except (np.linalg.LinAlgError, ValueError):
            raw = adjusted = None
    for name in sorted(sizes.index):
        if name == reference:
            continue
        record: dict[str, Any] = {
            "attribute": attribute, "group": name, "reference": reference, "n": int(sizes[name]),
            "accuracy": float(rates[name]), "adjusted_for": adjusted_for, "se": se,
        }
        key = f"group={name}"
        if name in separated or reference in separated:
            record.update(_empty(), flag="separation")
        elif raw is None or adjusted is None or key not in adjusted.params.index:
            record.update(_empty(), flag="failed")
        else:
            record.update(
                raw_or=math.exp(raw.params[key]),
                raw_ci_low=math.exp(raw.params[key] - z * raw.bse[key]),
                raw_ci_high=math.exp(raw.params[key] + z * raw.bse[key]),
                adjusted_or=math.exp(adjusted.params[key]),
                ci_low=math.exp(adjusted.params[key] - z * adjusted.bse[key]),
                ci_high=math.exp(adjusted.params[key] + z * adjusted.bse[key]),
                p_value=float(adjusted.pvalues[key]),
                flag="ok" if np.isfinite(adjusted.bse[key]) else "failed",
            )
        rows.append(record)
    return pd.DataFrame(rows, columns=CASE_MIX_COLUMNS)


def _empty() -> dict[str, float]:
    return {k: math.nan for k in ("raw_or", "raw_ci_low", "raw_ci_high", "adjusted_or", "ci_low", "ci_high",
                                  "p_value")}
