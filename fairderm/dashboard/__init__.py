"""The fairderm Streamlit dashboard (``fairderm dashboard``) and tone labelling page; see docs/dashboard.md.

The pages need the ``dashboard`` extra (Streamlit); importing this package
does not import Streamlit.

Public API
----------
APP, LABELLING_APP
    The Streamlit scripts that ``fairderm dashboard`` and ``fairderm tone
    label`` run.
"""

from __future__ import annotations

from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
LABELLING_APP = Path(__file__).resolve().with_name("labelling.py")

__all__ = ["APP", "LABELLING_APP"]
