"""fairderm's worker processes (synthesis, tone estimation, image decoding): how many, and how they start."""

from __future__ import annotations

import multiprocessing
import os
import sys


def default_workers() -> int:
    """Worker processes when none are asked for: one per core this process may run on.

    The cores this process may run on (its CPU affinity, which a container,
    ``taskset`` or a batch scheduler narrows), not the machine's: more
    processes than usable cores only wait on each other. Every ``workers``
    option of fairderm (synthesis, tone estimation, a local Ray instance's
    CPUs, the share of the cores that decode images for a model) starts
    from this number.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def worker_context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it, spawn once CUDA is initialised in this process.

    fork starts workers at once and, unlike spawn (and Python 3.14's default
    forkserver), does not re-import the caller's ``__main__``: a script
    without an ``if __name__ == "__main__":`` guard would otherwise run again
    in every worker. The workers use numpy, scipy and Pillow only, so torch's
    CPU thread pools in the parent do not matter (as for torch's own
    DataLoader workers); a CUDA context does not survive a fork.
    """
    torch = sys.modules.get("torch")
    cuda_started = torch is not None and bool(torch.cuda.is_initialized())
    if "fork" in multiprocessing.get_all_start_methods() and not cuda_started:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
