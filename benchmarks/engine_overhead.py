"""Engine overhead: tone estimation of one synthetic cohort on the local process pool and on a local Ray instance.

The same cohort (``fairderm.cohort.synthesize_cohort``, default 10,000 images
of 64 px, kept in ``--cohort`` to reuse) is measured with
``fairderm.tone.estimate_tone`` on the two engines, with the same number of
CPUs (``--cpus``, default 2), taking turns ``--rounds`` times. Ray's start
(``ray.init``) is timed apart from the work, since a cluster is started once
for many jobs; the overhead ratio is Ray's work time over the local pool's
(the goal is at most 1.3 on 2 cores). The tables of the two engines are
checked to be identical. The per-image cost (CPU seconds per image, the local
pool's wall time times its CPUs over the images) is what docs/cluster.md's
projection for a million images starts from.

The machine's load average is printed before and after: on a shared machine
the numbers are noisy, and only the two engines' figures of one run, taken in
turns, are comparable.

Run::

    .venv/bin/python benchmarks/engine_overhead.py                  # 10,000 images, 2 CPUs, 1 round
    .venv/bin/python benchmarks/engine_overhead.py --n 2000 --rounds 2 --cohort /tmp/engine-cohort
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from fairderm._engine import BLOCK_SIZE, Engine
from fairderm.cohort import load_cohort, synthesize_cohort
from fairderm.tone import estimate_tone


def _cohort(folder: Path, n: int, size: int, cpus: int):
    if (folder / "cohort.yaml").is_file():
        cohort = load_cohort(folder)
        if len(cohort) == n:
            return cohort, 0.0
        raise SystemExit(f"{folder} holds {len(cohort)} images, not {n}: give another --cohort")
    start = time.perf_counter()
    cohort = synthesize_cohort(folder, n=n, seed=0, workers=cpus, image_size=size)
    return cohort, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="images (default 10,000)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of each engine (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="turns of the two engines (default 1)")
    parser.add_argument("--block-size", type=int, default=BLOCK_SIZE, help=f"images per Ray block ({BLOCK_SIZE})")
    parser.add_argument("--cohort", type=Path, help="cohort folder to make or reuse (default: a temporary one)")
    args = parser.parse_args()

    import ray

    print(f"load average before: {os.getloadavg()}")
    folder = args.cohort or Path(tempfile.mkdtemp(prefix="engine-overhead-")) / "cohort"
    cohort, synth_s = _cohort(folder, args.n, args.size, args.cpus)
    print(f"cohort: {len(cohort)} images of {args.size} px in {folder}" + (f" (made in {synth_s:.0f} s)" if synth_s
                                                                           else " (reused)"))
    start = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - start
    print(f"ray.init with {args.cpus} CPUs: {ray_start_s:.1f} s")
    engine = Engine(name="ray", block_size=args.block_size)
    times: dict[str, list[float]] = {"local": [], "ray": []}
    tables: dict[str, pd.DataFrame] = {}
    for round_ in range(1, args.rounds + 1):
        for name in ("local", "ray"):
            start = time.perf_counter()
            tables[name] = estimate_tone(cohort, workers=args.cpus, engine=engine if name == "ray" else None)
            times[name].append(time.perf_counter() - start)
            print(f"round {round_}: {name:<5} {times[name][-1]:8.1f} s  ({len(cohort) / times[name][-1]:.0f} img/s)",
                  flush=True)
    ray.shutdown()
    pd.testing.assert_frame_equal(tables["ray"], tables["local"], check_exact=True)
    local, on_ray = min(times["local"]), min(times["ray"])
    print(f"load average after: {os.getloadavg()}")
    print(f"best of {args.rounds}: local pool {local:.1f} s, Ray {on_ray:.1f} s (+ {ray_start_s:.1f} s ray.init); "
          f"overhead ratio {on_ray / local:.2f} (with ray.init {(on_ray + ray_start_s) / local:.2f})")
    print(f"per-image cost: {local * args.cpus / len(cohort) * 1000:.1f} CPU-ms (local pool), "
          f"{on_ray * args.cpus / len(cohort) * 1000:.1f} CPU-ms (Ray); tables identical")


if __name__ == "__main__":
    main()
