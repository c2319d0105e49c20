"""One photograph in, one skin-tone measurement out.

Steps (each in its own function, all on a <= 256 px working image):

1. linearise sRGB with a table and convert to CIELAB (D65);
2. colour constancy (white reference, else a statistical estimate);
3. the healthy-skin mask: skin colour model minus lesion, hair, highlights,
   references, ink, background and dark borders;
4. ITA over the healthy pixels, with an interval from a patch bootstrap and the
   colour cast's and exposure's uncertainty;
5. status: ``ok``, or ``abstain`` with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from fairderm.errors import InputError
from fairderm.tone import _constancy, _skin
from fairderm.tone._color import LUMINANCE_WEIGHTS, ita_degrees, linear_to_lab, srgb8_to_linear
from fairderm.tone._decode import ImageRefused, to_working_rgb
from fairderm.tone._interval import interval_spread, ita_interval, patch_bootstrap_colour, with_capture_uncertainty
from fairderm.tone._vignetting import (
    MAX_VIGNETTING,
    MIN_VIGNETTING,
    radial_falloff,
    undo_vignetting,
    vignetting_strength,
)

ConstancyMode = Literal["auto", "white", "skin-prior", "shades-of-grey", "grey-edge", "none"]
CONSTANCY_MODES: tuple[str, ...] = ("auto", "white", "skin-prior", "shades-of-grey", "grey-edge", "none")


@dataclass(frozen=True)
class ToneParameters:
    """Settings of the healthy-skin ITA estimator (recorded in every output).

    Attributes
    ----------
    working_size
        Long side, in pixels, the photograph is reduced to before analysis.
    constancy
        ``auto`` (white reference when found, combined with the skin prior),
        ``white`` (white reference only), ``skin-prior``, ``shades-of-grey``,
        ``grey-edge`` (the last two for comparison) or ``none``.
    cast_locus_sd, cast_tint_sd
        Prior standard deviations, in log chromaticity, of the colour cast
        left by the camera's white balance: along the Planckian locus (a
        wrong colour temperature, warm or cool; 0.4 is about 57 mired) and
        across it (a green or magenta tint). Light sources lie near the
        locus, so the first is the larger
        (:func:`fairderm.tone._constancy.cast_prior_covariance`).
    exposure_sd
        Prior standard deviation, in stops, of the photograph's exposure
        error. Nothing in a photograph without a reference of known
        reflectance measures exposure, and ITA moves with it (on PAD's
        photographs half a stop moves ITA by about 20 degrees), so the
        interval carries it. The default, 0.45 stops, is the spread of
        real smartphone exposure: photographs of the same lesion on PAD
        differ in the skin's log2 luminance by a pooled within-lesion SD of
        0.47 stops (``benchmarks/tone_exposure.py``; an upper bound, as
        framing differs too). Until ``fairderm-ita/5`` it was 0.17 (a
        third of a stop as the 95% bound), under which the interval held a
        half-stop re-exposure of a PAD photograph for a fifth to two fifths
        of them. Standardised photography (fixed flash and settings) may
        use less.
    lightness_sd
        Uncertainty of the skin's observed L* from exposure (L* units), which
        weakens the skin prior along the skin locus.
    min_skin_fraction
        Abstain when fewer healthy-skin pixels than this fraction remain.
    max_interval_spread
        Abstain when the 95% patch-bootstrap interval of ITA (the skin's
        variation across the photograph alone, without the cast and
        exposure terms that every photograph shares), measured as the
        length of the arc it spans in the (L*, b*) plane around ITA's
        centre (L* = 50, b* = 0), exceeds this many CIELAB units. ITA is
        an angle, so the same spread of skin colour makes a wider ITA
        interval the closer the colour is to that centre (medium-dark skin,
        L* near 50); a threshold in degrees would abstain more often on
        darker skin. 8 units is about 22 degrees of ITA for light skin
        (L* 65, b* 15).
    min_lesion_fraction
        Abstain when the part of the segmented lesion that differs from the
        skin by more than 3 robust SDs covers less than this fraction of
        the image: a photograph of a lesion in which no region stands out
        from the skin around it is most often a close-up filled by the
        lesion, whose colour would otherwise be taken for the skin's
        (0 turns the rule off, e.g. for photographs of healthy skin).
    n_boot
        Patch-bootstrap replicates for the interval.
    patch_grid
        The image is cut into ``patch_grid x patch_grid`` patches for the bootstrap.
    lesion_margin
        Margin around the segmented lesion that is also excluded, as a
        fraction of the working image's short side.
    vignetting_correction
        Fit and undo a radial falloff of the skin's luminance (vignetting).
    white_reflectance
        Luminance factor of a white reference (paper, ruler, label) when one
        is found: its luminance after the cast is undone then sets the
        exposure (:func:`fairderm.tone._constancy.exposure_from_white`,
        within +-1 stop). 0.85 is office paper or a white plastic ruler; set
        the reference's own value when it is known.
    seed
        Seed of the patch bootstrap.
    """

    working_size: int = 128
    constancy: ConstancyMode = "auto"
    cast_locus_sd: float = 0.4
    cast_tint_sd: float = 0.2
    exposure_sd: float = 0.45
    lightness_sd: float = 6.0
    min_skin_fraction: float = 0.05
    max_interval_spread: float = 8.0
    min_lesion_fraction: float = 0.003
    n_boot: int = 200
    patch_grid: int = 8
    lesion_margin: float = 0.04
    vignetting_correction: bool = True
    white_reflectance: float = _constancy.WHITE_REFLECTANCE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.constancy not in CONSTANCY_MODES:
            raise InputError(f"unknown constancy {self.constancy!r}; choose one of {list(CONSTANCY_MODES)}",
                             column="constancy")
        if not 32 <= self.working_size <= 256:
            raise InputError(f"working_size must be 32-256 px, got {self.working_size}", column="working_size")
        if not 0.0 < self.min_skin_fraction < 1.0:
            raise InputError("min_skin_fraction must be in (0, 1)", column="min_skin_fraction")
        if not 0.0 <= self.min_lesion_fraction < 1.0:
            raise InputError("min_lesion_fraction must be in [0, 1)", column="min_lesion_fraction")
        if not 0.0 <= self.exposure_sd <= 2.0:
            raise InputError(f"exposure_sd must be 0-2 stops, got {self.exposure_sd}", column="exposure_sd")
        for name in ("cast_locus_sd", "cast_tint_sd"):
            if not 0.0 < getattr(self, name) <= 2.0:
                raise InputError(f"{name} must be in (0, 2], got {getattr(self, name)}", column=name)
        if not 0.05 <= self.white_reflectance <= 1.0:
            raise InputError(f"white_reflectance must be 0.05-1, got {self.white_reflectance}",
                             column="white_reflectance")
        if self.n_boot < 20 or self.patch_grid < 2:
            raise InputError("n_boot must be >= 20 and patch_grid >= 2", column="n_boot")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def cast_prior(self) -> np.ndarray:
        """Prior covariance (2, 2) of the cast in log chromaticity."""
        return _constancy.cast_prior_covariance(self.cast_locus_sd, self.cast_tint_sd)


@dataclass
class ImageTone:
    """The measurement of one photograph (masks only when asked for)."""

    status: str
    reason: str = ""
    ita: float = float("nan")
    ita_low: float = float("nan")
    ita_high: float = float("nan")
    skin_fraction: float = float("nan")
    lab: tuple[float, float, float] = (float("nan"), float("nan"), float("nan"))
    lesion_fraction: float = float("nan")
    constancy: str = "none"
    exposure_correction: float = 0.0
    """Stops by which a white reference corrected the exposure (0 without one)."""
    lesion_mask: np.ndarray | None = field(default=None, repr=False)
    healthy_mask: np.ndarray | None = field(default=None, repr=False)


@dataclass
class _Exclusions:
    """Masks of everything that is not healthy skin (working size)."""

    invalid: np.ndarray
    reference: np.ndarray
    background: np.ndarray
    clipped: np.ndarray
    hair: np.ndarray
    outside_gamut: np.ndarray
    highlight: np.ndarray
    dark: np.ndarray
    lesion: np.ndarray
    lesion_zone: np.ndarray
    abnormal: np.ndarray
    distinct_lesion: np.ndarray

    def healthy(self) -> np.ndarray:
        excluded = (
            self.invalid | self.reference | self.background | self.clipped | self.hair | self.outside_gamut
            | self.highlight | self.dark | self.lesion_zone | self.abnormal
        )
        return ~excluded


@dataclass
class FirstLook:
    """What a quick first pass over the uncorrected image found (half resolution)."""

    lab: np.ndarray
    linear: np.ndarray
    valid: np.ndarray
    skin: np.ndarray
    """Healthy skin found with the skin hue range widened by 40 degrees."""
    vignetting: float
    """Strength ``v`` of the radial falloff ``1 - v r^2`` (0 when none was found)."""


def first_look(lab: np.ndarray, linear: np.ndarray, rgb: np.ndarray, valid: np.ndarray,
               params: ToneParameters, lesion: np.ndarray | None = None,
               background: np.ndarray | None = None) -> FirstLook:
    """The skin and the vignetting, from the exclusions on the uncorrected image at half resolution.

    The skin hue range is widened by 40 degrees so that a strong cast does
    not hide the skin. Both colour constancy (the skin as memory colour) and
    the main pass (which then sees the frame without its dark corners) use
    this look.
    """
    lab_half, linear_half, valid_half = lab[::2, ::2], linear[::2, ::2], valid[::2, ::2]
    empty = np.zeros(valid_half.shape, dtype=bool)
    # the skin's drift is not fitted here: this look only needs the skin
    # roughly, and each fit costs about half a millisecond
    first, _ = find_exclusions(lab_half, rgb[::2, ::2], valid_half, empty, params, hue_margin=40.0,
                               lesion=None if lesion is None else lesion[::2, ::2], skin_drift=False,
                               background=None if background is None else background[::2, ::2])
    skin = first.healthy()
    if skin.sum() < 20:
        skin = valid_half
    strength = 0.0
    if params.vignetting_correction and skin.sum() >= 50:
        strength = min(max(vignetting_strength(linear_half, skin), 0.0), MAX_VIGNETTING)
        strength = strength if strength > MIN_VIGNETTING else 0.0
    return FirstLook(lab_half, linear_half, valid_half, skin, strength)


def estimate_illuminant(
    linear: np.ndarray,
    valid: np.ndarray,
    look: FirstLook,
    params: ToneParameters,
) -> tuple[_constancy.Illuminant, np.ndarray]:
    """Illuminant gains and the white-reference mask (empty if none was used).

    The memory colour is the skin of the first look (:func:`first_look`).
    A white reference, when used, also sets the exposure: its luminance with
    the cast (and the vignetting) undone should be ``params.white_reflectance``
    (:func:`fairderm.tone._constancy.exposure_from_white`).
    """
    empty = np.zeros(valid.shape, dtype=bool)
    mode = params.constancy
    if mode == "none":
        return _constancy.NO_CORRECTION, empty
    if mode in ("shades-of-grey", "grey-edge"):
        derivative = 1 if mode == "grey-edge" else 0
        white = _constancy.grey_world_family(linear, valid, p=6.0, derivative=derivative)
        return _constancy.Illuminant(_constancy.gains_from_white(white), mode), empty
    skin = look.skin
    skin_linear = look.linear[skin]
    skin_chroma = np.median(_constancy.log_chromaticity(skin_linear), axis=0)
    # the skin prior is conditioned on the skin's L*: measure it with the
    # vignetting undone, or a darkened frame reads as darker (warmer) skin
    # and the cast is under-estimated
    if look.vignetting:
        skin_linear = skin_linear / radial_falloff(skin.shape, look.vignetting)[skin][:, None]
    skin_lightness = float(np.median(linear_to_lab(skin_linear)[:, 0]))
    reference = empty
    white_chroma = None
    white_linear = None
    if mode in ("auto", "white"):
        candidate = _constancy.find_white_reference(
            look.lab, look.linear, look.valid, np.median(look.lab[skin], axis=0)
        )
        if candidate.any():
            white_linear = look.linear[candidate]
            chroma = _constancy.log_chromaticity(np.median(white_linear, axis=0))
            if _constancy.white_fits_skin(chroma, skin_chroma, skin_lightness, lightness_sd=params.lightness_sd):
                reference, white_chroma = _upsample(candidate, valid.shape), chroma
            if look.vignetting:  # for its luminance: a ruler at the frame's edge sits where the falloff is deepest
                white_linear = white_linear / radial_falloff(skin.shape, look.vignetting)[candidate][:, None]
    if mode == "white":
        if white_chroma is None:
            return _constancy.NO_CORRECTION, empty
        cast, cast_cov = white_chroma, np.eye(2) * _constancy.WHITE_CHROMA_SD**2
    else:
        cast, cast_cov = _constancy.skin_prior_cast(
            skin_chroma, skin_lightness, cast_cov=params.cast_prior(), lightness_sd=params.lightness_sd,
            white_chroma=white_chroma,
        )
    gains = _constancy.gains_from_cast(cast)
    if white_chroma is None:
        return _constancy.Illuminant(gains, "skin-prior", cast_cov), reference
    white_luminance = float(np.median((white_linear * gains) @ LUMINANCE_WEIGHTS))
    stops = _constancy.exposure_from_white(white_luminance, params.white_reflectance)
    return _constancy.Illuminant(
        gains * np.float32(2.0**stops), "white-reference", cast_cov, stops, _constancy.WHITE_EXPOSURE_SD
    ), reference


def find_exclusions(
    lab: np.ndarray,
    rgb: np.ndarray,
    valid: np.ndarray,
    reference: np.ndarray,
    params: ToneParameters,
    *,
    hue_margin: float = 0.0,
    lesion: np.ndarray | None = None,
    skin_drift: bool = True,
    background: np.ndarray | None = None,
) -> tuple[_Exclusions, _skin.SkinReference]:
    """Every non-healthy-skin mask, and the robust healthy skin colour they are relative to.

    ``lesion``, when given (a mask drawn by hand or by a segmentation
    model), replaces the lesion segmentation; every other exclusion,
    including strongly abnormal pixels elsewhere, still applies.
    ``background`` is a mask of a skin-coloured background
    (:func:`find_background`), excluded like a white reference.

    Each pixel's lesion score is its distance, in robust SDs, from the skin
    colour expected at its place: the robust quadratic surface fitted to
    the outer ring's skin (:func:`fairderm.tone._skin.skin_field`), or,
    when the ring's skin does not span the frame or ``skin_drift`` is off,
    the ring's one robust colour. The returned reference is always the
    ring's global colour (highlights and dark borders are relative to it).
    """
    shape = lab.shape[:2]
    short_side = min(shape)
    lightness = lab[..., 0]
    invalid = ~valid
    reference = _skin.dilate(reference, 2)
    clipped = _skin.dilate(_skin.channel_max(rgb) >= 250, 1)
    hair = _skin.dilate(_skin.hair_mask(lightness, radius=max(2, short_side // 50), contrast=6.0), 1)
    outside_gamut = ~_skin.skin_gamut(lab, hue_margin)
    usable = valid & ~reference & ~clipped & ~hair & ~outside_gamut
    if lesion is not None:
        usable &= ~lesion
    ring = _skin.border_ring(shape, 0.25)
    background = np.zeros(shape, dtype=bool) if background is None else background
    usable &= ~background
    seed_pixels = lab[usable & ring]
    if seed_pixels.shape[0] < 30:
        seed_pixels = lab[usable] if usable.sum() >= 30 else lab[valid]
    ref = _skin.robust_reference(seed_pixels, floors=_SCALE_FLOORS)
    smooth = _skin.box_mean(lab, 1)
    # score against the skin's smooth drift across the frame where it can be
    # fitted (uneven light inflates one global spread, and hides faint lesions)
    fitted = _skin.skin_field(lab, usable & ring) if skin_drift else None
    if fitted is None:
        score = _skin.lesion_score(smooth, ref)
    else:
        field, field_scale = fitted
        score = _skin.lesion_score(smooth, _skin.SkinReference(field, np.maximum(field_scale, _SCALE_FLOORS)))
    given = lesion is not None
    if lesion is None:
        lesion = segment_lesion(score, valid & ~reference & ~clipped)
    margin = max(1, int(round(params.lesion_margin * short_side)))
    lesion_zone = _skin.dilate(lesion, margin)
    highlight = (lightness > ref.centre[0] + max(3.5 * ref.scale[0], 10.0))
    dark = (lightness < ref.centre[0] - max(3.5 * ref.scale[0], 12.0)) & ring
    abnormal = score > 4.0
    # the part of the lesion clearly unlike the skin (3 robust SDs): in a
    # close-up filled by the lesion, the segmentation can still pick out a
    # few marginal blobs of the lesion's own texture
    distinct_lesion = lesion if given else lesion & (score > 3.0)
    exclusions = _Exclusions(
        invalid=invalid, reference=reference, background=background, clipped=clipped, hair=hair,
        outside_gamut=outside_gamut, highlight=highlight, dark=dark, lesion=lesion,
        lesion_zone=lesion_zone, abnormal=abnormal, distinct_lesion=distinct_lesion,
    )
    return exclusions, ref


def _upsample(half: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A half-resolution mask (every other row and column) back at full resolution."""
    return np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]


