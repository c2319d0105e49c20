"""The fairderm Streamlit dashboard (``fairderm dashboard``) and tone labelling page; see docs/dashboard.md.

The pages need the ``dashboard`` extra (Streamlit); importing this package
does not import Streamlit.

Public API
----------
APP, LABELLING_APP
    The Streamlit scripts that ``fairderm dashboard`` and ``fairderm tone
    label`` run.
streamlit_argv
    The ``streamlit run`` command line that serves the dashboard.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
LABELLING_APP = Path(__file__).resolve().with_name("labelling.py")

def streamlit_argv(app: Path, runs_dir: Path, *, port: int, host: str) -> list[str]:
    """The ``streamlit run`` command line for the dashboard on ``runs_dir``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--", str(runs_dir),
    ]


__all__ = ["APP", "LABELLING_APP", "streamlit_argv"]
