"""Point estimates against independent implementations: fairlearn, aif360,
scikit-learn, statsmodels and scipy, to 1e-9."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from fairderm.metrics import evaluate
from tests.helpers.metrics_cases import LABELS

TOL = 1e-9


def _by_group(result, metric: str, attribute: str = "group") -> dict[str, float]:
    frame = result.to_frame()
    rows = frame[(frame["metric"] == metric) & frame["group"].str.startswith(f"{attribute}=")]
    return {g.split("=", 1)[1]: v for g, v in zip(rows["group"], rows["estimate"])}


@pytest.fixture(scope="module")
def binary_result(binary):
    return evaluate(binary.y, binary.score, binary.group, n_boot=0, tests=False, case_mix=False, power=False)


def _npv(y_true, y_pred):
    return skm.precision_score(1 - np.asarray(y_true), 1 - np.asarray(y_pred))


def test_binary_metrics_equal_fairlearn_metricframe(binary, binary_result):
    from fairlearn.metrics import MetricFrame, selection_rate, true_negative_rate

    score = binary.score

    def auroc(y_true, y_pred, proba):
        return skm.roc_auc_score(y_true, proba)

    def brier(y_true, y_pred, proba):
        return skm.brier_score_loss(y_true, proba)

    functions = {
        "accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
        "sensitivity": skm.recall_score, "specificity": true_negative_rate, "ppv": skm.precision_score,
        "npv": _npv, "f1": skm.f1_score, "selection_rate": selection_rate, "auroc": auroc, "brier": brier,
    }
    frame = MetricFrame(
        metrics=functions, y_true=binary.y, y_pred=binary.pred, sensitive_features=binary.group,
        sample_params={"auroc": {"proba": score}, "brier": {"proba": score}},
    )
    for name in functions:
        ours = _by_group(binary_result, name)
        assert set(ours) == set(frame.by_group.index)
        for group, value in frame.by_group[name].items():
            assert ours[group] == pytest.approx(value, abs=TOL), (name, group)
        assert binary_result.estimate(name) == pytest.approx(frame.overall[name], abs=TOL), name


def test_fairness_differences_equal_fairlearn(binary, binary_result):
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    spread = binary_result.disparities.to_frame()
    eod = spread[spread["kind"] == "eod"]["estimate"].item()
    dpd = spread[spread["kind"] == "dpd"]["estimate"].item()
    assert eod == pytest.approx(equalized_odds_difference(binary.y, binary.pred, sensitive_features=binary.group),
                                abs=TOL)
    assert dpd == pytest.approx(
        demographic_parity_difference(binary.y, binary.pred, sensitive_features=binary.group), abs=TOL)


def test_two_group_metrics_equal_aif360_classification_metric(binary):
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    dark = (binary.group == "V-VI").astype(int)
    truth = BinaryLabelDataset(
        df=pd.DataFrame({"y": binary.y, "dark": dark}), label_names=["y"], protected_attribute_names=["dark"],
        favorable_label=1, unfavorable_label=0,
    )
    predicted = truth.copy(deepcopy=True)
    predicted.labels = binary.pred.reshape(-1, 1).astype(float)
    predicted.scores = binary.score.reshape(-1, 1)
    aif = ClassificationMetric(truth, predicted, unprivileged_groups=[{"dark": 1}], privileged_groups=[{"dark": 0}])
    result = evaluate(binary.y, binary.score, {"dark": dark}, n_boot=0, reference={"dark": "0"},
                      tests=False, case_mix=False, power=False)
    pairs = {
        "accuracy": aif.accuracy, "sensitivity": aif.true_positive_rate, "specificity": aif.true_negative_rate,
        "ppv": aif.positive_predictive_value, "npv": aif.negative_predictive_value,
        "selection_rate": aif.selection_rate,
    }
    for name, function in pairs.items():
        ours = _by_group(result, name, "dark")
        assert ours["1"] == pytest.approx(function(privileged=False), abs=TOL), name
        assert ours["0"] == pytest.approx(function(privileged=True), abs=TOL), name
        assert result.estimate(name) == pytest.approx(function(), abs=TOL), name
    spread = result.disparities.to_frame(full=True)
    diff = spread[(spread["kind"] == "diff_vs_ref") & (spread["metric"] == "sensitivity")]["estimate"].item()
    assert diff == pytest.approx(aif.equal_opportunity_difference(), abs=TOL)
    ratio = spread[(spread["kind"] == "ratio") & (spread["metric"] == "selection_rate")]["estimate"].item()
    impact = aif.disparate_impact()
    assert ratio == pytest.approx(min(impact, 1 / impact), abs=TOL)


def test_multiclass_metrics_equal_scikit_learn(multiclass):
    result = evaluate(multiclass.y, multiclass.proba, multiclass.group, labels=LABELS, n_boot=0,
                      metrics=["accuracy", "balanced_accuracy", "top_k_accuracy", "f1", "auroc", "brier",
                               "sensitivity", "ppv"],
                      tests=False, case_mix=False, power=False)
    pred = np.asarray(LABELS, dtype=object)[multiclass.proba.argmax(axis=1)]
    for name in ["I-II", "III-IV", "V-VI", None]:
        rows = np.ones(len(pred), bool) if name is None else multiclass.group == name
        y, p, proba = multiclass.y[rows], pred[rows], multiclass.proba[rows]
        # scikit-learn wants sorted labels (and columns) for these three.
        ordered = proba[:, np.argsort(LABELS)]
        expected = {
            "accuracy": skm.accuracy_score(y, p),
            "balanced_accuracy": skm.balanced_accuracy_score(y, p),
            "top_k_accuracy": skm.top_k_accuracy_score(y, ordered, k=2, labels=sorted(LABELS)),
            "f1_macro": skm.f1_score(y, p, average="macro"),
            "auroc": skm.roc_auc_score(y, ordered, multi_class="ovr", average="macro", labels=sorted(LABELS)),
            "brier": skm.brier_score_loss(y, ordered, labels=sorted(LABELS)),
        }
        recalls = skm.recall_score(y, p, labels=LABELS, average=None)
        precisions = skm.precision_score(y, p, labels=LABELS, average=None)
        f1s = skm.f1_score(y, p, labels=LABELS, average=None)
        for label, recall, precision, f1 in zip(LABELS, recalls, precisions, f1s):
            expected[f"sensitivity:{label}"] = recall
            expected[f"ppv:{label}"] = precision
            expected[f"f1:{label}"] = f1
        group = "all" if name is None else f"group={name}"
        for metric, value in expected.items():
            assert result.estimate(metric, group) == pytest.approx(value, abs=TOL), (metric, group)


def test_positive_event_of_multiclass_is_the_summed_probability(multiclass):
    result = evaluate(multiclass.y, multiclass.proba, None, labels=LABELS, positive_label=["melanoma", "bcc"],
                      n_boot=0, metrics=["auroc", "sensitivity", "specificity"], tests=False, case_mix=False,
                      power=False)
    malignant = np.isin(multiclass.y, ["melanoma", "bcc"])
    score = multiclass.proba[:, 1:3].sum(axis=1)
    assert result.estimate("auroc") == pytest.approx(skm.roc_auc_score(malignant, score), abs=TOL)
    assert result.estimate("sensitivity") == pytest.approx(skm.recall_score(malignant, score >= 0.5), abs=TOL)
    assert result.estimate("specificity") == pytest.approx(skm.recall_score(~malignant, score < 0.5), abs=TOL)


def _reference_ece(confidence: np.ndarray, outcome: np.ndarray, n_bins: int) -> float:
    order = np.sort(confidence)
    edges = [np.quantile(order, q) for q in np.linspace(0, 1, n_bins + 1)[1:-1]]
    total = 0.0
    for b in range(n_bins):
        low = -np.inf if b == 0 else edges[b - 1]
        high = np.inf if b == n_bins - 1 else edges[b]
        inside = (confidence >= low) & (confidence < high)
        if inside.any():
            total += inside.sum() * abs(confidence[inside].mean() - outcome[inside].mean())
    return total / confidence.size


def test_ece_equals_a_direct_equal_mass_computation(binary, binary_result, multiclass):
    for name in ["I-II", "III-IV", "V-VI"]:
        rows = binary.group == name
        expected = _reference_ece(binary.score[rows], binary.y[rows].astype(float), 10)
        assert _by_group(binary_result, "ece")[name] == pytest.approx(expected, abs=TOL)
    result = evaluate(multiclass.y, multiclass.proba, None, labels=LABELS, metrics=["ece"], n_boot=0,
                      tests=False, case_mix=False, power=False)
    correct = (np.asarray(LABELS, dtype=object)[multiclass.proba.argmax(axis=1)] == multiclass.y).astype(float)
    assert result.estimate("ece") == pytest.approx(_reference_ece(multiclass.proba.max(axis=1), correct, 10),
                                                   abs=TOL)


def test_mean_score_equals_pandas_groupby_and_ignores_unrated_cases(binary):
    rng = np.random.default_rng(3)
    rating = rng.integers(0, 6, size=binary.y.size).astype(float)
    rating[rng.random(rating.size) < 0.1] = np.nan
    result = evaluate(binary.y, binary.score, binary.group, scores={"reasoning": rating},
                      metrics=["mean_score:reasoning"], n_boot=0, tests=False, case_mix=False, power=False)
    expected = pd.Series(rating).groupby(binary.group).mean()
    counts = pd.Series(rating).groupby(binary.group).count()
    frame = result.to_frame().set_index("group")
    for name, value in expected.items():
        assert frame.loc[f"group={name}", "estimate"] == pytest.approx(value, abs=TOL)
        assert frame.loc[f"group={name}", "n"] == counts[name]


def test_weighted_auroc_kernel_equals_scikit_learn_with_sample_weights():
    from fairderm.metrics._bootstrap import RankPlan, auc_numerators

    rng = np.random.default_rng(4)
    for _ in range(30):
        n = int(rng.integers(5, 200))
        score = np.round(rng.random(n), int(rng.integers(1, 4)))
        positive = rng.random(n) < 0.4
        weights = rng.integers(0, 4, size=(3, n)).astype(np.float64)
        numerators = auc_numerators(weights, RankPlan.build(score, positive))
        for row, numerator in zip(weights, numerators):
            pos, neg = row[positive].sum(), row[~positive].sum()
            if pos and neg:
                expected = skm.roc_auc_score(positive, score, sample_weight=row)
                assert numerator / (pos * neg) == pytest.approx(expected, abs=TOL)


def test_probability_frame_is_matched_to_labels_by_column_name(multiclass):
    columns = {f"prob_{label}": multiclass.proba[:, i] for i, label in enumerate(LABELS)}
    shuffled = pd.DataFrame(columns)[[f"prob_{label}" for label in reversed(LABELS)]]
    from_frame = evaluate(multiclass.y, shuffled, None, labels=LABELS, n_boot=0, tests=False, case_mix=False,
                          power=False)
    from_array = evaluate(multiclass.y, multiclass.proba, None, labels=LABELS, n_boot=0, tests=False,
                          case_mix=False, power=False)
    pd.testing.assert_frame_equal(from_frame.to_frame(), from_array.to_frame())


def test_hard_labels_give_the_label_metrics_of_the_argmax(multiclass):
    pred = np.asarray(LABELS, dtype=object)[multiclass.proba.argmax(axis=1)]
    hard = evaluate(multiclass.y, pred, multiclass.group, labels=LABELS, n_boot=0, tests=False, case_mix=False,
                    power=False)
    assert hard.config["y_score"] == "labels"
    assert not {"auroc", "brier", "ece", "top_k_accuracy"} & set(hard.config["metrics"])
    assert hard.estimate("accuracy") == pytest.approx(skm.accuracy_score(multiclass.y, pred), abs=TOL)
    one_hot = np.eye(4)[multiclass.proba.argmax(axis=1)].astype(int)  # integer (n, K) is read as probabilities
    as_matrix = evaluate(multiclass.y, one_hot, None, labels=LABELS, metrics=["accuracy"], n_boot=0,
                         tests=False, case_mix=False, power=False)
    assert as_matrix.estimate("accuracy") == pytest.approx(hard.estimate("accuracy"), abs=TOL)
