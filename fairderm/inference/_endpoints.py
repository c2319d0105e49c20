"""OpenAI-compatible servers of one model: the HTTP exchange, what each serves, whether each is alive.

A vision-language audit may be spread over several servers of the same
model (``vllm serve --data-parallel-size N`` behind one address, or one
``vllm serve`` per node of a cluster, each its own address). Before a run,
:func:`check_endpoints` asks every server what it serves (``GET /models``):
a server that does not answer is left out with a warning, a server that
serves another model (another name, other weights, another context length)
stops the run with an error naming it, and none answering stops it too.
During a run, a request that fails as a dead server's would (timeout,
connection error, HTTP 5xx) makes the client probe that server's
``GET /health`` (vLLM's liveness route: 200 while its engine runs, 5xx
once it died); a server without that route answers 404, which is alive
enough. A server found dead is dropped for the rest of the run and its
cases go to the others; the last server standing is never dropped, so a
single server keeps today's retry-with-backoff behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from fairderm._io import json_safe
from fairderm._terminal import printable
from fairderm.errors import FairdermError, InputError

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
_ERROR_BODY_BYTES = 4096  # of an error answer only a one-line snippet is kept
# What /models says about a deployment; `permission` is left out (vLLM makes up new ids for it on every answer)
_SERVED_FIELDS = ("id", "root", "parent", "owned_by", "max_model_len", "created")
# vLLM, SGLang and lmdeploy stamp `created` with the time of the answer: such a value says nothing of the model
_STAMP_TOLERANCE_S = 5.0
_HEALTH_TIMEOUT_S = 10.0


class EndpointWarning(UserWarning):
    """A model server that does not answer before a run is left out of it."""


def api_base(endpoint: str) -> str:
    """The ``.../v1`` base URL of an endpoint given with or without ``/v1`` or ``/chat/completions``."""
    base = endpoint.rstrip("/")
    base = base.removesuffix("/chat/completions")
    if not base.endswith("/v1"):
        base += "/v1"
    return base


def endpoint_list(endpoint: str | Sequence[str]) -> list[str]:
    """One or several endpoints as their distinct base URLs, in the order given.

    Raises
    ------
    InputError
        For no endpoint, one that is not text, or the same server named twice.
    """
    given = [endpoint] if isinstance(endpoint, str) else list(endpoint)
    if not given:
        raise InputError("no endpoint given: name at least one server's base URL")
    bases: list[str] = []
    for item in given:
        if not isinstance(item, str) or not item.strip():
            raise InputError(f"an endpoint must be a base URL, not {item!r}")
        base = api_base(item.strip())
        if base in bases:
            raise InputError(f"endpoint {base} is named twice")
        bases.append(base)
    return bases


def snippet(text: str, limit: int = 120) -> str:
    """``text`` on one line, without control characters or escape sequences, cut at ``limit``."""
    one_line = " ".join(printable(text).split())
    return one_line[:limit] + ("..." if len(one_line) > limit else "")


def auth_headers(api_key_env: str | None) -> dict[str, str]:
    token = os.environ.get(api_key_env) if api_key_env else None
    return {"Authorization": f"Bearer {token}"} if token else {}


class TooLarge(Exception):
    """A reply body over the size cap (its declared or received size so far)."""


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes
    received_at: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def fetch(
    client: httpx.AsyncClient, method: str, url: str, *, limit: int, timeout: float, **request: Any
) -> Reply:
    """One HTTP exchange read in chunks: never more than ``limit`` bytes of a 200 answer are held.

    Raises :class:`TooLarge` for a larger 200 answer; of another answer only
    the first few KiB are read. The caller bounds the whole exchange in time.
    """
    async with client.stream(method, url, timeout=timeout, **request) as response:
        ok = response.status_code == 200
        keep = limit if ok else min(limit, _ERROR_BODY_BYTES)
        declared = response.headers.get("content-length", "")
        if ok and declared.isdigit() and int(declared) > limit:
            raise TooLarge(int(declared))
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > keep:
                if ok:
                    raise TooLarge(len(body))
                del body[keep:]
                break
        return Reply(response.status_code, response.headers, bytes(body), time.time())


def _answer_time(reply: Reply) -> float:
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


async def _served(
    base: str, model: str | None, headers: dict[str, str], timeout: float, limit: int
) -> dict[str, Any]:
    """The identity of ``model`` at ``base`` (see :func:`served_model_identity`), asynchronously."""
    try:
        async with httpx.AsyncClient(headers=headers, verify=tls_context()) as client, asyncio.timeout(timeout):
            reply = await fetch(client, "GET", f"{base}/models", limit=limit, timeout=timeout)
    except TimeoutError:
        raise FairdermError(f"the model server at {base} did not answer within {timeout:g} s") from None
    except TooLarge:
        raise FairdermError(f"the model server at {base} answered /models with more than {limit} bytes") from None
    except httpx.HTTPError as exc:
        reason = snippet(str(exc)) or type(exc).__name__
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
            raise InputError(f"the server at {base} does not serve model {model!r} (it serves {names})")
        entries = named
    if not entries:
        return {}
    return _served_entry(entries[0], _answer_time(reply))


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
    return asyncio.run(_served(api_base(endpoint), model, auth_headers(api_key_env), timeout, max_response_bytes))


@dataclass
class ServedModel:
    """One model as served by the endpoints that answered before a run.

    Attributes
    ----------
    identity
        What every live endpoint says about the model (the same on each; see
        :func:`served_model_identity`).
    live
        Base URLs of the endpoints that answered, in the order given.
    down
        ``{base URL: why}`` of the endpoints left out.
    """

    identity: dict[str, Any]
    live: list[str]
    down: dict[str, str] = field(default_factory=dict)


async def _served_everywhere(
    bases: list[str], model: str | None, headers: dict[str, str], timeout: float, limit: int
) -> list[Any]:
    return await asyncio.gather(
        *(_served(base, model, headers, timeout, limit) for base in bases), return_exceptions=True
    )


def _describe(identity: dict[str, Any]) -> str:
    return ", ".join(f"{k}={identity[k]!r}" for k in sorted(identity)) or "no model list"


def check_endpoints(
    endpoints: str | Sequence[str],
    model: str | None,
    *,
    api_key_env: str | None = "OPENAI_API_KEY",
    timeout: float = 30.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> ServedModel:
    """Ask every endpoint what it serves; leave out the silent ones; refuse disagreeing ones.

    Parameters
    ----------
    endpoints
        One base URL or several (servers of the same model).
    model, api_key_env, timeout, max_response_bytes
        As for :func:`served_model_identity`, per endpoint (all asked at once).

    Returns
    -------
    ServedModel

    Raises
    ------
    FairdermError
        When no endpoint answers (naming each and why).
    InputError
        When an endpoint does not serve ``model``, or serves a model whose
        identity differs from the first live endpoint's (naming both).

    Warns
    -----
    EndpointWarning
        For each endpoint that does not answer while another does.
    """
    bases = endpoint_list(endpoints)
    answers = asyncio.run(_served_everywhere(bases, model, auth_headers(api_key_env), timeout, max_response_bytes))
    live: dict[str, dict[str, Any]] = {}
    down: dict[str, str] = {}
    for base, answer in zip(bases, answers):
        if isinstance(answer, InputError):
            raise answer
        if isinstance(answer, FairdermError):
            down[base] = str(answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            live[base] = answer
    if not live:
        raise FairdermError("no model server answers: " + "; ".join(down.values()))
    first, identity = next(iter(live.items()))
    for base, other in live.items():
        if other != identity:
            raise InputError(
                f"the model server at {base} serves another model than {first}: "
                f"{_describe(other)} there, {_describe(identity)} at {first}"
            )
    for reason in down.values():
        warnings.warn(f"{reason}; its cases go to the other servers", EndpointWarning, stacklevel=2)
    return ServedModel(identity, list(live), down)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate checks that every HTTP client of this process shares.

    httpx builds a new context for each client it makes, reading the whole CA
    bundle again (some 25 ms); health checks and identity probes make one
    client per call.
    """
    return httpx.create_ssl_context()


