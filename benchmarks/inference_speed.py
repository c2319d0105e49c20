"""Images per second of the bundled backbone: fairderm's batched pipeline vs a naive loop.

Both compute the same 1280-d features with the same model object. The naive
loop decodes each image in full with Pillow, resizes it, and runs the model
on a batch of one under ``torch.no_grad``, as a first script would. The
pipeline decodes in DataLoader worker processes (JPEG draft mode at the
model's resolution), runs batches channels-last under
``torch.inference_mode``, and on CUDA adds pinned memory, non-blocking
copies and bf16/fp16 autocast.

Usage::

    python benchmarks/inference_speed.py [--images DIR] [--n 256] [--batch-size 64] [--workers N]

Without ``--images`` it uses the shared PAD-UFES-20 subset (mostly 300 px
crops) when present, else (or with ``--generate``) generated 3000x2250 JPEGs,
the size of a phone camera's photo, where draft-mode decoding matters. Timings on a shared machine are noisy: both
paths run in the same process, one after the other, on the same images.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fairderm.inference._backbone import Backbone, embed_paths
from fairderm.inference._efficientnet import INPUT_SIZE, PIXEL_MEAN, PIXEL_STD
from fairderm.inference._images import resize_center_crop

PAD = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pad-ufes-20-subset" / "images"
)


def generated_images(
    folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (3000, 2250)
) -> list[Path]:
    """JPEG photos of noise-textured skin with a dark blob, at a phone camera's size."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    paths = []
    for k in range(n):
        base = rng.uniform(90, 230, size=3)
        image = np.empty((height, width, 3), dtype=np.float32)
        image[:] = base
        inside = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) < (
            rng.uniform(0.1, 0.25) * height
        ) ** 2
        image[inside] *= 0.4
        image += rng.normal(0, 8, size=image.shape)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            buffer, format="JPEG", quality=90
        )
        path = folder / f"gen_{k:04d}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def naive_loop(backbone: Backbone, paths: list[Path]) -> float:
    """Seconds for the one-image-at-a-time loop."""
    model = backbone.model.to(memory_format=torch.contiguous_format)
    started = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = resize_center_crop(Image.open(path).convert("RGB"), INPUT_SIZE)
            x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().unsqueeze(0)
            model.features(((x - PIXEL_MEAN) / PIXEL_STD).to(backbone.device))
    if backbone.device.type == "cuda":
        torch.cuda.synchronize()
    backbone.model = model.to(memory_format=torch.channels_last)
    return time.perf_counter() - started


def pipeline(
    backbone: Backbone, paths: list[Path], batch_size: int | None, workers: int | None
) -> float:
    """Seconds for fairderm's batched pipeline."""
    started = time.perf_counter()
    embed_paths(backbone, paths, batch_size=batch_size, workers=workers)
    if backbone.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(
    device: str, paths: list[Path], batch_size: int | None, workers: int | None
) -> dict[str, float]:
    """Naive loop with torch's default threads, naive loop with the pipeline's model
    threads, then the pipeline; each as images per second."""
    backbone = Backbone(device)
    cores = os.cpu_count() or 1
    warm = paths[: min(8, len(paths))]
    pipeline(backbone, warm, batch_size, workers)
    model_threads = torch.get_num_threads()  # what plan_workers left to the model
    result: dict[str, float] = {"model_threads": model_threads}
    for name, threads in (("naive_default_threads", cores), ("naive_same_threads", model_threads)):
        torch.set_num_threads(threads)
        naive_loop(backbone, warm)
        result[name] = len(paths) / naive_loop(backbone, paths)
    result["pipeline"] = len(paths) / pipeline(backbone, paths, batch_size, workers)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=Path, help="folder of images (default: PAD subset, else generated)"
    )
    parser.add_argument(
        "--generate",
        action="store_true",
        help="time on generated 3000x2250 JPEGs (phone photos) instead of the PAD subset",
    )
    parser.add_argument("--n", type=int, default=256, help="images to time (default 256)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default 16 on CPU, 128 on CUDA"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: fairderm's plan)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.images or (PAD if PAD.is_dir() and not args.generate else None)
        if folder is not None:
            paths = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
            )[: args.n]
            source = str(folder)
        else:
            paths = generated_images(Path(scratch), args.n)
            source = "generated 3000x2250 JPEGs"
        print(
            f"{len(paths)} images from {source}; torch {torch.__version__}, {os.cpu_count()} CPU cores"
        )
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            r = measure(device, paths, args.batch_size, args.workers)
            name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
            print(f"{name}: fairderm pipeline {r['pipeline']:.1f} img/s")
            print(
                f"  naive loop, torch default threads ({os.cpu_count()}): {r['naive_default_threads']:.1f} img/s"
                f" -> speedup {r['pipeline'] / r['naive_default_threads']:.2f}x"
            )
            print(
                f"  naive loop, same threads as the pipeline's model ({r['model_threads']:.0f}): "
                f"{r['naive_same_threads']:.1f} img/s -> speedup {r['pipeline'] / r['naive_same_threads']:.2f}x"
            )
        if not torch.cuda.is_available():
            print("no CUDA GPU here: GPU figures are printed when one is present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
