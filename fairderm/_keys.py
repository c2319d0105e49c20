"""The message for an unknown key in a YAML mapping validated by pydantic: with a did-you-mean."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'architecture'?)`` for the known name closest to ``name``, or ''.

    Closeness is difflib's ratio (Ratcliff/Obershelp), at least 0.6: ``model_architecture``
    finds ``architecture``, ``licence`` finds ``license``.
    """
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds, looking inside ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next((m for m in map(_model_of, typing.get_args(annotation)) if m is not None), None)
    return None


def unknown_key_message(model: type[BaseModel], loc: Sequence[Any]) -> str:
    """``unknown key`` plus a suggestion among the keys of the mapping ``loc`` points into."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        field = current.model_fields.get(str(part)) if current is not None else None
        current = _model_of(field.annotation) if field is not None else None
    if current is None or not loc:
        return "unknown key"
    return "unknown key" + did_you_mean(str(loc[-1]), [f.alias or name for name, f in current.model_fields.items()])
