"""Auditing the reasoning of a vision-language model's reports, not only its diagnosis.

Public API
----------
load_rubric, Rubric, Dimension
    Rubrics in YAML (dimension, definition, anchors for 1 and 5); the
    default one ships as ``dermeval.yaml`` (DermEval-style: see the file
    for what follows the SkinGPT-R1 paper and what is fairderm's own).
Judge, Judgement, parse_judgement, judge_messages
    A judge model behind an OpenAI-compatible server (vLLM or hosted)
    scoring each report 1-5 per dimension with a short justification.
report_checks, CHECK_NAMES, CHECKS_VERSION
    Deterministic checks needing no judge: sections present, diagnosis
    consistent, true diagnosis considered, hedging, refusal, length.
score_reports, read_scores, ScoreTable
    The scores table (Parquet), cached per report and resumable.
read_ratings, agreement, quadratic_weighted_kappa, icc_2_1, AgreementResult
    Dermatologists' ratings: judge-versus-rater and rater-versus-rater
    agreement (quadratic-weighted kappa, ICC(2,1)) with bootstrap intervals,
    overall and per tone group.

See ``docs/reasoning.md``.
"""

from __future__ import annotations

from fairderm.reasoning._agreement import (
    AgreementResult,
    agreement,
    icc_2_1,
    quadratic_weighted_kappa,
    read_ratings,
)
from fairderm.reasoning._checks import CHECK_NAMES, CHECKS_VERSION, report_checks
from fairderm.reasoning._judge import JUDGE_PROMPT_VERSION, Judge, Judgement, judge_messages, parse_judgement
from fairderm.reasoning._rubric import Dimension, Rubric, load_rubric
from fairderm.reasoning._scores import SCORES_FORMAT, ScoreTable, read_scores, score_reports

__all__ = [
    "CHECKS_VERSION",
    "CHECK_NAMES",
    "JUDGE_PROMPT_VERSION",
    "SCORES_FORMAT",
    "AgreementResult",
    "Dimension",
    "Judge",
    "Judgement",
    "Rubric",
    "ScoreTable",
    "agreement",
    "icc_2_1",
    "judge_messages",
    "load_rubric",
    "parse_judgement",
    "quadratic_weighted_kappa",
    "read_ratings",
    "read_scores",
    "report_checks",
    "score_reports",
]
