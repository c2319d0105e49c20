"""Accuracy of fairderm's tone estimator: synthetic truth under colour casts, and the PAD-UFES-20 subset.

Synthetic part: a cohort from ``fairderm.cohort.synthesize_cohort`` (every
photograph records its true skin colour and its confounders: illuminant
cast, exposure, white reference, ...). For each colour-constancy mode the
median absolute ITA error and Spearman's rho against the true ITA are
printed, over all images and over the images the generator gave a colour
cast (manifest column ``illuminant`` other than ``d65``), with the error
of no correction divided by the error of each mode. The error is given
twice: against the true skin ITA, and against the ITA the true skin has
after the camera's exposure (``exposure_stops``, up to +-0.2 stops), which
isolates what colour constancy can correct. The share of 95% intervals
``[ita_low, ita_high]`` that contain the true ITA is printed with their
median width, also with the exposure prior set to the generator's, and
the measurement's repeatability (``measurement_repeatability``: the share
of images whose ITA, varied within its interval, stays in its group
I-II / III-IV / V-VI) beside the share whose group is that of their true
ITA, and the error when a background (a beige wall, a tan
drape, a wooden table: colours skin could have; black cloth, a white
sheet, grey) covers the left 40% of every fifth photograph.

PAD part: mean Dice and IoU of the segmented lesion against the hand-drawn
masks, the abstention rate and its reasons, how many all-lesion close-ups
(the largest square inside each large hand-drawn lesion, cut out as a
photograph of its own) the close-up rule catches, Spearman's rho against the
clinic's Fitzpatrick type, and the label-free consistency of ITA across a
patient's photographs (ICC(1)).

Run::

    .venv/bin/python benchmarks/tone_accuracy.py --n 300 --seed 1
    .venv/bin/python benchmarks/tone_accuracy.py --skip-synthetic --pad ../shared/data/pad-ufes-20-subset
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage as ndi
from scipy.stats import spearmanr

from fairderm.cohort import Cohort, import_cohort, synthesize_cohort
from fairderm.tone import (
    ToneParameters,
    estimate_tone,
    fitzpatrick_group,
    icc1,
    ita_degrees,
    ita_to_fitzpatrick,
    measure_image,
    measurement_repeatability,
)
from fairderm.tone._color import lab_to_linear, lab_to_srgb, linear_to_lab
from fairderm.tone._decode import decode_image, to_working_rgb
from fairderm.tone._pipeline import analyse_rgb

MODES = ("none", "shades-of-grey", "grey-edge", "skin-prior", "auto")
GENERATOR_EXPOSURE_SD = 0.4 / np.sqrt(12.0)
"""SD, in stops, of the synthetic generator's exposure (uniform on +-0.2 stops)."""
SYNTH_WHITE = 0.65
"""Reflectance of the generator's rulers and paper: the estimator is told (``white_reflectance``), as a user who knows
their references would; one row shows the default (0.85) on them."""
DEFAULT_PAD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pad-ufes-20-subset"


