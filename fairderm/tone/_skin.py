"""Which pixels are healthy skin: the skin-colour model, the lesion and the other exclusions.

Everything here works on a small CIELAB image (<= 256 px a side) with
separable filters, so that one photograph takes a few milliseconds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from fairderm.tone._color import log_chromaticity

# Skin hue in CIELAB (h_ab = atan2(b*, a*)) across the lightest to the darkest
# skin: the Monk swatches span 49-89 degrees, measured skin 30-80 degrees
# (Del Bino & Bernerd 2013); erythema pulls it towards red. Chroma starts low:
# Monk 1 and 10 have C*ab 5.6 and 3.8, so a chroma floor of 3 keeps them.
SKIN_HUE_DEGREES = (12.0, 100.0)
SKIN_MIN_CHROMA = 3.0
SKIN_LIGHTNESS = (8.0, 98.0)


def skin_gamut(lab: np.ndarray, hue_margin: float = 0.0) -> np.ndarray:
    """Pixels whose colour any skin could have (lightest to darkest).

    ``hue_margin`` widens the hue range on both sides (degrees), for a first
    look at a photograph whose colour cast is not yet corrected.
    """
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    low = np.radians(SKIN_HUE_DEGREES[0] - hue_margin)
    high = np.radians(SKIN_HUE_DEGREES[1] + hue_margin)
    # hue inside [low, high] (a range under 180 degrees) as two cross-product
    # signs: no arctan2 per pixel
    return (
        (lightness >= SKIN_LIGHTNESS[0])
        & (lightness <= SKIN_LIGHTNESS[1])
        & (a * a + b * b >= SKIN_MIN_CHROMA**2)
        & (b * np.float32(np.cos(low)) - a * np.float32(np.sin(low)) >= 0)
        & (a * np.float32(np.sin(high)) - b * np.float32(np.cos(high)) >= 0)
    )


def border_ring(shape: tuple[int, int], fraction: float) -> np.ndarray:
    """Pixels within ``fraction`` of the short side from the image border."""
    height, width = shape
    width_px = max(1, int(round(fraction * min(height, width))))
    ring = np.ones(shape, dtype=bool)
    ring[width_px : height - width_px, width_px : width - width_px] = False
    return ring


def frame_axes(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Column and row coordinates x and y of a frame, in [-1, 1] about its centre."""
    height, width = shape
    return (np.arange(width) - (width - 1) / 2) / (width / 2), (np.arange(height) - (height - 1) / 2) / (height / 2)


@functools.lru_cache(maxsize=32)
def centre_distance(shape: tuple[int, int]) -> np.ndarray:
    """Distance from the image centre, 0 at the centre and 1 at the corners (read-only, cached per shape)."""
    xx, yy = (axis.astype(np.float32) for axis in frame_axes(shape))
    distance = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2) / np.sqrt(2.0)
    distance.flags.writeable = False
    return distance


def disk(radius: int) -> np.ndarray:
    """Disk structuring element."""
    span = np.arange(-radius, radius + 1)
    return (span[:, None] ** 2 + span[None, :] ** 2) <= radius * radius + radius


