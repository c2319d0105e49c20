"""The ``fairderm`` command line: a thin layer over the public functions.

Each concern registers its commands from its own module in
:mod:`fairderm.commands`; this module assembles them and turns fairderm's
errors into one line on stderr and a non-zero exit status.

Exit status 1 and 2 are verdicts only (FAIL, INSUFFICIENT_EVIDENCE). Every
error -- bad input, a usage error, a busy output, an unexpected exception --
exits 3 (ERROR) with one line; for an unexpected exception the global
``--debug`` flag prints its traceback as well.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.markup import escape

from fairderm._version import __version__
from fairderm.errors import EXIT_ERROR, FairdermError

_COMMAND_MODULES = ("cohort", "tone", "infer", "score", "router", "audit", "gatecard", "dashboard", "demo")

app = typer.Typer(
    name="fairderm",
    help="Audit dermatology AI for fairness across skin tones.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fairderm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="On an unexpected error, print its traceback (otherwise one line, exit 3)."
    ),
) -> None:
    """Audit dermatology AI for fairness across skin tones."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"fairderm.commands.{_name}").register(app)


def _global_options(args: list[str]) -> list[str]:
    """The options given before the command name (``fairderm --debug audit ...``)."""
    options = []
    for arg in args:
        if not arg.startswith("-"):
            break
        options.append(arg)
    return options


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (errors as one line on stderr)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="fairderm", standalone_mode=False)
    except FairdermError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except typer.TyperException as exc:
        # Usage errors (unknown option, missing argument) from typer's own click.
        exc.show()
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the one place an unexpected error becomes exit 3 and one line
        if "--debug" in _global_options(args):
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {escape(_one_line(exc))} (unexpected; `fairderm --debug ...` "
                          "shows the traceback)", markup=True, highlight=False)
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
