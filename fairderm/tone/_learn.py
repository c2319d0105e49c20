"""A skin-tone stratifier learned from validation labels: image features plus colour, nested cross-validated.

Colour alone (ITA and the skin's CIELAB) agrees with dermatologists' groups
about as well as published ITA methods do on clinical photographs (Groh et al.
2022: 0.41-0.49 three-group agreement), well below dermatologists' agreement
with each other. A classifier on a general image representation can learn
lighting and context that colour misses. This module fits a multinomial
logistic regression with an L2 penalty (Hastie, Tibshirani & Friedman 2009,
section 4.4) on

- the bundled backbone's image features (given by the caller: this package
  does not run models), and
- the tone table's colour measurements (:data:`COLOUR_FEATURES`; missing
  where the colour estimator abstained, then imputed by the training median
  with a missing-indicator column),

all standardised. Classes are weighted inversely to their frequency
(``class_weight="balanced"``): tone labels are imbalanced, and an unweighted
fit with a strong penalty predicts the commonest group for every image, which
scores a high exact agreement and leaves the audit a single stratum. The
penalty ``C`` is chosen by an inner stratified cross-validation on Cohen's
kappa with quadratic weights (Cohen 1968; chance-corrected, so a constant
prediction scores 0, and ordinal), and the whole procedure, the choice of
``C`` included, is scored by an outer stratified cross-validation (nested
cross-validation; Varma & Simon 2006), so that the reported agreement is out
of fold. The colour estimator is scored on the same labelled images.

The learned table is *preferred* only when, out of fold and on the same
images, its quadratic kappa is above the colour estimator's and its exact
agreement is not below it (an abstention counts as a disagreement in the
exact agreement: the learned model never abstains; the colour kappa is taken
over the images it measured). The difference in exact agreement has a 95%
paired percentile bootstrap interval over the labelled images (Efron &
Tibshirani 1993). Agreements are also given for the cohort, weighting each
labelled image by its inverse inclusion probability (Horvitz & Thompson 1952),
because a stratified sample over-represents the rare estimated groups.

The model is stored as numpy arrays (``model.npz``) and JSON, never as a
pickle: loading it runs no code.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairderm._io import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file, to_json_text
from fairderm._version import __version__
from fairderm.errors import InputError
from fairderm.tone._calibration import GROUP_REPRESENTATIVE_TYPE
from fairderm.tone._estimate import EXTRA_COLUMNS, TONE_COLUMNS
from fairderm.tone._labels import ToneLabels, scale_values
from fairderm.tone._scales import FITZPATRICK_GROUP_OF_TYPE

LEARNED_ESTIMATOR = "fairderm-learned/1"
MODEL_FORMAT = "fairderm-tone-model/1"
MODEL_ARRAYS = "model.npz"
MODEL_JSON = "model.json"
COLOUR_FEATURES: tuple[str, ...] = (
    "ita", "ita_low", "ita_high", "skin_fraction", "skin_L", "skin_a", "skin_b", "lesion_fraction",
)
"""Tone-table columns used as features, with the interval width ``ita_high - ita_low`` after them."""
DEFAULT_C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 1, 11))
OUTER_FOLDS = 5
INNER_FOLDS = 3
MIN_LABELLED = 20
N_BOOT = 2000


@dataclass
class ToneModel:
    """A fitted tone stratifier: preprocessing and logistic-regression weights as plain arrays.

    Attributes
    ----------
    scale, classes
        The labels' scale and the classes seen in training (values of the scale).
    feature_names
        ``backbone_0..`` then the colour columns, in the order of the design matrix.
    medians
        Training medians that replace missing values, one per feature.
    indicator
        Features whose missingness is itself a feature (missing in training).
    mean, sd
        Standardisation of the imputed features and indicators.
    coef, intercept
        ``(k, d)`` and ``(k,)``; a two-class model has ``k = 1`` (logit of the second class).
    c
        The penalty chosen by cross-validation.
    info
        Provenance, cross-validation report and the preference decision.
    """

    scale: str
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    medians: np.ndarray
    indicator: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    c: float
    info: dict[str, Any] = field(default_factory=dict)

    def design(self, features: np.ndarray) -> np.ndarray:
        """Impute, add the missing indicators, and standardise a raw feature matrix."""
        raw = np.asarray(features, dtype=np.float64)
        missing = np.isnan(raw)
        filled = np.where(missing, self.medians[None, :], raw)
        full = np.hstack([filled, missing[:, self.indicator].astype(np.float64)])
        return (full - self.mean) / self.sd

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (columns follow :attr:`classes`)."""
        scores = self.design(features) @ self.coef.T + self.intercept
        if len(self.classes) == 2:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The most probable class of each row."""
        return np.asarray(self.classes, dtype=object)[self.predict_proba(features).argmax(axis=1)]

    @property
    def sha256(self) -> str:
        """Hash of the fitted arrays and settings (names the model in tone tables' ``method``)."""
        digest = [self.scale, list(self.classes), self.c, self.coef.round(12).tolist(),
                  self.intercept.round(12).tolist(), self.mean.round(12).tolist()]
        return sha256_bytes(json.dumps(digest).encode())

    def save(self, folder: str | Path) -> None:
        """Write ``model.npz`` (arrays) and ``model.json`` (scale, classes, features, report) into ``folder``."""
        import io

        folder = Path(folder)
        buffer = io.BytesIO()
        np.savez(buffer, medians=self.medians, indicator=self.indicator, mean=self.mean, sd=self.sd,
                 coef=self.coef, intercept=self.intercept)
        atomic_write_bytes(folder / MODEL_ARRAYS, buffer.getvalue())
        atomic_write_json(folder / MODEL_JSON, {
            "format": MODEL_FORMAT, "scale": self.scale, "classes": list(self.classes),
            "feature_names": list(self.feature_names), "C": self.c, "sha256": self.sha256,
            "arrays_sha256": sha256_file(folder / MODEL_ARRAYS), **self.info,
        })


def load_tone_model(folder: str | Path) -> ToneModel:
    """Read a model folder written by :meth:`ToneModel.save` (no pickle: arrays and JSON only)."""
    folder = Path(folder)
    meta_path, arrays_path = folder / MODEL_JSON, folder / MODEL_ARRAYS
    for path in (meta_path, arrays_path):
        if not path.is_file():
            raise InputError("not a tone model folder: file missing", source=str(path))
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc}", source=str(meta_path)) from None
    if meta.get("format") != MODEL_FORMAT:
        raise InputError(f"format {MODEL_FORMAT!r} expected", source=str(meta_path), column="format")
    if sha256_file(arrays_path) != meta.get("arrays_sha256"):
        raise InputError("arrays do not match model.json's arrays_sha256", source=str(arrays_path))
    with np.load(arrays_path, allow_pickle=False) as arrays:
        loaded = {name: arrays[name] for name in ("medians", "indicator", "mean", "sd", "coef", "intercept")}
    info = {k: v for k, v in meta.items()
            if k not in {"format", "scale", "classes", "feature_names", "C", "sha256", "arrays_sha256"}}
    return ToneModel(meta["scale"], tuple(meta["classes"]), tuple(meta["feature_names"]), c=float(meta["C"]),
                     info=info, **loaded)


