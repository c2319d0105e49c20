"""Shared CLI plumbing: consoles, progress bars and argument parsing helpers."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

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

T = TypeVar("T")

console = Console(highlight=False, soft_wrap=True)


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
