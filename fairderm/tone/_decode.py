"""Reading a photograph into a small 8-bit sRGB array, with a reason for every failure.

JPEGs are decoded at reduced size (Pillow's draft mode asks libjpeg for a
1/2, 1/4 or 1/8 scale decode, which skips most of the inverse DCT work), the
EXIF orientation is honoured, and every Pillow mode is either converted to
RGB (RGBA, palette, CMYK, 16-bit RGB, YCbCr) or refused with a reason
(grayscale: no colour to measure).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fairderm.cohort import MAX_IMAGE_PIXELS
from fairderm.tone._skin import channel_max, channel_min

# Smallest side that still leaves room for a skin ring around a lesion.
MIN_SIDE = 24
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA_MODES = {"RGBA", "RGBa", "PA"}


class ImageRefused(Exception):
    """An image that cannot be measured; ``status`` is ``error`` or ``abstain``."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class DecodedImage:
    """A photograph at working size.

    Attributes
    ----------
    rgb
        (h, w, 3) uint8 sRGB.
    opaque
        (h, w) bool, False where an alpha channel made the pixel transparent;
        None when the image has no alpha.
    original_size
        (width, height) of the file, before draft decoding and resizing.
    """

    rgb: np.ndarray
    opaque: np.ndarray | None
    original_size: tuple[int, int]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_oriented(
    path: Path, what: str, missing: str, *, draft_size: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Open, size-check, decode and EXIF-orient an image file; every failure is an ``error``.

    ``what`` names the file in the reasons ("image", "lesion mask x.png"),
    ``missing`` is the reason for a file that is not there. A JPEG is
    decoded at reduced scale when ``draft_size`` is given (the smallest
    libjpeg scale whose long side is still at least that). Returns the
    loaded image and the file's own (width, height).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                original_size = image.size
                width, height = original_size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageRefused(
                        "error",
                        f"{what} is {width}x{height} px, above the {MAX_IMAGE_PIXELS} pixel limit "
                        "(decompression bomb?)",
                    )
                if draft_size is not None and image.format == "JPEG":
                    image.draft(image.mode if image.mode == "CMYK" else "RGB", (draft_size, draft_size))
                image.load()
                return ImageOps.exif_transpose(image) or image, original_size
    except ImageRefused:
        raise
    except FileNotFoundError:
        raise ImageRefused("error", missing) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused("error", f"decompression bomb refused ({what}): {_first_line(exc)}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRefused("error", f"cannot decode {what}: {_first_line(exc)}") from None


def decode_image(path: Path, working_size: int) -> DecodedImage:
    """Decode ``path`` to at most ``working_size`` pixels on the long side.

    Raises
    ------
    ImageRefused
        ``error`` for unreadable files (missing, truncated, not an image,
        decompression bomb), ``abstain`` for readable images without usable
        colour (grayscale, too small, fully transparent).
    """
    image, original_size = _open_oriented(path, "image", "file not found", draft_size=working_size)
    try:
        return to_working_rgb(image, original_size, working_size)
    except (OSError, ValueError) as exc:  # a mode Pillow reads but cannot convert to RGB
        raise ImageRefused("error", f"cannot convert image ({image.mode}) to RGB: {_first_line(exc)}") from None


def to_working_rgb(image: Image.Image, original_size: tuple[int, int], working_size: int) -> DecodedImage:
    """A decoded image as working-size sRGB with its opacity; ``abstain`` for no usable colour.

    Every mode becomes RGB or is refused (grayscale); the image is reduced
    by area averaging to ``working_size`` on its long side.
    """
    mode = image.mode
    if mode in _GRAYSCALE_MODES:
        raise ImageRefused("abstain", f"grayscale image ({mode}): no colour information")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    opaque_image = None
    if mode in _ALPHA_MODES:
        opaque_image = image.getchannel("A")
        image = image.convert("RGB")
    elif mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ImageRefused("abstain", f"image too small ({width}x{height} px; need {MIN_SIDE} px a side)")
    scale = working_size / max(width, height)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
        if opaque_image is not None:
            opaque_image = opaque_image.resize(size, Image.Resampling.BOX)
    rgb = np.asarray(image, dtype=np.uint8)
    opaque = None
    if opaque_image is not None:
        opaque = np.asarray(opaque_image) >= 128
        if not opaque.any():
            raise ImageRefused("abstain", "every pixel is transparent")
    if _is_grey_rgb(rgb, opaque):
        raise ImageRefused("abstain", "grayscale image stored as RGB: no colour information")
    return DecodedImage(rgb=rgb, opaque=opaque, original_size=original_size)


def _is_grey_rgb(rgb: np.ndarray, opaque: np.ndarray | None) -> bool:
    """True when the channels are (almost) equal nearly everywhere: a grey picture saved as RGB."""
    spread = channel_max(rgb) - channel_min(rgb)
    if opaque is not None:
        spread = spread[opaque]
    # fewer than 1% of the pixels with any colour (JPEG leaves +-2 on grey)
    return bool(np.count_nonzero(spread > 2) <= 0.01 * spread.size)


def decode_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A lesion mask file as a bool array of ``shape`` (the decoded photograph's height, width).

    Any non-zero pixel of the file (after its EXIF orientation) is lesion;
    the mask is reduced by area averaging and a working pixel is lesion
    when at least half of it was. The mask must have the photograph's
    aspect ratio (within 2%).

    Raises
    ------
    ImageRefused
        ``error`` with the reason for a missing, unreadable or mismatched mask.
    """
    image, _ = _open_oriented(path, f"lesion mask {path.name}", f"lesion mask not found: {path.name}")
    try:
        lesion = image.convert("L").point(lambda value: 255 if value else 0)
    except (OSError, ValueError) as exc:  # a mode Pillow reads but cannot convert
        raise ImageRefused("error", f"cannot convert lesion mask {path.name} ({image.mode}): "
                                    f"{_first_line(exc)}") from None
    height, width = shape
    mask_width, mask_height = lesion.size
    if abs(mask_width / mask_height - width / height) > 0.02 * (width / height):
        raise ImageRefused(
            "error",
            f"lesion mask {path.name} is {mask_width}x{mask_height} px, not the photograph's aspect ratio "
            f"({width}x{height} at working size)",
        )
    reduced = lesion.resize((width, height), Image.Resampling.BOX)
    return np.asarray(reduced) >= 128
