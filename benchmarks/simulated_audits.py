"""Simulated audits with known truth, for checking interval coverage.

Used by ``benchmarks/coverage.py`` (full study) and ``tests/metrics/test_coverage.py``
(a small seeded version). Each scenario draws cases for groups of given sizes from a
model whose per-group accuracy and sensitivity are known exactly (binary and
clustered: closed form; multiclass: a seeded Monte Carlo integral with 4
million draws, whose error is far below the interval widths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

MULTICLASS_LABELS = ("nevus", "melanoma", "bcc", "seborrheic_keratosis")
MULTICLASS_POSITIVE = ("melanoma", "bcc")


@dataclass(frozen=True)
class Scenario:
    """A data-generating model with per-group truth.

    Attributes
    ----------
    name
        ``binary``, ``multiclass`` or ``clustered``.
    sizes
        Cases per group (clustered: patients per group; each patient has
        1 + Poisson(2) cases).
    separation
        Per group: how well the model separates the classes (larger: more
        accurate); the first group is the hardest.
    prevalence
        Per group: share of positives (binary, clustered).
    patient_sd
        Clustered only: SD of the patient effect on the latent correctness
        (within-patient correlation).
    """

    name: str
    sizes: tuple[int, ...]
    separation: tuple[float, ...]
    prevalence: tuple[float, ...] = ()
    patient_sd: float = 0.0
    truth: dict[str, np.ndarray] = field(default_factory=dict, compare=False)

    @property
    def groups(self) -> list[str]:
        return [f"g{i}" for i in range(len(self.sizes))]


def binary_scenario(sizes: tuple[int, ...] = (30, 100, 300, 1000, 2000)) -> Scenario:
    """Latent z | y ~ N(+-mu_g, 1), score sigmoid(z), predicted positive when z >= 0.

    Negatives sit at -(mu_g + 0.3): sensitivity_g = Phi(mu_g),
    specificity_g = Phi(mu_g + 0.3), accuracy_g = pi_g sens_g + (1 - pi_g) spec_g.
    """
    separation = tuple(np.linspace(0.45, 1.2, len(sizes)).round(3))
    prevalence = tuple(np.linspace(0.5, 0.3, len(sizes)).round(3))
    scenario = Scenario("binary", sizes, separation, prevalence)
    mu = np.asarray(separation)
    sens, spec = ndtr(mu), ndtr(mu + 0.3)
    pi = np.asarray(prevalence)
    scenario.truth.update(sensitivity=sens, accuracy=pi * sens + (1 - pi) * spec)
    return scenario


def clustered_scenario(sizes: tuple[int, ...] = (30, 100, 300), patient_sd: float = 1.5) -> Scenario:
    """Patients (sizes = patients per group) with 1 + Poisson(2) cases each.

    A case is classified correctly when a_(g,y) + b_patient + e > 0, with
    b ~ N(0, patient_sd^2) shared by the patient's cases and e ~ N(0, 1), so
    P(correct | y) = Phi(a_(g,y) / sqrt(1 + patient_sd^2)).
    """
    separation = tuple(np.linspace(0.6, 1.6, len(sizes)).round(3))
    prevalence = tuple(np.linspace(0.5, 0.35, len(sizes)).round(3))
    scenario = Scenario("clustered", sizes, separation, prevalence, patient_sd)
    scale = np.sqrt(1.0 + patient_sd ** 2)
    a = np.asarray(separation)
    sens, spec = ndtr(a / scale), ndtr((a + 0.4) / scale)
    pi = np.asarray(prevalence)
    scenario.truth.update(sensitivity=sens, accuracy=pi * sens + (1 - pi) * spec)
    return scenario


def multiclass_scenario(
    sizes: tuple[int, ...] = (30, 100, 300, 1000, 2000), seed: int = 12345, truth_draws: int = 4_000_000
) -> Scenario:
    """Four classes; logits = separation_g * onehot(y) + N(0, 1) noise, softmax probabilities.

    Accuracy (argmax) and sensitivity of the positive event (melanoma or bcc;
    summed probability >= 0.5) are integrated by Monte Carlo over
    ``truth_draws`` cases per group.
    """
    separation = tuple(np.linspace(1.0, 2.2, len(sizes)).round(3))
    scenario = Scenario("multiclass", sizes, separation)
    rng = np.random.default_rng(seed)
    accuracy, sensitivity = [], []
    for strength in separation:
        y, proba = _multiclass_cases(rng, truth_draws, strength)
        accuracy.append(np.mean(proba.argmax(axis=1) == y))
        positive = np.isin(y, [1, 2])
        sensitivity.append(np.mean(proba[positive][:, [1, 2]].sum(axis=1) >= 0.5))
    scenario.truth.update(accuracy=np.asarray(accuracy), sensitivity=np.asarray(sensitivity))
    return scenario


_CLASS_SHARES = np.array([0.45, 0.2, 0.2, 0.15])


def _multiclass_cases(rng: np.random.Generator, n: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    y = rng.choice(4, size=n, p=_CLASS_SHARES)
    logits = rng.standard_normal((n, 4)).astype(np.float32)
    logits[np.arange(n), y] += strength
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits, dtype=np.float64)
    proba /= proba.sum(axis=1, keepdims=True)
    return y, proba


@dataclass
class Sample:
    """One simulated audit: inputs of :func:`fairderm.metrics.evaluate`."""

    y_true: np.ndarray
    y_score: np.ndarray
    group: np.ndarray
    cluster: np.ndarray | None
    labels: list
    positive_label: list | int


def draw(scenario: Scenario, rng: np.random.Generator) -> Sample:
    """Draw one audit from the scenario."""
    group = np.repeat(np.asarray(scenario.groups, dtype=object), scenario.sizes)
    if scenario.name == "multiclass":
        ys, probas = [], []
        for size, strength in zip(scenario.sizes, scenario.separation):
            y, proba = _multiclass_cases(rng, size, strength)
            ys.append(y)
            probas.append(proba)
        y = np.concatenate(ys)
        return Sample(np.asarray(MULTICLASS_LABELS, dtype=object)[y], np.concatenate(probas), group, None,
                      list(MULTICLASS_LABELS), list(MULTICLASS_POSITIVE))
    if scenario.name == "binary":
        mu = np.repeat(np.asarray(scenario.separation), scenario.sizes)
        pi = np.repeat(np.asarray(scenario.prevalence), scenario.sizes)
        y = (rng.random(group.size) < pi).astype(np.int64)
        # Negatives sit 0.3 further from the threshold: specificity Phi(mu + 0.3).
        z = np.where(y == 1, mu, -(mu + 0.3)) + rng.standard_normal(group.size)
        return Sample(y, expit(z), group, None, [0, 1], 1)
    return _clustered(scenario, rng)


def _clustered(scenario: Scenario, rng: np.random.Generator) -> Sample:
    patients = sum(scenario.sizes)
    patient_group = np.repeat(np.arange(len(scenario.sizes)), scenario.sizes)
    per_patient = 1 + rng.poisson(2.0, size=patients)
    patient = np.repeat(np.arange(patients), per_patient)
    g = patient_group[patient]
    effect = rng.normal(0.0, scenario.patient_sd, size=patients)[patient]
    pi = np.asarray(scenario.prevalence)[g]
    y = (rng.random(patient.size) < pi).astype(np.int64)
    a = np.asarray(scenario.separation)[g] + np.where(y == 1, 0.0, 0.4)
    correct = a + effect + rng.standard_normal(patient.size) > 0
    pred = np.where(correct, y, 1 - y)
    # A score on the right side of 0.5 exactly when the prediction is positive.
    score = np.where(pred == 1, 0.5 + 0.5 * rng.random(patient.size), 0.5 * rng.random(patient.size))
    group = np.asarray(scenario.groups, dtype=object)[g]
    return Sample(y, score, group, patient, [0, 1], 1)


def truth_table(scenario: Scenario) -> dict[tuple[str, str, str], float]:
    """{(kind, metric, group): true value} for groups, max-min gaps and min/max ratios."""
    out: dict[tuple[str, str, str], float] = {}
    for metric, values in scenario.truth.items():
        for name, value in zip(scenario.groups, values):
            out[("group", metric, name)] = float(value)
        out[("gap", metric, "")] = float(values.max() - values.min())
        out[("ratio", metric, "")] = float(values.min() / values.max())
    return out


def coverage_study(
    scenario: Scenario,
    *,
    n_sims: int,
    n_boot: int,
    ci: str = "bca",
    use_cluster: bool = True,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Simulate ``n_sims`` audits and record whether each interval covers the truth.

    Returns one row per (simulation, kind, metric, group) with columns ``sim,
    kind, metric, group, size, truth, estimate, ci_low, ci_high, covered``.
    Small-sample flags are switched off (min sizes 0) so that every group
    always enters the gap and the ratio, as the truth assumes.
    """
    from fairderm.metrics import evaluate

    truth = truth_table(scenario)
    sizes = dict(zip(scenario.groups, scenario.sizes))
    rng = np.random.default_rng(seed)
    rows = []
    for sim in range(n_sims):
        sample = draw(scenario, rng)
        result = evaluate(
            sample.y_true, sample.y_score, {"group": sample.group}, labels=sample.labels,
            positive_label=sample.positive_label, metrics=["accuracy", "sensitivity"], n_boot=n_boot, ci=ci,
            confidence=confidence, cluster=sample.cluster if use_cluster else None, seed=sim,
            min_group_size=0, min_positives=0, tests=False, case_mix=False, power=False, workers=1,
        )
        frame = result.to_frame()
        frame = frame[frame["group"] != "all"]
        for record in frame.itertuples(index=False):
            name = record.group.split("=", 1)[1]
            rows.append(("group", record.metric, name, sizes[name], truth[("group", record.metric, name)],
                         record.estimate, record.ci_low, record.ci_high))
        spread = result.disparities.to_frame()
        for record in spread[spread["kind"].isin(["gap", "ratio"])].itertuples(index=False):
            rows.append((record.kind, record.metric, "", 0, truth[(record.kind, record.metric, "")],
                         record.estimate, record.ci_low, record.ci_high))
    out = pd.DataFrame(rows, columns=["kind", "metric", "group", "size", "truth", "estimate", "ci_low", "ci_high"])
    out.insert(0, "sim", np.repeat(np.arange(n_sims), len(out) // max(n_sims, 1)))
    out["covered"] = (out["ci_low"] <= out["truth"]) & (out["truth"] <= out["ci_high"])
    return out
