#!/usr/bin/env bash
# The installed experience, checked from the built artefacts (docs/install.md):
#   1. build the wheel and the sdist (python -m build);
#   2. install the wheel WITHOUT extras into a fresh venv: torch, streamlit and fairlearn must not be
#      importable there; audit a predictions Parquet and a fake OpenAI-compatible VLM server on
#      127.0.0.1, each with gate, card and verify;
#   3. install the wheel's [dashboard] extra into that venv: the installed `fairderm dashboard` answers
#      200 on /_stcore/health and Chromium renders a page showing a cohort image.
# The fresh venv installs from PyPI (pip's cache makes a rerun faster). PYTHON is the development
# interpreter (with build and playwright); by default the project's .venv. WHEEL_CHECK_KEEP=1 keeps the
# work folder (venv, runs, the dashboard's screenshot) and prints where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/fairderm-wheel-check.XXXXXX")
if [ -n "${WHEEL_CHECK_KEEP:-}" ]; then
  trap 'echo "wheel-check: work folder kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi

"$PYTHON" -m build --sdist --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/fairderm-*.whl)
ls "$work"/dist/fairderm-*.tar.gz >/dev/null
echo "wheel-check: built $(basename "$wheel") and the sdist in $(( $(date +%s) - start )) s"

# the interpreter the development venv was made from, so that the fresh venv shares nothing with it
base=$("$PYTHON" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$wheel"
echo "wheel-check: installed the wheel without extras in $(( $(date +%s) - start )) s"
"$work/venv/bin/python" .ci/wheel_check.py core "$work/venv" "$work/run"

"$work/venv/bin/python" -m pip install --quiet "${wheel}[dashboard]"
echo "wheel-check: installed [dashboard] in $(( $(date +%s) - start )) s"
"$PYTHON" .ci/wheel_check.py dashboard "$work/venv" "$work/run"
echo "wheel-check: passed in $(( $(date +%s) - start )) s"