def colour_features(tone: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """The tone table's numeric colour measurements, NaN where the estimator did not measure the image."""
    measured = (tone["status"].astype("string") == "ok").fillna(False).to_numpy()
    columns = [c for c in COLOUR_FEATURES if c in tone.columns]
    values = np.column_stack([pd.to_numeric(tone[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                              for c in columns])
    width = values[:, columns.index("ita_high")] - values[:, columns.index("ita_low")]
    values = np.column_stack([values, width])
    values[~measured] = np.nan
    return values, (*columns, "ita_width")


def colour_prediction(tone: pd.DataFrame, scale: str) -> pd.Series:
    """The colour estimator's value on ``scale`` for each row (missing where it abstained)."""
    measured = (tone["status"].astype("string") == "ok").fillna(False)
    if scale == "monk":
        values = pd.to_numeric(tone["monk_est"], errors="coerce").astype("Int64").astype("string")
    else:
        types = pd.to_numeric(tone["fitzpatrick_est"], errors="coerce")
        if scale == "fitzpatrick":
            values = types.astype("Int64").astype("string")
        else:
            values = types.map(FITZPATRICK_GROUP_OF_TYPE).astype("string")
    return values.where(measured)


@dataclass
class LearnedToneReport:
    """Out-of-fold agreement of the learned stratifier beside the colour estimator's, on the same images.

    Attributes
    ----------
    scale
        The labels' scale.
    n_labelled
        Labelled images used (``cannot tell`` and images without features left out).
    counts
        Labelled images per scale value.
    learned, colour
        Metrics: ``exact_agreement`` (abstentions count as disagreement),
        ``exact_agreement_measured`` and ``abstention_rate`` (colour only),
        ``within_one``, ``kappa_quadratic`` and ``spearman`` (over the images
        with an estimate), ``light_vs_darker_agreement`` and ``_kappa``
        (Fitzpatrick scales: I-II against III-VI), and
        ``exact_agreement_cohort`` (weighted by inverse inclusion probability).
    difference
        Learned minus colour exact agreement with its 95% paired bootstrap interval.
    preferred
        Whether the learned stratifier beat the colour estimator out of fold:
        a higher quadratic kappa and an exact agreement at least as high.
    config
        Folds, C grid, the C chosen in each outer fold and overall, seed.
    out_of_fold
        Each labelled image's out-of-fold prediction (image id -> scale value):
        the value the learned tone table gives it, since the final model was
        fitted on its label.
    """

    scale: str
    n_labelled: int
    counts: dict[str, int]
    learned: dict[str, float]
    colour: dict[str, float]
    difference: dict[str, float]
    preferred: bool
    config: dict[str, Any] = field(default_factory=dict)
    out_of_fold: dict[str, str] = field(default_factory=dict)

    def decision(self) -> str:
        """One sentence: which stratifier to use and why."""
        learned, colour = self.learned, self.colour
        verb = "beats" if self.preferred else "does not beat"
        use = "use the learned tone table as strata" if self.preferred else "keep the colour estimate as strata"
        return (f"out of fold the learned stratifier {verb} the colour estimate on the same {self.n_labelled} "
                f"labelled images (quadratic kappa {learned['kappa_quadratic']:.3f} vs "
                f"{colour['kappa_quadratic']:.3f}, "
                f"exact agreement {learned['exact_agreement']:.3f} vs {colour['exact_agreement']:.3f}): {use}")

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "n_labelled": self.n_labelled, "counts": self.counts, "learned": self.learned,
                "colour": self.colour, "difference": self.difference, "preferred": self.preferred,
                "decision": self.decision(), "config": self.config}

    def to_json(self) -> str:
        return to_json_text(self.to_dict())

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: metric, learned, colour."""
        names = [m for m in self.learned if m in self.colour] + [m for m in self.colour if m not in self.learned]
        return pd.DataFrame({"metric": names, "learned": [self.learned.get(m, np.nan) for m in names],
                             "colour": [self.colour.get(m, np.nan) for m in names]})


def _logistic(c: float, seed: int) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed),
    )


def _folds(y: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)


def _choose_c(x: np.ndarray, y: np.ndarray, grid: tuple[float, ...], folds: int, seed: int) -> float:
    """The C of the grid with the best mean inner-fold quadratic kappa (the smaller C on ties)."""
    scores = np.zeros(len(grid))
    for train, test in _folds(y, folds, seed):
        for i, c in enumerate(grid):
            model = _logistic(c, seed).fit(x[train], y[train])
            scores[i] += quadratic_kappa(y[test], model.predict(x[test]))
    return float(grid[int(np.argmax(scores))])


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Any:
    with warnings.catch_warnings():
        # a stratified fold with fewer members than folds in a rare class is expected with small samples
        warnings.simplefilter("ignore", UserWarning)
        return _logistic(c, seed).fit(x, y)


def quadratic_kappa(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights of two position arrays (Cohen 1968); 0 when undefined."""
    from sklearn.metrics import cohen_kappa_score

    if len(truth) == 0 or (np.unique(truth).size == 1 and np.unique(predicted).size == 1):
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = cohen_kappa_score(truth, predicted, weights="quadratic")
    return float(value) if np.isfinite(value) else 0.0


def _agreement_metrics(
    truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray, scale: str
) -> dict[str, float]:
    """Agreement of scale positions (-1 = no estimate, counted as disagreement where it matters)."""
    has = predicted >= 0
    agree = (predicted == truth) & has
    metrics = {
        "exact_agreement": float(agree.mean()),
        "exact_agreement_measured": float(agree[has].mean()) if has.any() else float("nan"),
        "abstention_rate": float(1.0 - has.mean()),
        "within_one": float(((np.abs(predicted - truth) <= 1) & has).mean()),
        "kappa_quadratic": quadratic_kappa(truth[has], predicted[has]),
        "spearman": _spearman(predicted[has], truth[has]),
        "exact_agreement_cohort": float(np.sum(weights * agree) / np.sum(weights)),
    }
    if scale in ("fitzpatrick", "fitzpatrick_group"):
        # lightest group (types I-II) against the rest
        light_cut = 2 if scale == "fitzpatrick" else 1
        light_agree = ((predicted < light_cut) == (truth < light_cut)) & has
        metrics["light_vs_darker_agreement"] = float(light_agree.mean())
        metrics["light_vs_darker_kappa"] = quadratic_kappa(truth[has] >= light_cut, predicted[has] >= light_cut)
    return metrics


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.unique(a).size < 2 or np.unique(b).size < 2:
        return float("nan")
    from scipy.stats import spearmanr  # scipy.stats takes a third of a second to import: not at the CLI's start

    return float(spearmanr(a, b).statistic)


def _paired_difference(learned: np.ndarray, colour: np.ndarray, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    n = len(learned)
    # all replicates at once: counts of each image in each resample
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=N_BOOT)
    replicates = counts @ (learned.astype(np.float64) - colour.astype(np.float64)) / n
    low, high = np.percentile(replicates, [2.5, 97.5])
    return {"estimate": float(np.mean(learned) - np.mean(colour)), "ci_low": float(low), "ci_high": float(high),
            "n_boot": N_BOOT}


def fit_tone_model(
    backbone: np.ndarray,
    tone: pd.DataFrame,
    labels: ToneLabels,
    *,
    seed: int = 0,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    outer_folds: int = OUTER_FOLDS,
    inner_folds: int = INNER_FOLDS,
) -> tuple[ToneModel, LearnedToneReport]:
    """Fit the tone stratifier by nested cross-validation and score it beside the colour estimator.

    Parameters
    ----------
    backbone
        ``(n_images, d)`` image features in the tone table's row order (NaN
        rows for images whose features failed: those are not used).
    tone
        The colour tone table, one row per image (:func:`fairderm.tone.read_tone`).
    labels
        The validation labels (:func:`read_tone_labels`); rows ``cannot tell``
        and unlabelled rows are not used.
    seed
        Seed of the folds and the bootstrap.
    c_grid
        Inverse penalties tried by the inner cross-validation.
    outer_folds, inner_folds
        Folds of the outer (scoring) and inner (choosing C) cross-validation.

    Returns
    -------
    tuple
        The model fitted on every labelled image with the C chosen on all of
        them, and the out-of-fold report.
    """
    backbone = np.asarray(backbone, dtype=np.float64)
    if backbone.ndim != 2 or backbone.shape[0] != len(tone):
        raise InputError(f"backbone features must be (n_images={len(tone)}, d), got {backbone.shape}",
                         column="backbone")
    colour, colour_names = colour_features(tone)
    features = np.hstack([backbone, colour])
    names = (*(f"backbone_{i}" for i in range(backbone.shape[1])), *colour_names)
    values = scale_values(labels.scale)
    labelled = labels.labelled()
    row_of = pd.Series(np.arange(len(tone)), index=tone["image_id"].astype(str))
    missing = ~labelled["image_id"].isin(row_of.index)
    if missing.any():
        raise InputError(f"labelled image {labelled['image_id'][missing].iloc[0]!r} has no tone row",
                         source=labels.source, column="image_id")
    rows = row_of.loc[labelled["image_id"].astype(str)].to_numpy()
    usable = np.isfinite(backbone[rows]).all(axis=1)
    rows, labelled = rows[usable], labelled[usable].reset_index(drop=True)
    truth = labelled["label"].map({v: i for i, v in enumerate(values)}).to_numpy(dtype=np.int64)
    counts = {v: int((truth == i).sum()) for i, v in enumerate(values) if (truth == i).any()}
    if len(rows) < MIN_LABELLED:
        raise InputError(f"{len(rows)} labelled images with features; at least {MIN_LABELLED} are needed",
                         source=labels.source, column="label")
    if len(counts) < 2:
        raise InputError(f"every labelled image has the same label {next(iter(counts))!r}: nothing to learn",
                         source=labels.source, column="label")
    x = features[rows]
    folds = min(outer_folds, max(2, min(counts.values())), len(rows) // 2)
    oof = np.full(len(rows), -1, dtype=np.int64)
    chosen: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for fold, (train, test) in enumerate(_folds(truth, folds, seed)):
            c = _choose_c(x[train], truth[train], c_grid, inner_folds, seed + 1 + fold)
            chosen.append(c)
            oof[test] = _fit(x[train], truth[train], c, seed).predict(x[test])
        final_c = _choose_c(x, truth, c_grid, inner_folds, seed)
    pipeline = _fit(x, truth, final_c, seed)
    colour_values = colour_prediction(tone, labels.scale).iloc[rows]
    colour_index = colour_values.map({v: i for i, v in enumerate(values)}).fillna(-1).to_numpy(dtype=np.int64)
    weights = 1.0 / labelled["inclusion_prob"].to_numpy(dtype=np.float64)
    learned_metrics = _agreement_metrics(truth, oof, weights, labels.scale)
    for redundant in ("exact_agreement_measured", "abstention_rate"):
        learned_metrics.pop(redundant)
    colour_metrics = _agreement_metrics(truth, colour_index, weights, labels.scale)
    difference = _paired_difference(oof == truth, colour_index == truth, seed)
    model = _to_model(pipeline, labels.scale, values, names, final_c)
    report = LearnedToneReport(
        scale=labels.scale, n_labelled=len(rows), counts=counts, learned=learned_metrics, colour=colour_metrics,
        difference=difference,
        preferred=(learned_metrics["kappa_quadratic"] > colour_metrics["kappa_quadratic"]
                   and learned_metrics["exact_agreement"] >= colour_metrics["exact_agreement"]),
        config={"outer_folds": folds, "inner_folds": inner_folds, "c_grid": list(c_grid), "c_per_fold": chosen,
                "c_final": final_c, "seed": seed, "penalty": "l2", "class_weight": "balanced",
                "scoring": "quadratic kappa",
                "colour_method": str(tone["method"].iloc[0]) if len(tone) else None,
                "n_backbone_features": backbone.shape[1], "colour_features": list(colour_names)},
        out_of_fold={str(image_id): values[int(k)] for image_id, k in zip(labelled["image_id"], oof)},
    )
    return model, report


def _to_model(pipeline: Any, scale: str, values: tuple[str, ...], names: tuple[str, ...], c: float) -> ToneModel:
    imputer, scaler, logistic = (step for _, step in pipeline.steps)
    indicator = (np.zeros(0, dtype=np.int64) if imputer.indicator_ is None
                 else np.asarray(imputer.indicator_.features_, dtype=np.int64))
    classes = tuple(values[int(k)] for k in logistic.classes_)
    return ToneModel(scale=scale, classes=classes, feature_names=names,
                     medians=np.asarray(imputer.statistics_, dtype=np.float64), indicator=indicator,
                     mean=np.asarray(scaler.mean_, dtype=np.float64), sd=np.asarray(scaler.scale_, dtype=np.float64),
                     coef=np.asarray(logistic.coef_, dtype=np.float64),
                     intercept=np.asarray(logistic.intercept_, dtype=np.float64), c=c)


def learned_tone_frame(
    model: ToneModel, backbone: np.ndarray, tone: pd.DataFrame, *, preferred: bool,
    backbone_errors: dict[str, str] | None = None, out_of_fold: dict[str, str] | None = None,
) -> pd.DataFrame:
    """A tone table of the estimator's schema with the learned stratifier's values, for every image.

    The colour measurements (ITA and its interval, skin colour) are kept as
    measured; the scale the model learned replaces the colour estimate's
    (``fitzpatrick_est`` and its group, or ``monk_est``), one ``prob_<value>``
    column per class is added, and ``method`` names the model. An image
    whose features failed is an ``error`` with the reason.

    An image whose label trained the model gets its out-of-fold prediction
    (``out_of_fold``; column ``out_of_fold`` True, its probabilities null):
    the final model has seen its label, and an audit that corrects these
    strata with the same labels must see the labelled images estimated as
    the unlabelled ones are (cross-fitting).
    """
    colour, _ = colour_features(tone)
    features = np.hstack([np.asarray(backbone, dtype=np.float64), colour])
    usable = np.isfinite(np.asarray(backbone, dtype=np.float64)).all(axis=1)
    probabilities = np.full((len(tone), len(model.classes)), np.nan)
    if usable.any():
        probabilities[usable] = model.predict_proba(features[usable])
    best = np.asarray(model.classes, dtype=object)[np.nan_to_num(probabilities, nan=-1).argmax(axis=1)]
    ids = tone["image_id"].astype(str).to_numpy()
    held_out = usable & np.array([i in (out_of_fold or {}) for i in ids], dtype=bool)
    best = np.where(held_out, [(out_of_fold or {}).get(i) for i in ids], best)
    probabilities[held_out] = np.nan
    predicted = pd.Series(np.where(usable, best, None), dtype="string")
    frame = tone.loc[:, [c for c in (*TONE_COLUMNS, *EXTRA_COLUMNS) if c in tone.columns]].reset_index(drop=True)
    if model.scale == "monk":
        frame["monk_est"] = pd.to_numeric(predicted, errors="coerce").astype("Int8")
    else:
        if model.scale == "fitzpatrick":
            types = pd.to_numeric(predicted, errors="coerce").astype("Int8")
        else:
            types = predicted.map(GROUP_REPRESENTATIVE_TYPE).astype("Int8")
        frame["fitzpatrick_est"] = types
        frame["fitzpatrick_group_est"] = types.map(FITZPATRICK_GROUP_OF_TYPE).astype("string")
    colour_reason = frame["reason"].astype("string").fillna("")
    colour_status = frame["status"].astype("string")
    errors = backbone_errors or {}
    ids = frame["image_id"].astype(str)
    frame["status"] = pd.Series(np.where(usable, "ok", "error"), dtype="string")
    frame["reason"] = pd.Series([
        ("" if colour_status.iloc[i] == "ok" else f"colour not measured ({colour_reason.iloc[i]}); tone learned")
        if usable[i] else f"backbone features failed: {errors.get(ids.iloc[i], 'no features')}"
        for i in range(len(frame))
    ], dtype="string")
    frame["method"] = pd.Series([learned_method(model, str(tone["method"].iloc[0]) if len(tone) else "")]
                                * len(frame), dtype="string")
    for k, value in enumerate(model.classes):
        frame[f"prob_{value}"] = probabilities[:, k]
    frame["out_of_fold"] = held_out
    frame.attrs["fairderm_tone"] = {
        "estimator": LEARNED_ESTIMATOR, "method": "learned", "scale": model.scale, "model_sha256": model.sha256,
        "preferred": preferred, "colour": dict(tone.attrs.get("fairderm_tone", {})), "fairderm_version": __version__,
    }
    return frame


def learned_method(model: ToneModel, colour_method: str) -> str:
    """The ``method`` column of a learned tone table: the model, its scale, and the colour estimator beside it."""
    return f"{LEARNED_ESTIMATOR}:{model.sha256[:12]};{model.scale}=learned;colour={colour_method}"
