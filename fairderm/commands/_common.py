"""Shared CLI plumbing: consoles, progress bars and argument parsing helpers."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

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


def verdict_rules(verdict: str, rules: Iterable[dict]) -> str:
    """The policy rules behind a gate verdict, for the console: ``from rules accuracy-gap, ece-each``.

    ``rules`` are gate.json's rule records (``id``, ``verdict``, ``message``); the verdict is the most
    severe of theirs, so the rules that gave it are the ones to name. An ERROR adds its rule's message.
    """
    behind = [rule for rule in rules if rule.get("verdict") == verdict]
    if not behind:
        return ""
    text = ("from rule " if len(behind) == 1 else "from rules ") + ", ".join(str(r.get("id")) for r in behind)
    if verdict == "ERROR" and behind[0].get("message"):
        text += f": {behind[0]['message']}"
    return text


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


@contextmanager
def parameters_as_flags(**flags: str) -> Iterator[None]:
    """Report a library error about a parameter as one about the flag that set it.

    Library functions name their Python parameter (``n_boot``); the user of a
    command typed its flag (``--n-boot``). ``flags`` maps one to the other;
    an error about a file (it has a source) names a key of that file and is
    left as it is.
    """
    try:
        yield
    except InputError as error:
        if error.source is not None or error.column not in flags:
            raise
        raise InputError(error.reason, source=error.source, row=error.row, column=flags[error.column]) from error


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


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _StopRequested(Exception):
    """SIGTERM or SIGHUP arrived while the Streamlit server ran."""


def _stop_requested(signum: int, _frame: object) -> None:
    raise _StopRequested(signum)


def run_streamlit(argv: list[str], *, what: str) -> None:
    """Run a Streamlit server in the foreground until it stops.

    Ctrl-C is a normal end (the terminal sends it to the server too). SIGTERM
    or SIGHUP to this process ends it too, and the server with it, which
    otherwise would go on serving the port after its parent is gone: the
    server gets SIGTERM and, if it has not stopped 10 s later, SIGKILL.

    Parameters
    ----------
    argv
        The ``streamlit run`` command line.
    what
        The command, for the error naming the extra when Streamlit is missing.
    """
    import typer

    from fairderm._extras import check_installed

    check_installed("streamlit", what)
    previous = {signum: signal.signal(signum, _stop_requested) for signum in _STOP_SIGNALS}
    server = subprocess.Popen(argv)
    try:
        returncode = server.wait()
    except (KeyboardInterrupt, _StopRequested):
        raise typer.Exit(0) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop(server)
    if returncode:
        raise FairdermError(f"streamlit exited with status {returncode}")


def _stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
