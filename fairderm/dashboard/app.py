"""fairderm dashboard: explore audit runs (Streamlit).

Start it with ``fairderm dashboard RUNS_DIR`` or
``streamlit run fairderm/dashboard/app.py -- RUNS_DIR``; the ``FAIRDERM_RUNS_DIR``
environment variable, when set, takes precedence over the argument. The URL may name
a page, a run and a run to compare with (``?page=Cases&run=audits/x/runs/1``);
a run that is not a run folder inside the runs folder is refused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Streamlit runs this file as a script: the fairderm package it sits in is
# the one imported (an uninstalled checkout too), never another install.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
if str(_PACKAGE_PARENT) not in sys.path:
    sys.path.insert(0, str(_PACKAGE_PARENT))

import streamlit as st  # noqa: E402

from fairderm.dashboard import image_views, views  # noqa: E402
from fairderm.dashboard.run_data import RunData, RunsRoot, load_run  # noqa: E402
from fairderm.errors import InputError  # noqa: E402
from fairderm.runs import METRICS_FILE  # noqa: E402

RUNS_ENV = "FAIRDERM_RUNS_DIR"
PAGES = {
    "Overview": views.overview,
    "Disparities": views.disparities,
    "Intersections": views.intersections,
    "Calibration": views.calibration,
    "Skin tone": image_views.skin_tone,
    "Cases": image_views.cases_page,
    "Reasoning": image_views.reasoning,
    "Mitigation": views.mitigation,
    "Compare runs": None,
    "Model card": views.model_card,
}


def _runs_dir_argument() -> str | None:
    # The environment variable wins: under a test runner sys.argv is the runner's.
    if os.environ.get(RUNS_ENV):
        return os.environ[RUNS_ENV]
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    return args[0] if args else None


@st.cache_data(show_spinner="Loading run…", max_entries=8)
def _load(root: str, run_id: str, stamp: float) -> RunData:
    # ``stamp`` (metrics.json mtime) invalidates the cache when a run is rewritten.
    return load_run(RunsRoot(Path(root)), run_id)


def _load_checked(runs: RunsRoot, run_id: str) -> RunData:
    stamp = runs.file(run_id, METRICS_FILE).stat().st_mtime
    return _load(str(runs.root), run_id, stamp)


def _query_choice(name: str, options: list[str], runs: RunsRoot) -> int:
    """Index of the option named in the URL; refuse a value that is not a run inside the root."""
    wanted = st.query_params.get(name)
    if wanted is None:
        return 0
    runs.run_dir(wanted)  # raises InputError for traversal or unknown runs
    return options.index(wanted)


def main() -> None:
    st.set_page_config(page_title="fairderm dashboard", layout="wide")
    argument = _runs_dir_argument()
    if not argument:
        st.error(f"No runs folder given: start with `fairderm dashboard RUNS_DIR` or set {RUNS_ENV}.")
        st.stop()
    try:
        runs = RunsRoot.open(argument)
    except InputError as exc:
        st.error(str(exc))
        st.stop()
    run_ids = runs.run_ids()
    st.sidebar.title("fairderm")
    st.sidebar.caption(f"Runs folder: `{runs.root}`")
    if not run_ids:
        st.error("No run folders (with metrics.json) in this runs folder.")
        st.stop()
    page_names = list(PAGES)
    wanted_page = st.query_params.get("page", page_names[0])
    page = st.sidebar.radio("Page", page_names,
                            index=page_names.index(wanted_page) if wanted_page in page_names else 0, key="page")
    try:
        run_index = _query_choice("run", run_ids, runs)
        compare_ids = [r for r in run_ids if r != run_ids[run_index]]
        compare_index = _query_choice("compare", compare_ids, runs) if compare_ids else 0
    except (InputError, ValueError) as exc:
        st.error(f"Refused: {exc}")
        st.stop()
    run_id = st.sidebar.selectbox("Run", run_ids, index=run_index, key="run")
    compare_ids = [r for r in run_ids if r != run_id]
    other_id = (st.sidebar.selectbox("Compare with", compare_ids, index=min(compare_index, len(compare_ids) - 1),
                                     key="compare") if compare_ids else None)
    try:
        run = _load_checked(runs, run_id)
        if page == "Compare runs":
            views.compare(run, runs, _load_checked(runs, other_id) if other_id else None)
        else:
            PAGES[page](run, runs)
    except InputError as exc:
        st.error(f"Refused: {exc}")


main()
