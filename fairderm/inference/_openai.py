"""Vision-language models behind an OpenAI-compatible chat-completions API (``vllm serve``).

Requests go out concurrently over one async HTTP connection pool per
server: at most ``concurrency`` at a time on each of the endpoints, which
take cases from one queue (a faster server takes more). A request that
times out, cannot connect, gets HTTP 429 or 5xx, or gets a body that is
not the expected JSON is retried with exponential backoff
(``backoff * 2**retry``, plus up to 25% jitter; ``Retry-After`` is
honoured up to 60 s); other 4xx answers are final. A timeout, connection
error or 5xx also makes the client check that the server is alive (see
:mod:`fairderm.inference._endpoints`): a dead one is dropped and the case,
like every case still in flight or queued there, goes to another server
without spending a retry. Every case is answered once, whichever server
answers it; it records its latency (all attempts), token counts and attempts.

Each case stands alone: whatever its reply (malformed JSON, a ``usage``
that is not an object, a body over ``max_response_bytes``, a server that
drips one byte a second past ``timeout``, which bounds each attempt from
connecting to the last byte), only that case fails, with the reason in its
``reason`` column; the other cases of the batch go on. Server text in a
reason is cut to one line without control characters or escape sequences.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fairderm.errors import InputError
from fairderm.inference._endpoints import (
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_RESPONSE_BYTES,
    Endpoint,
    TooLarge,
    auth_headers,
    check_endpoints,
    confirm_down,
    endpoint_list,
    fetch,
    snippet,
    tls_context,
)
from fairderm.inference._predictor import Predictor, PredictorOutput, reject_unknown_options
from fairderm.inference._prompt import (
    DEFAULT_MAX_SIDE,
    chat_messages,
    data_url,
    encode_image,
    image_preprocessing,
    load_prompt,
    prompt_identity,
    render_prompt,
)

_OPTIONS = (
    "endpoint",
    "prompt",
    "system",
    "concurrency",
    "timeout",
    "max_retries",
    "backoff",
    "max_tokens",
    "temperature",
    "seed",
    "max_side",
    "api_key_env",
    "revision",
    "batch_size",
    "max_response_bytes",
)


def _number(value: Any, name: str, *, minimum: float, integer: bool, strict: bool = False) -> Any:
    """``value`` as an int (or a finite float) no less than ``minimum`` (above it when ``strict``)."""
    kind = "a whole number" if integer else "a number"
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
        if integer:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"option {name} must be {kind}, not {value!r}") from None
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        bound = f"more than {minimum:g}" if strict else f"at least {minimum:g}"
        raise InputError(f"option {name} must be {bound}, not {value!r}")
    return number


def parse_completion(body: bytes) -> tuple[str, int | None, int | None]:
    """The answer text and token counts of a chat-completions reply.

    Raises
    ------
    ValueError
        Naming what is malformed (not JSON, no ``choices[0].message``, content
        that is not text, a ``usage`` that is not an object or counts that are
        not whole numbers).
    """
    try:
        reply = json.loads(body)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(reply, dict):
        raise ValueError("not a JSON object")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError("choices[0] has no message")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("message content is not text")
    usage = reply.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise ValueError("usage is not an object")
    counts = []
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"usage.{key} is not a count")
        counts.append(value)
    return content or "", counts[0], counts[1]


@dataclass
class _Case:
    """One request body and its result, as it moves between servers."""

    payload: dict[str, Any]
    result: dict[str, Any]
    started: float | None = None
    retries: int = 0


class ChatClient:
    """Chat-completions requests to one or several servers of one model, each case standing alone.

    Each endpoint takes cases from one queue, ``concurrency`` at a time over
    its own async connection pool; each request is retried as the module
    describes and bounded by ``timeout`` from connecting to its last byte;
    an answer over ``max_response_bytes`` is that case's error. Used by the
    ``openai`` backend and by :mod:`fairderm.reasoning`'s judge.

    Parameters
    ----------
    endpoint
        Base URL, e.g. ``http://127.0.0.1:8000/v1``, or several: servers of
        the same model (:meth:`connect` checks that they are).
    concurrency
        Requests in flight at once on each endpoint.
    timeout
        Seconds per attempt, from connecting to the answer's last byte.
    max_retries
        Further attempts after the first (a dead server's failures do not count).
    backoff
        Base delay of the exponential backoff, in seconds.
    api_key_env
        Environment variable holding a bearer token, if the servers need one.
    max_response_bytes
        Largest answer accepted.
    """

    def __init__(
        self,
        endpoint: str | Sequence[str] = DEFAULT_ENDPOINT,
        *,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.concurrency = _number(concurrency, "concurrency", minimum=1, integer=True)
        self.timeout = float(_number(timeout, "timeout", minimum=0, integer=False, strict=True))
        self.max_retries = _number(max_retries, "max_retries", minimum=0, integer=True)
        self.backoff = float(_number(backoff, "backoff", minimum=0, integer=False))
        self.max_response_bytes = _number(max_response_bytes, "max_response_bytes", minimum=1, integer=True)
        self.endpoints = [Endpoint(base) for base in endpoint_list(endpoint)]
        self.api_key_env = api_key_env
        self.headers = auth_headers(api_key_env)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def live(self) -> list[str]:
        """Base URLs of the endpoints not found down."""
        return [e.base for e in self.endpoints if e.down is None]

    @property
    def base(self) -> str:
        """The first live endpoint's base URL (for messages naming a server)."""
        return (self.live or [self.endpoints[0].base])[0]

    def connect(self, model: str | None) -> dict[str, Any]:
        """Ask every endpoint what it serves; leave out those that do not answer; the model's identity.

        See :func:`fairderm.inference._endpoints.check_endpoints` for the
        errors (none answering, a server of another model) and the warning
        (one not answering).
        """
        served = check_endpoints(
            [e.base for e in self.endpoints],
            model,
            api_key_env=self.api_key_env,
            timeout=min(self.timeout, 30.0),
            max_response_bytes=self.max_response_bytes,
        )
        for endpoint in self.endpoints:
            endpoint.down = served.down.get(endpoint.base)
        return served.identity

    def served_by(self) -> list[dict[str, Any]]:
        """Per endpoint: cases it answered and cases that failed there for good, and why it is down, if it is."""
        return [e.record() for e in self.endpoints]

    def complete(self, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send each request body to ``/chat/completions``; one result per body, in order.

        Each result has ``text`` (the answer, None on failure), ``status``
        (None on success, else ``error``), ``reason``, ``latency_s``,
        ``prompt_tokens``, ``completion_tokens`` and ``attempts``.
        """
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._batch(payloads))

    async def _batch(self, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        for endpoint in self.endpoints:
            if endpoint.client is None:
                endpoint.client = httpx.AsyncClient(
                    headers=self.headers,
                    verify=tls_context(),
                    limits=httpx.Limits(
                        max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                    ),
                )
        cases = [_Case(payload, _blank_result()) for payload in payloads]
        queue: asyncio.Queue[_Case] = asyncio.Queue()
        for case in cases:
            queue.put_nowait(case)
        workers = [
            asyncio.create_task(self._work(endpoint, queue))
            for endpoint in self.endpoints
            if endpoint.down is None
            for _ in range(self.concurrency)
        ]
        # the last live endpoint is never dropped, so some worker is always there to take a case
        await queue.join()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return [case.result for case in cases]

    async def _work(self, endpoint: Endpoint, queue: asyncio.Queue[_Case]) -> None:
        """Serve cases from the queue on ``endpoint`` until it is found down."""
        while True:
            case = await queue.get()
            try:
                final = endpoint.down is None and await self._serve(endpoint, case)
            except Exception as exc:  # noqa: BLE001  whatever happens, it fails only its own case
                case.result["reason"] = f"client error: {type(exc).__name__}: {snippet(str(exc))}"
                final = True
            if not final:
                queue.put_nowait(case)  # before task_done: the batch is not over while a case moves
            queue.task_done()
            if endpoint.down is not None:
                return

    async def _serve(self, endpoint: Endpoint, case: _Case) -> bool:
        """Try ``case`` on ``endpoint``; False when the endpoint turned out down and another must take it."""
        result = case.result
        if case.started is None:
            case.started = time.perf_counter()
        while True:
            if endpoint.down is not None:
                return False
            result["attempts"] += 1
            try:
                retry, delay, suspect = await self._attempt(endpoint, case.payload, result)
            except Exception as exc:  # noqa: BLE001  whatever one reply does, it fails only its own case
                result["reason"] = f"client error: {type(exc).__name__}: {snippet(str(exc))}"
                break
            if not retry:
                break
            if suspect and await confirm_down(endpoint, self.endpoints, self.headers, self.timeout):
                return False
            if case.retries == self.max_retries:
                break
            wait = (
                delay
                if delay is not None
                else self.backoff * 2**case.retries * (1 + random.uniform(0, 0.25))
            )
            case.retries += 1
            await asyncio.sleep(wait)
        result["latency_s"] = round(time.perf_counter() - case.started, 4)
        if result["status"] is None:
            endpoint.answered += 1
        else:
            endpoint.failed += 1
        return True

    async def _attempt(
        self, endpoint: Endpoint, payload: dict[str, Any], result: dict[str, Any]
    ) -> tuple[bool, float | None, bool]:
        """One request; fills ``result``; returns (retry?, server-requested delay, could the server be dead?)."""
        assert endpoint.client is not None
        try:
            # the deadline covers the whole exchange: httpx's own timeout bounds each read only
            async with asyncio.timeout(self.timeout):
                reply = await fetch(
                    endpoint.client,
                    "POST",
                    f"{endpoint.base}/chat/completions",
                    limit=self.max_response_bytes,
                    timeout=self.timeout,
                    json=payload,
                )
        except (TimeoutError, httpx.TimeoutException):
            result["reason"] = f"server timed out: no complete answer within {self.timeout:g} s"
            return True, None, True
        except TooLarge:
            result["reason"] = f"answer larger than {self.max_response_bytes} bytes (max_response_bytes)"
            return False, None, False
        except httpx.HTTPError as exc:
            result["reason"] = f"connection error: {snippet(str(exc)) or type(exc).__name__}"
            return True, None, True
        if reply.status != 200:
            result["reason"] = f"HTTP {reply.status}: {snippet(reply.text)}"
            retryable = reply.status == 429 or reply.status >= 500
            return retryable, _retry_after(reply.headers) if retryable else None, reply.status >= 500
        try:
            text, prompt_tokens, completion_tokens = parse_completion(reply.body)
        except ValueError as exc:
            result["reason"] = f"malformed server JSON ({exc}): {snippet(reply.text)}"
            return True, None, False
        result.update(
            text=text,
            status=None,
            reason=None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        return False, None, False

    def close(self) -> None:
        if self._loop is not None:
            for endpoint in self.endpoints:
                if endpoint.client is not None:
                    self._loop.run_until_complete(endpoint.client.aclose())
                endpoint.client = None
            self._loop.close()
        self._loop = None


def _blank_result() -> dict[str, Any]:
    return {
        "text": None,
        "status": "error",
        "reason": None,
        "latency_s": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "attempts": 0,
    }


class OpenAIChatPredictor(Predictor):
    """A vision-language model served over the OpenAI chat-completions API.

    Parameters
    ----------
    model
        Served model name (``--served-model-name`` of ``vllm serve``); None
        takes the first model the server lists.
    labels
        The cohort's labels, offered in the prompt and used by the parser.
    endpoint
        Base URL, e.g. ``http://127.0.0.1:8000/v1``, or several: servers of
        the same model, which share the cases. Which server answered a case
        is not part of the predictions' identity; the run's provenance
        counts the cases each answered (``served_by``).
    prompt
        Prompt template file (see :mod:`fairderm.inference._prompt`).
    system
        Optional system message.
    concurrency
        Requests in flight at once on each endpoint.
    timeout
        Seconds per attempt, from connecting to the answer's last byte.
    max_retries
        Further attempts after the first.
    backoff
        Base delay of the exponential backoff, in seconds.
    max_tokens, temperature, seed
        Sampling settings sent with each request (recorded in the identity).
    max_side
        Longest image side sent; larger images are downscaled.
    api_key_env
        Environment variable holding a bearer token, if the server needs one.
    revision
        Model revision to record (the API does not report one); part of the identity.
    batch_size
        Cases per batch (default four times ``concurrency`` per live endpoint).
    max_response_bytes
        Largest answer accepted; a larger one is that case's error, never stored.
    """

    backend = "openai"
    writes_text = True
    gives_probabilities = False

    def __init__(
        self,
        model: str | None,
        labels: Sequence[str],
        *,
        endpoint: str | Sequence[str] = DEFAULT_ENDPOINT,
        prompt: str | os.PathLike[str] | None = None,
        system: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = 0,
        max_side: int = DEFAULT_MAX_SIDE,
        api_key_env: str = "OPENAI_API_KEY",
        revision: str | None = None,
        batch_size: int | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.max_tokens = _number(max_tokens, "max_tokens", minimum=1, integer=True)
        self.temperature = float(_number(temperature, "temperature", minimum=0, integer=False))
        self.seed = None if seed is None else _number(seed, "seed", minimum=-(2**63), integer=True)
        self.max_side = _number(max_side, "max_side", minimum=1, integer=True)
        self.chat = ChatClient(
            endpoint,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            api_key_env=api_key_env,
            max_response_bytes=max_response_bytes,
        )
        self.concurrency = self.chat.concurrency
        self.timeout = self.chat.timeout
        chosen_batch = _number(batch_size, "batch_size", minimum=1, integer=True) if batch_size else None
        self.labels = list(labels)
        self.classes = list(labels)
        self.template = load_prompt(prompt)
        self.prompt = render_prompt(self.template, self.labels)
        self.system = system
        self.revision = revision
        self.served = self.chat.connect(model)
        self.batch_size = chosen_batch or 4 * self.concurrency * len(self.chat.live)
        self.model = model or self.served.get("id")
        if not self.model:
            raise InputError(
                f"no --model given and the server lists no models at {self.chat.base}/models"
            )

    def preprocess(self, path: Path | None) -> tuple[bytes, str]:
        return encode_image(path, self.max_side)

    def collate(self, items: list[Any]) -> list[Any]:
        return list(items)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": self.model,
            "served": self.served,
            "revision": self.revision,
            "generation": {
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "seed": self.seed,
            },
            "system": self.system,
            **prompt_identity(self.prompt),
        }

    def preprocessing(self) -> dict[str, Any]:
        return image_preprocessing(self.max_side)

    def _payload(self, image: tuple[bytes, str]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(self.prompt, data_url(image), self.system),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.seed is not None:
            payload["seed"] = self.seed
        return payload

    def predict(self, inputs: list[tuple[bytes, str]], image_ids: Sequence[str]) -> PredictorOutput:
        results = self.chat.complete([self._payload(image) for image in inputs])
        return PredictorOutput(
            text=[r["text"] for r in results],
            status=[r["status"] for r in results],
            reason=[r["reason"] for r in results],
            extras={
                k: [r[k] for r in results]
                for k in ("latency_s", "prompt_tokens", "completion_tokens", "attempts")
            },
        )

    def served_by(self) -> list[dict[str, Any]]:
        return self.chat.served_by()

    def close(self) -> None:
        self.chat.close()


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        delay = float(value) if value is not None else None
    except ValueError:
        return None
    return min(60.0, max(0.0, delay)) if delay is not None and math.isfinite(delay) else None


def openai_predictor(
    model: str | None, *, labels: Sequence[str], device: Any = None, **options: Any
) -> OpenAIChatPredictor:
    """Factory of the ``openai`` backend."""
    reject_unknown_options(options, _OPTIONS, "openai")
    return OpenAIChatPredictor(model, labels, **options)
