"""The router's patient-grouped split: every case placed, and scikit-learn's small-stratum warning kept out of sight."""

from __future__ import annotations

import warnings

import numpy as np

from fairderm.moe._data import make_split


def test_a_stratum_smaller_than_the_folds_splits_without_leaking_sklearns_warning() -> None:
    rng = np.random.default_rng(0)
    labels = np.array(["benign"] * 97 + ["melanoma"] * 3)  # 3 melanoma cases < 5 folds
    groups = rng.choice(["I-II", "III-IV", "V-VI"], size=100)
    clusters = np.arange(100) // 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = make_split(labels, groups, clusters, seed=0)
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    assert set(split) == {"train", "val", "test"}
    for patient in np.unique(clusters):  # a patient's photographs stay in one part
        assert len(set(split[clusters == patient])) == 1
