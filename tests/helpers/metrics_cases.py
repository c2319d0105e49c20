"""Seeded synthetic predictions shared by the metrics tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]


@dataclass
class Binary:
    y: np.ndarray
    score: np.ndarray
    group: np.ndarray
    sex: np.ndarray
    patient: np.ndarray

    @property
    def pred(self) -> np.ndarray:
        return (self.score >= 0.5).astype(int)


@dataclass
class Multiclass:
    y: np.ndarray
    proba: np.ndarray
    group: np.ndarray


def make_binary(n: int = 1200, seed: int = 0) -> Binary:
    rng = np.random.default_rng(seed)
    group = rng.choice(["I-II", "III-IV", "V-VI"], size=n, p=[0.45, 0.4, 0.15])
    y = (rng.random(n) < np.where(group == "V-VI", 0.4, 0.3)).astype(int)
    shift = np.where(group == "V-VI", -0.1, 0.0)
    score = np.clip(rng.normal(0.3 + 0.35 * y + shift, 0.2), 0.0, 1.0)
    return Binary(y, score, group, rng.choice(["female", "male"], size=n), rng.integers(0, n // 3, size=n))


def make_multiclass(n: int = 1500, seed: int = 1) -> Multiclass:
    rng = np.random.default_rng(seed)
    codes = rng.choice(4, size=n, p=[0.45, 0.2, 0.2, 0.15])
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), codes] += 1.4
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    group = rng.choice(["I-II", "III-IV", "V-VI"], size=n, p=[0.5, 0.35, 0.15])
    return Multiclass(np.asarray(LABELS, dtype=object)[codes], proba, group)
