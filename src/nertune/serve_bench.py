"""Serving throughput against the model's own: `bench_serving` runs the real server (uvicorn on loopback,
in a thread of this process, around the same predictor), many concurrent clients each sending ONE sentence
per request, and compares its sentences/s with the predictor's offline batched throughput on the same
sentences (`serving_efficiency`, the share of the model's throughput that serving keeps).
"""

from __future__ import annotations

import logging
import socket
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .predictor import NerPredictor

logger = logging.getLogger(__name__)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _batch_totals(app) -> tuple[float, float]:
    """(model calls, sentences) so far, from the app's batch-size histogram."""
    samples = app.state.metrics.batch_sentences.collect()[0].samples
    return (
        next(s.value for s in samples if s.name.endswith("_count")),
        next(s.value for s in samples if s.name.endswith("_sum")),
    )


class _LoopbackServer:
    """uvicorn serving `app` on a free 127.0.0.1 port in a background thread (a context manager)."""

    def __init__(self, app) -> None:
        import uvicorn

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        # Access logs would cost the server time the measurement should not count.
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> _LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)
        self._socket.close()


def bench_serving(
    model_dir: str | Path,
    sentences: Sequence[str],
    clients: int = 32,
    requests_per_client: int = 8,
    max_batch_sentences: int = 64,
    max_wait_ms: float = 5.0,
    batch_size: int = 8,
    device: str | None = None,
    precision: str = "auto",
    single_client_requests: int = 20,
) -> dict[str, Any]:
    """Serving vs offline sentences/s of one model on the same sentences (texts, one per request).

    `clients` threads each send `requests_per_client` single-sentence requests (sentences taken in turn,
    repeated if too few), all at once. Returns `serving_sentences_per_second`,
    `offline_sentences_per_second` (`predict_texts` on all of them in batches of `batch_size`, the better
    of a run before and one after serving),
    `serving_efficiency` (their ratio), `latency_p50_ms`/`latency_p95_ms` under load,
    `single_client_latency_ms` (median of sequential requests on an idle server), `errors` (non-200 or
    failed requests) and the settings.
    """
    import httpx

    from .serve import create_app

    if not sentences:
        raise ValueError("bench_serving needs at least one sentence")
    if clients < 1 or requests_per_client < 1 or single_client_requests < 1:
        raise ValueError(
            f"clients, requests_per_client and single_client_requests must be at least 1, got "
            f"{clients}, {requests_per_client} and {single_client_requests}"
        )
    predictor = NerPredictor.from_pretrained(model_dir, device=device, batch_size=batch_size, precision=precision)
    total = clients * requests_per_client
    texts = [sentences[i % len(sentences)] for i in range(total)]

    def offline_rate() -> float:
        started = time.perf_counter()
        predictor.predict_texts(texts)
        return total / (time.perf_counter() - started)

    predictor.predict_texts(texts[:batch_size])  # warm-up: first calls allocate
    offline_before = offline_rate()

    app = create_app(
        predictor,
        max_batch_sentences=max_batch_sentences,
        max_wait_ms=max_wait_ms,
        max_queue_sentences=max(1024, total),
    )
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    with _LoopbackServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        single: list[float] = []
        for i in range(single_client_requests + 1):
            request_started = time.perf_counter()
            response = http.post("/predict", json={"text": texts[i % total]})
            if i:  # the first request warms the server's path up
                single.append(time.perf_counter() - request_started)
            if response.status_code != 200:
                errors.append(f"single client: {response.status_code} {response.text[:200]}")

        def client(k: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as own:
                for i in range(requests_per_client):
                    text = texts[k * requests_per_client + i]
                    request_started = time.perf_counter()
                    try:
                        response = own.post("/predict", json={"text": text})
                        failed = (
                            None if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
                        )
                    except httpx.HTTPError as e:
                        failed = repr(e)
                    with lock:
                        latencies.append(time.perf_counter() - request_started)
                        if failed:
                            errors.append(f"client {k} request {i}: {failed}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        calls_before, sentences_before = _batch_totals(app)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        serving_rate = total / (time.perf_counter() - started)
        calls, batched_sentences = (
            after - before for after, before in zip(_batch_totals(app), (calls_before, sentences_before))
        )
    # Measured before and after serving, the better one counts: a busy machine must not flatter serving.
    offline = max(offline_before, offline_rate())
    result = {
        "serving_sentences_per_second": serving_rate,
        "offline_sentences_per_second": offline,
        "serving_efficiency": serving_rate / offline,
        "latency_p50_ms": 1000 * statistics.median(latencies),
        "latency_p95_ms": 1000 * _percentile(latencies, 0.95),
        "single_client_latency_ms": 1000 * statistics.median(single),
        "mean_batch_sentences": batched_sentences / calls if calls else 0.0,
        "errors": len(errors),
        "clients": clients,
        "requests": total,
        "max_batch_sentences": max_batch_sentences,
        "max_wait_ms": max_wait_ms,
        "batch_size": batch_size,
        "device": str(predictor.device),
    }
    for error in errors[:5]:
        logger.warning("serving benchmark error: %s", error)
    logger.info(
        "serving: %.1f sentences/s vs %.1f offline (%.2f), p50 %.0f ms, p95 %.0f ms, %d errors",
        serving_rate,
        offline,
        result["serving_efficiency"],
        result["latency_p50_ms"],
        result["latency_p95_ms"],
        len(errors),
    )
    return result