def synthetic_report(n: int, seed: int, workers: int) -> tuple[pd.DataFrame, dict[str, float], pd.DataFrame]:
    """Median |ITA error| and Spearman per constancy mode, all images and cast images; the strata's agreement;
    the error with backgrounds pasted in (:func:`background_report`)."""
    rows = []
    strata: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cohort = synthesize_cohort(Path(tmp) / "synth", n=n, seed=seed, workers=workers)
        manifest = cohort.manifest
        true_ita = manifest["true_ita"].to_numpy(dtype=float)
        exposed_ita = exposure_adjusted_ita(manifest)
        cast = (manifest["illuminant"].astype(str) != "d65").to_numpy()
        for mode in MODES:
            frame = estimate_tone(cohort, workers=workers,
                                  parameters=ToneParameters(constancy=mode, white_reflectance=SYNTH_WHITE))
            ok = frame["status"].eq("ok").to_numpy()
            error = np.abs(frame["ita"].to_numpy(dtype=float) - true_ita)
            exposed_error = np.abs(frame["ita"].to_numpy(dtype=float) - exposed_ita)
            covered, width = interval_coverage(frame, true_ita)
            if mode == "auto":
                strata = strata_agreement(frame, true_ita)
            for subset, keep in (("all", ok), ("cast", ok & cast)):
                rows.append({
                    "constancy": mode, "images": subset, "n": int(keep.sum()),
                    "median_abs_error": float(np.median(error[keep])),
                    "median_abs_error_exposed": float(np.median(exposed_error[keep])),
                    "p90_abs_error": float(np.percentile(error[keep], 90)),
                    "spearman": float(spearmanr(frame["ita"].to_numpy(dtype=float)[keep], true_ita[keep])[0]),
                    "abstained": int((~ok).sum()),
                    "interval_coverage": float(covered[keep].mean()),
                    "median_interval_width": float(np.median(width[keep])),
                })
        # The default exposure prior (SD 0.45 stops, real photographs) is far wider
        # than the generator's exposure (uniform +-0.2 stops, SD 0.115): with the
        # prior set to the generator's, coverage shows whether the interval's terms are right.
        matched = estimate_tone(cohort, workers=workers, parameters=ToneParameters(
            exposure_sd=GENERATOR_EXPOSURE_SD, white_reflectance=SYNTH_WHITE))
        covered, width = interval_coverage(matched, true_ita)
        ok = matched["status"].eq("ok").to_numpy()
        rows.append({
            "constancy": f"auto, exposure_sd={GENERATOR_EXPOSURE_SD:.3f}", "images": "all", "n": int(ok.sum()),
            "interval_coverage": float(covered[ok].mean()), "median_interval_width": float(np.median(width[ok])),
        })
        # the rulers' reflectance not told: the default white (0.85) reads them as 0.4 stops under-exposed
        untold = estimate_tone(cohort, workers=workers)
        ok = untold["status"].eq("ok").to_numpy()
        error = np.abs(untold["ita"].to_numpy(dtype=float) - true_ita)
        rows.append({"constancy": "auto, white_reflectance=0.85 (default)", "images": "all", "n": int(ok.sum()),
                     "median_abs_error": float(np.median(error[ok])),
                     "p90_abs_error": float(np.percentile(error[ok], 90))})
        backgrounds = background_report(cohort, true_ita)
    report = pd.DataFrame(rows)
    ratios = (("median_abs_error", "none_over_mode"), ("median_abs_error_exposed", "none_over_mode_exposed"))
    for column, ratio in ratios:
        baseline = report[report["constancy"] == "none"].set_index("images")[column]
        report[ratio] = baseline.reindex(report["images"]).to_numpy() / report[column]
    return report, strata, backgrounds


# Backgrounds pasted over the left 40% of a photograph (CIELAB, then L* noise
# SD 2): three of skin-like hue, which pass the skin gamut, and three that do not.
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "beige wall": (82.0, 3.0, 14.0), "tan drape": (70.0, 6.0, 20.0), "wooden table": (55.0, 12.0, 28.0),
    "black cloth": (12.0, 1.0, 1.0), "white sheet": (90.0, 0.0, 3.0), "grey": (60.0, 0.0, 0.0),
}


