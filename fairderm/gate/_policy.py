"""Release-gate policies: rules on interval bounds, loaded from YAML.

A policy is a list of rules. Each rule is one of three checks, told apart by
the keys it carries:

* **metric rule** (``metric`` without ``disparity``): a per-group metric from
  ``metrics.json["groups"]``, e.g. the worst tone group's sensitivity;
* **disparity rule** (``metric`` and ``disparity``): a between-group disparity
  from ``metrics.json["disparities"]``, e.g. the max-min accuracy gap;
* **sample-size rule** (``min_n`` and/or ``min_pos``): required groups must
  hold enough cases (and positives) for their intervals to mean anything.

Rule keys (YAML)
----------------
==================  ===============================================================
``id``              unique name (the JUnit test case)
``description``     what the rule protects
``attribute``       e.g. ``fitzpatrick_est``, ``fitzpatrick_est&sex``; ``all``
``groups``          ``each`` (default), ``worst``, a group name or a list of names
                    (``V-VI`` or ``fitzpatrick_est=V-VI``; ``all``: the pooled row)
``exclude_groups``  groups ``each``/``worst`` leave out (e.g. ``unknown``)
``metric``          metric name in metrics.json
``disparity``       ``gap``, ``ratio``, ``diff_vs_ref``, ``eod`` or ``dpd``
``statistic``       ``interval`` (default), ``estimate``, ``ci_low``, ``ci_high``
``comparator``      ``>=``, ``>``, ``<=``, ``<``
``threshold``       number
``min_n``           sample-size rule: minimum cases per group
``min_pos``         sample-size rule: minimum positives per group
``small_groups``    ``insufficient`` (default) or ``ignore``: what a group flagged
                    other than ``ok`` in metrics.json does to the rule
``strata``          ``auto`` (default) or ``as_estimated``: see below
==================  ===============================================================

Estimated strata. When metrics.json holds rows by *true* group for the
rule's attribute -- ``<attribute>:true`` (basis ``corrected``: estimated
strata corrected with validation labels) or ``<attribute>:bounds`` (basis
``bounded``: the range an error model of the estimate allows) -- a metric or
disparity rule with ``strata: auto`` is decided on those rows, corrected ones
first. A bounded value PASSes only if its whole range (widened for sampling
error) meets the rule, FAILs only if the whole range violates it, and is
INSUFFICIENT_EVIDENCE otherwise, whatever ``statistic`` says. A sample-size
rule counts the true groups' estimated sizes, and a true group without any
labelled case is absent (INSUFFICIENT_EVIDENCE). The verdict on the estimated
groups taken at face value is reported beside it.
``strata: as_estimated`` decides on the estimated groups themselves.

``each`` and ``worst`` reach the same verdict (the worst group passes only
if every group does); ``worst`` reports the group that decided it. A
named group absent from metrics.json, or with n below ``min_n``, makes the
rule INSUFFICIENT_EVIDENCE: too few cases is missing evidence, not failure.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fairderm._io import sha256_json
from fairderm.errors import InputError

Comparator = Literal[">=", ">", "<=", "<"]
Statistic = Literal["interval", "estimate", "ci_low", "ci_high"]
DisparityKind = Literal["gap", "ratio", "diff_vs_ref", "eod", "dpd"]
GroupSelector = Literal["each", "worst"]

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


class Rule(BaseModel):
    """One release criterion, checked on the intervals stored in ``metrics.json``.

    A rule passes when the chosen ``statistic`` satisfies ``comparator
    threshold``. When it does not, the rule FAILs if the whole interval lies
    on the wrong side of the threshold, and is INSUFFICIENT_EVIDENCE when the
    interval straddles it (more data could still change the answer).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Unique name; the JUnit test case name.")
    description: str = Field("", description="What the rule protects, in words (shown in reports).")
    attribute: str = Field(
        min_length=1,
        description="Attribute (or intersection, e.g. 'fitzpatrick_est&sex') whose groups are checked; "
        "'all' for the pooled row.",
    )
    groups: GroupSelector | str | list[str] = Field(
        "each",
        description="'each': every group of the attribute; 'worst': the group least favourable to the rule; "
        "or one or more named groups (either 'V-VI' or 'fitzpatrick_est=V-VI'; 'all' is the pooled row).",
    )
    exclude_groups: list[str] = Field(
        default_factory=list,
        description="Groups 'each'/'worst' leave out, e.g. ['unknown'] (cases whose tone estimate abstained).",
    )
    metric: str | None = Field(None, description="Metric name as in metrics.json (e.g. 'sensitivity').")
    disparity: DisparityKind | None = Field(
        None, description="Check a between-group disparity of `metric` instead of per-group values."
    )
    statistic: Statistic = Field(
        "interval",
        description="What is compared: 'interval' (the conservative bound: ci_low for >=, ci_high for <=), "
        "'estimate', 'ci_low' or 'ci_high'.",
    )
    comparator: Comparator | None = Field(None, description="One of >=, >, <=, <.")
    threshold: float | None = Field(None, description="The value the statistic is compared with.")
    min_n: int | None = Field(None, ge=1, description="Sample-size rule: minimum cases per group.")
    min_pos: int | None = Field(None, ge=1, description="Sample-size rule: minimum positive cases per group.")
    strata: Literal["auto", "as_estimated"] = Field(
        "auto",
        description="'auto': decide on true-group rows (corrected, else bounded) when metrics.json has them for "
        "the attribute; 'as_estimated': on the estimated groups at face value.",
    )
    small_groups: Literal["insufficient", "ignore"] = Field(
        "insufficient",
        description="A group flagged 'insufficient' in metrics.json makes the rule INSUFFICIENT_EVIDENCE "
        "('insufficient') or is left out of it ('ignore').",
    )

    @field_validator("groups")
    @classmethod
    def _groups_not_empty(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names or any(not str(name).strip() for name in names):
            raise ValueError("must be 'each', 'worst' or non-empty group names")
        return value

    @model_validator(mode="after")
    def _one_kind_of_check(self) -> Rule:
        sample_size = self.min_n is not None or self.min_pos is not None
        if sample_size:
            extra = [k for k in ("disparity", "comparator", "threshold") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"a sample-size rule (min_n/min_pos) takes no {', '.join(extra)}")
            if self.groups == "worst":
                raise ValueError("groups: 'worst' has no meaning for a sample-size rule")
        if self.exclude_groups and self.group_names is not None:
            raise ValueError("exclude_groups applies to groups 'each' or 'worst', not to named groups")
        if sample_size:
            return self
        missing = [k for k in ("metric", "comparator", "threshold") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (or give min_n for a sample-size rule)")
        return self

    @property
    def check(self) -> Literal["metric", "disparity", "sample_size"]:
        """Which kind of check the rule is."""
        if self.min_n is not None or self.min_pos is not None:
            return "sample_size"
        return "disparity" if self.disparity is not None else "metric"

    @property
    def group_names(self) -> list[str] | None:
        """The named groups, or None for 'each'/'worst'."""
        if self.groups in ("each", "worst"):
            return None
        return [self.groups] if isinstance(self.groups, str) else list(self.groups)

    def describe(self) -> str:
        """The rule in one line, e.g. ``worst fitzpatrick_est group: sensitivity ci_low >= 0.6``."""
        if self.check == "sample_size":
            parts = [f"n >= {self.min_n}"] if self.min_n is not None else []
            if self.min_pos is not None:
                parts.append(f"n_pos >= {self.min_pos}")
            return f"{self._groups_text()}: {' and '.join(parts)}"
        what = f"{self.metric} {self.disparity}" if self.disparity else str(self.metric)
        return f"{self._groups_text()}: {what} {self.statistic} {self.comparator} {self.threshold:g}"

    def _groups_text(self) -> str:
        if self.check == "disparity" and self.disparity != "diff_vs_ref":
            return self.attribute
        names = self.group_names
        if names is None:
            return f"{self.groups} {self.attribute} group"
        return f"{self.attribute} {', '.join(names)}"


class Policy(BaseModel):
    """A release policy: named rules, all of which must PASS for the gate to PASS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("policy", min_length=1, description="Shown in reports and JUnit.")
    description: str = Field("", description="What the policy is for.")
    rules: list[Rule] = Field(min_length=1, description="The rules; at least one.")

    @model_validator(mode="after")
    def _unique_ids(self) -> Policy:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self

    def sha256(self) -> str:
        """Hash of the validated policy (stable across YAML formatting)."""
        return sha256_json(self.model_dump(mode="json"))


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    """``rules[1] ('accuracy-gap').threshold`` from a pydantic error location."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                rule_id = node[item].get("id")
                if rule_id is not None:
                    label += f" ({rule_id!r})"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def policy_from_dict(data: Any, *, source: str = "policy") -> Policy:
    """Validate a parsed policy; the error names the key at fault.

    Raises
    ------
    InputError
        When a key is missing, unknown or has a bad value.
    """
    if not isinstance(data, dict):
        raise InputError("a policy is a mapping with a 'rules' list", source=source)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        # A misspelt key also leaves its correct spelling "missing": name the typo.
        first = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise InputError(message, source=source, column=_key_path(first["loc"], data)) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file.

    Raises
    ------
    InputError
        When the file is missing, is not YAML, or a key is missing, unknown
        or has a bad value (the message names the key).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("policy file not found", source=str(path))
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {str(exc).splitlines()[0]}", source=str(path)) from None
    return policy_from_dict(data, source=str(path))

