"""The optional ``stone`` method: skin-tone-classifier with the lesion masked out first.

skin-tone-classifier (Rejón Piña & Ma 2023; package ``skin-tone-classifier``,
module ``stone``) is GPL-3.0. fairderm only calls its public functions at run
time and ships none of its code; install it with ``pip install
'fairderm[stone]'``. Its own skin detector is a fixed HSV box that keeps no
pixels on the lightest and darkest skin and then silently uses the whole
image, which is why it is not fairderm's default; it is offered for
comparison. The lesion found by fairderm's segmentation (with its margin)
and every excluded non-skin pixel are set to black before the call: the
classifier's clustering ignores pure black pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairderm.errors import FairdermError
from fairderm.tone._color import hex_to_lab, ita_degrees
from fairderm.tone._decode import ImageRefused, decode_image
from fairderm.tone._pipeline import ToneParameters, analyse_rgb
from fairderm.tone._scales import MONK_HEX

INSTALL_HINT = "pip install 'fairderm[stone]' (skin-tone-classifier, GPL-3.0, and opencv-python)"


def require_stone() -> Any:
    """Import ``stone`` lazily; a clear error when the extra is not installed."""
    try:
        import stone.image
    except ImportError as exc:
        raise FairdermError(f"the 'stone' tone method needs skin-tone-classifier: {INSTALL_HINT} ({exc})") from None
    return stone.image


def measure_with_stone(path: Path, params: ToneParameters) -> dict[str, Any]:
    """Monk tone and ITA of one image by skin-tone-classifier, lesion masked out."""
    record: dict[str, Any] = {
        "ita": float("nan"), "ita_low": float("nan"), "ita_high": float("nan"),
        "skin_fraction": float("nan"), "status": "ok", "reason": "",
        "skin_L": float("nan"), "skin_a": float("nan"), "skin_b": float("nan"),
        "lesion_fraction": float("nan"), "constancy": "none", "exposure_correction": 0.0, "monk": None,
    }
    stone_image = require_stone()
    try:
        decoded = decode_image(path, max(params.working_size, 250))
    except ImageRefused as refused:
        record.update(status=refused.status, reason=refused.reason)
        return record
    masks = analyse_rgb(decoded.rgb, decoded.opaque, params, keep_masks=True)
    if masks.healthy_mask is None or masks.status == "error":
        record.update(status="error", reason=masks.reason)
        return record
    keep = masks.healthy_mask
    record["skin_fraction"] = float(keep.mean())
    record["lesion_fraction"] = masks.lesion_fraction
    if keep.sum() < 50:
        record.update(status="abstain", reason="too little healthy skin left after masking the lesion")
        return record
    bgr = decoded.rgb[..., ::-1].copy()
    bgr[~keep] = 0
    palette = stone_image.normalize_palette(["#" + code for code in MONK_HEX])
    labels = [str(k) for k in range(1, 11)]
    try:
        faces, _ = stone_image.process_image(
            bgr, False, False, palette, labels, new_width=-1, n_dominant_colors=2, verbose=False,
        )
    except Exception as exc:  # noqa: BLE001 - a third-party failure on one image must not stop the cohort
        record.update(status="error", reason=f"skin-tone-classifier failed: {type(exc).__name__}: {exc}")
        return record
    if not faces:
        record.update(status="abstain", reason="skin-tone-classifier returned no result")
        return record
    face = faces[0]
    colours = face.get("dominant_colors", [])
    lab = hex_to_lab([c["color"].lstrip("#") for c in colours])
    share = np.array([float(c["percent"]) for c in colours])
    colour = (lab * share[:, None]).sum(axis=0) / max(share.sum(), 1e-9)
    record.update(
        ita=float(ita_degrees(colour[0], colour[2])),
        skin_L=float(colour[0]), skin_a=float(colour[1]), skin_b=float(colour[2]),
        monk=int(face["tone_label"]),
    )
    return record
