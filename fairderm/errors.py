"""Exceptions shared by every fairderm subpackage.

Errors raised at an input edge carry one line that names the file, row,
column or key at fault, so that the CLI can print it as is and exit non-zero.
"""

from __future__ import annotations

#: The exit status of every error that is not a verdict (the gate's ERROR included).
EXIT_ERROR = 3


class FairdermError(Exception):
    """Base class of every error fairderm raises on purpose.

    Every error exits 3 (ERROR): exit statuses 1 and 2 belong to the
    verdicts FAIL and INSUFFICIENT_EVIDENCE, so that a CI job gating a
    release never reads a typo in a spec as a verdict.
    """

    exit_code: int = EXIT_ERROR


class InputError(FairdermError, ValueError):
    """Bad input: a file, row, column, key or argument that cannot be used.

    Parameters
    ----------
    message
        What is wrong, in one line.
    source
        The file or object at fault (printed first), if any.
    row
        1-based data row (the header is not counted), if any.
    column
        Column or key at fault, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.column = column
        self.reason = message
        where = []
        if source:
            where.append(str(source))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class OutputBusyError(FairdermError):
    """Another process is writing the same output (its lock is held).

    Exit status 3, as for any error that is not a verdict: the command
    did not run, so it can neither pass nor fail.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
