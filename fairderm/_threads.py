"""Thread limits: BLAS/OpenMP pools held to a few threads inside a block, and torch's too for training loops."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager

from threadpoolctl import ThreadpoolController

_CONTROLLER: tuple[int, ThreadpoolController] | None = None


def thread_limits(limits: int, user_api: str | None = None) -> AbstractContextManager[object]:
    """``threadpool_limits(limits, user_api)``, without scanning the process's libraries on every call.

    A new limiter inspects every shared library of the process, about 8 ms
    once torch is loaded, and the metrics ask for one on every evaluation.
    The controller is kept, and made again only after more modules have been
    imported (one of them may have loaded another BLAS or OpenMP).
    """
    global _CONTROLLER
    if _CONTROLLER is None or _CONTROLLER[0] != len(sys.modules):
        _CONTROLLER = (len(sys.modules), ThreadpoolController())
    return _CONTROLLER[1].limit(limits=limits, user_api=user_api)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch and BLAS/OpenMP on one thread inside the block, restoring the settings after.

    Heads and routers train on a few hundred to a few thousand rows of 1280
    features: thread hand-offs cost more than they save, and on a busy 2-core
    machine two threads per process made training 10-25 times slower.
    """
    import torch  # the training loops' own dependency: the metrics use thread_limits without it

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with thread_limits(1):
            yield
    finally:
        torch.set_num_threads(before)
