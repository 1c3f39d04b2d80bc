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

SIGHUP and `POST /admin/reload` (optional body `{"model": PATH}`) reload the model without dropping a request
(`reload.py`). The admin endpoint takes the admin key (`--admin-key-file`), else the API key; a server with
neither refuses it (403): never an open admin endpoint. With an admin key, the API key does not open it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from nertune.errors import RequestError
from nertune.inference.predictor import NerPredictor
from nertune.inference.thresholds import apply_thresholds, parse_thresholds
from nertune.serving.batcher import BatcherClosedError, DynamicBatcher, QueueFullError
from nertune.serving.middleware import API_KEY_ENV, AuthorizeAndMeasure, ServerMetrics, read_api_key, read_key_file
from nertune.serving.reload import ADMIN_BODY_LIMIT, ModelReloader, ReloadError, read_reload_request, resolve_model
from nertune.serving.request import BadPredictRequest, max_body_bytes, read_body, read_predict_request

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1


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
    model_path: str | Path | None = None,
    load: Callable[[str], NerPredictor] | None = None,
    admin_key: str | None = None,
    thresholds: Sequence[str] = (),
) -> Starlette:
    """The Starlette application around one predictor; `app.state.metrics` is its `ServerMetrics`,
    `app.state.reloader` its `ModelReloader`.

    `batcher_thread=True`: the app's lifespan (uvicorn, or `with TestClient(app)`) runs its batcher in a
    thread of its own. False: the caller runs `app.state.batcher.run()` (`run_server` does, in the thread
    that loaded the model); the lifespan's end still closes it.
    `model_path`: what a reload resolves and loads again; `load(path)` loads a predictor (default: like
    `predictor`, on its device). `admin_key` (default: `api_key`) opens `/admin/reload`; neither: 403.
    `thresholds`: `TYPE=SCORE` items, entities scored below them dropped (`inference.thresholds`)."""
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
    admin_key = admin_key or api_key
    if load is None:
        load = functools.partial(
            NerPredictor.from_pretrained, device=str(predictor.device), batch_size=predictor.batch_size
        )
    reloader = ModelReloader(batcher, model_path, load, on_result=metrics.model_changed)
    metrics.generation.set(reloader.current.generation)
    metrics.loaded_at.set(reloader.current.loaded_at)
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
        results = apply_thresholds(await asyncio.wrap_future(future), by_type, reloader.predictor.scheme)
        return JSONResponse(results[0] if parsed.kind == "text" else {"results": results})

    async def demo_page(request: Request) -> Response:
        # One static file shipped as package data: paste text, see the entities (it calls POST /predict).
        return HTMLResponse(resources.files("nertune.serving").joinpath("static/index.html").read_text("utf-8"))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(request: Request) -> Response:
        predictor, serving = reloader.predictor, reloader.current
        return JSONResponse(
            {
                **serving.describe(),
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
                "admin_enabled": admin_key is not None,
            }
        )

    async def admin_reload(request: Request) -> Response:
        try:
            model = read_reload_request(
                await read_body(request, ADMIN_BODY_LIMIT), request.headers.get("content-type", "")
            )
        except BadPredictRequest as e:
            return JSONResponse(e.body(), status_code=e.status)
        try:
            serving = await asyncio.wrap_future(reloader.start(model))
        except ReloadError as e:
            return JSONResponse({"detail": str(e), **reloader.current.describe()}, status_code=e.status)
        return JSONResponse(serving.describe())

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
            Route("/admin/reload", admin_reload, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                AuthorizeAndMeasure,
                metrics=metrics,
                expected_key=expected_key,
                admin_key=admin_key.encode("utf-8") if admin_key else None,
            )
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.batcher = batcher
    app.state.reloader = reloader
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
    admin_key_file: str | Path | None = None,
    thresholds: Sequence[str] = (),
) -> None:
    """Load the model (errors surface here, before listening), then serve until SIGTERM/SIGINT, which
    finish the requests in flight and return normally; SIGHUP reloads `model_dir` (resolved again).

    uvicorn runs in a thread; the model runs in this one, where it was loaded (see `DynamicBatcher.run`)."""
    import uvicorn

    api_key = read_api_key(api_key_file)
    admin_key = read_key_file(admin_key_file, "admin key") if admin_key_file is not None else None
    load = functools.partial(NerPredictor.from_pretrained, device=device, batch_size=batch_size, precision=precision)
    predictor = load(resolve_model(model_dir))
    app = create_app(
        predictor,
        max_batch=max_batch,
        max_chars=max_chars,
        max_batch_sentences=max_batch_sentences,
        max_wait_ms=max_wait_ms,
        max_queue_sentences=max_queue_sentences,
        api_key=api_key,
        batcher_thread=False,
        model_path=model_dir,
        load=load,
        admin_key=admin_key,
        thresholds=thresholds,
    )
    if api_key is None:
        logger.info("no API key (--api-key-file or $%s): every endpoint is open", API_KEY_ENV)
    if api_key is None and admin_key is None:
        logger.info("no API key nor --admin-key-file: POST /admin/reload is off (403); SIGHUP reloads")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=access_log))

    def stop(signum: int, frame: object) -> None:
        # uvicorn's own handlers: stop accepting and finish the requests in flight; a second signal forces it.
        logger.info("stopped by %s", signal.Signals(signum).name)
        server.force_exit = server.should_exit
        server.should_exit = True

    def reload(signum: int, frame: object) -> None:
        # The handler runs in the model thread: load elsewhere (errors are logged and counted there).
        logger.info("SIGHUP: reloading %s", model_dir)
        app.state.reloader.start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
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
