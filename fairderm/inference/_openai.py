"""Vision-language models behind an OpenAI-compatible chat-completions API (``vllm serve``).

Requests go out concurrently (at most ``concurrency`` at a time) over one
async HTTP connection pool. A request that times out, cannot connect, gets
HTTP 429 or 5xx, or gets a body that is not the expected JSON is retried
with exponential backoff (``backoff * 2**attempt``, plus up to 25% jitter;
``Retry-After`` is honoured up to 60 s); other 4xx answers are final.
Every case records its latency (all attempts), token counts and attempts.

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
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from fairderm._io import json_safe
from fairderm._terminal import printable
from fairderm.errors import FairdermError, InputError
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

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
_ERROR_BODY_BYTES = 4096  # of an error answer only a one-line snippet is kept
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
# What /models says about a deployment; `permission` is left out (vLLM makes up new ids for it on every answer)
_SERVED_FIELDS = ("id", "root", "parent", "owned_by", "max_model_len", "created")
# vLLM, SGLang and lmdeploy stamp `created` with the time of the answer: such a value says nothing of the model
_STAMP_TOLERANCE_S = 5.0


def _api_base(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    base = base.removesuffix("/chat/completions")
    if not base.endswith("/v1"):
        base += "/v1"
    return base


def _snippet(text: str, limit: int = 120) -> str:
    one_line = " ".join(printable(text).split())
    return one_line[:limit] + ("..." if len(one_line) > limit else "")


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


def _auth_headers(api_key_env: str | None) -> dict[str, str]:
    token = os.environ.get(api_key_env) if api_key_env else None
    return {"Authorization": f"Bearer {token}"} if token else {}


class _TooLarge(Exception):
    """A reply body over the size cap (its declared or received size so far)."""


@dataclass
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes
    received_at: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def _fetch(
    client: httpx.AsyncClient, method: str, url: str, *, limit: int, timeout: float, **request: Any
) -> _Reply:
    """One HTTP exchange read in chunks: never more than ``limit`` bytes of a 200 answer are held.

    Raises :class:`_TooLarge` for a larger 200 answer; of another answer only
    the first few KiB are read. The caller bounds the whole exchange in time.
    """
    async with client.stream(method, url, timeout=timeout, **request) as response:
        ok = response.status_code == 200
        keep = limit if ok else min(limit, _ERROR_BODY_BYTES)
        declared = response.headers.get("content-length", "")
        if ok and declared.isdigit() and int(declared) > limit:
            raise _TooLarge(int(declared))
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > keep:
                if ok:
                    raise _TooLarge(len(body))
                del body[keep:]
                break
        return _Reply(response.status_code, response.headers, bytes(body), time.time())


def _answer_time(reply: _Reply) -> float:
    """When the server answered, by its own clock (``Date``) where it says, else by ours."""
    try:
        return parsedate_to_datetime(reply.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError, IndexError):
        return reply.received_at


def _served_entry(entry: dict[str, Any], answered_at: float) -> dict[str, Any]:
    """The fields of a /models entry that identify the deployment (JSON scalars only)."""
    kept = {
        k: entry[k]
        for k in _SERVED_FIELDS
        if k in entry and (entry[k] is None or isinstance(entry[k], str | int | float | bool))
    }
    created = kept.get("created")
    if isinstance(created, int | float) and abs(created - answered_at) <= _STAMP_TOLERANCE_S:
        del kept["created"]
    return json_safe(kept)


async def _get_models(
    base: str, headers: dict[str, str], timeout: float, limit: int
) -> _Reply:
    async with httpx.AsyncClient(headers=headers) as client, asyncio.timeout(timeout):
        return await _fetch(client, "GET", f"{base}/models", limit=limit, timeout=timeout)


def served_model_identity(
    endpoint: str,
    model: str | None,
    *,
    api_key_env: str | None = "OPENAI_API_KEY",
    timeout: float = 30.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> dict[str, Any]:
    """What an OpenAI-compatible server says about the model it serves (``GET /models``).

    The entry of ``model`` (the first listed when None) reduced to the fields
    that identify a deployment: ``id``, ``root`` (the weights vLLM loaded),
    ``parent``, ``owned_by``, ``max_model_len`` and ``created`` unless it is
    merely the time of the answer (as vLLM stamps it). A redeployed server
    that answers differently therefore gets a different identity, and no
    cached predictions of the old one are reused.

    Parameters
    ----------
    endpoint
        The server's base URL (``http://host:8000/v1``).
    model
        Served model name, or None for the first listed.
    api_key_env
        Environment variable holding a bearer token, if any.
    timeout
        Seconds for the whole exchange.
    max_response_bytes
        Largest answer read.

    Returns
    -------
    dict
        Empty when the server does not list its models (no ``/models`` route).

    Raises
    ------
    FairdermError
        When the server cannot be reached, does not answer in time or answers too much.
    InputError
        When the server lists models but not ``model``.
    """
    base = _api_base(endpoint)
    try:
        reply = asyncio.run(_get_models(base, _auth_headers(api_key_env), timeout, max_response_bytes))
    except TimeoutError:
        raise FairdermError(f"the model server at {base} did not answer within {timeout:g} s") from None
    except _TooLarge:
        raise FairdermError(
            f"the model server at {base} answered /models with more than {max_response_bytes} bytes"
        ) from None
    except httpx.HTTPError as exc:
        reason = _snippet(str(exc)) or type(exc).__name__
        raise FairdermError(f"cannot reach the model server at {base}: {reason}") from None
    if reply.status != 200:
        return {}
    try:
        listed = json.loads(reply.body).get("data", [])
    except (ValueError, AttributeError):
        return {}
    if not isinstance(listed, list):
        return {}
    entries = [e for e in listed if isinstance(e, dict)]
    if model is not None:
        named = [e for e in entries if e.get("id") == model]
        if listed and not named:
            names = [e.get("id") for e in entries]
            raise InputError(f"the server does not serve model {model!r} (it serves {names})")
        entries = named
    if not entries:
        return {}
    return _served_entry(entries[0], _answer_time(reply))


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


class ChatClient:
    """Chat-completions requests to one OpenAI-compatible server, each case standing alone.

    Requests go out concurrently over one async connection pool; each is
    retried as the module describes and bounded by ``timeout`` from
    connecting to its last byte; an answer over ``max_response_bytes`` is
    that case's error. Used by the ``openai`` backend and by
    :mod:`fairderm.reasoning`'s judge.

    Parameters
    ----------
    endpoint
        Base URL, e.g. ``http://127.0.0.1:8000/v1``.
    concurrency
        Requests in flight at once.
    timeout
        Seconds per attempt, from connecting to the answer's last byte.
    max_retries
        Further attempts after the first.
    backoff
        Base delay of the exponential backoff, in seconds.
    api_key_env
        Environment variable holding a bearer token, if the server needs one.
    max_response_bytes
        Largest answer accepted.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
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
        self.base = _api_base(endpoint)
        self.headers = _auth_headers(api_key_env)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

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
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers=self.headers,
                limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
            )
        gate = asyncio.Semaphore(self.concurrency)
        return await asyncio.gather(
            *(self._request(gate, payload) for payload in payloads)
        )

    async def _request(self, gate: asyncio.Semaphore, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "text": None,
            "status": "error",
            "reason": None,
            "latency_s": None,
            "prompt_tokens": None,
            "completion_tokens": None,
            "attempts": 0,
        }
        async with gate:
            started = time.perf_counter()
            for attempt in range(self.max_retries + 1):
                result["attempts"] = attempt + 1
                try:
                    retry, delay = await self._attempt(payload, result)
                except Exception as exc:  # noqa: BLE001  whatever one reply does, it fails only its own case
                    result["reason"] = f"client error: {type(exc).__name__}: {_snippet(str(exc))}"
                    break
                if not retry or attempt == self.max_retries:
                    break
                wait = (
                    delay
                    if delay is not None
                    else self.backoff * 2**attempt * (1 + random.uniform(0, 0.25))
                )
                await asyncio.sleep(wait)
            result["latency_s"] = round(time.perf_counter() - started, 4)
        return result

    async def _attempt(
        self, payload: dict[str, Any], result: dict[str, Any]
    ) -> tuple[bool, float | None]:
        """One request; fills ``result``; returns (retry?, server-requested delay)."""
        assert self._client is not None
        try:
            # the deadline covers the whole exchange: httpx's own timeout bounds each read only
            async with asyncio.timeout(self.timeout):
                reply = await _fetch(
                    self._client,
                    "POST",
                    f"{self.base}/chat/completions",
                    limit=self.max_response_bytes,
                    timeout=self.timeout,
                    json=payload,
                )
        except (TimeoutError, httpx.TimeoutException):
            result["reason"] = f"server timed out: no complete answer within {self.timeout:g} s"
            return True, None
        except _TooLarge:
            result["reason"] = f"answer larger than {self.max_response_bytes} bytes (max_response_bytes)"
            return False, None
        except httpx.HTTPError as exc:
            result["reason"] = f"connection error: {_snippet(str(exc)) or type(exc).__name__}"
            return True, None
        if reply.status != 200:
            result["reason"] = f"HTTP {reply.status}: {_snippet(reply.text)}"
            retryable = reply.status == 429 or reply.status >= 500
            return retryable, _retry_after(reply.headers) if retryable else None
        try:
            text, prompt_tokens, completion_tokens = parse_completion(reply.body)
        except ValueError as exc:
            result["reason"] = f"malformed server JSON ({exc}): {_snippet(reply.text)}"
            return True, None
        result.update(
            text=text,
            status=None,
            reason=None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        return False, None

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                self._loop.run_until_complete(self._client.aclose())
            self._loop.close()
        self._loop, self._client = None, None



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
        Base URL, e.g. ``http://127.0.0.1:8000/v1``.
    prompt
        Prompt template file (see :mod:`fairderm.inference._prompt`).
    system
        Optional system message.
    concurrency
        Requests in flight at once.
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
        Cases per batch (default four times ``concurrency``).
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
        endpoint: str = DEFAULT_ENDPOINT,
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
        self.batch_size = (
            _number(batch_size, "batch_size", minimum=1, integer=True) if batch_size else 4 * self.concurrency
        )
        self.labels = list(labels)
        self.classes = list(labels)
        self.base = self.chat.base
        self.template = load_prompt(prompt)
        self.prompt = render_prompt(self.template, self.labels)
        self.system = system
        self.revision = revision
        self.served = served_model_identity(
            self.base,
            model,
            api_key_env=api_key_env,
            timeout=min(self.timeout, 30.0),
        )
        self.model = model or self.served.get("id")
        if not self.model:
            raise InputError(
                f"no --model given and the server lists no models at {self.base}/models"
            )

    def preprocess(self, path: Path | None) -> tuple[bytes, str]:
        return encode_image(path, self.max_side)

    def collate(self, items: list[Any]) -> list[Any]:
        return list(items)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": self.model,
            "endpoint": self.base,
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
