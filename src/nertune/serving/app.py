"""HTTP serving of a trained model with FastAPI + uvicorn (`nertune serve`).

- `POST /predict` `{"text": "..."}` -> one result `{"entities", "words", "tags"}` (see
  `NerPredictor.predict_texts`); `{"texts": [...]}` -> `{"results": [...]}`, one per text;
  `{"document": ["sentence", ...]}` -> `{"results": [...]}`, one per sentence, each sentence read with
  its neighbours when the model was trained with document context (`context_size`).
- `GET /health` -> `{"status": "ok"}` (always open, for probes); `GET /info` -> the model, its labels, the
  server's limits and batching settings; `GET /metrics` -> Prometheus text format.

Concurrent requests are gathered by a `batching.DynamicBatcher` into one model call, which `run_server` runs in the
thread that loaded the model while uvicorn serves HTTP in another; a full queue answers 503 with `Retry-After`. Bad
input gets a 4xx answer `{"detail": "<message>"}` (validation errors add `"errors"`; see `predict_request`), never a
500: 400 for a body that is not JSON or is empty, 415 for a content type other than JSON, 422 for wrong fields or
types, 413 for too many or too long texts. With an API key, every endpoint but `/health` needs `Authorization:
Bearer <key>` or `X-API-Key: <key>`, else 401 (`/info` names the model, `/metrics` shows its traffic). On
SIGTERM/SIGINT uvicorn stops accepting, finishes the requests in flight, then the lifespan shutdown drains the
batcher's queue and the process exits 0.
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
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nertune.errors import PathNotFoundError, RequestError
from nertune.inference.predictor import NerPredictor
from nertune.inference.thresholds import apply_thresholds, parse_thresholds
from nertune.serving.batcher import BatcherClosedError, DynamicBatcher, QueueFullError
from nertune.serving.request import BadPredictRequest, PredictRequest, read_predict_request

logger = logging.getLogger(__name__)

API_KEY_ENV = "NERTUNE_API_KEY"
OPEN_PATHS = frozenset({"/health"})
RETRY_AFTER_S = 1
ERROR_ANSWERS = {
    400: "the body is not JSON, or is empty",
    401: "missing or wrong API key",
    413: "too many or too long texts (--max-batch, --max-chars)",
    415: "the body is not sent as application/json",
    422: "wrong fields or types",
    503: "the queue is full: retry after Retry-After seconds",
}
# Label values of the request metrics: the app's routes, anything else as "other" (bounded cardinality).
ENDPOINTS = frozenset({"/predict", "/health", "/info", "/metrics"})


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
        status = 500  # unless the app answers: an exception becomes a 500 further out

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
        finally:
            endpoint = path if path in ENDPOINTS else "other"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def _openapi_with_predict(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema of the app, plus `POST /predict` (a Starlette route, which FastAPI does not describe)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        request_schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {})["PredictRequest"] = request_schema
        schema["paths"]["/predict"] = {
            "post": {
                "summary": "Predict",
                "description": 'Entities of one text ({"text": ...} -> {"entities", "words", "tags"}), of several '
                '({"texts": [...]} -> {"results": [...]}) or of the sentences of one document ({"document": [...]}).',
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
                },
                "responses": {
                    "200": {"description": "the entities"},
                    **{str(code): {"description": text} for code, text in ERROR_ANSWERS.items()},
                },
            }
        }
        app.openapi_schema = schema
    return app.openapi_schema


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
) -> FastAPI:
    """The FastAPI application around one predictor; `app.state.metrics` is its `ServerMetrics`.

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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if batcher_thread:
            batcher.start()
        try:
            yield
        finally:
            # uvicorn has finished the requests in flight; whatever is still queued is answered first.
            await asyncio.to_thread(batcher.close)
            logger.info("batcher drained and stopped")

    app = FastAPI(title="nertune", summary=f"named entities with {predictor.name}", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.batcher = batcher
    app.add_middleware(AuthorizeAndMeasure, metrics=metrics, expected_key=expected_key)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        return {
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

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def predict(request: Request) -> Response:
        # A Starlette endpoint, not a FastAPI one: FastAPI's per-request work (dependencies, body parsing,
        # response handling) would cost the one event loop more than the rest of the request.
        try:
            parsed = read_predict_request(
                await request.body(), request.headers.get("content-type", ""), max_batch, max_chars
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

    # First among the routes: it is the busy one, and routes are matched in order.
    app.router.routes.insert(0, Route("/predict", predict, methods=["POST"]))
    app.openapi = lambda: _openapi_with_predict(app)
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
