"""Fixtures for the model card tests: run folders and the upstream schema."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.card_runs import HOSTILE, make_run


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    """A run folder with every file the audit writes."""
    return make_run(tmp_path / "audits" / "demo-erm" / "runs" / "run-1")


@pytest.fixture
def hostile_run(tmp_path: Path) -> Path:
    """A run whose group label, model name and owner text are HTML/Markdown injections."""
    card = {"model_name": HOSTILE, "overview": f"{HOSTILE} *bold* [link](javascript:alert(1))",
            "owners": [{"name": HOSTILE, "contact": "<img src=x onerror=alert(2)>"}],
            "intended_use": f"# heading\n\n{HOSTILE}", "caveats": ["| pipe | table"], "tags": [HOSTILE]}
    return make_run(tmp_path / "hostile", label=HOSTILE, card=card)


@pytest.fixture(scope="session")
def upstream_schema() -> dict[str, Any]:
    """Model Card Toolkit's v0.0.2 schema, read from the installed package (never imported)."""
    try:
        distribution = metadata.distribution("model-card-toolkit")
    except metadata.PackageNotFoundError:
        pytest.skip("model-card-toolkit is not installed (make setup installs it with --no-deps)")
    path = Path(str(distribution.locate_file("model_card_toolkit/schema/v0.0.2/model_card.schema.json")))
    if not path.is_file():
        pytest.skip(f"upstream schema not found at {path}")
    return json.loads(path.read_text(encoding="utf-8"))
