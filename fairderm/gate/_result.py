"""Gate results: per-group checks, per-rule verdicts and the overall verdict."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fairderm._io import to_json_text
from fairderm._version import __version__
from fairderm.gate._policy import Policy, Rule
from fairderm.gate._verdict import COMBINATION_RULE, Verdict

GATE_FORMAT = "fairderm.gate/1"


@dataclass(frozen=True)
class GroupCheck:
    """One group's (or one disparity's) value, interval and verdict under a rule.

    ``verdict`` is None for a group the rule left out (``small_groups:
    ignore``); ``value`` is the statistic that was compared (for sample-size
    rules, the group's n).
    """

    group: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    n_pos: int | None
    flag: str
    value: float | None
    verdict: Verdict | None
    reason: str

    def relabel(self, group: str) -> GroupCheck:
        """The same check under another display name."""
        return dataclasses.replace(self, group=group)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record."""
        record = dataclasses.asdict(self)
        record["verdict"] = self.verdict.value if self.verdict is not None else None
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> GroupCheck:
        """Inverse of :meth:`to_dict`."""
        verdict = record.get("verdict")
        return cls(**{**record, "verdict": Verdict(verdict) if verdict is not None else None})


@dataclass(frozen=True)
class RuleResult:
    """A rule's verdict, the group that decided it and every group's check."""

    rule: Rule
    verdict: Verdict
    message: str
    checks: list[GroupCheck] = field(default_factory=list)
    decisive_group: str | None = None
    #: What the groups checked are: ``labelled``, ``estimated``, ``corrected`` or ``bounded``.
    basis: str | None = None
    #: The verdict on the estimated groups at face value, when a corrected or bounded one decided.
    naive_verdict: Verdict | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record (the rule's own settings under ``rule``)."""
        return {
            "id": self.rule.id,
            "description": self.rule.description,
            "check": self.rule.check,
            "text": self.rule.describe(),
            "verdict": self.verdict.value,
            "message": self.message,
            "decisive_group": self.decisive_group,
            "basis": self.basis,
            "naive_verdict": None if self.naive_verdict is None else self.naive_verdict.value,
            "rule": self.rule.model_dump(mode="json", exclude_none=True),
            "groups": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> RuleResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rule=Rule.model_validate(record["rule"]),
            verdict=Verdict(record["verdict"]),
            message=record["message"],
            checks=[GroupCheck.from_dict(c) for c in record.get("groups", [])],
            decisive_group=record.get("decisive_group"),
            basis=record.get("basis"),
            naive_verdict=None if record.get("naive_verdict") is None else Verdict(record["naive_verdict"]),
        )


@dataclass(frozen=True)
class GateResult:
    """The gate's answer for one run under one policy.

    Attributes
    ----------
    verdict
        The most severe rule verdict (ERROR > FAIL > INSUFFICIENT_EVIDENCE > PASS).
    rules
        One :class:`RuleResult` per policy rule, in policy order.
    metrics_sha256
        Hash of the metrics the gate read (file bytes when read from a run
        folder, canonical JSON otherwise).
    """

    policy: Policy
    verdict: Verdict
    rules: list[RuleResult]
    metrics_sha256: str
    metrics_source: str | None = None
    policy_source: str | None = None
    metrics_config: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """PASS 0, FAIL 1, INSUFFICIENT_EVIDENCE 2, ERROR 3."""
        return self.verdict.exit_code

    def counts(self) -> dict[str, int]:
        """Number of rules per verdict (every verdict listed, zeros included)."""
        return {v.value: sum(r.verdict is v for r in self.rules) for v in Verdict}

    def to_dict(self) -> dict[str, Any]:
        """The ``gate.json`` content."""
        return {
            "format": GATE_FORMAT,
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "combination": COMBINATION_RULE,
            "counts": self.counts(),
            "rules": [r.to_dict() for r in self.rules],
            "policy": {
                "name": self.policy.name,
                "description": self.policy.description,
                "sha256": self.policy.sha256(),
                "source": self.policy_source,
                "content": self.policy.model_dump(mode="json", exclude_none=True),
            },
            "metrics": {
                "sha256": self.metrics_sha256,
                "source": self.metrics_source,
                "config": self.metrics_config,
            },
            "fairderm_version": __version__,
        }

    def to_json(self) -> str:
        """``gate.json`` text (sorted keys, indented)."""
        return to_json_text(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """Rebuild a result from ``gate.json`` content."""
        policy = Policy.model_validate(data["policy"]["content"])
        return cls(
            policy=policy,
            verdict=Verdict(data["verdict"]),
            rules=[RuleResult.from_dict(r) for r in data["rules"]],
            metrics_sha256=data["metrics"]["sha256"],
            metrics_source=data["metrics"].get("source"),
            policy_source=data["policy"].get("source"),
            metrics_config=data["metrics"].get("config") or {},
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per (rule, group): rule, check, group, estimate, ci_low, ci_high, n, value, verdict, reason."""
        rows = []
        for result in self.rules:
            if not result.checks:
                rows.append({"rule": result.rule.id, "check": result.rule.check, "group": None,
                             "verdict": result.verdict.value, "reason": result.message})
            for check in result.checks:
                rows.append({"rule": result.rule.id, "check": result.rule.check, **check.to_dict()})
        columns = ["rule", "check", "group", "estimate", "ci_low", "ci_high", "n", "n_pos", "flag",
                   "value", "verdict", "reason"]
        return pd.DataFrame(rows).reindex(columns=columns)

    def summary(self) -> str:
        """Plain-text table: one line per rule, then the overall verdict."""
        width = max(len(r.rule.id) for r in self.rules)
        lines = [f"gate: policy {self.policy.name!r}, {len(self.rules)} rules"]
        for result in self.rules:
            lines.append(f"  {result.verdict.value:<21} {result.rule.id:<{width}}  {result.message}")
        lines.append(f"verdict: {self.verdict.value} (exit {self.exit_code})")
        return "\n".join(lines)
