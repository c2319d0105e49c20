"""One photograph, or a chunk of a cohort's photographs, measured: the per-image records of a tone table.

Module-level functions only: worker processes and Ray tasks pickle them by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fairderm.cohort import checked_image_path
from fairderm.tone._decode import ImageRefused, decode_image, decode_mask
from fairderm.tone._pipeline import ImageTone, ToneParameters, analyse_rgb

RECORD_FIELDS: tuple[str, ...] = (
    "ita", "ita_low", "ita_high", "skin_fraction", "status", "reason", "skin_L", "skin_a", "skin_b",
    "lesion_fraction", "constancy", "exposure_correction", "monk",
)
"""The keys of one image's record, in order (:func:`tone_record`)."""


def measure_image(
    path: str | os.PathLike[str],
    params: ToneParameters | None = None,
    *,
    mask: str | os.PathLike[str] | None = None,
) -> ImageTone:
    """Healthy-skin ITA of one photograph file; never raises for a bad image.

    ``mask`` is an optional lesion mask file (non-zero = lesion, the
    photograph's aspect ratio) used instead of the lesion segmentation; a
    missing or mismatched mask makes the image an ``error``, never a silent
    fall-back to the segmentation.

    Returns an :class:`ImageTone` whose ``status`` is ``ok``, ``abstain``
    or ``error`` with a ``reason``.
    """
    params = params or ToneParameters()
    try:
        decoded = decode_image(Path(path), params.working_size)
        lesion = None if mask is None else decode_mask(Path(mask), decoded.rgb.shape[:2])
    except ImageRefused as refused:
        return ImageTone(status=refused.status, reason=refused.reason)
    try:
        return analyse_rgb(decoded.rgb, decoded.opaque, params, lesion=lesion)
    except (ValueError, FloatingPointError, MemoryError, IndexError) as exc:
        # a defect in the estimator on one odd image must not stop a cohort
        return ImageTone(status="error", reason=f"estimator failed: {type(exc).__name__}: {exc}")


def measure_chunk(
    items: list[tuple[str, str | None]], params: ToneParameters, method: str, root: str
) -> list[dict[str, Any]]:
    records = []
    for path, mask in items:
        try:
            # checked as it is opened: a manifest or symlink changed since import must not reach outside
            image = checked_image_path(root, path)
            lesion = None if mask is None else checked_image_path(root, mask)
        except ValueError as exc:
            records.append(tone_record(ImageTone(status="error", reason=f"cannot read image: {exc}")))
            continue
        if method == "stone":
            from fairderm.tone._stone import measure_with_stone

            records.append(measure_with_stone(image, params))
        else:
            records.append(tone_record(measure_image(image, params, mask=lesion)))
    return records


def tone_record(tone: ImageTone) -> dict[str, Any]:
    return {
        "ita": tone.ita, "ita_low": tone.ita_low, "ita_high": tone.ita_high,
        "skin_fraction": tone.skin_fraction, "status": tone.status, "reason": tone.reason,
        "skin_L": tone.lab[0], "skin_a": tone.lab[1], "skin_b": tone.lab[2],
        "lesion_fraction": tone.lesion_fraction, "constancy": tone.constancy,
        "exposure_correction": tone.exposure_correction, "monk": None,
    }
