"""Where batch work runs: this machine's process pool (``local``) or a Ray cluster (``ray``).

Ray is optional (the ``[ray]`` extra): nothing here imports it until a Ray
engine is used, so ``import fairderm`` never does.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairderm._processes import default_workers
from fairderm.errors import FairdermError

ENGINES: tuple[str, ...] = ("local", "ray")

# Images per block: the unit a Ray task or actor call measures or predicts, and the unit a killed run resumes by.
# Large enough that Ray's per-task overhead (a few milliseconds) stays small next to the images' cost
# (tens of milliseconds each), small enough that a lost block costs little.
BLOCK_SIZE = 64


class Engine(BaseModel):
    """The engine of a batch job and, for Ray, where the cluster is and what each model actor needs.

    The audit spec's ``engine:`` key is this model (``engine: ray`` is short
    for ``engine: {name: ray}``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["local", "ray"] = Field("local", description="'local': this machine's processes; 'ray': Ray.")
    address: str | None = Field(
        None,
        description="Ray: null starts a Ray instance on this machine with `cpus` CPUs; 'auto' joins the cluster "
        "this machine is part of (`ray start`); 'ray://host:port' joins a remote cluster (Ray Client).",
    )
    cpus: int | None = Field(None, ge=1, description="CPUs of a Ray instance started here (default: every core).")
    actor_cpus: float = Field(1.0, ge=0, description="CPUs per model actor (Ray).")
    actor_gpus: float = Field(0.0, ge=0, description="GPUs per model actor (Ray; 1 puts one model on each GPU).")
    actors: int | None = Field(None, ge=1, description="Model actors (Ray; default: as many as the cluster fits).")
    block_size: int = Field(BLOCK_SIZE, ge=1, description="Images per block, the unit a rerun resumes by.")

    @model_validator(mode="after")
    def _address_for_ray(self) -> Engine:
        if self.address is not None and self.name != "ray":
            raise ValueError("'address' is for engine 'ray' only")
        if self.address is not None and not (self.address == "auto" or self.address.startswith("ray://")):
            raise ValueError(f"address {self.address!r} is neither 'auto' nor 'ray://host:port'")
        return self

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
        # "local": a new instance even where `ray start` left a cluster address behind
        ray.init(address="local", num_cpus=engine.cpus or default_workers(), include_dashboard=False,
                 log_to_driver=False)
    else:
        ray.init(address=engine.address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def block_bounds(n_items: int, block_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each block of ``n_items`` positions: fixed by position, so a rerun finds the same blocks."""
    return [(start, min(start + block_size, n_items)) for start in range(0, n_items, block_size)]
