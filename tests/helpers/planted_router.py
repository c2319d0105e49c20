"""Fixtures of the router tests: feature-level data with a planted tone-dependent rule.

The planted rule mimics the synthetic generator's tone shift at feature level:
the class boundary on feature 0 sits at 0 for skin types I-IV and is shifted
for types V-VI, so one linear head on the features alone must misclassify the
dark group's cases between the two boundaries, while a model that sees the
tone can move its boundary per group. No images are needed: the cohort is a
manifest without image files and the features are passed to
:func:`fairderm.moe.train_router` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fairderm.cohort import CohortSpec, write_cohort

GROUP_NAMES = ("I-II", "III-IV", "V-VI")
# One Fitzpatrick type and one ITA (degrees) per group, inside its band under the
# tone estimator's default cut points (45/28/17/5/-20).
GROUP_TYPE = (2, 4, 6)
GROUP_ITA = (35.0, 10.0, -40.0)
N_FEATURES = 16


@dataclass
class Planted:
    """Features, labels and group index (0, 1, 2 for I-II, III-IV, V-VI) of planted cases."""

    features: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    def tone(self) -> np.ndarray:
        """One-hot Fitzpatrick-type probabilities (the router's tone input)."""
        return np.eye(6, dtype=np.float32)[np.asarray(GROUP_TYPE)[self.groups] - 1]


def planted(
    n: int, seed: int, *, weights: tuple[float, ...] = (0.55, 0.3, 0.15), shift: float = 1.2
) -> Planted:
    """Cases whose class boundary on feature 0 is shifted by ``shift`` in group V-VI."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(3, size=n, p=list(weights))
    features = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    boundary = np.where(groups == 2, shift, 0.0)
    y = (features[:, 0] + 0.3 * rng.normal(size=n) > boundary).astype(int)
    return Planted(features, y, groups)


@dataclass
class PlantedCohort:
    """A manifest-only cohort with its tone table and planted features."""

    root: Path
    tone: Path
    features: np.ndarray
    manifest: pd.DataFrame


def tone_frame(image_ids: list[str], groups: np.ndarray) -> pd.DataFrame:
    """A tone table in the contract's columns with each image's ITA inside its group's band (default scheme)."""
    ita = np.asarray(GROUP_ITA)[groups]
    frame = pd.DataFrame(
        {
            "image_id": pd.array(image_ids, dtype="string"),
            "ita": ita,
            "ita_low": ita - 3.0,
            "ita_high": ita + 3.0,
            "skin_fraction": 0.5,
            "fitzpatrick_est": pd.array(np.asarray(GROUP_TYPE)[groups], dtype="Int8"),
            "monk_est": pd.array(np.asarray(GROUP_TYPE)[groups], dtype="Int8"),
            "status": "ok",
            "reason": "",
            "method": "fairderm",
        }
    )
    frame.attrs["fairderm_tone"] = {"method": "fairderm", "fitzpatrick_scheme": None, "calibration": None}
    return frame


def make_planted_cohort(
    folder: Path,
    *,
    n: int = 600,
    seed: int = 0,
    weights: tuple[float, ...] = (0.55, 0.3, 0.15),
    dark_split: str | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> PlantedCohort:
    """Write a planted cohort (binary labels nevus/melanoma, a 60/20/20 split) and its tone file.

    ``dark_split`` puts every V-VI case into that split (e.g. none in train);
    a split missing from ``splits`` goes to train.
    """
    from fairderm.tone import write_tone

    data = planted(n, seed, weights=weights)
    image_ids = [f"case{i:04d}" for i in range(n)]
    rng = np.random.default_rng(seed + 1)
    split = rng.choice(["train", "val", "test"], size=n, p=[0.6, 0.2, 0.2])
    if dark_split is not None:
        split[data.groups == 2] = dark_split
    split[~np.isin(split, splits)] = "train"
    manifest = pd.DataFrame(
        {
            "image_id": image_ids,
            "image": [f"images/{i}.png" for i in image_ids],
            "label": np.where(data.y == 1, "melanoma", "nevus"),
            "patient_id": [f"p{i:04d}" for i in range(n)],
            "split": split,
        }
    )
    spec = CohortSpec(
        name="planted", labels=["nevus", "melanoma"], positive_classes=["melanoma"], synthetic=True
    )
    cohort = write_cohort(folder / "cohort", spec, manifest, check_files=False)
    tone_path = folder / "tone.parquet"
    write_tone(tone_path, tone_frame(image_ids, data.groups), cohort)
    return PlantedCohort(folder / "cohort", tone_path, data.features, manifest)


# Small and quick: every trained router in the tests uses these settings.
# manifest-only cohorts have no images to turn, so no views (tested on images in test_router_cli.py)
QUICK = {"n_boot": 50, "views": 0, "train_config": {"max_epochs": 40, "patience": 10}}


