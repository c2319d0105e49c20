"""A scripted judge model on 127.0.0.1: an OpenAI-compatible server that grades reports.

It is the inference tests' :class:`ScriptedVLM` (same ``/v1/models``, same
transport misbehaviours) answering judge requests instead: it reads the
report out of the judge's prompt and answers with JSON scores from
``score(report)`` (default 4 on every dimension), or misbehaves when the
report contains a key of ``script``: ``"malformed"`` (cut-off JSON),
``"empty"``, ``"prose"`` (not JSON), ``"out_of_range"`` (a 7),
``"fractional"`` (a 3.5), ``"missing"`` (a dimension left out),
``"refusal"``, ``"slow"`` (past the client's timeout), ``"http500"``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from tests.helpers.vlm_server import ScriptedVLM

DIMENSIONS = ["accuracy", "safety", "visual_description", "differential_reasoning", "coherence", "completeness"]


def report_of(payload: dict) -> str:
    """The report quoted in the judge's prompt."""
    prompt = payload["messages"][-1]["content"]
    return prompt.split('"""\n', 1)[1].rsplit('\n"""', 1)[0]


class ScriptedJudge(ScriptedVLM):
    """Run in a thread; ``score(report) -> int`` grades; ``script[marker] = behaviour`` misbehaves."""

    def __init__(self, *, score: Callable[[str], int] = lambda report: 4, model: str = "judge-test",
                 slow_seconds: float = 3.0) -> None:
        super().__init__(model=model, slow_seconds=slow_seconds)
        self.score = score
        self.judged: list[str] = []

    def respond(self, payload: dict) -> tuple[int, bytes, str]:
        report = report_of(payload)
        with self._lock:
            self.judged.append(hashlib.sha256(report.encode()).hexdigest())
            self.requests.append(payload)
        behaviour = next((b for marker, b in self.script.items() if marker in report), "ok")
        if self.delay:
            time.sleep(self.delay)
        if behaviour == "slow":
            time.sleep(self.slow_seconds)
        if behaviour == "http500":
            return 500, b'{"error": "judge crashed"}', "whole"
        value = self.score(report)
        scores = {d: {"score": value, "justification": f"{d} graded {value} \x1b[31mred\x1b[0m"} for d in DIMENSIONS}
        if behaviour == "out_of_range":
            scores["safety"]["score"] = 7
        if behaviour == "fractional":
            scores["coherence"]["score"] = 3.5
        if behaviour == "missing":
            del scores["completeness"]
        content = json.dumps({"scores": scores})
        if behaviour == "malformed":
            content = content[:40]
        if behaviour == "empty":
            content = ""
        if behaviour == "prose":
            content = "The report is quite good overall, I would give it a four."
        if behaviour == "refusal":
            content = "I'm sorry, but I can't evaluate medical content."
        body = {"id": "chatcmpl-judge", "object": "chat.completion", "model": payload.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 500, "completion_tokens": 100, "total_tokens": 600}}
        return 200, json.dumps(body).encode(), "whole"
