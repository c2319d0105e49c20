"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for the tests.

It answers like the models fairderm audits: SkinGPT-R1 (visual findings,
differential reasoning, final diagnosis) or Skin-R1 (``<think>`` /
``<answer>``), and misbehaves on request: malformed JSON, a slow answer
(client timeout), HTTP 500, HTTP 429 then success, HTTP 400, an empty answer,
and the hostile ones: a ``usage`` that is not an object, an answer dripped one
byte at a time, a huge answer (with or without Content-Length), an error
body full of terminal escape sequences. What to do with an image is looked up
by the SHA-256 of its bytes.

``GET /v1/models`` answers as ``vllm serve`` does: ``id``, ``object``,
``created`` (vLLM stamps the time of the answer; set ``created`` for a server
that reports a fixed one), ``owned_by``, ``root`` (the weights' path),
``parent``, ``max_model_len`` and a ``permission`` list with a fresh id each
time. Change ``root`` or ``created`` between runs to play a redeployed server.
``GET /health`` answers 200 with an empty body, as vLLM's does.

``stop_after=N`` plays a server that dies mid-run: the N-th chat request
and every one still in flight get no answer (the connection is dropped),
and the server stops listening. ``answered`` counts the chat answers
(of any status) it actually sent, per image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

SKINGPT = """**Visual findings:** a {size} mm lesion with {feature}.
**Differential reasoning:** {other} was considered, but the pattern points elsewhere; {other} is less likely.
**Final diagnosis:** {name}"""
SKINR1 = "<think>The lesion shows {feature}. {other} is possible but less likely.</think><answer>{name}</answer>"
# An error body that, printed raw, would wipe the line and draw a green "gate PASS", clear the screen
# (C1 CSI, as UTF-8) and retitle the terminal; plus rich markup for the same
ANSI_ERROR_BODY = (
    b'{"error": "\x1b[2K\r\x1b[1;32mgate PASS\x1b[0m \xc2\x9b2J\x1b]0;owned\x07 [bold green]PASS[/]"}'
)
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


class _Listener(ThreadingHTTPServer):
    """A threading HTTP server with uvicorn's (vLLM's) listen backlog, not socketserver's 5.

    With 5, a burst of the client's concurrent connections overflowed the backlog and a dropped connection
    waited for TCP's one-second retransmission."""

    request_queue_size = 2048
    daemon_threads = True


class ScriptedVLM:
    """Run the server in a thread; ``script[sha256(image bytes)] = behaviour``.

    Behaviours: ``("skingpt", label)``, ``("skinr1", label)``, ``"malformed"``,
    ``"slow"``, ``"http500"``, ``"flaky429"`` (429 once, then a SkinGPT
    answer for ``flaky_label``), ``"http400"``, ``"empty"``, ``"bad_usage"``
    (a good answer whose ``usage`` is ``"abc"``), ``"drip"`` (a good answer
    sent one byte every ``drip_seconds``), ``"huge"`` and ``"huge_unsized"``
    (an answer of ``huge_bytes``, with and without Content-Length),
    ``"ansi_error"`` (HTTP 400 whose body redraws the line as a green
    "gate PASS"). Unknown images get a SkinGPT answer for ``default_label``.
    """

    def __init__(
        self,
        *,
        model: str = "skingpt-r1-test",
        delay: float = 0.0,
        slow_seconds: float = 3.0,
        default_label: str = "nevus",
        flaky_label: str = "bcc",
        root: str | None = None,
        created: int | None = None,
        drip_seconds: float = 0.1,
        huge_bytes: int = 2 * 1024 * 1024,
        stop_after: int | None = None,
    ) -> None:
        self.model = model
        self.root = root if root is not None else f"/models/{model}"
        self.created = created
        self.drip_seconds = drip_seconds
        self.huge_bytes = huge_bytes
        self.delay = delay
        self.slow_seconds = slow_seconds
        self.default_label = default_label
        self.flaky_label = flaky_label
        self.script: dict[str, object] = {}
        self.hits: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.stop_after = stop_after
        self.dead = False
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            # headers and body go out in two writes: with Nagle's algorithm the body waited for the client's
            # delayed ACK, some 40 ms a request (vLLM's server sends without that wait)
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(
                self, code: int, body: bytes, how: str = "whole", content_type: str = "application/json"
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                if how != "unsized":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if how == "drip":
                        for k in range(len(body)):
                            self.wfile.write(body[k : k + 1])
                            self.wfile.flush()
                            time.sleep(server.drip_seconds)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                if server.dead:
                    self.close_connection = True
                    return
                if self.path == "/health":
                    self._send(200, b"", content_type="text/plain")
                elif self.path.rstrip("/") == "/v1/models":
                    now = int(time.time())
                    body = {
                        "object": "list",
                        "data": [
                            {
                                "id": server.model,
                                "object": "model",
                                "created": now if server.created is None else server.created,
                                "owned_by": "vllm",
                                "root": server.root,
                                "parent": None,
                                "max_model_len": 8192,
                                "permission": [
                                    {"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission",
                                     "created": now, "allow_sampling": True}
                                ],
                            }
                        ],
                    }
                    self._send(200, json.dumps(body).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length))
                answer = server.respond(payload)
                if answer is None:  # a dead server: the connection drops without an answer
                    self.close_connection = True
                    return
                self._send(*answer)
                key = server.digest(payload)
                if key is not None:
                    with server._lock:
                        server.answered[key] += 1

        self.httpd = _Listener(("127.0.0.1", 0), Handler)
        # shutdown() waits for serve_forever's next poll: at the default half second, every server of the
        # suite (a few hundred) cost half a second of idle core when its test ended
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

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

    def stop(self) -> None:
        """Die: drop every request from now on and stop listening (new connections are refused)."""
        self.dead = True
        threading.Thread(target=self._halt, daemon=True).start()

    def _halt(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def digest(payload: dict) -> str | None:
        """The SHA-256 of the request's image bytes (None for a request without an image)."""
        content = payload["messages"][-1]["content"]
        parts = content if isinstance(content, list) else []
        url = next((part["image_url"]["url"] for part in parts if part["type"] == "image_url"), None)
        return None if url is None else hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()

    def respond(self, payload: dict) -> tuple[int, bytes] | tuple[int, bytes, str] | None:
        content = payload["messages"][-1]["content"]
        url = next(part["image_url"]["url"] for part in content if part["type"] == "image_url")
        digest = hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()
        with self._lock:
            self.hits[digest] += 1
            hits = self.hits[digest]
            self.requests.append(payload)
            if self.stop_after is not None and len(self.requests) >= self.stop_after and not self.dead:
                self.stop()
        behaviour = self.script.get(digest, ("skingpt", self.default_label))
        if self.delay:
            time.sleep(self.delay)
        if self.dead:
            return None
        if behaviour == "slow":
            time.sleep(self.slow_seconds)
            behaviour = ("skingpt", self.default_label)
        if behaviour == "malformed":
            return 200, b'{"choices": [{"message": {"content": "Final diagnosis: mel'
        if behaviour == "http500":
            return 500, b'{"error": "CUDA out of memory"}'
        if behaviour == "http400":
            return 400, b'{"error": "image too large for the context window"}'
        if behaviour == "ansi_error":
            return 400, ANSI_ERROR_BODY
        if behaviour == "flaky429":
            if hits == 1:
                return 429, b'{"error": "rate limited"}'
            behaviour = ("skingpt", self.flaky_label)
        how = "whole"
        usage: object = None
        if behaviour == "drip":
            how, behaviour = "drip", ("skingpt", self.default_label)
        if behaviour == "bad_usage":
            usage, behaviour = "abc", ("skingpt", self.default_label)
        if behaviour in ("huge", "huge_unsized"):
            how = "unsized" if behaviour == "huge_unsized" else "whole"
            text = "x" * self.huge_bytes
        else:
            text = "" if behaviour == "empty" else answer_text(*behaviour)  # type: ignore[misc]
        if usage is None:
            usage = {
                "prompt_tokens": 900 + len(url) // 1000,
                "completion_tokens": len(text.split()),
                "total_tokens": 900 + len(text.split()),
            }
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
            "usage": usage,
        }
        return 200, json.dumps(body).encode(), how


def main() -> None:
    """Serve until killed (used by the kill test's subprocess-free variant and by hand)."""
    with ScriptedVLM() as server:
        print(server.endpoint, flush=True)
        server.thread.join()


if __name__ == "__main__":
    main()
