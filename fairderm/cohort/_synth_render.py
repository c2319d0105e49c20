"""Rendering of one synthetic clinical photograph: skin, lesion, confounders, camera.

The scene is built in linear sRGB reflectance (D65), then "photographed":

1. **Healthy skin** as a CIELAB field: the true colour plus texture, skin
   lines, freckles and body-curvature shading, every component zero-mean over
   the frame, so the mean colour of healthy skin is the recorded true colour.
2. **Lesion** by a chromophore model: reflectance is multiplied by
   exp(-(M eps_mel + D eps_deep + H eps_hb)) for epidermal melanin (brown),
   dermal melanin (blue-grey) and haemoglobin (red), in the spirit of the
   layered skin-optics models (Anderson & Parrish 1981; Tsumura et al. 2003),
   then scattering layers (pearly border, keratin, crust, horn cysts) are
   blended over it and relief shading is applied. The look depends on the
   class and on the skin tone: epidermal melanin hides dermal redness
   (erythema, telangiectasia) on dark skin, pigmented variants are more common
   on dark skin, and contrast of pigmented lesions falls with skin darkness.
3. **Scene confounders**: ink-pen circles, hair, specular sheen, a white ruler
   or paper (neutral reflectance 0.65 under D65, a usable white reference),
   surgical drape at the border.
4. **Camera**: illuminant colour cast (von Kries diagonal gains in linear RGB,
   von Kries 1902), exposure in stops, vignetting, defocus, sensor noise,
   sRGB encoding and JPEG compression.

Everything random comes from two generators: one per lesion (shape, colours,
texture: the same across a lesion's photographs) and one per image (framing,
skin texture, confounders).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from fairderm.cohort._synth_colour import LUMINANCE_WEIGHTS, darkness, lab_to_linear, linear_to_srgb
from fairderm.cohort._synth_lesion import LesionLayers, LesionModel, draw_lesion, lesion_layers
from fairderm.cohort._synth_texture import (
    canvas_alpha,
    noise_fields,
    smoothstep,
    stroke_canvas,
    to_canvas,
    zero_mean,
)

LABELS: tuple[str, ...] = ("nevus", "melanoma", "bcc", "seborrheic_keratosis")
POSITIVE_CLASSES: tuple[str, ...] = ("melanoma", "bcc")

# Named illuminant casts left after a camera's automatic white balance, as
# diagonal gains (R, G, B) at full strength; the drawn strength scales them in
# log space and the gains are normalised to keep luminance.
ILLUMINANTS: dict[str, tuple[float, float, float]] = {
    "d65": (1.0, 1.0, 1.0),
    "tungsten": (1.32, 1.0, 0.62),
    "warm_led": (1.15, 1.0, 0.84),
    "shade": (0.86, 1.0, 1.24),
    "fluorescent": (0.92, 1.12, 0.90),
}
ILLUMINANT_PROBABILITIES = (0.30, 0.20, 0.15, 0.17, 0.18)

WHITE_REFERENCE_REFLECTANCE = 0.65
"""Linear reflectance of rulers and paper: neutral, below clipping under any cast."""

INK_TRANSMISSION: dict[str, tuple[float, float, float]] = {
    "purple": (0.32, 0.08, 0.45),
    "blue": (0.10, 0.22, 0.60),
    "black": (0.08, 0.08, 0.09),
}
DRAPE_COLOURS: dict[str, tuple[float, float, float]] = {
    "green_drape": (0.035, 0.16, 0.12),
    "blue_drape": (0.03, 0.10, 0.24),
}
HAIR_COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.012, 0.010, 0.009),
    "brown": (0.06, 0.032, 0.018),
    "grey": (0.16, 0.155, 0.15),
}

# Hair strands expected per photo by body site (before the sex factor).
HAIR_DENSITY: dict[str, float] = {
    "face": 1.5, "nose": 0.3, "ear": 0.8, "scalp": 14.0, "neck": 2.0, "chest": 6.0,
    "back": 1.5, "abdomen": 4.0, "arm": 6.0, "forearm": 9.0, "hand": 3.0, "thigh": 6.0,
    "leg": 10.0,
}
SUN_EXPOSED_SITES = frozenset({"face", "nose", "ear", "scalp", "neck", "forearm", "hand"})



@dataclass(frozen=True)
class ImagePlan:
    """What one image shows, decided for the whole cohort before rendering."""

    index: int
    lesion_index: int
    label: str
    body_site: str
    sex: str
    age: float
    true_lab: tuple[float, float, float]
    true_ita: float


@dataclass
class Rendering:
    """One rendered photograph with the ground truth that produced it."""

    jpeg: bytes
    mask_png: bytes
    lesion_mask: np.ndarray
    healthy_skin_mask: np.ndarray
    camera_gain: np.ndarray
    """(H, W, 3) factor the camera multiplied the scene by (cast, exposure, vignetting)."""
    record: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- skin

_SKIN_DETAIL_SPECTRA = (
    (2.0, None), (0.0, 85.0), (0.0, 22.0), (1.0, None), (1.0, None), (0.8, None),
)
_SKIN_SMOOTH_SPECTRA = ((3.4, None), (3.0, None), (3.0, None), (3.0, None), (3.0, None))


def _skin_lab(rng: np.random.Generator, size: int, true_lab: tuple[float, float, float],
              skin_darkness: float, site: str) -> np.ndarray:
    """Healthy-skin CIELAB field whose every variation is zero-mean over the frame."""
    l_mid, grain, lines, a_high, b_high, spots = noise_fields(rng, size, _SKIN_DETAIL_SPECTRA)
    smooth = noise_fields(rng, size, _SKIN_SMOOTH_SPECTRA, resolution=64)
    l_low, line_strength, a_low, b_low, clusters = smooth
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size / 2.0) - 1.0
    pores = 1.3 if site in {"face", "nose"} else 0.8
    lightness = 1.6 * l_low + 0.6 * l_mid + pores * grain
    # skin lines: the zero crossings of band-limited noise form an irregular
    # polygonal network like the skin's micro-relief
    network = np.exp(-((lines / 0.22) ** 2)) * np.clip(1.0 + 0.5 * line_strength, 0.2, None)
    lightness -= rng.uniform(1.0, 2.2) * zero_mean(network)
    # body curvature: a limb or trunk seen from the front is darker at its sides
    psi = rng.uniform(0, np.pi)
    across = np.cos(psi) * xx + np.sin(psi) * yy
    lightness -= rng.uniform(0.0, 6.0) * zero_mean(across**2)
    lightness += rng.uniform(-2.5, 2.5) * zero_mean(-np.sin(psi) * xx + np.cos(psi) * yy)
    a_field = 1.0 * (1 - 0.5 * skin_darkness) * a_low + 0.3 * a_high
    b_field = 0.6 * b_low + 0.25 * b_high
    # freckles and small lentigines on sun-exposed light skin
    if site in SUN_EXPOSED_SITES and skin_darkness < 0.5 and rng.random() < 0.6:
        freckles = smoothstep(1.6, 2.4, spots) * smoothstep(-0.5, 0.8, clusters)
        strength = rng.uniform(3.0, 9.0)
        lightness -= strength * zero_mean(freckles)
        b_field += 0.6 * strength * zero_mean(freckles)
    L0, a0, b0 = true_lab
    return np.stack([L0 + lightness, a0 + a_field, b0 + b_field], axis=-1)


# --------------------------------------------------------------------------- confounders


def _hair_alpha(rng: np.random.Generator, size: int, count: int, scale: float) -> np.ndarray:
    canvas, draw = stroke_canvas(size)
    main_direction = rng.uniform(0, np.pi)
    t = np.linspace(0, 1, 24)[:, None]
    for _ in range(count):
        start = rng.uniform(-0.1 * size, 1.1 * size, 2)
        heading = main_direction + rng.normal(0, 0.35) + np.pi * (rng.random() < 0.5)
        length = rng.uniform(40, 190) * scale
        bend = rng.normal(0, 0.5)
        direction = np.array([np.cos(heading), np.sin(heading)])
        normal = np.array([-direction[1], direction[0]])
        points = start + t * length * direction + (t * (1 - t)) * bend * length * normal
        width = int(rng.integers(2, 5))  # 0.7-1.3 px in the frame
        draw.line(to_canvas(points), fill=int(rng.integers(210, 256)), width=width, joint="curve")
    return canvas_alpha(canvas, size)


def _ink_alpha(rng: np.random.Generator, size: int, centre: np.ndarray,
               radius: float) -> np.ndarray:
    canvas, draw = stroke_canvas(size)
    turns = rng.uniform(0.85, 1.15)  # a hand-drawn circle often falls short of closing or overlaps
    start = rng.uniform(0, 2 * np.pi)
    theta = start + np.linspace(0, 2 * np.pi * turns, 90)
    wobble = 1 + 0.05 * np.sin(theta * rng.integers(2, 4) + rng.uniform(0, 6))
    wobble = wobble + rng.normal(0, 0.01, theta.size)
    aspect = rng.uniform(0.8, 1.2)
    ellipse = np.stack([np.cos(theta) * aspect, np.sin(theta) / aspect], axis=1)
    points = centre + radius * wobble[:, None] * ellipse
    draw.line(to_canvas(points), fill=235, width=int(rng.integers(5, 9)), joint="curve")
    return canvas_alpha(canvas, size)


def _edge_frame(size: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along one edge of the frame and inward from it (pixels)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    along = (xx, yy, xx, yy)[side]
    inward = (yy, size - 1 - xx, size - 1 - yy, xx)[side]
    return along, inward


def _ruler(rng: np.random.Generator, size: int, scale: float,
           side: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of a white millimetre ruler along an edge, and its tick marks."""
    along, inward = _edge_frame(size, side)
    tilt = np.tan(rng.uniform(-0.12, 0.12))
    width = rng.uniform(24, 34) * scale
    offset = rng.uniform(-6, 4) * scale
    across = inward - offset - tilt * (along - size / 2)
    coverage = smoothstep(-0.7, 0.7, across) * smoothstep(width + 0.7, width - 0.7, across)
    mm = rng.uniform(7.5, 9.5) * scale  # pixels per millimetre at this framing
    position = (along + tilt * inward) / mm + rng.uniform(0, 10)
    nearest = np.abs(position - np.round(position)) * mm
    tick = np.round(position)
    tick_length = np.where(tick % 10 == 0, 0.55, np.where(tick % 5 == 0, 0.4, 0.25)) * width
    edge_distance = width - across  # ticks start at the ruler edge away from the frame border
    on_scale = (edge_distance < tick_length) & (edge_distance > 1.5 * scale)
    ticks = smoothstep(0.9, 0.3, nearest) * on_scale
    return coverage, ticks * coverage


