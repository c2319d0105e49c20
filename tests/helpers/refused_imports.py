"""Make ``importlib.import_module`` refuse one module, as on an install without the extra that brings it."""

from __future__ import annotations

import importlib

import pytest


def refuse_import(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """``importlib.import_module(module)`` raises ImportError for the rest of the test; others import as usual."""
    real = importlib.import_module

    def refusing(name: str, *args, **kwargs):
        if name == module:
            raise ImportError(f"No module named {module!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refusing)
