"""A judge model behind an OpenAI-compatible server scores each report on each rubric dimension.

The judge reads the rubric, the report, the case's reference diagnosis and
the cohort's labels (not the image), and must answer with one JSON object::

    {"scores": {"<dimension>": {"score": 1-5, "justification": "..."}, ...}}

Its answer is validated per case: an empty answer, text that is not such an
object (a refusal among them), a missing dimension, a score that is not a
whole number from 1 to 5 or a missing justification make that case an
error with the reason; so do the transport's failures (timeouts, HTTP
errors, oversized answers: :class:`fairderm.inference.ChatClient`). A
``<think>`` block before the JSON (reasoning judges) and a code fence
around it are allowed. The other cases are scored regardless.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fairderm._io import sha256_json
from fairderm._terminal import printable
from fairderm.errors import InputError
from fairderm.inference import ChatClient
from fairderm.reasoning._rubric import SCORE_MAX, SCORE_MIN, Rubric

# Raise whenever the judge's messages or the reading of its answer change, so that no judgement is reused.
JUDGE_PROMPT_VERSION = 1
JUSTIFICATION_CHARS = 500
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"```(?:json)?\s*(?P<body>.*?)```", re.IGNORECASE | re.DOTALL)
_REFUSAL = re.compile(r"\b(?:I(?:'m|\s+am)\s+(?:sorry|unable)|I\s+(?:cannot|can't|won't)|as\s+an\s+AI)\b",
                      re.IGNORECASE)
_SYSTEM = (
    "You are a board-certified dermatologist grading a diagnostic report written by an AI model about a skin "
    "lesion photograph. Grade only what the report says. Answer with one JSON object and nothing else."
)


class JudgementError(ValueError):
    """A judge's answer that cannot be used; the message is the case's reason."""


@dataclass
class Judgement:
    """One case's judgement.

    Attributes
    ----------
    status
        ``ok`` or ``error``.
    reason
        Why the case has no scores (None when ``ok``).
    scores
        Dimension -> integer 1-5 (empty unless ``ok``).
    justifications
        Dimension -> the judge's short justification (printable, one paragraph).
    latency_s, attempts
        Of the request.
    """

    status: str
    reason: str | None = None
    scores: dict[str, int] = field(default_factory=dict)
    justifications: dict[str, str] = field(default_factory=dict)
    latency_s: float | None = None
    attempts: int = 0


def judge_messages(
    rubric: Rubric, report: str, *, reference: str | None, labels: Sequence[str]
) -> list[dict[str, str]]:
    """The chat messages asking the judge to score ``report`` on every dimension of ``rubric``."""
    lines = ["Score the report below on each dimension, from 1 (worst) to 5 (best).", ""]
    for d in rubric.dimensions:
        lines.append(f"- {d.name}: {d.definition} (1 = {d.anchors[SCORE_MIN]} 5 = {d.anchors[SCORE_MAX]})")
    lines += [
        "",
        f"Diagnoses the report could choose from: {', '.join(labels)}.",
        f"Reference diagnosis (ground truth): {reference if reference is not None else 'not given'}.",
        "",
        "Report:",
        '"""',
        report,
        '"""',
        "",
        'Answer with JSON only: {"scores": {"<dimension>": {"score": <integer 1-5>, "justification": '
        '"<one or two sentences>"}, ...}} with every dimension: ' + ", ".join(rubric.names) + ".",
    ]
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def _snippet(text: str, limit: int = 80) -> str:
    one_line = " ".join(printable(text).split())
    return one_line[:limit] + ("..." if len(one_line) > limit else "")


def _json_answer(text: str) -> Any:
    body = _THINK.sub("", text).strip()
    fenced = _FENCE.search(body)
    if fenced:
        body = fenced.group("body").strip()
    try:
        return json.loads(body)
    except ValueError:
        pass
    if "{" in body and "}" in body:
        try:
            return json.loads(body[body.index("{") : body.rindex("}") + 1])
        except ValueError:
            pass
    if _REFUSAL.search(body):
        raise JudgementError(f"judge refused: {_snippet(body)}")
    raise JudgementError(f"judge answer is not JSON: {_snippet(body)}")


