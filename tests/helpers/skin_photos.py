"""Helpers for the tone tests: skin photographs drawn in numpy and small cohorts of any image files.

``skin_photo`` draws a photograph of known skin colour (CIELAB) with a dark
lesion in the middle and mild pixel noise; ``make_image_cohort`` wraps any set of
image files (good or broken) into a cohort without checking the files, so
that broken images reach the tone estimator.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fairderm.cohort import Cohort, CohortSpec, write_cohort
from fairderm.tone._color import ita_degrees, lab_to_srgb

SKIN_LAB = (62.0, 11.0, 17.0)
"""A Fitzpatrick III-like skin colour used by most tests."""
SKIN_ITA = float(ita_degrees(SKIN_LAB[0], SKIN_LAB[2]))
LESION_LAB = (32.0, 14.0, 14.0)


SYNTH_WHITE = 0.65
"""Reflectance of the synthetic cohorts' rulers and paper (``fairderm.cohort``'s renderer): the tests tell the
estimator, as a user who knows their references would (``ToneParameters.white_reflectance``)."""


def skin_photo(
    size: tuple[int, int] = (160, 120),
    skin_lab: tuple[float, float, float] = SKIN_LAB,
    *,
    lesion_radius: float = 0.22,
    lesion_lab: tuple[float, float, float] = LESION_LAB,
    seed: int = 0,
) -> np.ndarray:
    """(height, width, 3) uint8: skin of colour ``skin_lab`` with a dark round lesion in the centre.

    ``lesion_radius`` is a fraction of the short side; 0 draws no lesion.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    distance = np.hypot(yy - (height - 1) / 2, xx - (width - 1) / 2) / min(width, height)
    lab = np.empty((height, width, 3))
    lab[:] = skin_lab
    lab[distance < lesion_radius] = lesion_lab
    lab[..., 0] += rng.normal(0.0, 1.0, size=(height, width))
    return np.clip(np.round(lab_to_srgb(lab) * 255), 0, 255).astype(np.uint8)


def lesion_mask(size: tuple[int, int] = (160, 120), lesion_radius: float = 0.22) -> np.ndarray:
    """The lesion drawn by :func:`skin_photo`, as a bool mask."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    return np.hypot(yy - (height - 1) / 2, xx - (width - 1) / 2) / min(width, height) < lesion_radius


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def make_image_cohort(root: Path, files: dict[str, bytes], *, extra: dict[str, list[object]] | None = None) -> Cohort:
    """A cohort of the given image files (names without folder), files not checked."""
    names = list(files)
    manifest = pd.DataFrame({
        "image_id": [Path(name).stem for name in names],
        "image": [f"images/{name}" for name in names],
        "label": ["nevus"] * len(names),
        **(extra or {}),
    })
    spec = CohortSpec(name=root.name, labels=["nevus", "melanoma"], positive_classes=["melanoma"],
                      synthetic=True)
    return write_cohort(root, spec, manifest, check_files=False,
                        extra_files={f"images/{name}": data for name, data in files.items()})
