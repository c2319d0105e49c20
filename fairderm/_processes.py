"""The start method of fairderm's worker processes (synthesis, tone estimation)."""

from __future__ import annotations

import multiprocessing
import sys


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
