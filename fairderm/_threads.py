"""Thread limits for small tensor work shared by the training loops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch and BLAS/OpenMP on one thread inside the block, restoring the settings after.

    Heads and routers train on a few hundred to a few thousand rows of 1280
    features: thread hand-offs cost more than they save, and on a busy 2-core
    machine two threads per process made training 10-25 times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)