def _paper(rng: np.random.Generator, size: int, scale: float, side: int) -> np.ndarray:
    """Coverage of a rotated paper label reaching into the frame at a corner of one edge."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    corners = ((0, 0), (size - 1, 0), (size - 1, size - 1), (0, size - 1))
    corner = np.array(corners[(side + int(rng.integers(0, 2))) % 4], dtype=np.float32)
    angle = rng.uniform(-0.5, 0.5)
    half = np.array([rng.uniform(40, 70), rng.uniform(28, 48)]) * scale
    u = np.cos(angle) * (xx - corner[0]) + np.sin(angle) * (yy - corner[1])
    v = -np.sin(angle) * (xx - corner[0]) + np.cos(angle) * (yy - corner[1])
    inside_u = smoothstep(half[0] + 0.7, half[0] - 0.7, np.abs(u))
    return inside_u * smoothstep(half[1] + 0.7, half[1] - 0.7, np.abs(v))


def _drape(rng: np.random.Generator, size: int, colour: np.ndarray, scale: float,
           side: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and linear RGB of woven surgical cloth beyond the body's edge."""
    along, inward = _edge_frame(size, side)
    tilt = np.tan(rng.uniform(-0.15, 0.15))
    curve = 6 * scale * np.sin(along / size * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))
    boundary = rng.uniform(14, 42) * scale + tilt * (along - size / 2) + curve
    coverage = smoothstep(-0.8, 0.8, boundary - inward)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    pitch = rng.uniform(2.2, 3.2) * scale
    weave = 0.5 + 0.25 * (np.cos(2 * np.pi * xx / pitch) + np.cos(2 * np.pi * yy / pitch))
    folds = np.exp(0.35 * noise_fields(rng, size, ((3.5, None),), resolution=64)[0])
    return coverage, colour * ((0.85 + 0.3 * weave) * folds)[..., None]


