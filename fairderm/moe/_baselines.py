"""fairlearn mitigations on the same features: ExponentiatedGradient and ThresholdOptimizer.

Both are binary methods in fairlearn 0.15. For a binary task they are used as
they are. For a multiclass task each class is treated one-vs-rest (class
``c`` against the rest, with the same constraint per class) and the class
with the largest positive-probability wins; the per-class guarantees do not
carry over exactly to that argmax, which the router documentation says.

``expgrad``
    ``ExponentiatedGradient`` (Agarwal et al. 2018) around a logistic
    regression on the first 256 principal components of the standardised
    features (fit on the training split; it refits its learner ~50 times per
    class, too slow on all 1280 dimensions for a 10-minute run), with ``ErrorRateParity`` (for
    the ``loss`` constraint: ``|err_k - err| <= epsilon``, the same constraint
    as the router's) or ``EqualizedOdds`` (for ``eo``), ``difference_bound =
    epsilon``, fit on the training split. Its score is the randomised
    classifier's expected positive probability, ``sum_t w_t p_t(x)`` over the
    public ``predictors_`` and ``weights_``. It stops once the duality gap
    is below fairlearn's default threshold ``nu``, or below ``1e-6`` where
    that default is 0: fairlearn sets ``nu`` from its first classifier's
    training errors, and a classifier that fits a small training split
    perfectly left it to run all its iterations at a gap already 0.
``threshold``
    ``ThresholdOptimizer`` (Hardt et al. 2016) post-processing the ERM head's
    probabilities with group-specific thresholds under equalized odds
    (fairlearn has no error-rate-parity post-processing), fit on the
    validation split: thresholds fit on training cases that the head
    separates perfectly would be meaningless. Its score is the probability of
    a positive decision of the randomised thresholder.

For ``expgrad``, cases outside every constraint group form one more
sensitive-feature value (``(none)``), since fairlearn needs a value for
every case. ``threshold`` fits its thresholds on the grouped cases only and
keeps the ERM head's score for the others: a handful of cases without a
tone estimate, all of one outcome in validation, would otherwise make
fairlearn refuse every class.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairderm._extras import import_optional
from fairderm.moe._data import NO_GROUP


@dataclass
class BaselineResult:
    """Class probabilities of a fairlearn baseline, and what had to give way.

    Attributes
    ----------
    probs
        ``(n, n_classes)`` scores normalised to sum to 1 per row.
    notes
        Per-class fallbacks (a class fairlearn could not fit keeps the
        ERM head's score), in words.
    fallback_classes
        Class index -> why that class kept the ERM head's score.
    n_classes
        One-vs-rest fits attempted (1 for a binary task).
    iterations
        Class index -> iterations its fit ran (``expgrad`` only).
    """

    probs: np.ndarray
    notes: list[str] = field(default_factory=list)
    fallback_classes: dict[int, str] = field(default_factory=dict)
    n_classes: int = 0
    iterations: dict[int, int] = field(default_factory=dict)

    def to_dict(self, class_names: list[str]) -> dict[str, object]:
        """JSON record: fits attempted, the classes that fell back to ERM with the reason, iterations run."""
        record: dict[str, object] = {
            "fits": self.n_classes,
            "failed": len(self.fallback_classes),
            "fallback_classes": {class_names[k]: reason for k, reason in self.fallback_classes.items()},
        }
        if self.iterations:
            record["iterations"] = {class_names[k]: n for k, n in self.iterations.items()}
        return record


#: The least duality gap ``expgrad`` is asked to reach (see :func:`convergence_threshold`).
NU_FLOOR = 1e-6


def convergence_threshold(learner: BaseEstimator, x: np.ndarray, target: np.ndarray) -> float:
    """fairlearn's default ``nu`` for ``ExponentiatedGradient``, but at least :data:`NU_FLOOR`.

    fairlearn (0.15, ``nu=None``) takes half the standard deviation of its
    first classifier's absolute training errors over ``sqrt(n)``. That first
    classifier is the learner fit to the labels with equal weights: at the
    first iteration the multipliers of each constraint's two signs are equal
    and cancel. A learner that fits the training split perfectly makes the
    default 0, which no duality gap falls below.
    """
    first = clone(learner).fit(x, target, sample_weight=np.ones(len(target)))
    errors = np.abs(first.predict(x) - target)
    nu = 0.5 * float(np.std(errors, ddof=1)) / math.sqrt(len(target))
    return nu if math.isfinite(nu) and nu > NU_FLOOR else NU_FLOOR


def _columns(n_classes: int) -> list[int]:
    """Classes that get their own binary problem: only the positive one for binary."""
    return [1] if n_classes == 2 else list(range(n_classes))


def _assemble(scores: np.ndarray, n_classes: int, fallback: np.ndarray) -> np.ndarray:
    """Per-class positive scores -> probability rows (binary: [1 - s, s])."""
    if n_classes == 2:
        return np.column_stack([1.0 - scores[:, 0], scores[:, 0]])
    total = scores.sum(axis=1, keepdims=True)
    # A row no one-vs-rest model claims keeps the ERM head's probabilities.
    return np.where(total > 0, scores / np.where(total > 0, total, 1.0), fallback)


def exponentiated_gradient(
    x_train: np.ndarray,
    y_train: np.ndarray,
    groups_train: np.ndarray,
    x_eval: np.ndarray,
    *,
    n_classes: int,
    constraint: str,
    epsilon: float,
    fallback: np.ndarray,
    seed: int = 0,
    max_iter: int = 50,
    C: float = 0.01,
    n_components: int = 256,
    nu_floor: bool = True,
) -> BaselineResult:
    """fairlearn ``ExponentiatedGradient`` one-vs-rest; scores for ``x_eval``.

    Parameters
    ----------
    x_train, y_train, groups_train
        Training features, class indices and sensitive-feature values.
    x_eval
        Features to score.
    n_classes
        Number of classes (2: binary).
    constraint
        ``loss`` (ErrorRateParity) or ``eo`` (EqualizedOdds).
    epsilon
        ``difference_bound`` of the constraint.
    fallback
        ``(len(x_eval), n_classes)`` probabilities used for a class that cannot
        be fit (a class absent from training).
    C
        Inverse L2 strength of the logistic regression.
    n_components
        Principal components of the standardised features the logistic
        regression sees (fit on the training split).
    nu_floor
        Stop at :func:`convergence_threshold` (fairlearn's default, at least
        :data:`NU_FLOOR`); False leaves ``nu`` to fairlearn.
    """
    reductions = import_optional("fairlearn.reductions", "the expgrad baseline")
    EqualizedOdds, ErrorRateParity = reductions.EqualizedOdds, reductions.ErrorRateParity
    ExponentiatedGradient = reductions.ExponentiatedGradient

    # Each ExponentiatedGradient iteration refits the base learner; on 1280
    # dimensions a logistic fit takes ~0.2 s, on 256 principal components ~7 ms.
    projection = make_pipeline(
        StandardScaler(), PCA(min(n_components, *x_train.shape), random_state=seed)
    ).fit(x_train)
    x_train, x_eval = projection.transform(x_train), projection.transform(x_eval)
    scores = np.zeros((len(x_eval), len(_columns(n_classes))))
    notes: list[str] = []
    failed: dict[int, str] = {}
    iterations: dict[int, int] = {}
    for slot, cls in enumerate(_columns(n_classes)):
        target = (y_train == cls).astype(int)
        if target.min() == target.max():
            scores[:, slot] = fallback[:, cls]
            failed[cls] = "one outcome only in training"
            notes.append(f"class {cls}: one outcome only in training; ERM score kept")
            continue
        moment = (
            ErrorRateParity(difference_bound=epsilon)
            if constraint == "loss"
            else EqualizedOdds(difference_bound=epsilon)
        )
        learner = LogisticRegression(C=C, max_iter=300, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nu = convergence_threshold(learner, x_train, target) if nu_floor else None
            mitigator = ExponentiatedGradient(learner, moment, max_iter=max_iter, nu=nu)
            mitigator.fit(x_train, target, sensitive_features=groups_train)
        iterations[cls] = int(mitigator.last_iter_) + 1
        weights = np.asarray(mitigator.weights_, dtype=float)
        for weight, predictor in zip(weights, mitigator.predictors_, strict=True):
            if weight > 0:
                scores[:, slot] += weight * predictor.predict_proba(x_eval)[:, 1]
        scores[:, slot] /= max(weights.sum(), 1e-12)
    return BaselineResult(_assemble(scores, n_classes, fallback), notes, failed, len(_columns(n_classes)),
                          iterations)


class _FixedScores(BaseEstimator, ClassifierMixin):
    """A prefit "estimator" that looks up precomputed scores by row index.

    ThresholdOptimizer needs an estimator with ``predict_proba``; the ERM head
    is a torch module, so its scores are computed once and the features
    passed to fairlearn are the row indices into them.
    """

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def fit(self, X: np.ndarray, y: np.ndarray) -> _FixedScores:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        s = self.scores[np.asarray(X, dtype=int).ravel()]
        return np.column_stack([1.0 - s, s])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def threshold_optimizer(
    erm_fit_probs: np.ndarray,
    y_fit: np.ndarray,
    groups_fit: np.ndarray,
    erm_eval_probs: np.ndarray,
    groups_eval: np.ndarray,
    *,
    n_classes: int,
    seed: int = 0,
) -> BaselineResult:
    """fairlearn ``ThresholdOptimizer`` (equalized odds) on the ERM head's scores.

    Parameters
    ----------
    erm_fit_probs, y_fit, groups_fit
        ERM probabilities, labels and groups of the cases the thresholds are
        fit on (the validation split).
    erm_eval_probs, groups_eval
        ERM probabilities and groups of the cases to score.
    n_classes
        Number of classes (2: binary).
    """
    ThresholdOptimizer = import_optional(
        "fairlearn.postprocessing", "the threshold baseline"
    ).ThresholdOptimizer

    columns = _columns(n_classes)
    # the ERM score where a class fails, and for the cases outside every group
    scores = np.array(erm_eval_probs[:, columns], dtype=float)
    notes: list[str] = []
    failed: dict[int, str] = {}
    grouped_fit, grouped_eval = np.asarray(groups_fit) != NO_GROUP, np.asarray(groups_eval) != NO_GROUP
    fit_probs, fit_y, fit_groups = erm_fit_probs[grouped_fit], y_fit[grouped_fit], np.asarray(groups_fit)[grouped_fit]
    eval_probs, eval_groups = erm_eval_probs[grouped_eval], np.asarray(groups_eval)[grouped_eval]
    fit_rows = np.arange(len(fit_y)).reshape(-1, 1)
    eval_rows = (len(fit_y) + np.arange(len(eval_probs))).reshape(-1, 1)
    for slot, cls in enumerate(columns):
        target = (fit_y == cls).astype(int)
        estimator = _FixedScores(np.concatenate([fit_probs[:, cls], eval_probs[:, cls]])).fit(fit_rows, target)
        postprocessor = ThresholdOptimizer(
            estimator=estimator,
            constraints="equalized_odds",
            objective="accuracy_score",
            prefit=True,
            predict_method="predict_proba",
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                postprocessor.fit(fit_rows, target, sensitive_features=fit_groups)
                # The probability of a positive decision of the randomised
                # thresholder; fairlearn's public predict() only samples from it.
                pmf = postprocessor._pmf_predict(eval_rows, sensitive_features=eval_groups)
            scores[grouped_eval, slot] = pmf[:, 1]
        except (ValueError, KeyError) as exc:  # a group with one outcome, or unseen in the fit data
            failed[cls] = f"ThresholdOptimizer failed: {str(exc).splitlines()[0]}"
            notes.append(f"class {cls}: ThresholdOptimizer failed ({str(exc).splitlines()[0]}); ERM score kept")
    return BaselineResult(_assemble(scores, n_classes, erm_eval_probs), notes, failed, len(columns))
