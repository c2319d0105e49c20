"""Ray's worker processes by what they run, and a worker killed by its PID (the engine tests' dead worker)."""

from __future__ import annotations

import os
import signal
from collections.abc import Collection

import psutil


def ray_processes(title: str) -> set[int]:
    """PIDs of the processes whose command line names ``title`` (Ray titles a worker after the task or actor it
    runs: ``MapBatches(measure_batch)``, ``_PredictActor``)."""
    return {process.pid for process in psutil.process_iter(["cmdline"])
            if any(title in part for part in process.info["cmdline"] or [])}


def kill_one(title: str, *, spare: Collection[int] = ()) -> int | None:
    """SIGKILL one process titled ``title`` that is not in ``spare``; its PID, or None when none runs now."""
    for pid in sorted(ray_processes(title) - set(spare)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended between the listing and the kill
            continue
        return pid
    return None
