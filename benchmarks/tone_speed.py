"""Tone estimation speed: fairderm vs whole-image ITA (scikit-image) vs skin-tone-classifier, same images.

Test images are JPEGs (quality 90) at 300x300 and at 1024x768, made from
synthetic renders (``fairderm.cohort.synthesize_cohort``) and, when the
shared PAD-UFES-20 subset is present, its photographs, resized into a
temporary folder. Every method runs on the same files with the same number
of worker processes (default 2, one per core), the time including process
start-up and JPEG decoding. The methods take turns ``--repeats`` times and
each reports its best run:

- **fairderm**: ``fairderm.tone.estimate_tone(cohort, workers=N)``.
- **skimage whole-image ITA**: decode the full image with Pillow,
  ``skimage.color.rgb2lab`` on every pixel, median ITA (the usual baseline).
- **skin-tone-classifier** (``stone.process``, Monk palette), on at most
  ``--stone-limit`` images since it is slow; skipped with the reason when
  the package is not installed or fails.

The machine's load average is printed: on a shared machine the numbers are
noisy, and only the ratios of one run are comparable.

Run::

    .venv/bin/python benchmarks/tone_speed.py            # 600 + 300 images, 2 workers
    .venv/bin/python benchmarks/tone_speed.py --n-small 200 --n-large 100 --stone-limit 40
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fairderm.cohort import CohortSpec, synthesize_cohort, write_cohort
from fairderm.tone import MONK_HEX, estimate_tone

DEFAULT_PAD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pad-ufes-20-subset"
SIZES = {"300x300": (300, 300), "1024x768": (1024, 768)}


def source_images(tmp: Path, pad: Path, n_synthetic: int) -> list[Path]:
    """Synthetic renders plus (if present) PAD photographs to resize from."""
    cohort = synthesize_cohort(tmp / "synth", n=n_synthetic, seed=7, image_size=384)
    sources = list(cohort.image_paths())
    if (pad / "labels.csv").is_file():
        sources += [pad / name for name in pd.read_csv(pad / "labels.csv")["image"]]
    return sources


def make_jpegs(sources: list[Path], folder: Path, size: tuple[int, int], n: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for k in range(n):
        with Image.open(sources[k % len(sources)]) as image:
            resized = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
        path = folder / f"img{k:05d}.jpg"
        resized.save(path, quality=90)
        paths.append(path)
    return paths


def fairderm_rate(paths: list[Path], workers: int, root: Path) -> tuple[float, str]:
    manifest = pd.DataFrame({"image_id": [p.stem for p in paths], "image": [p.name for p in paths],
                             "label": "nevus"})
    spec = CohortSpec(name="speed", labels=["nevus"], synthetic=True)
    cohort = write_cohort(root, spec, manifest, images_root=paths[0].parent, check_files=False)
    start = time.perf_counter()
    frame = estimate_tone(cohort, workers=workers)
    elapsed = time.perf_counter() - start
    counts = frame["status"].value_counts().to_dict()
    return len(paths) / elapsed, f"statuses {counts}"


def whole_image_ita(path: Path) -> float:
    """The common baseline: median ITA over every pixel of the full-resolution image."""
    from skimage.color import rgb2lab

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    lab = rgb2lab(rgb)
    return float(np.median(np.degrees(np.arctan2(lab[..., 0] - 50.0, lab[..., 2]))))


def stone_tone(path: Path) -> str:
    import stone

    result = stone.process(str(path), image_type="color", tone_palette=["#" + c for c in MONK_HEX],
                           tone_labels=[str(k) for k in range(1, 11)])
    return str(result["faces"][0]["tone_label"])


def pool_rate(function: Callable[[Path], object], paths: list[Path], workers: int) -> float:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(function, paths, chunksize=max(1, len(paths) // (workers * 8))))
    return len(paths) / (time.perf_counter() - start)


def stone_rate(paths: list[Path], workers: int) -> tuple[float | None, str]:
    try:
        import stone  # noqa: F401
    except ImportError as exc:
        return None, f"skin-tone-classifier not installed ({exc}); pip install 'fairderm[stone]'"
    try:
        return pool_rate(stone_tone, paths, workers), ""
    except Exception as exc:  # noqa: BLE001 - report why the third-party package could not be timed
        return None, f"skin-tone-classifier failed: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-small", type=int, default=600, help="300x300 JPEGs")
    parser.add_argument("--n-large", type=int, default=300, help="1024x768 JPEGs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for every method")
    parser.add_argument("--stone-limit", type=int, default=100, help="images timed with skin-tone-classifier")
    parser.add_argument("--pad", type=Path, default=DEFAULT_PAD, help="PAD-UFES-20 subset folder (optional)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method; the best is reported")
    args = parser.parse_args(argv)
    targets = {"300x300": 150.0, "1024x768": 60.0}
    counts = {"300x300": args.n_small, "1024x768": args.n_large}
    print(f"cores {os.cpu_count()}, workers {args.workers}, best of {args.repeats} runs, load average "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sources = source_images(tmp, args.pad, 40)
        for name, size in SIZES.items():
            paths = make_jpegs(sources, tmp / name, size, counts[name])
            # methods take turns, and each keeps its best run: load from other
            # processes only ever slows a run down
            ours = baseline = 0.0
            stone_speed: float | None = 0.0
            for repeat in range(args.repeats):
                rate, note = fairderm_rate(paths, args.workers, tmp / f"cohort_{name}_{repeat}")
                ours = max(ours, rate)
                baseline = max(baseline, pool_rate(whole_image_ita, paths, args.workers))
                rate_stone, stone_note = stone_rate(paths[: args.stone_limit], args.workers)
                stone_speed = None if rate_stone is None else max(stone_speed or 0.0, rate_stone)
            rows.append({
                "images": name, "n": len(paths), "fairderm_img_s": ours,
                "skimage_whole_img_s": baseline, "stone_img_s": stone_speed,
                "fairderm_over_skimage": ours / baseline,
                "fairderm_over_stone": ours / stone_speed if stone_speed else None,
                "target_img_s": targets[name], "meets_target": ours >= targets[name],
            })
            print(f"{name}: fairderm {note}" + (f"; {stone_note}" if stone_note else ""))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print("load average after " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
