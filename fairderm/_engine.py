"""Where batch work runs: this machine's process pool (``local``) or a Ray cluster (``ray``).

Ray is optional (the ``[ray]`` extra): nothing here imports it until a Ray
engine is used, so ``import fairderm`` never does.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from fairderm._processes import default_workers
from fairderm.errors import FairdermError, InputError

ENGINES: tuple[str, ...] = ("local", "ray")

# Images per block: the unit a Ray task or actor call measures or predicts, and the unit a killed run resumes by.
# Large enough that Ray's per-task overhead (a few milliseconds) stays small next to the images' cost
# (tens of milliseconds each), small enough that a lost block costs little.
BLOCK_SIZE = 64


@dataclass(frozen=True)
class Engine:
    """The engine of a batch job and, for Ray, where the cluster is and what each model actor needs.

    Attributes
    ----------
    name
        ``local`` (a process pool on this machine) or ``ray``.
    address
        Ray only. None starts a Ray instance on this machine with
        ``cpus`` CPUs; ``auto`` joins the cluster this machine belongs to
        (``ray start``); ``ray://host:port`` joins a remote cluster through
        Ray Client.
    cpus
        CPUs of a Ray instance started here (default: one per usable core).
    actor_cpus, actor_gpus
        Resources of each model actor (inference). ``actor_gpus=1`` puts one
        model on each GPU of the cluster.
    actors
        Model actors to start (default: as many as the cluster's resources fit).
    block_size
        Images per block (see :data:`BLOCK_SIZE`).
    """

    name: str = "local"
    address: str | None = None
    cpus: int | None = None
    actor_cpus: float = 1.0
    actor_gpus: float = 0.0
    actors: int | None = None
    block_size: int = BLOCK_SIZE

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise InputError(f"unknown engine {self.name!r}; choose one of {list(ENGINES)}", column="engine")
        if self.name == "local" and self.address is not None:
            raise InputError("a Ray address needs engine 'ray'", column="address")
        if self.address is not None and not (self.address == "auto" or self.address.startswith("ray://")):
            raise InputError(f"Ray address {self.address!r} is neither 'auto' nor 'ray://host:port'",
                             column="address")
        if self.cpus is not None and self.cpus < 1:
            raise InputError(f"cpus must be >= 1, got {self.cpus}", column="cpus")
        if self.actor_cpus < 0 or self.actor_gpus < 0 or (self.actors is not None and self.actors < 1):
            raise InputError("actor_cpus and actor_gpus must be >= 0 and actors >= 1", column="actors")
        if self.block_size < 1:
            raise InputError(f"block_size must be >= 1, got {self.block_size}", column="block_size")

    @property
    def is_ray(self) -> bool:
        return self.name == "ray"


def require_ray() -> ModuleType:
    """The ``ray`` module, or one line naming the extra that installs it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise FairdermError("engine 'ray' needs Ray, which is not installed: pip install 'fairderm[ray]'") from None


@contextlib.contextmanager
def ray_session(engine: Engine) -> Iterator[ModuleType]:
    """Ray, connected for the block: to the cluster at ``engine.address``, else to a new instance on this machine.

    A Ray already initialised in this process (a notebook's, a test's) is
    used as it is and left running; one started here is shut down after.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if engine.address is None:
        ray.init(num_cpus=engine.cpus or default_workers(), include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=engine.address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def block_bounds(n_items: int, block_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each block of ``n_items`` positions: fixed by position, so a rerun finds the same blocks."""
    return [(start, min(start + block_size, n_items)) for start in range(0, n_items, block_size)]