def background_report(cohort: Cohort, true_ita: np.ndarray, *, every: int = 5, share: float = 0.4) -> pd.DataFrame:
    """|ITA error| and abstentions with a background over the left ``share`` of every ``every``-th photograph."""
    params = ToneParameters(white_reflectance=SYNTH_WHITE)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(0, len(cohort.manifest), every):
        with Image.open(cohort.images_root / cohort.manifest["image"].iloc[index]) as photo:
            pixels = np.asarray(photo.convert("RGB")).copy()
        width = int(share * pixels.shape[1])
        for name, colour in (("none", None), *BACKGROUNDS.items()):
            if colour is not None:
                noise = rng.normal(0.0, 2.0, (pixels.shape[0], width))
                lab = np.stack([colour[0] + noise, np.full_like(noise, colour[1]), np.full_like(noise, colour[2])], -1)
                pixels[:, :width] = np.round(lab_to_srgb(lab) * 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            decoded = to_working_rgb(image, image.size, params.working_size)
            tone = analyse_rgb(decoded.rgb, decoded.opaque, params)
            rows.append({"background": name, "error": abs(tone.ita - true_ita[index]), "ok": tone.status == "ok"})
    frame = pd.DataFrame(rows)
    return frame.groupby("background", sort=False).agg(
        n=("ok", "size"), abstained=("ok", lambda ok: float((~ok).mean())),
        median_abs_error=("error", "median"), p90_abs_error=("error", lambda e: float(np.nanpercentile(e, 90))),
    ).reset_index()


def strata_agreement(frame: pd.DataFrame, true_ita: np.ndarray) -> dict[str, float]:
    """The measurement's repeatability (from the intervals), and the share of measured images in the group of their
    true ITA."""
    ok = frame["status"].eq("ok").to_numpy()
    true_group = fitzpatrick_group(ita_to_fitzpatrick(true_ita)).astype(str).to_numpy()
    measured = frame["fitzpatrick_group_est"].astype(str).to_numpy() == true_group
    return {"repeatability": measurement_repeatability(frame)["repeatability"],
            "measured": float(measured[ok].mean())}


def interval_coverage(frame: pd.DataFrame, true_ita: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: whether ``[ita_low, ita_high]`` contains the true ITA, and the interval's width."""
    low, high = frame["ita_low"].to_numpy(dtype=float), frame["ita_high"].to_numpy(dtype=float)
    return (low <= true_ita) & (true_ita <= high), high - low


def exposure_adjusted_ita(manifest: pd.DataFrame) -> np.ndarray:
    """ITA of the true skin colour after the camera's exposure (no cast, no vignetting).

    The generator scales linear RGB by ``2 ** exposure_stops``; exposure is
    not a colour cast and no colour constancy can undo it without a
    reference of known reflectance, so this truth isolates the cast.
    """
    lab = manifest[["true_L", "true_a", "true_b"]].to_numpy(dtype=float)
    gain = 2.0 ** manifest["exposure_stops"].to_numpy(dtype=float)
    exposed = linear_to_lab((lab_to_linear(lab) * gain[:, None]).astype(np.float32))
    return ita_degrees(exposed[:, 0], exposed[:, 2])


def dice_iou(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    intersection = float(np.logical_and(predicted, truth).sum())
    total = float(predicted.sum() + truth.sum())
    union = float(np.logical_or(predicted, truth).sum())
    return (2 * intersection / total if total else 1.0), (intersection / union if union else 1.0)


def inner_square(mask: np.ndarray) -> tuple[tuple[int, int, int, int], int]:
    """The largest axis-aligned square inside a mask: its (left, top, right, bottom) box and side."""
    depth = ndi.distance_transform_cdt(np.pad(mask, 1), metric="chessboard")[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    half = int(depth[row, col]) - 1
    return (col - half, row - half, col + half + 1, row + half + 1), 2 * half + 1


def closeup_status(photo: Image.Image, mask: np.ndarray, params: ToneParameters) -> str | None:
    """Status of an all-lesion close-up cut from inside a lesion (None if the lesion is too small).

    The crop is the largest square inside the hand-drawn mask, kept if its
    side is at least a quarter of the photograph's short side and 48 px:
    a real lesion filling the frame, with no skin around it. ``closeup``
    means the close-up rule caught it, ``abstain`` another rule, ``ok``
    that its colour was measured as skin.
    """
    box, side = inner_square(mask)
    if side < max(48, 0.25 * min(photo.size)):
        return None
    crop = photo.crop(box)
    decoded = to_working_rgb(crop, crop.size, params.working_size)
    tone = analyse_rgb(decoded.rgb, decoded.opaque, params)
    if tone.status == "abstain" and tone.reason.startswith("no lesion stands out"):
        return "closeup"
    return tone.status


def pad_report(pad: Path, workers: int, limit: int | None) -> dict[str, object]:
    """Lesion Dice/IoU against the hand-drawn masks, abstentions, close-ups, Spearman vs the clinic's type."""
    labels = pd.read_csv(pad / "labels.csv")
    if limit:
        labels = labels.iloc[:limit]
    params = ToneParameters()
    dices, ious, closeups = [], [], []
    for image, mask in zip(labels["image"], labels["mask"]):
        decoded = decode_image(pad / image, params.working_size)
        tone = analyse_rgb(decoded.rgb, decoded.opaque, params, keep_masks=True)
        height, width = decoded.rgb.shape[:2]
        truth = np.asarray(Image.open(pad / mask).convert("L").resize((width, height), Image.Resampling.NEAREST)) > 127
        d, j = dice_iou(tone.lesion_mask, truth)
        dices.append(d)
        ious.append(j)
        with Image.open(pad / image) as photo, Image.open(pad / mask) as drawn:
            photo = photo.convert("RGB")
            lesion = np.asarray(drawn.convert("L").resize(photo.size, Image.Resampling.NEAREST)) > 127
            closeups.append(closeup_status(photo, lesion, params))
    closeups = [c for c in closeups if c is not None]
    share = (lambda status: float(np.mean([c == status for c in closeups]))) if closeups else (lambda _: float("nan"))
    with tempfile.TemporaryDirectory() as tmp:
        if limit:
            statuses = [measure_image(pad / image, params) for image in labels["image"]]
            frame = pd.DataFrame({"status": [t.status for t in statuses], "reason": [t.reason for t in statuses],
                                  "ita": [t.ita for t in statuses]})
            fitzpatrick = labels["fitzpatrick"]
            patients = labels["patient_id"]
        else:
            cohort = import_cohort("pad-ufes-20", pad / "labels.csv", pad, Path(tmp) / "pad")
            frame = estimate_tone(cohort, workers=workers)
            fitzpatrick = cohort.manifest["fitzpatrick"]
            patients = cohort.manifest["patient_id"]
    ok = frame["status"].eq("ok").to_numpy()
    patient_codes = pd.factorize(pd.Series(patients).astype(str))[0]
    labelled = ok & pd.notna(fitzpatrick).to_numpy()
    reasons = Counter(str(r).split("(")[0].strip() for r in frame.loc[~ok, "reason"])
    return {
        "n": len(labels),
        "mean_dice": float(np.mean(dices)), "median_dice": float(np.median(dices)),
        "mean_iou": float(np.mean(ious)),
        "abstention_rate": float((~ok).mean()),
        "reasons": dict(reasons),
        "closeups_cut_from_lesions": len(closeups),
        "closeups_caught_by_closeup_rule": share("closeup"),
        "closeups_abstained_otherwise": share("abstain"),
        "spearman_vs_clinic_fitzpatrick": float(spearmanr(
            -frame["ita"].to_numpy(dtype=float)[labelled], np.asarray(fitzpatrick, dtype=float)[labelled])[0]),
        "n_labelled": int(labelled.sum()),
        "patient_icc1_of_ita": float(icc1(np.where(ok, frame["ita"].to_numpy(dtype=float), np.nan), patient_codes)[0]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="synthetic images")
    parser.add_argument("--seed", type=int, default=1, help="synthetic cohort seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pad", type=Path, default=DEFAULT_PAD, help="PAD-UFES-20 subset folder")
    parser.add_argument("--pad-limit", type=int, default=None, help="only the first N PAD images")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-pad", action="store_true")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    if not args.skip_synthetic:
        start = time.perf_counter()
        report, strata, backgrounds = synthetic_report(args.n, args.seed, args.workers)
        print(f"\nsynthetic cohort n={args.n} seed={args.seed} ({time.perf_counter() - start:.0f} s)")
        print(report.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"strata (auto): measurement repeatability {strata['repeatability']:.3f} (from the intervals); "
              f"{strata['measured']:.3f} of measured images in the group of their true ITA")
        print("\nbackgrounds over the left 40% of every fifth photograph (auto; error against the true ITA)")
        print(backgrounds.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not args.skip_pad:
        if not (args.pad / "labels.csv").is_file():
            print(f"\nPAD subset not found at {args.pad}; skipped")
        else:
            result = pad_report(args.pad, args.workers, args.pad_limit)
            print(f"\nPAD-UFES-20 subset ({result['n']} photographs)")
            for key, value in result.items():
                print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
