"""Small cohorts of generated lesion photos made on the fly (no downloads), for the inference, reasoning and
audit tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fairderm.cohort import CohortSpec, write_cohort

LABELS = ["nevus", "melanoma", "bcc", "seborrheic_keratosis"]
# Skin background per Fitzpatrick type (sRGB), light to dark.
_SKIN = {
    1: (236, 200, 180),
    2: (225, 185, 160),
    3: (200, 155, 125),
    4: (165, 120, 90),
    5: (120, 80, 55),
    6: (75, 50, 35),
}
# Lesion colour and radius per label, so that a head has something to learn.
_LESION = {
    "nevus": ((110, 70, 45), 0.18),
    "melanoma": ((40, 25, 30), 0.30),
    "bcc": ((215, 140, 150), 0.22),
    "seborrheic_keratosis": ((150, 120, 70), 0.26),
}


def lesion_image(label: str, fitzpatrick: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    colour, radius = _LESION[label]
    radius *= rng.uniform(0.8, 1.2)
    cx, cy = rng.uniform(0.4, 0.6, size=2)
    inside = ((xx - cx) ** 2 + (yy - cy) ** 2) < radius**2
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = _SKIN[fitzpatrick]
    image[inside] = colour
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG" if fmt == "jpg" else "PNG", quality=92)
    return buffer.getvalue()


def make_lesion_cohort(
    out: Path,
    n: int = 40,
    *,
    seed: int = 0,
    size: int = 96,
    fmt: str = "png",
    with_split: bool = True,
    broken: int = 0,
):
    """A cohort of ``n`` generated lesion photos with patients, tones and splits.

    The last ``broken`` images are written as garbage bytes after the cohort
    is validated (to test unreadable images at inference time).
    """
    rng = np.random.default_rng(seed)
    rows, files = [], {}
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        fitz = int(rng.integers(1, 7))
        patient = f"P{i // 2:03d}"
        name = f"images/img_{i:04d}.{fmt}"
        files[name] = _encode(lesion_image(label, fitz, size, rng), fmt)
        rows.append(
            {
                "image_id": f"img_{i:04d}",
                "image": name,
                "label": label,
                "patient_id": patient,
                "fitzpatrick": fitz,
            }
        )
    manifest = pd.DataFrame(rows)
    manifest["fitzpatrick_group"] = manifest["fitzpatrick"].map(
        {1: "I-II", 2: "I-II", 3: "III-IV", 4: "III-IV", 5: "V-VI", 6: "V-VI"}
    )
    if with_split:
        patients = sorted(manifest["patient_id"].unique())
        order = rng.permutation(len(patients))
        split_of = {}
        for rank, k in enumerate(order):
            split_of[patients[k]] = (
                "train"
                if rank < 0.6 * len(patients)
                else ("val" if rank < 0.8 * len(patients) else "test")
            )
        manifest["split"] = manifest["patient_id"].map(split_of)
    spec = CohortSpec(
        name="tiny",
        labels=LABELS,
        positive_classes=["melanoma", "bcc"],
        synthetic=True,
        attributes=["fitzpatrick_group"],
    )
    cohort = write_cohort(out, spec, manifest, extra_files=files)
    for name in manifest["image"].tolist()[n - broken :]:
        (out / name).write_bytes(b"this is not an image")
    return cohort
