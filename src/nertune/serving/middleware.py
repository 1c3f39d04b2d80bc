"""The ASGI middleware of `nertune serve`: the API and admin keys (401/403) and the Prometheus metrics of every
request (`ServerMetrics`)."""

from __future__ import annotations

import hmac
import logging
import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nertune.errors import PathNotFoundError, RequestError
from nertune.serving.reload import ServingModel

logger = logging.getLogger(__name__)

API_KEY_ENV = "NERTUNE_API_KEY"
OPEN_PATHS = frozenset({"/health", "/"})  # "/": the demo page, which holds no secret
ADMIN_PREFIX = "/admin/"
# Label values of the request metrics: the app's routes, anything else as "other" (bounded cardinality).
ENDPOINTS = frozenset({"/predict", "/health", "/info", "/metrics", "/", "/admin/reload"})


class ServerMetrics:
    """The Prometheus metrics of one app, in a registry of its own (several apps in one process don't clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nertune_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nertune_request_duration_seconds",
            "HTTP request latency by endpoint",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_sentences = Histogram(
            "nertune_batch_sentences",
            "sentences per model call",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.queue_sentences = Gauge(
            "nertune_queue_sentences", "sentences waiting for the model", registry=self.registry
        )
        self.client_disconnects = Counter(
            "nertune_client_disconnects",
            "requests whose client disconnected before sending the whole body",
            ["endpoint"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "nertune_model_reloads",
            "model reloads (SIGHUP, /admin/reload) by result",
            ["result"],
            registry=self.registry,
        )
        for result in ("ok", "failed"):
            self.reloads.labels(result)  # both series from the start, at 0
        self.generation = Gauge(
            "nertune_model_generation", "the generation of the model serving: 1 at startup, +1 per reload",
            registry=self.registry,
        )  # fmt: skip
        self.loaded_at = Gauge(
            "nertune_model_loaded_timestamp_seconds", "when the model serving took over", registry=self.registry
        )

    def model_changed(self, result: str, current: ServingModel) -> None:
        self.reloads.labels(result).inc()
        self.generation.set(current.generation)
        self.loaded_at.set(current.loaded_at)


def read_api_key(api_key_file: str | Path | None = None) -> str | None:
    """The API key from `api_key_file` (its whole content, stripped), else from $NERTUNE_API_KEY, else None."""
    if api_key_file is not None:
        return read_key_file(api_key_file, "API key")
    key = os.environ.get(API_KEY_ENV, "").strip()
    return key or None


def read_key_file(key_file: str | Path, what: str = "API key") -> str:
    """The key in `key_file`: its whole content, stripped; an error naming the file when missing or empty."""
    try:
        key = Path(key_file).expanduser().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PathNotFoundError(f"{what} file not found: {key_file}") from None
    if not key:
        raise RequestError(f"{what} file {key_file} is empty")
    return key


def _given_key(headers: Headers) -> str:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "")


def _refusal(path: str, headers: Headers, api_key: bytes | None, admin_key: bytes | None) -> JSONResponse | None:
    """401 without the key `path` needs, 403 for an admin path on a server without an admin key; None: allowed."""
    if path.startswith(ADMIN_PREFIX):
        if admin_key is None:
            return JSONResponse(
                {"detail": "the admin endpoint is off: start the server with --api-key-file, $NERTUNE_API_KEY or "
                 "--admin-key-file"},
                status_code=403,
            )  # fmt: skip
        expected = admin_key
    elif api_key is None or path in OPEN_PATHS:
        return None
    else:
        expected = api_key
    if hmac.compare_digest(_given_key(headers).encode("utf-8"), expected):
        return None
    return JSONResponse(
        {"detail": "missing or wrong API key: send Authorization: Bearer <key> or X-API-Key: <key>"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class AuthorizeAndMeasure:
    """ASGI middleware: answers 401 without the API key (every path but `OPEN_PATHS`; admin paths need the
    admin key) and counts every request's status and latency. Plain ASGI rather than `@app.middleware("http")`,
    whose per-request streams and task group cost the server's event loop more than the rest of a request."""

    def __init__(
        self, app: ASGIApp, metrics: ServerMetrics, expected_key: bytes | None, admin_key: bytes | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.expected_key = expected_key
        self.admin_key = admin_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        status: int | None = 500  # unless the app answers: an exception becomes a 500 further out

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = (
                _refusal(path, Headers(scope=scope), self.expected_key, self.admin_key)
                if self.expected_key is not None or path.startswith(ADMIN_PREFIX)
                else None  # no headers to read on the busy path of an open server
            )
            if refusal is not None:
                await refusal(scope, receive, send_and_record)
            else:
                await self.app(scope, receive, send_and_record)
        except ClientDisconnect:
            # Nobody is left to answer: a counter and a line rather than an ASGI traceback.
            status = None
            self.metrics.client_disconnects.labels(_endpoint(path)).inc()
            logger.info("%s %s: the client disconnected before sending the whole body", scope["method"], path)
        finally:
            if status is not None:
                self.metrics.requests.labels(_endpoint(path), str(status)).inc()
            self.metrics.latency.labels(_endpoint(path)).observe(time.perf_counter() - started)


def _endpoint(path: str) -> str:
    return path if path in ENDPOINTS else "other"
