"""Bootstrap memory at scale: peak resident memory of fairderm.metrics.evaluate on 1M cases and 10 metrics.

Each measurement runs in a fresh child process and reports its peak RSS
(``ru_maxrss``), so the figures include Python, numpy and the inputs. The
bootstrap never holds all replicates' weights: it draws them in chunks of
``fairderm.metrics._bootstrap.CHUNK_ELEMENTS`` float32 elements (at least 64
replicates), so its memory grows with n and the number of threads, not with
B. The script prints, for each (n, B, threads), the seconds and the peak
memory, and the size of one chunk's weight matrix.

Usage::

    python benchmarks/bootstrap_memory.py                         # n=1,000,000, B=200 and 2000, 1 thread
    python benchmarks/bootstrap_memory.py --n 1000000 --boot 200 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

METRICS = ["accuracy", "balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "auroc", "brier",
           "ece"]

CHILD = """
import json, sys, time
import numpy as np
from fairderm.metrics import evaluate
n, n_boot, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
metrics = json.loads(sys.argv[4])
rng = np.random.default_rng(0)
group = rng.choice(["I-II", "III-IV", "V-VI"], size=n, p=[0.5, 0.35, 0.15])
y = (rng.random(n) < 0.3).astype(np.int64)
score = 1.0 / (1.0 + np.exp(-rng.normal(np.where(y == 1, 1.0, -1.0), 1.2)))
patient = rng.integers(0, n // 2, size=n)
start = time.perf_counter()
result = evaluate(y, np.column_stack([1 - score, score]), {"fitzpatrick_group": group}, labels=[0, 1],
                  metrics=metrics, n_boot=n_boot, ci="percentile", cluster=patient, tests=False, case_mix=False,
                  power=False, workers=threads)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def measure(n: int, n_boot: int, threads: int) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), str(n_boot), str(threads), json.dumps(METRICS)],
                          capture_output=True, text=True, check=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: run the smallest configuration first
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "peak_gib": max(peak_kib, before) / 2**20}


def main() -> None:
    from fairderm.metrics._bootstrap import CHUNK_ELEMENTS, chunk_bounds

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--boot", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    print(f"{'n':>10} {'B':>6} {'threads':>7} {'chunk':>6} {'chunk MiB':>9} {'seconds':>8} {'peak GiB':>8}")
    for n in sorted(args.n):
        for threads in sorted(args.threads):
            for n_boot in sorted(args.boot):
                start = time.perf_counter()
                result = measure(n, n_boot, threads)
                lo, hi = chunk_bounds(n_boot, n)[0]
                chunk_mib = (hi - lo) * n * 4 / 2**20
                print(f"{n:>10} {n_boot:>6} {threads:>7} {hi - lo:>6} {chunk_mib:>9.0f} {result['seconds']:>8.1f} "
                      f"{result['peak_gib']:>8.2f}   (wall {time.perf_counter() - start:.0f} s; "
                      f"CHUNK_ELEMENTS={CHUNK_ELEMENTS})", flush=True)


if __name__ == "__main__":
    main()