@dataclass
class Endpoint:
    """One server of a run: its connection pool, whether it is down, and what it answered."""

    base: str
    client: httpx.AsyncClient | None = None
    down: str | None = None
    answered: int = 0
    failed: int = 0
    checked_at: float = -1.0
    check: asyncio.Lock = field(default_factory=asyncio.Lock)

    def record(self) -> dict[str, Any]:
        return {"endpoint": self.base, "answered": self.answered, "failed": self.failed, "down": self.down}


async def probe_health(base: str, headers: dict[str, str], timeout: float) -> str | None:
    """Why the server at ``base`` is down (no answer to ``GET /health`` in time, or HTTP 5xx), or None."""
    url = f"{base.removesuffix('/v1')}/health"
    try:
        # a fresh connection: the run's own pool may be full of requests hung on this very server
        async with httpx.AsyncClient(headers=headers, verify=tls_context()) as client, asyncio.timeout(timeout):
            reply = await fetch(client, "GET", url, limit=_ERROR_BODY_BYTES, timeout=timeout)
    except TimeoutError:
        return f"no answer to GET {url} within {timeout:g} s"
    except (httpx.HTTPError, TooLarge) as exc:
        return f"GET {url} failed: {snippet(str(exc)) or type(exc).__name__}"
    if reply.status >= 500:
        return f"GET {url} answered HTTP {reply.status}"
    return None


async def confirm_down(endpoint: Endpoint, pool: Sequence[Endpoint], headers: dict[str, str], timeout: float) -> bool:
    """After a request to ``endpoint`` failed as a dead server's would: is it down (and dropped)?

    Requests failing together share one probe: a probe started after this
    failure answers for it. The last endpoint up is never dropped.
    """
    failed_at = time.monotonic()
    async with endpoint.check:
        if endpoint.down is not None:
            return True
        if endpoint.checked_at >= failed_at or sum(e.down is None for e in pool) < 2:
            return False
        endpoint.checked_at = time.monotonic()
        reason = await probe_health(endpoint.base, headers, min(timeout, _HEALTH_TIMEOUT_S))
        if reason is None or sum(e.down is None for e in pool) < 2:
            return False
        endpoint.down = reason
        return True
