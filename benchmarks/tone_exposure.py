"""Is the exposure prior right? Real photographs re-exposed by +-1 stop and re-white-balanced.

The ITA interval carries the photograph's unknown exposure as a prior,
``e ~ N(0, exposure_sd^2)`` stops (``ToneParameters.exposure_sd``,
``fairderm tone estimate --exposure-sd``). This benchmark checks that
prior against the PAD-UFES-20 subset's smartphone photographs in two ways:

1. **Re-exposure.** Each photograph, decoded to the estimator's working
   size, is re-exposed in linear light (sRGB decoded, multiplied by
   ``2 ** stops``, clipped, encoded back to 8 bits) by -1, -0.5, +0.5 and
   +1 stop, once as it is and once with a random white-balance shift as
   well (a luminance-keeping cast drawn from the estimator's own cast prior
   shape, ``--wb-sd`` log-chromaticity units along the Planckian locus and
   half that across it), and measured again. Reported per condition,
   against the photograph's own estimate: the median and 90th percentile
   shift of ITA, the share of re-exposed estimates inside the original's
   95% interval, the share of re-exposed intervals that cover the original
   ITA, the share that change group (I-II / III-IV / V-VI) and the
   abstentions. A prior that matches exposure errors of +-0.5 stop should
   cover the +-0.5-stop estimates about as often as a 95% interval covers a
   1.1-SD error; SD 0.17 puts +-0.5 stop at 2.9 SDs.
2. **How far real exposure varies** (label-free). Photographs of the same
   lesion (and of the same patient) show the same skin; the pooled
   within-lesion SD of the measured skin's log2 luminance is the spread of
   exposure (and of framing and lighting) between photographs, an upper
   bound of the exposure error's SD that the prior should be near.

Run::

    .venv/bin/python benchmarks/tone_exposure.py                      # all 745 photographs, SD 0.17 and 0.45
    .venv/bin/python benchmarks/tone_exposure.py --n 200 --exposure-sd 0.17 0.3 0.45 0.6
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fairderm.tone import ToneParameters
from fairderm.tone._color import _srgb_encode, srgb8_to_linear
from fairderm.tone._constancy import cast_prior_covariance, gains_from_cast
from fairderm.tone._decode import decode_image
from fairderm.tone._pipeline import analyse_rgb
from fairderm.tone._scales import category_index

DEFAULT_PAD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pad-ufes-20-subset"
STOPS = (-1.0, -0.5, 0.5, 1.0)
GROUP_CUTS = (28.0, 5.0)  # groh: I-II | III-IV | V-VI


def reexpose(rgb: np.ndarray, stops: float, cast: np.ndarray | None = None) -> np.ndarray:
    """8-bit sRGB re-exposed by ``stops`` in linear light, with an optional cast (log chromaticity) applied."""
    linear = srgb8_to_linear(rgb).astype(np.float64) * 2.0**stops
    if cast is not None:
        linear = linear * gains_from_cast(-np.asarray(cast))  # the gains that would undo -cast apply +cast
    return np.round(_srgb_encode(np.clip(linear, 0.0, 1.0)) * 255.0).astype(np.uint8)


def measure(images: list[np.ndarray], params: ToneParameters) -> pd.DataFrame:
    rows = []
    for rgb in images:
        tone = analyse_rgb(rgb, None, params)
        rows.append({"status": tone.status, "ita": tone.ita, "low": tone.ita_low, "high": tone.ita_high,
                     "L": tone.lab[0]})
    return pd.DataFrame(rows)


def reexposure_report(images: list[np.ndarray], exposure_sd: float, wb_sd: float, seed: int) -> pd.DataFrame:
    params = ToneParameters(exposure_sd=exposure_sd)
    rng = np.random.default_rng(seed)
    cov = cast_prior_covariance(wb_sd, wb_sd / 2)
    casts = rng.multivariate_normal(np.zeros(2), cov, size=len(images))
    original = measure(images, params)
    ok0 = original["status"].eq("ok").to_numpy()
    group0 = category_index(original["ita"].to_numpy(), GROUP_CUTS)
    rows = []
    for white_balance in (False, True):
        for stops in STOPS:
            changed = measure([reexpose(rgb, stops, casts[i] if white_balance else None)
                               for i, rgb in enumerate(images)], params)
            ok = ok0 & changed["status"].eq("ok").to_numpy()
            shift = (changed["ita"] - original["ita"]).to_numpy()[ok]
            inside_original = ((changed["ita"] >= original["low"]) & (changed["ita"] <= original["high"]))[ok]
            covers_original = ((original["ita"] >= changed["low"]) & (original["ita"] <= changed["high"]))[ok]
            group = category_index(changed["ita"].to_numpy(), GROUP_CUTS)
            rows.append({
                "exposure_sd": exposure_sd, "stops": stops, "white_balance": "shifted" if white_balance else "kept",
                "n": int(ok.sum()),
                "median_shift": float(np.median(shift)),
                "median_abs_shift": float(np.median(np.abs(shift))),
                "p90_abs_shift": float(np.percentile(np.abs(shift), 90)),
                "in_original_interval": float(inside_original.mean()),
                "interval_covers_original": float(covers_original.mean()),
                "group_changed": float((group[ok] != group0[ok]).mean()),
                "abstained": float((ok0 & ~changed["status"].eq("ok").to_numpy()).sum() / max(ok0.sum(), 1)),
                "median_interval_width": float(np.median((original["high"] - original["low"])[ok0])),
            })
    return pd.DataFrame(rows)


def within_photo_spread(original: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Pooled within-lesion and within-patient SD of the skin's log2 luminance and of ITA (images measured ok)."""
    ok = original["status"].eq("ok").to_numpy()
    lightness = original["L"].to_numpy()
    log_luminance = np.log2(((lightness + 16.0) / 116.0) ** 3)  # CIE 1976: Y from L* (L* > 8)
    rows = []
    for key in ("lesion_id", "patient_id"):
        frame = pd.DataFrame({"group": labels[key].to_numpy(), "stops": log_luminance, "ita": original["ita"]})[ok]
        frame = frame[frame.groupby("group")["stops"].transform("size") >= 2]
        dof = len(frame) - frame["group"].nunique()
        row = {"by": key, "groups": int(frame["group"].nunique()), "photos": len(frame)}
        for column in ("stops", "ita"):
            deviation = frame[column] - frame.groupby("group")[column].transform("mean")
            row[f"within_sd_{column}"] = float(np.sqrt((deviation**2).sum() / dof)) if dof else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pad", type=Path, default=DEFAULT_PAD, help="PAD-UFES-20 subset folder.")
    parser.add_argument("--n", type=int, default=0, help="Photographs to use (0: all).")
    parser.add_argument("--exposure-sd", type=float, nargs="+", default=[0.17, 0.45],
                        help="Exposure prior SDs (stops) to check.")
    parser.add_argument("--wb-sd", type=float, default=0.15,
                        help="SD of the white-balance shift along the Planckian locus (log chromaticity; 0.15 is "
                        "about 21 mired); half of it across.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.pad / "labels.csv").is_file():
        print(f"PAD subset not found at {args.pad}", file=sys.stderr)
        return 2
    labels = pd.read_csv(args.pad / "labels.csv")
    if args.n:
        labels = labels.sample(n=min(args.n, len(labels)), random_state=args.seed).reset_index(drop=True)
    working_size = ToneParameters().working_size
    images = [decode_image(args.pad / path, working_size).rgb for path in labels["image"]]
    print(f"{len(images)} PAD photographs; load average {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    reports = [reexposure_report(images, sd, args.wb_sd, args.seed) for sd in args.exposure_sd]
    print(f"\nre-exposed in linear light ({time.perf_counter() - start:.0f} s); shifts in ITA degrees, "
          "against each photograph's own estimate")
    print(pd.concat(reports).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    spread = within_photo_spread(measure(images, ToneParameters()), labels)
    print("\nbetween photographs of the same lesion / patient (label-free): pooled within-group SD of the skin's "
          "log2 luminance (stops) and of ITA (degrees)")
    print(spread.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
