"""What only the model's owner can say: intended use, training data, owners, licence.

A run folder holds the measurements; the owner's prose comes from a
``card:`` mapping in the audit spec or from a separate YAML file
(``fairderm card RUN_DIR --info card.yaml``). Anything left out is stated as
"not documented" in the card rather than invented.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fairderm._keys import unknown_key_message
from fairderm.errors import InputError


class Owner(BaseModel):
    """A person or team answerable for the model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    contact: str | None = None


class Risk(BaseModel):
    """An ethical risk and what was done about it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    mitigation_strategy: str | None = None


class CardInfo(BaseModel):
    """Owner-written parts of a model card (all optional; YAML keys as below)."""

    model_config = ConfigDict(extra="forbid")

    model_name: str | None = Field(None, description="Display name (default: the audit or model name).")
    overview: str | None = Field(None, description="One-paragraph description of the model.")
    version: str | None = Field(None, description="Model version.")
    date: str | None = Field(None, description="Release date, YYYY-MM-DD.")
    owners: list[Owner] = Field(default_factory=list)
    license: str | None = Field(None, description="SPDX identifier, lower case on the Hugging Face Hub.")
    model_architecture: str | None = None
    intended_use: str | None = Field(None, description="Primary intended uses.")
    intended_users: list[str] = Field(default_factory=list)
    out_of_scope_uses: list[str] = Field(default_factory=list)
    training_data: str | None = Field(None, description="What the model was trained on, and its tone mix.")
    ethical_considerations: list[Risk] = Field(default_factory=list)
    caveats: list[str] = Field(default_factory=list, description="Added to fairderm's own caveats.")
    references: list[str] = Field(default_factory=list, description="Links (URLs).")
    citation: str | None = None
    datasets: list[str] = Field(default_factory=list, description="Hugging Face dataset ids, if any.")
    tags: list[str] = Field(default_factory=list, description="Extra Hugging Face tags.")

    @field_validator("date", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        # YAML reads an unquoted 2024-05-01 as a date: accept it as written.
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise ValueError("expected a date as YYYY-MM-DD") from None
        return value


def card_info_from_dict(data: Any, *, source: str = "card info") -> CardInfo:
    """Validate owner-written card text; the error names the key at fault."""
    if data is None:
        return CardInfo()
    if not isinstance(data, dict):
        raise InputError("card info must be a mapping", source=source)
    try:
        return CardInfo.model_validate(data)
    except ValidationError as exc:
        first = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = (unknown_key_message(CardInfo, first["loc"]) if first["type"] == "extra_forbidden"
                   else first["msg"].removeprefix("Value error, "))
        raise InputError(message, source=source, column=key) from None


def load_card_info(path: str | Path) -> CardInfo:
    """Read card info from a YAML file (a top-level ``card:`` mapping is unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("card info file not found", source=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid YAML: {str(exc).splitlines()[0]}", source=str(path)) from None
    if isinstance(data, dict) and set(data) == {"card"}:
        data = data["card"]
    return card_info_from_dict(data, source=str(path))
