"""Rubrics: the dimensions a judge scores a report on, each with a definition and anchors for 1 and 5.

A rubric is YAML (``name``, ``version``, ``description``, ``dimensions``:
each ``name``, ``definition``, ``anchors: {1: ..., 5: ...}``), validated
here once. Every score is an integer from 1 (worst) to 5 (best). Dimension
names become column and metric names (``judge_<name>``,
``mean_score:<name>``), so they are lower-case identifiers and may not
shadow a deterministic check.

fairderm ships one rubric (``dermeval.yaml``), in the spirit of DermEval
(SkinGPT-R1, arXiv 2511.15242) but not DermEval itself: the file says which
dimensions follow the published ones and where the others come from.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fairderm._io import sha256_json
from fairderm.errors import InputError
from fairderm.reasoning._checks import CHECK_NAMES

SCORE_MIN = 1
SCORE_MAX = 5
DEFAULT_RUBRIC = "dermeval.yaml"


class Dimension(BaseModel):
    """One thing a report is scored on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Identifier: column and metric name.")
    definition: str = Field(min_length=1, description="What a high score means, in one or two sentences.")
    anchors: dict[int, str] = Field(description="What a report scoring 1 and 5 looks like (keys 1 and 5).")

    @field_validator("anchors")
    @classmethod
    def _anchors_one_and_five(cls, value: dict[int, str]) -> dict[int, str]:
        if sorted(value) != [SCORE_MIN, SCORE_MAX]:
            raise ValueError(f"anchors must be given for {SCORE_MIN} and {SCORE_MAX} exactly, not {sorted(value)}")
        if not all(text.strip() for text in value.values()):
            raise ValueError("an anchor is empty")
        return value


class Rubric(BaseModel):
    """A named, versioned set of dimensions scored 1-5."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: int = Field(1, ge=1)
    description: str = ""
    dimensions: list[Dimension] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Rubric:
        names = [d.name for d in self.dimensions]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"dimension {twice[0]!r} is defined twice")
        clash = sorted(set(names) & set(CHECK_NAMES))
        if clash:
            raise ValueError(f"dimension {clash[0]!r} has the name of a deterministic check")
        return self

    @property
    def names(self) -> list[str]:
        """Dimension names, in rubric order."""
        return [d.name for d in self.dimensions]

    def sha256(self) -> str:
        """Content hash of the rubric (part of every judgement's cache key)."""
        return sha256_json(self.model_dump(mode="json"))


def load_rubric(path: str | os.PathLike[str] | None = None) -> Rubric:
    """Read and validate a rubric YAML file; None gives fairderm's default rubric.

    Raises
    ------
    InputError
        Naming the file and the key at fault.
    """
    if path is None:
        text = resources.files("fairderm.reasoning").joinpath(DEFAULT_RUBRIC).read_text(encoding="utf-8")
        source = f"fairderm/reasoning/{DEFAULT_RUBRIC}"
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise InputError(f"cannot read the rubric ({error.strerror or error})", source=source) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML ({str(error).splitlines()[0]})", source=source) from None
    if not isinstance(raw, dict):
        raise InputError("a rubric is a mapping with name and dimensions", source=source)
    try:
        return Rubric.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "rubric"
        raise InputError(first["msg"], source=source, column=key) from None
