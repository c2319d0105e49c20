"""Procedural texture helpers shared by the synthetic skin, lesion and prop renderers."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import scipy.fft
from PIL import Image, ImageDraw

SUPERSAMPLE = 3  # strokes (hair, ink, vessels, ruler ticks) are drawn at 3x, then box-filtered


@functools.lru_cache(maxsize=64)
def spectral_gain(size: int, beta: float, band: float | None) -> np.ndarray:
    """rfft2 amplitude filter for 1/f**beta noise, or a log-normal band around ``band``."""
    fy = np.fft.fftfreq(size)[:, None] * size
    fx = np.fft.rfftfreq(size)[None, :] * size
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    if band is None:
        gain = radius ** (-beta / 2.0)
    else:
        gain = np.exp(-0.5 * (np.log(radius / band) / 0.35) ** 2)
    gain[0, 0] = 0.0
    return gain.astype(np.float32)


def noise_fields(rng: np.random.Generator, size: int, spectra: Sequence[tuple[float, float | None]],
                 resolution: int | None = None) -> np.ndarray:
    """Zero-mean unit-variance periodic noise fields, one per (beta, band) spectrum.

    Each is white noise filtered to a 1/f**beta power spectrum (fractal
    texture) or, with a band in cycles per frame, to a log-normal band.
    All fields share one batched FFT. Smooth fields can be made at a lower
    ``resolution`` and interpolated up to ``size``, which costs a fraction.
    """
    grid = size if resolution is None else min(size, resolution)
    white = rng.standard_normal((len(spectra), grid, grid), dtype=np.float32)
    gains = np.stack([spectral_gain(grid, beta, band) for beta, band in spectra])
    spectrum = scipy.fft.rfft2(white, axes=(1, 2)) * gains
    fields = scipy.fft.irfft2(spectrum, s=(grid, grid), axes=(1, 2))
    if grid != size:
        fields = np.stack([
            np.asarray(Image.fromarray(np.ascontiguousarray(one, dtype=np.float32), mode="F")
                       .resize((size, size), Image.Resampling.BILINEAR))
            for one in fields
        ])
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True) + 1e-12
    return fields.astype(np.float32, copy=False)


def zero_mean(values: np.ndarray) -> np.ndarray:
    """``values`` minus their mean over the frame (so adding it keeps the mean colour)."""
    return values - values.mean()


def smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1`` (reversed when edge0 > edge1)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def stroke_canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A supersampled 8-bit canvas for antialiased strokes."""
    canvas = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    return canvas, ImageDraw.Draw(canvas)


def canvas_alpha(canvas: Image.Image, size: int) -> np.ndarray:
    """Coverage in [0, 1] of a stroke canvas box-filtered down to the frame."""
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0


def to_canvas(points: np.ndarray) -> list[tuple[float, float]]:
    """Pixel coordinates (x, y) -> supersampled canvas coordinates."""
    scaled = (np.asarray(points) + 0.5) * SUPERSAMPLE
    return [(float(x), float(y)) for x, y in scaled]
