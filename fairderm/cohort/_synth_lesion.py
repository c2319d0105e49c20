"""Synthetic skin lesions: diagnosis- and tone-dependent traits, rendered as optical layers.

Each lesion is a set of traits (size, border irregularity, pigment, asymmetry,
colour variegation, redness, vessels, pearly rolled border, ulcer, verrucous
surface, globules) drawn from distributions that depend on the diagnosis and
overlap between diagnoses, as they do in clinics: dysplastic naevi are
irregular, early melanomas small and regular, amelanotic melanomas pink,
flat seborrhoeic keratoses look like lentigines, pigmented BCCs look like
melanocytic lesions. The dermoscopic-clinical descriptions behind the
choices: naevus (small, round, uniform brown), melanoma (ABCD rule: asymmetry,
border, colour variegation with blue-grey and regression, diameter; Nachbar
et al. 1994), BCC (pearly translucent rolled border, arborising telangiectasia,
ulceration; pigmented BCC far more common on dark skin: Matsuoka et al. 1981,
Bigler et al. 1996), seborrhoeic keratosis (stuck-on, waxy, verrucous with
fissures and horn cysts, tan to dark brown).

The skin tone changes the look (Kundu & Patterson 2013, skin of colour):
epidermal melanin hides dermal redness (erythema, telangiectasia), lesions
are more heavily pigmented and contrast less with the skin, BCCs are mostly
pigmented, and melanomas are diagnosed later, larger and more uniformly dark
(Bellows et al. 2001; Dawes et al. 2016). So the cues that separate the
classes on light skin (pink BCC, multi-coloured asymmetric melanoma) are weak
on dark skin, where other cues carry the class (pearly grey border, ulcer and
globules of BCC; size and irregular border of melanoma; fissures and horn
cysts of keratosis). A classifier trained mostly on light skin learns the
light-skin cues and misses dark-skin melanomas: a disparity that more
dark-skin training cases close, and that more weight on the few there are
narrows, which is what the router is tested on (``docs/router.md`` measures
by how much).

Optics: reflectance is multiplied by exp(-(M eps_mel + D eps_deep + H eps_hb))
for epidermal melanin, dermal melanin and haemoglobin (after the layered
skin models of Anderson & Parrish 1981 and Tsumura et al. 2003), then
scattering layers are blended over it and relief shading applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fairderm.cohort._synth_texture import noise_fields, smoothstep

# Optical density per unit concentration in linear R, G, B. Epidermal melanin
# absorbs short wavelengths most (brown); melanin deep in the dermis looks
# blue-grey (Tyndall effect: red is absorbed, blue scattered back);
# haemoglobin absorbs green and blue (red, pink).
EPS_MELANIN = np.array([0.55, 0.80, 1.00], dtype=np.float32)
EPS_DERMAL_MELANIN = np.array([1.00, 0.80, 0.55], dtype=np.float32)
EPS_HAEMOGLOBIN = np.array([0.08, 0.90, 0.70], dtype=np.float32)

GRID = 128  # canonical lesion texture grid
EXTENT = 1.7  # the grid spans [-EXTENT, EXTENT] lesion radii

_FIELDS = ("low", "mid", "blob", "band", "dots", "border")
_SPECTRA = ((3.2, None), (2.2, None), (3.0, None), (0.0, 14.0), (0.6, None), (2.8, None))


@dataclass
class LesionModel:
    """A lesion's intrinsic look: the same in every photograph of it."""

    label: str
    radius: float  # pixels at zoom 1 in a 256 px frame
    harmonics: np.ndarray  # (K, 2): amplitude and phase of the border's k = 2..K+1 lobes
    traits: dict[str, float]
    fields: dict[str, np.ndarray]
    vessels: list[np.ndarray]  # polylines in lesion coordinates

    @property
    def extent(self) -> float:
        """Bound on the lesion's reach, in units of its radius."""
        t = self.traits
        lobes = 1 + np.abs(self.harmonics[:, 0]).sum()
        return lobes * (1 + 3 * t["border_noise"]) * (1 + t["edge"]) + 0.05

    @property
    def pigmented(self) -> bool:
        return self.traits["melanin"] > 0.2 or self.traits["globules"] > 0.5


def _beta(rng: np.random.Generator, a: float, b: float, scale: float = 1.0) -> float:
    return float(rng.beta(a, b) * scale)