def find_background(lab: np.ndarray, linear: np.ndarray, rgb: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """A background of skin-like colour (wall, drape, couch paper, table, clothing) beside the skin, or ``None``.

    Looked for once, before colour constancy, among the pixels of the outer
    ring that a cast skin could be (the hue range widened by 40 degrees),
    by their log chromaticity (:func:`fairderm.tone._skin.minority_population`):
    a cast moves skin and background alike, so the split does not depend
    on it.
    """
    candidate = valid & _skin.skin_gamut(lab, 40.0) & (_skin.channel_max(rgb) < 250)
    ring = _skin.border_ring(valid.shape, 0.25)
    return _skin.minority_population(linear, candidate, ring)


def segment_lesion(score: np.ndarray, candidate: np.ndarray, *, min_threshold: float = 2.5) -> np.ndarray:
    """The lesion: the most salient, most central region of high colour deviation.

    Threshold by Otsu (1979) on the deviation score, no lower than
    ``min_threshold`` robust SDs; of the connected regions keep the one with
    the largest centre-weighted sum of scores, then fill its holes.
    """
    values = score[candidate]
    if values.size == 0:
        return np.zeros(score.shape, dtype=bool)
    threshold = max(_skin.otsu_threshold(values), min_threshold)
    above = (score > threshold) & candidate
    labels, count = ndi.label(above)
    if count == 0:
        return np.zeros(score.shape, dtype=bool)
    # photographers centre the lesion: a region half-way to a corner counts an eighth
    weight = np.exp(-((_skin.centre_distance(score.shape) / 0.35) ** 2))
    saliency = np.bincount(labels.ravel(), weights=(score * weight).ravel(), minlength=count + 1)
    saliency[0] = 0
    best = int(np.argmax(saliency))
    lesion = labels == best
    lesion = _skin.erode(_skin.dilate(lesion, 2), 2)
    return _skin.fill_holes(lesion)


# Lower bounds of the skin's robust SD (L*, a*, b*) in the lesion score: JPEG
# noise and smooth skin must not make every blemish a lesion.
_SCALE_FLOORS = (3.0, 2.0, 2.0)


def analyse_rgb(
    rgb: np.ndarray,
    opaque: np.ndarray | None,
    params: ToneParameters,
    *,
    keep_masks: bool = False,
    lesion: np.ndarray | None = None,
) -> ImageTone:
    """Measure the healthy-skin ITA of one 8-bit sRGB image at working size.

    ``lesion`` is a known lesion mask at the same size (from the cohort's
    ``mask`` column): it replaces the lesion segmentation, and the
    close-up rule (no lesion stands out) no longer applies, since the
    lesion's extent is known.
    """
    valid = np.ones(rgb.shape[:2], dtype=bool) if opaque is None else opaque
    linear = srgb8_to_linear(rgb)
    lab = linear_to_lab(linear)
    # looked for at half resolution, as the first look is made
    half = find_background(lab[::2, ::2], linear[::2, ::2], rgb[::2, ::2], valid[::2, ::2])
    background = None if half is None else _upsample(half, valid.shape)
    look = first_look(lab, linear, rgb, valid, params, lesion, background)
    illuminant, reference = estimate_illuminant(linear, valid, look, params)
    if look.vignetting:
        linear = linear / radial_falloff(valid.shape, look.vignetting)[..., None]
    if not illuminant.is_identity:
        linear = linear * illuminant.gains
    if look.vignetting or not illuminant.is_identity:
        lab = linear_to_lab(linear)
    exclusions, _ = find_exclusions(lab, rgb, valid, reference, params, lesion=lesion, background=background)
    healthy = exclusions.healthy()
    if params.vignetting_correction and healthy.sum() >= 50:
        residual = undo_vignetting(linear, healthy, look.vignetting)
        if residual:
            linear = linear / radial_falloff(valid.shape, residual)[..., None]
            lab = linear_to_lab(linear)
    n_valid = max(1, int(valid.sum()))
    skin_fraction = float(healthy.sum() / n_valid)
    result = ImageTone(
        status="ok",
        skin_fraction=skin_fraction,
        lesion_fraction=float(exclusions.lesion.sum() / n_valid),
        constancy=illuminant.source,
        exposure_correction=illuminant.exposure_stops,
    )
    if keep_masks:
        result.lesion_mask = exclusions.lesion
        result.healthy_mask = healthy
    if skin_fraction < params.min_skin_fraction or healthy.sum() < 50:
        result.status = "abstain"
        result.reason = (
            f"too little healthy skin ({100 * skin_fraction:.1f}% of the image; "
            f"need {100 * params.min_skin_fraction:.0f}%)"
        )
        return result
    colour, replicates = patch_bootstrap_colour(lab, healthy, params)
    cast_cov = illuminant.cast_cov if illuminant.cast_cov is not None else params.cast_prior()
    exposure_sd = params.exposure_sd if illuminant.exposure_sd is None else min(params.exposure_sd,
                                                                                 illuminant.exposure_sd)
    result.ita = float(ita_degrees(colour[0], colour[2]))
    result.ita_low, result.ita_high = ita_interval(
        with_capture_uncertainty(replicates, cast_cov, exposure_sd, params.seed)
    )
    result.lab = (float(colour[0]), float(colour[1]), float(colour[2]))
    low, high = ita_interval(replicates)
    spread = interval_spread(low, high, colour)
    if spread > params.max_interval_spread:
        result.status = "abstain"
        result.reason = (
            f"ITA interval too wide: the skin colour varies too much across the photograph (its patches "
            f"alone give {low:.1f} to {high:.1f} deg, a spread of {spread:.1f} > "
            f"{params.max_interval_spread:g} CIELAB units)"
        )
        return result
    distinct_fraction = float(exclusions.distinct_lesion.sum() / n_valid)
    if lesion is None and distinct_fraction < params.min_lesion_fraction:
        result.status = "abstain"
        result.reason = (
            f"no lesion stands out from the skin ({100 * distinct_fraction:.2f}% of the image): "
            "an all-lesion close-up cannot be told from skin"
        )
    return result


def healthy_skin_mask(rgb: np.ndarray, params: ToneParameters | None = None) -> np.ndarray:
    """Which pixels of a photograph the estimator measures as healthy skin.

    The photograph is reduced to the working size (a box filter, as for
    files), analysed exactly as :func:`fairderm.tone.measure_image` does
    (colour constancy, skin colour model, lesion and every other exclusion),
    and the mask is brought back to the input's size by nearest neighbour.

    Parameters
    ----------
    rgb
        (height, width, 3) sRGB, uint8, or float in [0, 1]; a fourth
        (alpha) channel is used as opacity.
    params
        Estimator settings (default :class:`ToneParameters`).

    Returns
    -------
    numpy.ndarray
        (height, width) bool; all False for an image the estimator refuses
        (too small, grey, fully transparent).
    """
    params = params or ToneParameters()
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InputError(f"expected an (height, width, 3) colour image, got shape {array.shape}", column="rgb")
    if array.dtype != np.uint8:
        array = np.clip(np.round(np.asarray(array, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    height, width = array.shape[:2]
    try:
        decoded = to_working_rgb(Image.fromarray(array), (width, height), params.working_size)
    except ImageRefused:  # too small, grey or transparent: nothing is measured
        return np.zeros((height, width), dtype=bool)
    tone = analyse_rgb(decoded.rgb, decoded.opaque, params, keep_masks=True)
    if tone.healthy_mask is None:
        return np.zeros((height, width), dtype=bool)
    small_height, small_width = decoded.rgb.shape[:2]
    rows = np.minimum(np.arange(height) * small_height // height, small_height - 1)
    cols = np.minimum(np.arange(width) * small_width // width, small_width - 1)
    return tone.healthy_mask[rows[:, None], cols[None, :]]