def parse_judgement(text: str | None, rubric: Rubric) -> tuple[dict[str, int], dict[str, str]]:
    """Scores and justifications from a judge's answer, every rubric dimension present.

    Raises
    ------
    JudgementError
        Naming what is wrong (empty, not JSON, a refusal, a missing
        dimension, a score outside 1-5 or not whole, no justification).
    """
    if text is None or not text.strip():
        raise JudgementError("empty judge answer")
    answer = _json_answer(text)
    if not isinstance(answer, dict):
        raise JudgementError("judge answer is not a JSON object")
    table = answer.get("scores", answer)
    if not isinstance(table, dict):
        raise JudgementError("judge answer's 'scores' is not an object")
    scores: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for name in rubric.names:
        entry = table.get(name)
        if not isinstance(entry, dict):
            raise JudgementError(f"no score for {name!r}")
        value = entry.get("score")
        if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
            raise JudgementError(f"score for {name!r} is not a whole number: {_snippet(repr(value), 30)}")
        if not SCORE_MIN <= value <= SCORE_MAX:
            raise JudgementError(f"score for {name!r} is {value:g}, outside {SCORE_MIN}-{SCORE_MAX}")
        why = entry.get("justification")
        if not isinstance(why, str) or not why.strip():
            raise JudgementError(f"no justification for {name!r}")
        scores[name] = int(value)
        reasons[name] = " ".join(printable(why).split())[:JUSTIFICATION_CHARS]
    return scores, reasons


class Judge:
    """A judge model served over the OpenAI chat-completions API.

    Parameters
    ----------
    model
        Served model name; None takes the first model the server lists.
    rubric
        What to score.
    endpoint
        Base URL (``http://127.0.0.1:8000/v1``), or several: servers of the
        same judge, which share the reports (:class:`fairderm.inference.ChatClient`).
    concurrency, timeout, max_retries, backoff, api_key_env, max_response_bytes
        The transport's settings (:class:`fairderm.inference.ChatClient`).
    max_tokens, temperature, seed
        Sampling settings sent with each request (part of the identity).
    json_mode
        Ask the server for a JSON object (``response_format``); turn off for
        servers that do not support it.
    """

    def __init__(
        self,
        model: str | None,
        rubric: Rubric,
        *,
        endpoint: str | Sequence[str],
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 2,
        backoff: float = 1.0,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_response_bytes: int = 1 << 20,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = 0,
        json_mode: bool = True,
    ) -> None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InputError(f"option max_tokens must be a whole number of at least 1, not {max_tokens!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not temperature >= 0:
            raise InputError(f"option temperature must be a number of at least 0, not {temperature!r}")
        self.rubric = rubric
        self.chat = ChatClient(endpoint, concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                               backoff=backoff, api_key_env=api_key_env, max_response_bytes=max_response_bytes)
        self.served = self.chat.connect(model)
        self.model = model or self.served.get("id")
        if not self.model:
            raise InputError(f"no judge model given and the server lists no models at {self.chat.base}/models")
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self.seed = seed
        self.json_mode = bool(json_mode)

    def identity(self) -> dict[str, Any]:
        """What identifies this judge: the model, the server's own answer about it, the sampling and prompt."""
        return {
            "model": self.model,
            "served": self.served,
            "generation": {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed,
                           "json_mode": self.json_mode},
            "judge_prompt_version": JUDGE_PROMPT_VERSION,
        }

    def identity_sha256(self) -> str:
        return sha256_json(self.identity())

    def _payload(self, report: str, reference: str | None, labels: Sequence[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": judge_messages(self.rubric, report, reference=reference, labels=labels),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.seed is not None:
            payload["seed"] = self.seed
        if self.json_mode:
            payload["response_format"] = {"type": "json_object"}
        return payload

    def judge(self, reports: Sequence[str], references: Sequence[str | None], labels: Sequence[str]) -> list[Judgement]:
        """Score each report (with its case's reference diagnosis); one :class:`Judgement` per report, in order."""
        replies = self.chat.complete([self._payload(r, ref, labels) for r, ref in zip(reports, references)])
        out = []
        for reply in replies:
            judgement = Judgement("error", reply["reason"], latency_s=reply["latency_s"], attempts=reply["attempts"])
            if reply["status"] is None:
                try:
                    judgement.scores, judgement.justifications = parse_judgement(reply["text"], self.rubric)
                    judgement.status, judgement.reason = "ok", None
                except JudgementError as error:
                    judgement.reason = str(error)
            out.append(judgement)
        return out

    def served_by(self) -> list[dict[str, Any]]:
        """Per server of the judge: the reports it answered and those that failed there, and whether it is down."""
        return self.chat.served_by()

    def close(self) -> None:
        self.chat.close()
