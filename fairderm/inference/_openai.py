"""Vision-language models behind an OpenAI-compatible chat-completions API (``vllm serve``).

Requests go out concurrently (at most ``concurrency`` at a time) over one
async HTTP connection pool. A request that times out, cannot connect, gets
HTTP 429 or 5xx, or gets a body that is not the expected JSON is retried
with exponential backoff (``backoff * 2**attempt``, plus up to 25% jitter;
``Retry-After`` is honoured up to 60 s); other 4xx answers are final.
Every case records its latency (all attempts), token counts and attempts.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

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
)


def _api_base(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    base = base.removesuffix("/chat/completions")
    if not base.endswith("/v1"):
        base += "/v1"
    return base


def _snippet(text: str, limit: int = 120) -> str:
    one_line = " ".join(text.split())
    return one_line[:limit] + ("..." if len(one_line) > limit else "")


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
        Seconds per attempt.
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
        Model revision to record (the API does not report one).
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
    ) -> None:
        if int(concurrency) < 1:
            raise InputError("concurrency must be at least 1", column="concurrency")
        if float(timeout) <= 0:
            raise InputError("timeout must be positive", column="timeout")
        self.labels = list(labels)
        self.classes = list(labels)
        self.base = _api_base(endpoint)
        self.template = load_prompt(prompt)
        self.prompt = render_prompt(self.template, self.labels)
        self.system = system
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.seed = seed
        self.max_side = int(max_side)
        self.revision = revision
        self.batch_size = int(batch_size) if batch_size else 4 * self.concurrency
        token = os.environ.get(api_key_env) if api_key_env else None
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.served = self._served_model(model)
        self.model = model or self.served.get("id")
        if not self.model:
            raise InputError(
                f"no --model given and the server lists no models at {self.base}/models"
            )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

    def _served_model(self, model: str | None) -> dict[str, Any]:
        """What the server says about the model (``GET /models``), for the identity."""
        try:
            response = httpx.get(
                f"{self.base}/models", headers=self.headers, timeout=min(self.timeout, 30.0)
            )
        except httpx.HTTPError as exc:
            raise FairdermError(f"cannot reach the model server at {self.base}: {exc}") from None
        if response.status_code != 200:
            return {}
        try:
            listed = response.json().get("data", [])
        except (ValueError, AttributeError):
            return {}
        entries = [e for e in listed if isinstance(e, dict)]
        if model is not None:
            entries = [e for e in entries if e.get("id") == model]
            if listed and not entries:
                names = [e.get("id") for e in listed if isinstance(e, dict)]
                raise InputError(f"the server does not serve model {model!r} (it serves {names})")
        if not entries:
            return {}
        keep = ("id", "root", "parent", "owned_by", "max_model_len")
        return {k: entries[0][k] for k in keep if k in entries[0]}

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
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        results = self._loop.run_until_complete(self._batch(inputs))
        return PredictorOutput(
            text=[r["text"] for r in results],
            status=[r["status"] for r in results],
            reason=[r["reason"] for r in results],
            extras={
                k: [r[k] for r in results]
                for k in ("latency_s", "prompt_tokens", "completion_tokens", "attempts")
            },
        )

    async def _batch(self, inputs: list[tuple[bytes, str]]) -> list[dict[str, Any]]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers=self.headers,
                limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
            )
        gate = asyncio.Semaphore(self.concurrency)
        return await asyncio.gather(
            *(self._request(gate, self._payload(image)) for image in inputs)
        )

    async def _request(self, gate: asyncio.Semaphore, payload: dict[str, Any]) -> dict[str, Any]:
        assert self._client is not None
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
                retry, delay = await self._attempt(payload, result)
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
            response = await self._client.post(
                f"{self.base}/chat/completions", json=payload, timeout=self.timeout
            )
        except httpx.TimeoutException:
            result["reason"] = f"server timed out after {self.timeout:g} s"
            return True, None
        except httpx.HTTPError as exc:
            result["reason"] = f"connection error: {_snippet(str(exc)) or type(exc).__name__}"
            return True, None
        if response.status_code != 200:
            result["reason"] = f"HTTP {response.status_code}: {_snippet(response.text)}"
            retryable = response.status_code == 429 or response.status_code >= 500
            return retryable, _retry_after(response) if retryable else None
        try:
            body = response.json()
            message = body["choices"][0]["message"]
            text = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            result["reason"] = f"malformed server JSON: {_snippet(response.text)}"
            return True, None
        usage = body.get("usage") or {}
        result.update(
            text=text if isinstance(text, str) else "",
            status=None,
            reason=None,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
        return False, None

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                self._loop.run_until_complete(self._client.aclose())
            self._loop.close()
        self._loop, self._client = None, None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def openai_predictor(
    model: str | None, *, labels: Sequence[str], device: Any = None, **options: Any
) -> OpenAIChatPredictor:
    """Factory of the ``openai`` backend."""
    reject_unknown_options(options, _OPTIONS, "openai")
    return OpenAIChatPredictor(model, labels, **options)