def hair_mask(lightness: np.ndarray, *, radius: int, contrast: float) -> np.ndarray:
    """Thin dark structures: the black-hat (closing minus image) of L* above ``contrast``.

    Black-hat filtering for hair is the approach of DullRazor (Lee et al. 1997).
    """
    # a square (separable) closing: a tenth of the cost of a disk, same effect on thin hairs
    closed = _square_filter(_square_filter(lightness, radius, np.maximum), radius, np.minimum)
    return (closed - lightness) > contrast


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a square of side 2*radius+1 in the first two axes, borders mirrored.

    Same as ``scipy.ndimage.uniform_filter`` (``reflect`` mode) on each
    channel, as sums of shifted views of one padded copy.
    """
    size = 2 * radius + 1
    pad = [(radius, radius), (radius, radius)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="symmetric")
    height, width = image.shape[:2]
    rows = padded[0:height]
    for step in range(1, size):
        rows = rows + padded[step : step + height]
    total = rows[:, 0:width]
    for step in range(1, size):
        total = total + rows[:, step : step + width]
    return total / np.asarray(size * size, dtype=image.dtype)


# Up to this radius, combining shifted views beats scipy's filters several
# times over on a working-size image (no per-call set-up, no buffer copies).
_SHIFT_RADIUS = 8


def _square_filter(array: np.ndarray, radius: int, combine: np.ufunc) -> np.ndarray:
    """Separable square max or min filter: ``combine`` is ``np.maximum``/``np.minimum``
    (grey levels) or ``np.logical_or``/``np.logical_and`` (masks).

    Pixels beyond the border are ignored, which for a max or min is the same
    as scipy's ``reflect`` mode (the mirrored pixels are inside the window).
    """
    out = np.array(array)
    for axis in (0, 1):
        source = out
        out = source.copy()
        view = out if axis == 0 else out.T
        src = source if axis == 0 else source.T
        for step in range(1, radius + 1):
            combine(view[step:], src[:-step], out=view[step:])
            combine(view[:-step], src[step:], out=view[:-step])
    return out


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a square of side 2*radius+1 (separable, fast)."""
    if radius <= 0:
        return mask
    if radius <= _SHIFT_RADIUS:
        return _square_filter(mask, radius, np.logical_or)
    return ndi.maximum_filter(mask, size=2 * radius + 1)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a square of side 2*radius+1 (separable, fast)."""
    if radius <= 0:
        return mask
    if radius <= _SHIFT_RADIUS:
        return _square_filter(mask, radius, np.logical_and)
    return ndi.minimum_filter(mask, size=2 * radius + 1)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a mask: background regions that do not touch the image border.

    Same result as ``scipy.ndimage.binary_fill_holes`` with one labelling
    pass instead of an iterated dilation.
    """
    labels, count = ndi.label(~mask)
    if count == 0:
        return mask
    outside = np.zeros(count + 1, dtype=bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        outside[edge] = True
    outside[0] = True
    return mask | ~outside[labels]


def channel_max(rgb: np.ndarray) -> np.ndarray:
    """Largest of the three channels (element-wise maxima: far faster than ``max(axis=-1)``)."""
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def channel_min(rgb: np.ndarray) -> np.ndarray:
    """Smallest of the three channels."""
    return np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


@dataclass(frozen=True)
class SkinReference:
    """Robust centre and spread of a skin colour (CIELAB).

    ``centre`` is one colour (3,) or a colour per pixel (height, width, 3),
    as :func:`skin_field` gives; ``scale`` is (3,).
    """

    centre: np.ndarray
    scale: np.ndarray


def robust_reference(lab_pixels: np.ndarray, floors: tuple[float, float, float]) -> SkinReference:
    """Median and MAD-based standard deviation per channel, with lower bounds."""
    centre = np.median(lab_pixels, axis=0)
    return SkinReference(centre=centre, scale=np.maximum(robust_sd(lab_pixels - centre), np.asarray(floors)))


def robust_sd(deviations: np.ndarray) -> np.ndarray:
    """Per-column SD from the median absolute deviation of (n, d) deviations from a centre (normal-consistent)."""
    return np.median(np.abs(deviations), axis=0) * 1.4826


def sample_pixels(mask: np.ndarray, max_points: int, min_points: int = 60) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows and columns of at most ``max_points`` of a mask's pixels, evenly spaced in scan order.

    ``None`` when the mask has fewer than ``min_points`` pixels.
    """
    rows, cols = np.nonzero(mask)
    if rows.size < min_points:
        return None
    if rows.size > max_points:
        keep = np.linspace(0, rows.size - 1, max_points).astype(np.int64)
        rows, cols = rows[keep], cols[keep]
    return rows, cols


def lesion_score(lab: np.ndarray, reference: SkinReference) -> np.ndarray:
    """How far each pixel's colour is from the healthy skin, in robust SDs.

    Darker, redder or differently yellow pixels count fully; lighter pixels
    (scale, scars, hypopigmentation) count at half weight, since highlights
    also make skin lighter.
    """
    z = (lab - reference.centre.astype(np.float32)) / reference.scale.astype(np.float32)
    darker = np.minimum(z[..., 0], 0.0)
    lighter = np.maximum(z[..., 0], 0.0) * 0.5
    return np.sqrt(darker * darker + lighter * lighter + z[..., 1] ** 2 + z[..., 2] ** 2)


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's (1979) threshold of a 1-D sample."""
    if values.size == 0:
        return float("inf")
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(hist * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[int(np.argmax(between))])


# Tukey's biweight tuning constant (95% efficiency under a normal model).
_TUKEY_C = 4.685


def skin_field(
    lab: np.ndarray, fit: np.ndarray, *, max_points: int = 256, iterations: int = 3
) -> tuple[np.ndarray, np.ndarray] | None:
    """A smooth skin colour over the frame: a robust quadratic surface per CIELAB channel.

    Light falls unevenly on curved skin and the colour drifts across a
    photograph, so one global skin colour, and its spread, describe the
    skin poorly: a faint lesion is then no further from it than the skin
    at the far side of the frame. Here each channel is fitted, on at most
    ``max_points`` pixels of ``fit`` (evenly subsampled), with
    ``c0 + c1 x + c2 y + c3 x^2 + c4 y^2 + c5 xy`` (x, y in [-1, 1]) by
    iteratively reweighted least squares with Tukey's biweight (scale: the
    MAD of the residuals), so that lesion, hair or shadow in ``fit`` do not
    pull the surface.

    Returns the surface (height, width, 3) and the residuals' robust SD per
    channel, or ``None`` when the fitted pixels do not span the frame in
    both directions (a surface would then be an extrapolation).
    """
    sample = sample_pixels(fit, max_points)
    if sample is None:
        return None
    rows, cols = sample
    x_axis, y_axis = frame_axes(fit.shape)
    x, y = x_axis[cols], y_axis[rows]
    if np.ptp(x) < 1.0 or np.ptp(y) < 1.0:
        return None
    design = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
    values = lab[rows, cols].astype(np.float64)
    # one weighted least-squares problem per channel, solved together:
    # gram[k] = D' W_k D, moment[k] = D' W_k v_k
    outer = design[:, :, None] * design[:, None, :]
    weights = np.ones_like(values)
    for _ in range(iterations):
        gram = np.einsum("nk,nij->kij", weights, outer) + 1e-6 * np.eye(6)
        moment = np.einsum("nk,ni,nk->ki", weights, design, values)
        coefficients = np.linalg.solve(gram, moment[..., None])[..., 0].T  # (6, 3)
        residual = values - design @ coefficients
        # the fit has an intercept, so the residuals are centred: MAD about 0
        scale = np.maximum(robust_sd(residual), 1e-3)
        u = residual / (_TUKEY_C * scale)
        weights = np.clip(1.0 - u * u, 0.0, None) ** 2
    c = coefficients.astype(np.float32)
    xs, ys = x_axis.astype(np.float32), y_axis.astype(np.float32)
    # separable evaluation: (c0 + c2 y + c4 y^2) + (c1 + c5 y) x + c3 x^2
    field = (
        (c[0] + ys[:, None] * c[2] + (ys * ys)[:, None] * c[4])[:, None, :]
        + (c[1] + ys[:, None] * c[5])[:, None, :] * xs[None, :, None]
        + (xs * xs)[None, :, None] * c[3]
    )
    return field, scale


def two_populations(values: np.ndarray, *, iterations: int = 8) -> tuple[np.ndarray, np.ndarray, float]:
    """Split points (n, d) into two clusters (Lloyd's 2-means, started from two far-apart points).

    Returns the labels (0/1), the clusters' medians (2, d), and the separation: the
    distance between the centres in units of the pooled within-cluster
    robust SD (MAD per coordinate, root mean square over coordinates).
    """
    first = values[np.argmax(np.sum((values - values.mean(axis=0)) ** 2, axis=1))]
    second = values[np.argmax(np.sum((values - first) ** 2, axis=1))]
    labels = np.zeros(values.shape[0], dtype=bool)
    for step in range(iterations):
        # nearer to ``second`` than to ``first``: one side of the bisecting plane
        update = values @ (second - first) > 0.5 * (second @ second - first @ first)
        if update.all() or not update.any():
            return update.astype(np.int64), np.stack([first, second]), 0.0
        if step and np.array_equal(update, labels):
            break
        labels = update
        first, second = values[~labels].mean(axis=0), values[labels].mean(axis=0)
    # robust centres and spread of the final clusters
    centres = np.stack([np.median(values[~labels], axis=0), np.median(values[labels], axis=0)])
    labels = labels.astype(np.int64)
    residual = values - centres[labels]
    pooled = float(np.sqrt(np.mean(robust_sd(residual) ** 2)))
    return labels, centres, float(np.linalg.norm(centres[1] - centres[0]) / max(pooled, 1e-6))


def minority_population(
    linear: np.ndarray,
    usable: np.ndarray,
    ring: np.ndarray,
    *,
    min_separation: float = 8.0,
    min_share: float = 0.15,
    min_offset: float = 0.35,
    max_points: int = 256,
) -> np.ndarray | None:
    """Pixels of a second colour in the frame's outer ring that is not the skin's, or ``None``.

    Backgrounds of skin-like hue (a beige wall, a tan drape or couch paper,
    a wooden table, clothing) pass the skin gamut and, when they fill part
    of the ring, drag the robust skin colour towards them and inflate its
    spread, so that neither the lesion nor the background stands out. In
    log chromaticity (of linear RGB ``linear``, which shading does not
    move; computed for the whole frame only when there are two
    populations) the ring's usable pixels are split in two
    (:func:`two_populations`);
    if the two are far apart (``min_separation`` pooled robust SDs) and
    the smaller holds at least ``min_share`` of the ring, every usable
    pixel is given to the nearer of the two colours. The skin is the one
    that holds more of the frame's centre (where the photographer put the
    lesion, on skin); the other is a background if it enters from the
    edge: its pixels' centroid lies at least ``min_offset`` from the
    frame's centre (x, y in [-1, 1]). Skin around a large, centred lesion
    that reaches into the ring is centred itself, so it is not taken for a
    background. The background's pixels are returned.
    """
    sample = sample_pixels(usable & ring, max_points)
    if sample is None:
        return None
    rows, cols = sample
    values = log_chromaticity(linear[rows, cols]).astype(np.float64)
    labels, centres, separation = two_populations(values)
    share = float(labels.mean())
    if separation < min_separation or min(share, 1.0 - share) < min_share:
        return None
    every = log_chromaticity(linear)
    second = usable & (np.sum((every - centres[1]) ** 2, axis=-1) < np.sum((every - centres[0]) ** 2, axis=-1))
    # which one is a background: not the one at the frame's centre (where
    # the photographer put the lesion, on skin), and one that enters from
    # the edge, its pixels off to one side (skin around a large lesion that
    # reaches the ring is centred, so it is not taken for a background)
    populations = (usable & ~second, second)
    central = centre_distance(usable.shape) < 0.2
    other = 1 - int(np.argmax([np.count_nonzero(population & central) for population in populations]))
    rows_k, cols_k = np.nonzero(populations[other])
    x_axis, y_axis = frame_axes(usable.shape)
    if np.hypot(x_axis[cols_k].mean(), y_axis[rows_k].mean()) < min_offset:
        return None
    return populations[other]