def draw_lesion(rng: np.random.Generator, label: str, skin_darkness: float) -> LesionModel:
    """Draw a lesion's traits for a diagnosis on skin of the given darkness (0-1)."""
    fields = dict(zip(_FIELDS, noise_fields(rng, GRID, _SPECTRA)))
    d = skin_darkness
    optional = ("melanin", "asymmetry", "variegation", "red", "vessels", "pearl", "ulcer", "verrucous",
                "globules")
    t: dict[str, float] = dict.fromkeys(optional, 0.0)
    vessel_count = 0
    if label == "nevus":
        # on dark skin naevi are brown with a globular pattern rather than black
        radius = rng.uniform(13, 30) * (1 + 0.2 * d)
        irregular = _beta(rng, 1.3, 5)
        t["edge"] = rng.uniform(0.05, 0.14)
        t["melanin"] = rng.uniform(0.7, 1.7) * (1 + 0.3 * d)
        t["asymmetry"] = _beta(rng, 1.2, 5)
        t["variegation"] = _beta(rng, 1.2, 7)
        t["red"] = rng.uniform(0, 0.15)
        t["verrucous"] = _beta(rng, 1, 7)  # papillomatous naevi
        t["globules"] = _beta(rng, 1, 6, 1.5) + d * rng.uniform(0.8, 1.6)
        t["height"] = rng.choice([0.0, 0.4], p=[0.6, 0.4])
    elif label == "melanoma":
        # on dark skin melanoma is found later (larger) and looks more uniformly dark: the
        # colour cues of the ABCD rule fade and size and border carry the diagnosis
        radius = rng.uniform(18, 50) * (1 + 0.25 * d)
        irregular = _beta(rng, 2.5, 2)
        t["edge"] = rng.uniform(0.03, 0.12)
        amelanotic = rng.random() < 0.08
        t["melanin"] = rng.uniform(0.9, 2.2) * (1 + 0.6 * d) * (0.25 if amelanotic else 1.0)
        t["asymmetry"] = _beta(rng, 2.5, 1.8) * (1 - 0.5 * d)
        t["variegation"] = _beta(rng, 2.2, 1.8) * (1 - 0.75 * d)
        t["red"] = rng.uniform(0.5, 0.8) if amelanotic else _beta(rng, 1.2, 4, 0.6)
        t["ulcer"] = rng.uniform(0.2, 0.4) if rng.random() < 0.1 else 0.0
        t["verrucous"] = _beta(rng, 1, 6)
        t["globules"] = _beta(rng, 1.5, 3, 2.0)
        t["height"] = rng.uniform(0.0, 0.4)
    elif label == "bcc":
        radius = rng.uniform(15, 42)
        irregular = _beta(rng, 1.5, 4)
        t["edge"] = rng.uniform(0.06, 0.14)
        if rng.random() < 0.1 + 0.75 * d:
            t["melanin"] = 0.4 * (1 + d)
            t["globules"] = rng.uniform(1.0, 3.0)
        t["asymmetry"] = _beta(rng, 1.2, 5)
        t["variegation"] = _beta(rng, 1.2, 6)
        t["red"] = rng.uniform(0.3, 0.8)
        if rng.random() < 0.75:
            t["vessels"] = rng.uniform(0.8, 2.0)
            vessel_count = int(rng.integers(3, 8))
        t["pearl"] = rng.uniform(0.08, 0.28) if rng.random() < 0.8 + 0.15 * d else 0.0
        t["ulcer"] = rng.uniform(0.25, 0.5) if rng.random() < 0.4 else 0.0
        t["height"] = rng.uniform(0.5, 1.0)
    elif label == "seborrheic_keratosis" and rng.random() < 0.85 * float(np.clip((d - 0.45) / 0.35, 0, 1)):
        # dermatosis papulosa nigra, the keratosis of dark skin: small, smooth, jet-black papules,
        # which by the look learnt on light skin are naevi
        radius = rng.uniform(8, 15)
        irregular = _beta(rng, 1.2, 6)
        t["edge"] = rng.uniform(0.02, 0.05)
        t["melanin"] = rng.uniform(3.0, 4.0) * (1 + 0.5 * d)
        t["asymmetry"] = _beta(rng, 1.2, 6)
        t["variegation"] = _beta(rng, 1.1, 10)
        t["verrucous"] = rng.uniform(0.0, 0.1)
        t["height"] = rng.uniform(0.7, 1.1)  # dome-shaped
    else:  # seborrheic keratosis
        radius = rng.uniform(16, 44)
        irregular = _beta(rng, 1.5, 3.5)
        t["edge"] = rng.uniform(0.02, 0.06)
        t["melanin"] = rng.uniform(0.4, 1.5) * (1 + 1.0 * d)
        t["asymmetry"] = _beta(rng, 1.2, 4)
        t["variegation"] = _beta(rng, 1.2, 6)
        t["red"] = _beta(rng, 1, 8, 0.5)  # irritated keratoses are red
        flat = rng.random() < 0.25  # flat keratoses look like lentigines
        t["verrucous"] = rng.uniform(0.05, 0.3) if flat else rng.uniform(0.35, 1.0)
        t["height"] = rng.uniform(0.4, 1.2) * (0.3 if flat else 1.0)
    k = np.arange(2, 8)
    lobes = irregular * rng.uniform(0.04, 0.13, k.size) / k**0.3
    amps = np.where(k == 2, rng.uniform(0, 0.15), lobes)
    harmonics = np.stack([amps, rng.uniform(0, 2 * np.pi, k.size)], axis=1)
    t["irregular"] = irregular
    t["border_noise"] = 0.01 + 0.1 * irregular
    t["crust_red"] = float(rng.random() < 0.6)
    t["centre"] = rng.uniform(-0.3, 0.3)
    t["blue"] = rng.uniform(0.6, 1.6)
    t["asym_angle"] = rng.uniform(0, 2 * np.pi)
    t["regression"] = rng.uniform(0.15, 0.35) if rng.random() < t["variegation"] * 0.6 else 0.0
    t["keratin"] = rng.uniform(0.08, 0.22)
    t["cysts"] = rng.uniform(0.4, 0.8)
    vessels = [_vessel_polyline(rng) for _ in range(vessel_count)]
    return LesionModel(label, float(radius), harmonics, t, fields, vessels)


