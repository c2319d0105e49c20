"""``fairderm dashboard``: serve the Streamlit dashboard over a runs folder.

The app is :mod:`fairderm.dashboard`'s ``app.py`` (it needs the ``dashboard``
extra, Streamlit); the command runs ``streamlit run`` on it as a subprocess and
passes the runs folder after ``--``. The app reads only inside that folder and
the folders of the cohorts its runs name (their ``images_root``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from fairderm.commands._common import console, run_streamlit
from fairderm.errors import InputError


def dashboard_app_path() -> Path:
    """Path of the dashboard's Streamlit script (``fairderm/dashboard/app.py``)."""
    from fairderm.dashboard import APP

    return APP


def register(app: typer.Typer) -> None:
    """Add ``fairderm dashboard`` to the root app."""

    @app.command("dashboard")
    def dashboard(
        runs_dir: Path = typer.Argument(
            Path("."), help="Folder holding audit runs (searched for NAME/runs/RUN_ID/metrics.json)."
        ),
        port: int = typer.Option(8501, "--port", min=1, max=65535, help="TCP port to serve on."),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="Address to bind; the default serves this machine only."
        ),
    ) -> None:
        """Open the interactive dashboard over audit runs (read-only, confined to RUNS_DIR)."""
        if not runs_dir.is_dir():
            raise InputError(f"runs folder {str(runs_dir)!r} does not exist or is not a folder")
        from fairderm.dashboard import streamlit_argv

        argv = streamlit_argv(dashboard_app_path(), runs_dir.resolve(), port=port, host=host)
        console.print(f"fairderm dashboard on http://{host}:{port} (runs: {runs_dir.resolve()}); Ctrl-C stops it")
        run_streamlit(argv, what="fairderm dashboard")
