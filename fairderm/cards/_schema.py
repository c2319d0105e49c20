"""The JSON Schema fairderm publishes for ``card.json``, and validation against it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from fairderm.errors import InputError

SCHEMA_PATH = Path(__file__).parent / "schema" / "model_card.schema.json"


@cache
def _schema_text() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def card_schema() -> dict[str, Any]:
    """fairderm's model card JSON Schema (draft-07; Model Card Toolkit v0.0.2 shape)."""
    return json.loads(_schema_text())


def card_schema_errors(card: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Every violation of ``schema`` (default: fairderm's) as ``path: message``, in document order."""
    schema = card_schema() if schema is None else schema
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(card), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


def validate_card(card: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
    """Raise :class:`InputError` naming the first violation when ``card`` does not validate."""
    errors = card_schema_errors(card, schema)
    if errors:
        raise InputError(f"card.json does not match the model card schema: {errors[0]}"
                         + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
