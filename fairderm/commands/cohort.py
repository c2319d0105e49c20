"""`fairderm` commands for this concern (registered by :mod:`fairderm.cli`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
