"""Shared CLI plumbing: consoles, progress bars and argument parsing helpers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fairderm.errors import FairdermError, InputError

if TYPE_CHECKING:
    from fairderm._engine import Engine

T = TypeVar("T")

console = Console(highlight=False, soft_wrap=True)

ENGINE_OPTION = typer.Option(
    "local", "--engine", help="local: this machine's processes; ray: a Ray instance or cluster (fairderm[ray])."
)
RAY_ADDRESS_OPTION = typer.Option(
    None, "--ray-address",
    help="--engine ray: 'auto' joins the cluster this machine is part of (ray start), 'ray://HOST:PORT' a remote "
    "one (default: start a Ray instance here with --workers CPUs).",
)


def engine_from_flags(
    engine: str, ray_address: str | None, *, actor_cpus: float = 1.0, actor_gpus: float = 0.0
) -> Engine:
    """The engine of ``--engine``, ``--ray-address`` and the actor flags; a bad value is one line naming its flag."""
    from fairderm._engine import ENGINES, Engine

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}", column="--engine")
    if ray_address is not None and engine != "ray":
        raise InputError("--ray-address needs --engine ray", column="--ray-address")
    if ray_address is not None and not (ray_address == "auto" or ray_address.startswith("ray://")):
        raise InputError(f"expected 'auto' or 'ray://HOST:PORT', got {ray_address!r}", column="--ray-address")
    return Engine(name=engine, address=ray_address, actor_cpus=actor_cpus, actor_gpus=actor_gpus)


@contextmanager
def progress_bar(*, transient: bool = False) -> Iterator[Progress]:
    """A rich progress bar with counts, elapsed and remaining time (stderr).

    When the work inside fails, the bar is removed rather than left behind,
    so that the error's one line is all the user sees.
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )
    with progress:
        try:
            yield progress
        except BaseException:
            progress.live.transient = True
            raise


def track(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Iterate with a progress bar on stderr."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def parse_mapping(pairs: list[str] | None, *, option: str) -> dict[str, str]:
    """Parse repeated ``old=new`` options into a dict."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"expected OLD=NEW, got {pair!r}", column=option)
        mapping[old.strip()] = new.strip()
    return mapping


def parse_float_list(text: str | None, *, option: str, length: int | None = None) -> list[float] | None:
    """Parse a comma-separated list of numbers (``--tone-weights 1,1,1,1,1,1``)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}", column=option) from None
    if length is not None and len(values) != length:
        raise InputError(f"expected {length} numbers, got {len(values)}", column=option)
    return values


def check_output_file(path: Path, *, option: str) -> None:
    """Refuse an output file that cannot be written, before any work is done.

    A folder given where a file is wanted, or a path below an existing file,
    would otherwise fail only when the result is written, after the work.
    """
    if path.is_dir():
        raise InputError("is a folder; give the file to write", source=str(path), column=option)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if existing != path and not existing.is_dir():
        raise InputError(f"{existing} is not a folder", source=str(path), column=option)
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {existing}", source=str(path), column=option)


def run_streamlit(argv: list[str]) -> None:
    """Run a Streamlit server in the foreground until it stops; Ctrl-C is a normal end."""
    try:
        completed = subprocess.run(argv, check=False)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if completed.returncode:
        raise FairdermError(f"streamlit exited with status {completed.returncode}")
