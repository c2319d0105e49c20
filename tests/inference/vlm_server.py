"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for the tests.

It answers like the models fairderm audits: SkinGPT-R1 (visual findings,
differential reasoning, final diagnosis) or Skin-R1 (``<think>`` /
``<answer>``), and misbehaves on request: malformed JSON, a slow answer
(client timeout), HTTP 500, HTTP 429 then success, HTTP 400, an empty answer.
What to do with an image is looked up by the SHA-256 of its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

SKINGPT = """**Visual findings:** a {size} mm lesion with {feature}.
**Differential reasoning:** {other} was considered, but the pattern points elsewhere; {other} is less likely.
**Final diagnosis:** {name}"""
SKINR1 = "<think>The lesion shows {feature}. {other} is possible but less likely.</think><answer>{name}</answer>"
_NAMES = {
    "nevus": "benign melanocytic nevus",
    "melanoma": "Melanoma",
    "bcc": "basal cell carcinoma (BCC)",
    "seborrheic_keratosis": "seborrhoeic keratosis",
    "scc": "SCC",
    "actinic_keratosis": "actinic keratosis",
}


def answer_text(style: str, label: str) -> str:
    other = "melanoma" if label != "melanoma" else "a dysplastic naevus"
    fields = {
        "name": _NAMES.get(label, label),
        "other": other,
        "feature": "irregular pigment",
        "size": 6,
    }
    return (SKINGPT if style == "skingpt" else SKINR1).format(**fields)


class ScriptedVLM:
    """Run the server in a thread; ``script[sha256(image bytes)] = behaviour``.

    Behaviours: ``("skingpt", label)``, ``("skinr1", label)``, ``"malformed"``,
    ``"slow"``, ``"http500"``, ``"flaky429"`` (429 once, then a SkinGPT
    answer for ``flaky_label``), ``"http400"``, ``"empty"``. Unknown images get
    a SkinGPT answer for ``default_label``.
    """

    def __init__(
        self,
        *,
        model: str = "skingpt-r1-test",
        delay: float = 0.0,
        slow_seconds: float = 3.0,
        default_label: str = "nevus",
        flaky_label: str = "bcc",
    ) -> None:
        self.model = model
        self.delay = delay
        self.slow_seconds = slow_seconds
        self.default_label = default_label
        self.flaky_label = flaky_label
        self.script: dict[str, object] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    body = {
                        "object": "list",
                        "data": [
                            {
                                "id": server.model,
                                "object": "model",
                                "root": f"/models/{server.model}",
                                "max_model_len": 8192,
                            }
                        ],
                    }
                    self._send(200, json.dumps(body).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length))
                self._send(*server.respond(payload))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def set(self, image: Path, behaviour: object) -> None:
        self.script[hashlib.sha256(Path(image).read_bytes()).hexdigest()] = behaviour

    def respond(self, payload: dict) -> tuple[int, bytes]:
        content = payload["messages"][-1]["content"]
        url = next(part["image_url"]["url"] for part in content if part["type"] == "image_url")
        digest = hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()
        with self._lock:
            self.hits[digest] += 1
            hits = self.hits[digest]
            self.requests.append(payload)
        behaviour = self.script.get(digest, ("skingpt", self.default_label))
        if self.delay:
            time.sleep(self.delay)
        if behaviour == "slow":
            time.sleep(self.slow_seconds)
            behaviour = ("skingpt", self.default_label)
        if behaviour == "malformed":
            return 200, b'{"choices": [{"message": {"content": "Final diagnosis: mel'
        if behaviour == "http500":
            return 500, b'{"error": "CUDA out of memory"}'
        if behaviour == "http400":
            return 400, b'{"error": "image too large for the context window"}'
        if behaviour == "flaky429":
            if hits == 1:
                return 429, b'{"error": "rate limited"}'
            behaviour = ("skingpt", self.flaky_label)
        text = "" if behaviour == "empty" else answer_text(*behaviour)  # type: ignore[misc]
        body = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": payload.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 900 + len(url) // 1000,
                "completion_tokens": len(text.split()),
                "total_tokens": 900 + len(text.split()),
            },
        }
        return 200, json.dumps(body).encode()


def main() -> None:
    """Serve until killed (used by the kill test's subprocess-free variant and by hand)."""
    with ScriptedVLM() as server:
        print(server.endpoint, flush=True)
        server.thread.join()


if __name__ == "__main__":
    main()
