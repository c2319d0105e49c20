"""Gate verdicts, their exit codes and how they combine."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from fairderm.errors import EXIT_ERROR


class Verdict(str, Enum):  # noqa: UP042 - str(Verdict.PASS) stays "Verdict.PASS" as before
    """The outcome of a rule or of the whole gate.

    Ordered by severity: ERROR > FAIL > INSUFFICIENT_EVIDENCE > PASS. A
    combination of verdicts is the most severe one (see :func:`combine`).
    """

    PASS = "PASS"
    INSUFFICIENT_EVIDENCE = "INSUFFICIENT_EVIDENCE"
    FAIL = "FAIL"
    ERROR = "ERROR"

    @property
    def exit_code(self) -> int:
        """Process exit status: PASS 0, FAIL 1, INSUFFICIENT_EVIDENCE 2, ERROR 3."""
        return _EXIT_CODES[self]

    @property
    def severity(self) -> int:
        """0 (PASS) to 3 (ERROR)."""
        return _SEVERITY[self]


_EXIT_CODES = {
    Verdict.PASS: 0,
    Verdict.FAIL: 1,
    Verdict.INSUFFICIENT_EVIDENCE: 2,
    Verdict.ERROR: EXIT_ERROR,
}
_SEVERITY = {
    Verdict.PASS: 0,
    Verdict.INSUFFICIENT_EVIDENCE: 1,
    Verdict.FAIL: 2,
    Verdict.ERROR: 3,
}

COMBINATION_RULE = "most severe wins: ERROR > FAIL > INSUFFICIENT_EVIDENCE > PASS"
#: What each verdict means, for the readers of a gate report or a model card.
LEGEND = (
    "PASS: the whole interval meets the threshold. "
    "FAIL: the whole interval is on the wrong side of it. "
    "INSUFFICIENT_EVIDENCE: the interval straddles it, or a required group is too small. "
    "ERROR: the rule could not be evaluated (e.g. a metric is missing)."
)


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe of ``verdicts`` (PASS when there are none).

    A FAIL anywhere outranks missing evidence elsewhere: one group whose whole
    interval violates a threshold is enough to block a release, whatever the
    other groups show. An ERROR (a rule that could not be evaluated) outranks
    everything, because the gate cannot vouch for a policy it did not check.
    """
    return max(verdicts, key=lambda v: v.severity, default=Verdict.PASS)
