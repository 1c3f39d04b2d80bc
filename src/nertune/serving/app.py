"""HTTP serving of a trained model with Starlette + uvicorn (`nertune serve`).

- `POST /predict` `{"text": "..."}` -> one result `{"entities", "words", "tags"}` (see
  `NerPredictor.predict_texts`); `{"texts": [...]}` -> `{"results": [...]}`, one per text;
  `{"document": ["sentence", ...]}` -> `{"results": [...]}`, one per sentence, each sentence read with
  its neighbours when the model was trained with document context (`context_size`).
- `GET /` -> the demo page (`static/index.html`, open like `/health`): paste a text, see its entities.
- `GET /health` -> `{"status": "ok"}` (always open, for probes); `GET /info` -> the model, its labels, the
  server's limits and batching settings; `GET /metrics` -> Prometheus text format.

Concurrent requests are gathered by a `batcher.DynamicBatcher` into one model call, which `run_server` runs in the
thread that loaded the model while uvicorn serves HTTP in another; a full queue answers 503 with `Retry-After`. Bad
input gets a 4xx answer `{"detail": "<message>"}` (validation errors add `"errors"`; see `request.py`), never a
500: 400 for a body that is not JSON or is empty, 415 for a content type other than JSON, 422 for wrong fields or
types, 413 for too many or too long texts or a body larger than they could take (read no further, chunked or
not: see `request.read_body`). A client that disconnects before its whole body arrived is counted
(`nertune_client_disconnects_total`) and logged in one line. With an API key, every endpoint but `/health`
needs `Authorization: Bearer <key>` or `X-API-Key: <key>`, else 401 (`/info` names the
model, `/metrics` shows its traffic). On SIGTERM/SIGINT uvicorn stops accepting, finishes the requests in flight,
then the lifespan shutdown drains the batcher's queue and the process exits 0.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nertune.errors import PathNotFoundError, RequestError
from nertune.inference.predictor import NerPredictor
from nertune.inference.thresholds import apply_thresholds, parse_thresholds
from nertune.serving.batcher import BatcherClosedError, DynamicBatcher, QueueFullError
from nertune.serving.request import BadPredictRequest, max_body_bytes, read_body, read_predict_request

logger = logging.getLogger(__name__)

API_KEY_ENV = "NERTUNE_API_KEY"
OPEN_PATHS = frozenset({"/health", "/"})  # "/": the demo page, which holds no secret
RETRY_AFTER_S = 1
# Label values of the request metrics: the app's routes, anything else as "other" (bounded cardinality).
ENDPOINTS = frozenset({"/predict", "/health", "/info", "/metrics", "/"})


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


def read_api_key(api_key_file: str | Path | None = None) -> str | None:
    """The API key from `api_key_file` (its whole content, stripped), else from $NERTUNE_API_KEY, else None."""
    if api_key_file is not None:
        path = Path(api_key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise PathNotFoundError(f"API key file not found: {api_key_file}") from None
        if not key:
            raise RequestError(f"API key file {api_key_file} is empty")
        return key
    key = os.environ.get(API_KEY_ENV, "").strip()
    return key or None


def _given_key(headers: Headers) -> str:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "")


class AuthorizeAndMeasure:
    """ASGI middleware: answers 401 without the API key (every path but `OPEN_PATHS`) and counts every
    request's status and latency. Plain ASGI rather than `@app.middleware("http")`, whose per-request
    streams and task group cost the server's event loop more than the rest of a request."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, expected_key: bytes | None) -> None:
        self.app = app
        self.metrics = metrics
        self.expected_key = expected_key

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
            if (
                self.expected_key is not None
                and path not in OPEN_PATHS
                and not hmac.compare_digest(_given_key(Headers(scope=scope)).encode("utf-8"), self.expected_key)
            ):
                response = JSONResponse(
                    {"detail": "missing or wrong API key: send Authorization: Bearer <key> or X-API-Key: <key>"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send_and_record)
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


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404, 405) as `{"detail": ...}`, like every other error answer."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(
    predictor: NerPredictor,
    max_batch: int = 32,
    max_chars: int = 10_000,
    *,
    max_batch_sentences: int = 64,
    max_wait_ms: float = 2.0,
    max_queue_sentences: int = 1024,
    api_key: str | None = None,
    batcher_thread: bool = True,
    thresholds: Sequence[str] = (),
) -> Starlette:
    """The Starlette application around one predictor; `app.state.metrics` is its `ServerMetrics`.

    `batcher_thread=True`: the app's lifespan (uvicorn, or `with TestClient(app)`) runs its batcher in a
    thread of its own. False: the caller runs `app.state.batcher.run()` (`run_server` does, in the thread
    that loaded the model); the lifespan's end still closes it. `thresholds`: `TYPE=SCORE` items, entities
    scored below them dropped (`inference.thresholds`)."""
    by_type = parse_thresholds(thresholds, predictor.labels)
    if max_batch < 1 or max_chars < 1:
        raise RequestError(f"max_batch and max_chars must be at least 1, got {max_batch} and {max_chars}")
    if max_queue_sentences < max_batch:
        raise RequestError(
            f"max_queue_sentences ({max_queue_sentences}) must hold at least one full request (max_batch={max_batch})"
        )
    metrics = ServerMetrics()
    batcher = DynamicBatcher(
        predictor,
        max_batch_sentences=max_batch_sentences,
        max_wait_ms=max_wait_ms,
        max_queue_sentences=max_queue_sentences,
        on_batch=metrics.batch_sentences.observe,
        on_queue=metrics.queue_sentences.set,
    )
    expected_key = api_key.encode("utf-8") if api_key else None
    body_limit = max_body_bytes(max_batch, max_chars)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if batcher_thread:
            batcher.start()
        try:
            yield
        finally:
            # uvicorn has finished the requests in flight; whatever is still queued is answered first.
            await asyncio.to_thread(batcher.close)
            logger.info("batcher drained and stopped")

    async def predict(request: Request) -> Response:
        # The body is read and checked here (`request.py`) rather than by a framework's request parsing, which
        # costs the one event loop more than the rest of the request.
        try:
            parsed = read_predict_request(
                await read_body(request, body_limit), request.headers.get("content-type", ""), max_batch, max_chars
            )
        except BadPredictRequest as e:
            return JSONResponse(e.body(), status_code=e.status)
        try:
            future = batcher.submit(parsed.texts, document=parsed.kind == "document")
        except (QueueFullError, BatcherClosedError) as e:
            return JSONResponse(
                {"detail": f"server busy: {e}; retry in {RETRY_AFTER_S} s"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        results = apply_thresholds(await asyncio.wrap_future(future), by_type, predictor.scheme)
        return JSONResponse(results[0] if parsed.kind == "text" else {"results": results})

    async def demo_page(request: Request) -> Response:
        # One static file shipped as package data: paste text, see the entities (it calls POST /predict).
        return HTMLResponse(resources.files("nertune.serving").joinpath("static/index.html").read_text("utf-8"))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "model": predictor.name,
                "labels": predictor.labels,
                "scheme": predictor.scheme,
                "max_batch": max_batch,
                "max_chars": max_chars,
                "max_length": predictor.max_length,
                "context_size": predictor.context_size,
                "device": str(predictor.device),
                "max_batch_sentences": max_batch_sentences,
                "max_wait_ms": max_wait_ms,
                "max_queue_sentences": max_queue_sentences,
                "api_key_required": expected_key is not None,
            }
        )

    async def prometheus_metrics(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    app = Starlette(
        # /predict first: it is the busy one, and routes are matched in order.
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/health", health),
            Route("/info", info),
            Route("/metrics", prometheus_metrics),
            Route("/", demo_page),
        ],
        middleware=[Middleware(AuthorizeAndMeasure, metrics=metrics, expected_key=expected_key)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.batcher = batcher
    return app


def run_server(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 32,
    max_chars: int = 10_000,
    batch_size: int = 32,
    device: str | None = None,
    precision: str = "auto",
    max_batch_sentences: int = 64,
    max_wait_ms: float = 2.0,
    max_queue_sentences: int = 1024,
    api_key_file: str | Path | None = None,
    access_log: bool = False,
    thresholds: Sequence[str] = (),
) -> None:
    """Load the model (errors surface here, before listening), then serve until SIGTERM/SIGINT, which
    finish the requests in flight and return normally.

    uvicorn runs in a thread; the model runs in this one, where it was loaded (see `DynamicBatcher.run`)."""
    import uvicorn

    api_key = read_api_key(api_key_file)
    predictor = NerPredictor.from_pretrained(model_dir, device=device, batch_size=batch_size, precision=precision)
    app = create_app(
        predictor,
        max_batch=max_batch,
        max_chars=max_chars,
        max_batch_sentences=max_batch_sentences,
        max_wait_ms=max_wait_ms,
        max_queue_sentences=max_queue_sentences,
        api_key=api_key,
        batcher_thread=False,
        thresholds=thresholds,
    )
    if api_key is None:
        logger.info("no API key (--api-key-file or $%s): every endpoint is open", API_KEY_ENV)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=access_log))

    def stop(signum: int, frame: object) -> None:
        # uvicorn's own handlers: stop accepting and finish the requests in flight; a second signal forces it.
        logger.info("stopped by %s", signal.Signals(signum).name)
        server.force_exit = server.should_exit
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    http = threading.Thread(target=server.run, name="nertune-http", daemon=True)
    try:
        http.start()
        app.state.batcher.run(keep_running=http.is_alive)
        http.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:  # uvicorn logged why (e.g. the port is taken) and ended its thread
        raise RequestError(f"could not listen on {host}:{port} (uvicorn's error is above; is the port taken?)")
