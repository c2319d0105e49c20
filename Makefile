# fairderm: two commands for a newcomer, `make demo` and `make test`.
# Each creates .venv when it is missing. torch==2.13.0 is installed first so
# that pip takes the CPU build on disk instead of pulling a multi-GB CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fairderm-installed
CHROMIUM := /usr/bin/chromium

.PHONY: setup demo test test-fast lint browser bytecode bench wheel-check clean help

help:
	@echo "make demo   - set up .venv if missing, then run the full demo audit"
	@echo "make test   - set up .venv if missing, then lint (ruff) and run the test suite"
	@echo "make lint   - ruff check only (the rules are in pyproject.toml)"
	@echo "make bench  - run the speed benchmarks in benchmarks/"
	@echo "make wheel-check - build the wheel and sdist, check a core install and the [dashboard] extra in a fresh venv"

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# The [stone] extra (skin-tone-classifier, GPL-3.0) stays optional for users;
	# the development environment installs it so that its integration test and
	# the tone speed benchmark's comparison run. fairderm never imports it
	# unless --method stone is asked for.
	$(BIN)/python -m pip install --quiet -e '.[dev,stone]'
	# The upstream Model Card Toolkit schema is read from this package in a test;
	# its TensorFlow dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps model-card-toolkit==2.0.0
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@test -x $(CHROMIUM) || (command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: browser tests will be skipped")

demo: $(STAMP)
	$(BIN)/fairderm demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check .

# Bytecode of the package and the test helpers, compiled where missing or stale: the suite starts some hundred
# Python processes (CLI runs, Ray workers, Streamlit servers), and where PYTHONDONTWRITEBYTECODE is set (as on the
# project's development machines) each of them compiled fairderm anew: about 20 s of a fresh clone's suite.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q fairderm tests

# The suite runs with bytecode writing on, even where PYTHONDONTWRITEBYTECODE is set: pytest then keeps the test
# modules it has rewritten for its assertion messages, and a later run collects in about 8 s instead of 12 s.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

test: $(STAMP) browser lint bytecode
	$(PYTEST)

test-fast: $(STAMP) bytecode
	$(PYTEST) -m "not slow and not browser"

# The installed experience: the built wheel in a fresh venv, without extras and then with [dashboard]
# (.ci/wheel_check.sh; the fresh venv installs from PyPI).
wheel-check: $(STAMP) browser
	PYTHON=$(BIN)/python .ci/wheel_check.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/tone_speed.py
	$(BIN)/python benchmarks/bootstrap_speed.py
	$(BIN)/python benchmarks/inference_speed.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
