"""Deterministic checks of a report that need no judge; each gives one score column per case.

==========================  ====================================================================
check                       value
==========================  ====================================================================
``sections_present``        Share of the required parts present: findings, differential
                            reasoning and final diagnosis for a sectioned (SkinGPT-R1), JSON or
                            free-text report; ``<think>`` and ``<answer>`` for a tagged
                            (Skin-R1) one.
``diagnosis_consistent``    1 when the final diagnosis parses to one of the cohort's labels and
                            that label is the predictions table's answer (``pred``), else 0.
``truth_in_differential``   1 when the true diagnosis is the final diagnosis or among the
                            diagnoses the report considered, else 0.
``hedged``                  1 when the final diagnosis passage qualifies or splits its
                            diagnosis ("possibly", "likely", "cannot be excluded", "or"), 0 when
                            it commits; missing (NaN) when there is no final passage.
``refused``                 1 when the report declines to diagnose (a refusal phrase and no
                            diagnosis parsed), else 0.
``length_words``            Words in the report.
==========================  ====================================================================

Sections are found by :func:`fairderm.inference.report_parts`, diagnoses by
:func:`fairderm.inference.parse_report`: the same reading as inference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from fairderm.inference import parse_report, report_parts

# Raise whenever a check may give another value for the same report, so that no cached scores are reused.
CHECKS_VERSION = 1
CHECK_NAMES: tuple[str, ...] = (
    "sections_present",
    "diagnosis_consistent",
    "truth_in_differential",
    "hedged",
    "refused",
    "length_words",
)
_HEDGE = re.compile(
    r"\b(?:possibl[ey]|probabl[ey]|likely|perhaps|may|might|could|suspect(?:ed)?|suggest(?:s|ive|ed)?|"
    r"uncertain|unclear|cannot\s+be\s+(?:ruled\s+out|excluded)|can't\s+be\s+(?:ruled\s+out|excluded)|"
    r"versus|vs\.?|or|differential|consider(?:ed)?)\b",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:I(?:'m|\s+am)\s+(?:sorry|unable|not\s+able)|I\s+(?:cannot|can't|can\s+not|won't)\s+"
    r"(?:provide|give|make|offer|diagnose|determine|help|assess)|as\s+an\s+AI|"
    r"(?:not|never)\s+a\s+(?:substitute|replacement)\s+for|unable\s+to\s+(?:provide|give|make|diagnose|determine)|"
    r"(?:cannot|can't)\s+(?:provide|give|make)\s+(?:a\s+)?(?:medical\s+)?diagnos[ie]s)",
    re.IGNORECASE,
)


def report_checks(
    text: str | None, *, true_label: str | None, labels: Sequence[str], pred: str | None = None
) -> dict[str, float]:
    """The deterministic checks of one report (see the module table).

    Parameters
    ----------
    text
        The report.
    true_label
        The case's true diagnosis (a cohort label); None leaves
        ``truth_in_differential`` missing.
    labels
        The cohort's labels.
    pred
        The predictions table's answer for the case, when it has one.

    Returns
    -------
    dict
        ``{check name: value}`` for every name in :data:`CHECK_NAMES`; all
        missing (NaN) when there is no report.
    """
    if text is None or not text.strip():
        return dict.fromkeys(CHECK_NAMES, np.nan)
    parts = report_parts(text)
    if parts.style == "tags":
        required = [parts.reasoning, parts.final]
    else:
        required = [parts.findings, parts.reasoning, parts.final]
    parsed = parse_report(text, labels)
    ok = parsed.status == "ok"
    considered = set(parsed.differential) | ({parsed.pred} if ok else set())
    return {
        "sections_present": sum(bool(p.strip()) for p in required) / len(required),
        "diagnosis_consistent": float(ok and (pred is None or parsed.pred == pred)),
        "truth_in_differential": np.nan if true_label is None else float(true_label in considered),
        "hedged": float(bool(_HEDGE.search(parts.final))) if parts.final.strip() else np.nan,
        "refused": float(bool(_REFUSAL.search(text)) and not ok),
        "length_words": float(len(text.split())),
    }