def _vessel_polyline(rng: np.random.Generator) -> np.ndarray:
    """An arborising vessel: a wandering polyline in lesion coordinates."""
    start = rng.uniform(-0.5, 0.5, 2)
    heading = rng.uniform(0, 2 * np.pi)
    steps = int(rng.integers(6, 14))
    turns = np.cumsum(rng.normal(0, 0.45, steps))
    step = rng.uniform(0.05, 0.09)
    moves = step * np.stack([np.cos(heading + turns), np.sin(heading + turns)], axis=1)
    return start + np.vstack([np.zeros(2), np.cumsum(moves, axis=0)])


def _sample(field_: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a canonical lesion field at lesion coordinates (2, H, W)."""
    index = (coords + EXTENT) / (2 * EXTENT) * GRID - 0.5
    return ndimage.map_coordinates(field_, index[::-1], order=1, mode="grid-wrap")


@dataclass
class LesionLayers:
    """Per-pixel optical layers of a lesion over a window of the frame."""

    alpha: np.ndarray  # lesion coverage
    density: np.ndarray  # (H, W, 3) optical density of the chromophores
    scatter: list[tuple[np.ndarray, np.ndarray]]  # (amount, linear RGB colour) blended over
    height: np.ndarray  # relief in pixels
    sheen: np.ndarray  # neutral specular reflection of the lesion surface


def lesion_layers(model: LesionModel, coords: np.ndarray, pixel_radius: float, skin_darkness: float,
                  vessel_alpha: np.ndarray) -> LesionLayers:
    """Render the lesion's layers at lesion coordinates ``coords`` (2, H, W)."""
    f = {name: _sample(values, coords) for name, values in model.fields.items()}
    t = model.traits
    d = skin_darkness
    x, y = coords
    angle = np.arctan2(y, x)
    k = np.arange(2, 2 + len(model.harmonics))[:, None, None]
    amps, phases = model.harmonics[:, 0, None, None], model.harmonics[:, 1, None, None]
    radius_at = 1.0 + np.sum(amps * np.cos(k * angle + phases), axis=0)
    rho = np.hypot(x, y) / radius_at * (1.0 + t["border_noise"] * f["border"])
    # irregular lesions fade out in places and stop sharply in others
    edge = t["edge"] * (1.0 + 0.6 * t["irregular"] * np.clip(f["mid"], -1, 1))
    alpha = smoothstep(1.0 + edge, 1.0 - edge, rho)

    fissure = np.exp(-((f["band"] / 0.35) ** 2)) * t["verrucous"]
    direction = np.cos(t["asym_angle"]) * x + np.sin(t["asym_angle"]) * y
    logit = 4.0 * t["variegation"] * f["low"] + 3.0 * t["asymmetry"] * direction
    share = 1.0 / (1.0 + np.exp(-logit))
    blotchy = max(t["asymmetry"], t["variegation"])
    uniform = (1 + 0.12 * f["low"]) * (1 + t["centre"] * (0.5 - rho**2))
    pattern = (1 - blotchy) * uniform + blotchy * (0.35 + 1.3 * share)
    melanin = t["melanin"] * pattern * (1 + 0.8 * fissure)
    melanin = melanin + t["globules"] * smoothstep(0.9, 1.9, f["dots"] + 0.6 * f["blob"])
    dermal = np.zeros_like(alpha)
    if t["melanin"] > 0.2:
        patches = np.clip(f["blob"] - (1.0 - 0.8 * t["variegation"]), 0, 0.6)
        dermal = 2.0 * t["blue"] * t["variegation"] * patches
    # dermal redness shows through little epidermal melanin on dark skin
    red_visibility = 1.0 - 0.75 * d
    haem = (t["red"] * (0.8 + 0.2 * f["mid"]) + 0.4 * t["variegation"] * np.clip(f["mid"], 0, 1.2)
            + t["vessels"] * vessel_alpha) * red_visibility
    scatter: list[tuple[np.ndarray, np.ndarray]] = []
    height = t["height"] * alpha * (1 + 0.35 * t["verrucous"] * np.abs(f["band"]))
    sheen = 0.05 * t["verrucous"] * alpha * np.clip(f["dots"], 0, None)
    if t["regression"]:
        patch = smoothstep(0.9, 1.6, -f["blob"])
        scatter.append((t["regression"] * patch, np.array([0.50, 0.40, 0.40])))
        melanin = melanin * (1 - 0.6 * patch)
    if t["pearl"]:
        ring = np.exp(-(((rho - 0.8) / 0.14) ** 2)) * np.clip(0.6 + 0.6 * f["mid"], 0.1, 1.0)
        pearl_colour = (1 - d) * np.array([0.62, 0.50, 0.50]) + d * np.array([0.15, 0.13, 0.14])
        # translucent, pearly papule: a whitish film, strongest on the rolled border
        scatter.append((t["pearl"] * (ring + 0.35), pearl_colour))
        height = height + 0.6 * t["height"] * ring
        sheen = sheen + (0.05 - 0.03 * d) * ring * np.clip(1 + 0.5 * f["dots"], 0, None)
    if t["verrucous"]:
        keratin = (1 - d) * np.array([0.55, 0.45, 0.30]) + d * np.array([0.09, 0.07, 0.05])
        scatter.append((t["keratin"] * t["verrucous"] * (1 - fissure), keratin))
        cysts = t["cysts"] * t["verrucous"] * smoothstep(2.0, 2.8, f["dots"])
        scatter.append((cysts, np.array([0.70, 0.64, 0.48])))
    if t["ulcer"]:
        crater = smoothstep(t["ulcer"] * 1.15, t["ulcer"] * 0.85, rho * (1 + 0.25 * f["mid"]))
        crust = np.array([0.13, 0.035, 0.025]) if t["crust_red"] else np.array([0.34, 0.22, 0.10])
        scatter.append((0.85 * crater, crust))
        height = height - 0.5 * t["height"] * crater
    density = (
        np.clip(melanin, 0, None)[..., None] * EPS_MELANIN
        + dermal[..., None] * EPS_DERMAL_MELANIN
        + np.clip(haem, 0, None)[..., None] * EPS_HAEMOGLOBIN
    ) * alpha[..., None]
    scatter = [(np.clip(amount, 0, 1) * alpha, colour.astype(np.float32)) for amount, colour in scatter]
    height_px = ndimage.gaussian_filter(height * alpha, 1.2) * pixel_radius * 0.12
    return LesionLayers(alpha, density, scatter, height_px, sheen * alpha)