def _specular(rng: np.random.Generator, size: int) -> np.ndarray:
    """Neutral specular reflection: broad glossy patches broken up by the skin relief."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    sheen = np.zeros((size, size), dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform(0.1 * size, 0.9 * size, 2)
        spread = rng.uniform(0.03, 0.08) * size
        elongation = rng.uniform(1.0, 2.5)
        turn = rng.uniform(0, np.pi)
        u = np.cos(turn) * (xx - centre[0]) + np.sin(turn) * (yy - centre[1])
        v = -np.sin(turn) * (xx - centre[0]) + np.cos(turn) * (yy - centre[1])
        sheen += rng.uniform(0.025, 0.07) * np.exp(-(u**2 / elongation**2 + v**2) / (2 * spread**2))
    relief = noise_fields(rng, size, ((0.0, 60.0),))[0]
    return sheen * np.clip(1.0 + 0.5 * relief, 0, None)


# --------------------------------------------------------------------------- image


def _mask_png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


# 16-bit linear -> 8-bit sRGB lookup: the transfer function once, not per pixel.
_SRGB_LUT = np.round(linear_to_srgb(np.linspace(0.0, 1.0, 65536)) * 255.0).astype(np.uint8)


@dataclass
class _Scene:
    """The scene while it is being built, and what is known about each pixel."""

    linear: np.ndarray  # (H, W, 3) linear reflectance
    artefact: np.ndarray  # ink, hair, glare: not healthy skin
    occluder: np.ndarray  # coverage by drape, ruler, paper (hides the lesion too)
    record: dict[str, Any]

    def cover(self, coverage: np.ndarray, colour: np.ndarray) -> None:
        """Lay an opaque layer of ``colour`` (linear RGB) with soft ``coverage``."""
        self.linear = self.linear * (1 - coverage[..., None]) + coverage[..., None] * colour


_Window = tuple[slice, slice]


def _place_lesion(
    rng: np.random.Generator, model: LesionModel, size: int, scale: float, skin_darkness: float
) -> tuple[_Window, LesionLayers, np.ndarray, float]:
    """Frame the lesion (its own zoom, angle and centre per photograph) and render its layers.

    Returns the window of the frame it lies in, its layers there, its centre
    and its radius in pixels.
    """
    zoom = rng.uniform(0.85, 1.2)
    rotation = rng.uniform(0, 2 * np.pi)
    centre = size / 2 + rng.uniform(-22, 22, 2) * scale
    pixel_radius = model.radius * zoom * scale
    reach = model.extent * pixel_radius + 4
    rows = slice(max(0, int(centre[1] - reach)), min(size, int(np.ceil(centre[1] + reach)) + 1))
    cols = slice(max(0, int(centre[0] - reach)), min(size, int(np.ceil(centre[0] + reach)) + 1))
    yy, xx = np.mgrid[rows, cols].astype(np.float32)
    dx, dy = xx - centre[0], yy - centre[1]
    cos_r, sin_r = np.cos(rotation), np.sin(rotation)
    coords = np.stack([cos_r * dx + sin_r * dy, -sin_r * dx + cos_r * dy]) / pixel_radius
    vessel_alpha = np.zeros((size, size), dtype=np.float32)
    if model.vessels:
        canvas, draw = stroke_canvas(size)
        turn = np.array([[cos_r, sin_r], [-sin_r, cos_r]])
        for line in model.vessels:
            points = centre + line * pixel_radius @ turn
            draw.line(to_canvas(points), fill=255, width=2, joint="curve")
        vessel_alpha = canvas_alpha(canvas, size)
    window = (rows, cols)
    layers = lesion_layers(model, coords, pixel_radius, skin_darkness, vessel_alpha[window])
    return window, layers, centre, pixel_radius


def _add_ink(scene: _Scene, rng: np.random.Generator, plan: ImagePlan, centre: np.ndarray,
             ring_radius: float, scale: float) -> None:
    # clinicians circle the lesions they suspect more often
    rate = 0.25 if plan.label in POSITIVE_CLASSES else 0.12
    scene.record["ink_marks"] = bool(rng.random() < rate)
    scene.record["ink_colour"] = "none"
    if scene.record["ink_marks"]:
        colour = str(rng.choice(list(INK_TRANSMISSION), p=[0.5, 0.3, 0.2]))
        size = scene.linear.shape[0]
        ink = _ink_alpha(rng, size, centre + rng.normal(0, 3, 2) * scale, ring_radius)
        absorbed = 1 - np.array(INK_TRANSMISSION[colour])
        scene.linear = scene.linear * (1 - ink[..., None] * absorbed)
        scene.record["ink_colour"] = colour
        scene.artefact |= ink > 0.02


def _add_hair(scene: _Scene, rng: np.random.Generator, plan: ImagePlan, skin_darkness: float,
              scale: float) -> None:
    # denser on limbs and scalp and on men; grey with age
    expected = HAIR_DENSITY.get(plan.body_site, 3.0) * (1.6 if plan.sex == "male" else 0.5)
    count = int(min(rng.poisson(expected), 45))
    scene.record["hair_count"] = count
    if count:
        if plan.age > 55 and rng.random() < (plan.age - 55) / 40:
            colour = "grey"
        else:
            colour = "black" if skin_darkness > 0.5 or rng.random() < 0.5 else "brown"
        hair = _hair_alpha(rng, scene.linear.shape[0], count, scale)
        scene.cover(hair, np.array(HAIR_COLOURS[colour]))
        scene.artefact |= hair > 0.02


def _add_props(scene: _Scene, rng: np.random.Generator, centre: np.ndarray, scale: float) -> None:
    """Specular glare, surgical drape and a white reference (ruler or paper)."""
    size = scene.linear.shape[0]
    scene.record["specular"] = bool(rng.random() < 0.3)
    if scene.record["specular"]:
        glare = _specular(rng, size)
        scene.linear = scene.linear + glare[..., None]
        scene.artefact |= glare > 0.005
    # props sit on a side of the frame away from the lesion (top, right, bottom, left)
    offset = centre - size / 2
    far_sides = [side for side, far in enumerate(
        (offset[1] > 0, offset[0] < 0, offset[1] < 0, offset[0] > 0)) if far]
    scene.record["background"] = "none"
    if rng.random() < 0.15:
        name = str(rng.choice(list(DRAPE_COLOURS)))
        side = int(rng.choice(far_sides))
        coverage, cloth = _drape(rng, size, np.array(DRAPE_COLOURS[name]), scale, side)
        scene.cover(coverage, cloth)
        scene.occluder = np.maximum(scene.occluder, coverage)
        scene.record["background"] = name
    draw = rng.random()
    reference = "ruler" if draw < 0.22 else ("paper" if draw < 0.35 else "none")
    scene.record["white_reference"] = reference
    if reference != "none":
        side = int(rng.choice(far_sides))
        if reference == "ruler":
            coverage, ticks = _ruler(rng, size, scale, side)
            surface = WHITE_REFERENCE_REFLECTANCE * (1 - 0.95 * ticks)
        else:
            coverage = _paper(rng, size, scale, side)
            surface = np.full_like(coverage, WHITE_REFERENCE_REFLECTANCE)
        # a soft contact shadow on the skin just outside the reference
        shadow = ndimage.gaussian_filter(coverage, 2.0 * scale) * (1 - coverage)
        scene.linear = scene.linear * (1 - 0.35 * shadow[..., None])
        scene.cover(coverage, surface[..., None])
        scene.occluder = np.maximum(scene.occluder, np.maximum(coverage, shadow > 0.01))


def _photograph(scene: _Scene, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """Residual illuminant cast, exposure, vignetting, focus, noise, sRGB and JPEG.

    Returns the JPEG and the per-pixel gain the camera applied to the scene.
    """
    size = scene.linear.shape[0]
    name = str(rng.choice(list(ILLUMINANTS), p=ILLUMINANT_PROBABILITIES))
    strength = 0.0 if name == "d65" else rng.uniform(0.5, 1.0)
    gains = np.exp(strength * np.log(np.array(ILLUMINANTS[name])))
    gains = np.round(gains / (LUMINANCE_WEIGHTS @ gains), 4)
    exposure = round(float(rng.uniform(-0.2, 0.2)), 3)
    vignetting = round(float(rng.uniform(0.1, 0.35)), 3) if rng.random() < 0.5 else 0.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    radius2 = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (2 * (size / 2) ** 2)
    falloff = (1.0 - vignetting * radius2)[..., None]
    camera_gain = (gains * 2.0**exposure).astype(np.float32) * falloff
    photo = scene.linear * camera_gain
    blur = round(float(rng.uniform(0.3, 0.9)), 2) if rng.random() < 0.3 else 0.0
    if blur:
        photo = ndimage.gaussian_filter(photo, sigma=(blur, blur, 0))
    shot_noise = 0.003 * np.sqrt(np.clip(photo, 0, None) + 0.01)
    photo = photo + rng.standard_normal(photo.shape, dtype=np.float32) * shot_noise
    rgb8 = _SRGB_LUT[np.round(np.clip(photo, 0.0, 1.0) * 65535.0).astype(np.uint16)]
    quality = int(rng.integers(80, 96))
    buffer = io.BytesIO()
    Image.fromarray(rgb8, mode="RGB").save(buffer, format="JPEG", quality=quality)
    scene.record.update(
        illuminant=name,
        illuminant_r=float(gains[0]), illuminant_g=float(gains[1]), illuminant_b=float(gains[2]),
        exposure_stops=exposure, vignetting=vignetting, blur_sigma=blur, jpeg_quality=quality,
    )
    return buffer.getvalue(), camera_gain


def render_image(plan: ImagePlan, *, seed: int, size: int = 256) -> Rendering:
    """Render one photograph of ``plan`` deterministically from ``(seed, plan.index)``.

    The lesion's own look comes from ``(seed, plan.lesion_index)``, so every
    photograph of a lesion shows the same lesion.
    """
    image_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, plan.index)))
    lesion_seed = np.random.SeedSequence(seed, spawn_key=(2, plan.lesion_index))
    scale = size / 256.0
    skin_darkness = float(darkness(plan.true_ita))
    model = draw_lesion(np.random.default_rng(lesion_seed), plan.label, skin_darkness)

    window, layers, centre, pixel_radius = _place_lesion(
        image_rng, model, size, scale, skin_darkness
    )
    skin = _skin_lab(image_rng, size, plan.true_lab, skin_darkness, plan.body_site)
    linear = np.clip(lab_to_linear(skin), 0, 1)
    lesion = linear[window] * np.exp(-layers.density)
    for amount, colour in layers.scatter:
        lesion = lesion * (1 - amount[..., None]) + amount[..., None] * colour
    light_angle = image_rng.uniform(0, 2 * np.pi)
    grad_y, grad_x = np.gradient(layers.height)
    relief = np.exp(0.35 * (np.cos(light_angle) * grad_x + np.sin(light_angle) * grad_y))
    linear[window] = lesion * relief[..., None] + layers.sheen[..., None]

    no_pixels = np.zeros((size, size), dtype=bool)
    scene = _Scene(linear, no_pixels, no_pixels.astype(np.float32), {})
    ring_radius = pixel_radius * model.extent * image_rng.uniform(1.15, 1.45)
    _add_ink(scene, image_rng, plan, centre, ring_radius, scale)
    _add_hair(scene, image_rng, plan, skin_darkness, scale)
    _add_props(scene, image_rng, centre, scale)
    jpeg, camera_gain = _photograph(scene, image_rng)

    lesion_alpha = np.zeros((size, size), dtype=np.float32)
    lesion_alpha[window] = layers.alpha
    lesion_reach = np.zeros((size, size), dtype=bool)
    lesion_reach[window] = (layers.alpha > 0.02) | (np.abs(layers.height) > 1e-3)
    visible_lesion = (lesion_alpha > 0.5) & (scene.occluder < 0.5)
    near_lesion = ndimage.binary_dilation(lesion_reach, iterations=max(2, int(3 * scale)))
    # blur and JPEG spread strokes and edges by a pixel or two
    spread = ndimage.binary_dilation(scene.artefact | (scene.occluder > 0.01), iterations=2)
    healthy = ~near_lesion & ~spread
    scene.record["lesion_fraction"] = round(float(visible_lesion.mean()), 4)
    scene.record["pigmented"] = model.pigmented
    return Rendering(
        jpeg=jpeg,
        mask_png=_mask_png(visible_lesion),
        lesion_mask=visible_lesion,
        healthy_skin_mask=healthy,
        camera_gain=camera_gain,
        record=scene.record,
    )
