"""Serving throughput against the model's own: `bench_serving` starts the real server (`nertune serve` in a
process of its own, on loopback), lets many concurrent clients each send ONE sentence per request, and compares
its sentences/s with the same predictor's offline batched throughput on the same sentences
(`serving_efficiency`, the share of the model's throughput that serving keeps).

The clients are a minimal HTTP/1.1 keep-alive load generator (`HttpConnection`, in the spirit of `wrk`): each
request is one `send` of bytes built beforehand and the answer is read by its Content-Length, so the
measurement's own CPU stays small next to the server's on a machine whose cores they share. httpx is not used
here: 32 httpx clients take far more CPU per request than this, and could not keep the server busy (README).
Every answer is still checked: status 200 and a JSON body with `entities`.
"""

from __future__ import annotations

import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from nertune.inference.predictor import NerPredictor

logger = logging.getLogger(__name__)

# Serving rounds of a measurement, each between two offline runs; the median round is the result. Single rounds
# on a shared CPU spread widely (README, "Measured"): a median of few would not tell a target from a near miss.
SERVING_ROUNDS = 9


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:`port` (no chunked bodies: the server sends
    Content-Length). `request` returns (status, body)."""

    def __init__(self, port: int, timeout: float = 120) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # One send per request: without NODELAY a second small write would wait for the peer's delayed ACK.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    @staticmethod
    def encode(method: str, path: str, payload: Any = None) -> bytes:
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        if payload is not None:
            head += "Content-Type: application/json\r\n"
        return (head + "\r\n").encode("ascii") + body

    def request(self, raw: bytes) -> tuple[int, bytes]:
        self._socket.sendall(raw)
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return status, body

    def _receive(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def close(self) -> None:
        self._socket.close()


class ServerProcess:
    """`nertune serve MODEL_DIR --port P [options]` as a subprocess on a free loopback port (a context
    manager that returns once `/health` answers); its output goes to `log_path` (default: a temporary file),
    whose end is shown when it fails to start. `env`: the subprocess's environment (default: this one's)."""

    def __init__(
        self,
        model_dir: str | Path,
        options: Sequence[str] = (),
        startup_timeout_s: float = 300,
        log_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [
            sys.executable,
            "-m",
            "nertune.cli",
            "serve",
            str(model_dir),
            "--port",
            str(self.port),
            *options,
        ]
        self._startup_timeout_s = startup_timeout_s
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one would block it.
        self._log = open(log_path, "w+") if log_path is not None else tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._env = dict(env) if env is not None else None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        self._process = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT, env=self._env)
        deadline = time.monotonic() + self._startup_timeout_s
        health = HttpConnection.encode("GET", "/health")
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the benchmark server exited with {self._process.returncode}:\n{self.log()}")
            try:
                connection = HttpConnection(self.port, timeout=5)
                try:
                    if connection.request(health)[0] == 200:
                        return self
                finally:
                    connection.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the benchmark server did not answer within {self._startup_timeout_s} s")
            time.sleep(0.2)

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()[-3000:]

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


def _batch_totals(port: int) -> tuple[float, float]:
    """(model calls, sentences) so far, from the server's Prometheus batch-size histogram."""
    connection = HttpConnection(port)
    try:
        status, body = connection.request(HttpConnection.encode("GET", "/metrics"))
    finally:
        connection.close()
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}: {body[:200]!r}")
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode("utf-8"))
        if family.name == "nertune_batch_sentences"
        for sample in family.samples
    }
    return samples.get("nertune_batch_sentences_count", 0.0), samples.get("nertune_batch_sentences_sum", 0.0)


def bench_serving(
    model_dir: str | Path,
    sentences: Sequence[str],
    clients: int = 32,
    requests_per_client: int = 30,
    max_batch_sentences: int = 64,
    max_wait_ms: float = 2.0,
    batch_size: int = 32,
    device: str | None = None,
    precision: str = "auto",
    single_client_requests: int = 20,
    rounds: int = SERVING_ROUNDS,
) -> dict[str, Any]:
    """Serving vs offline sentences/s of one model on the same sentences (texts, one per request).

    `clients` threads each send `requests_per_client` single-sentence requests (sentences taken in turn, repeated if
    too few), all at once, each over its own keep-alive connection; `rounds` times, each between two offline runs
    (`predict_texts` on all of them in batches of `batch_size`), whose mean is the round's reference. Returns
    medians over the rounds: `serving_sentences_per_second`, `offline_sentences_per_second`, `serving_efficiency`
    (per round: served / reference; all of them in `serving_efficiency_rounds`, every offline run in
    `offline_runs`); `latency_p50_ms`/`latency_p95_ms` under load (all rounds), `single_client_latency_ms` (median
    of sequential requests on an idle server), `mean_batch_sentences` (from the server's /metrics), `errors`
    (non-200 answers, bodies without entities, failed connections) and the settings.
    """
    if not sentences:
        raise ValueError("bench_serving needs at least one sentence")
    if min(clients, requests_per_client, single_client_requests, rounds) < 1:
        raise ValueError(
            f"clients, requests_per_client, single_client_requests and rounds must be at least 1, got "
            f"{clients}, {requests_per_client}, {single_client_requests} and {rounds}"
        )
    import starlette  # noqa: F401 - the server needs the `serve` extra: fail here, not in its subprocess

    predictor = NerPredictor.from_pretrained(model_dir, device=device, batch_size=batch_size, precision=precision)
    total = clients * requests_per_client
    texts = [sentences[i % len(sentences)] for i in range(total)]
    requests = [HttpConnection.encode("POST", "/predict", {"text": text}) for text in texts]

    def offline_rate() -> float:
        started = time.perf_counter()
        predictor.predict_texts(texts)
        return total / (time.perf_counter() - started)

    predictor.predict_texts(texts[:batch_size])  # warm-up: first calls allocate

    options = [
        f"--rows-per-pass={batch_size}",
        f"--precision={precision}",
        f"--max-sentences-per-call={max_batch_sentences}",
        f"--max-wait-ms={max_wait_ms}",
        f"--max-queue-sentences={max(1024, total)}",
        *([f"--device={device}"] if device else []),
    ]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"{status} {body[:200]!r}"
        return None if "entities" in json.loads(body) else f"no entities in {body[:200]!r}"

    with ServerProcess(model_dir, options) as server:
        single: list[float] = []
        connection = HttpConnection(server.port)
        try:
            for i in range(single_client_requests + 1):
                request_started = time.perf_counter()
                failed = check(*connection.request(requests[i % total]))
                if i:  # the first request warms the server's path up
                    single.append(time.perf_counter() - request_started)
                if failed:
                    errors.append(f"single client: {failed}")
        finally:
            connection.close()

        def client(k: int) -> None:
            try:
                own = HttpConnection(server.port)
            except OSError as e:
                with lock:
                    errors.append(f"client {k}: {e!r}")
                return
            try:
                for i in range(requests_per_client):
                    request_started = time.perf_counter()
                    try:
                        failed = check(*own.request(requests[k * requests_per_client + i]))
                    except (OSError, ValueError) as e:
                        failed = repr(e)
                    with lock:
                        latencies.append(time.perf_counter() - request_started)
                        if failed:
                            errors.append(f"client {k} request {i}: {failed}")
                    if failed:
                        return
            finally:
                own.close()

        def serve_once() -> float:
            threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return total / (time.perf_counter() - started)

        # Offline runs and serving rounds alternate (the server idles while the predictor runs here). The machine's
        # speed drifts, so a round's reference is the mean of the offline runs just before and after it: the
        # better of the two would be biased upwards by their noise, against serving.
        calls_before, sentences_before = _batch_totals(server.port)
        offline_runs = [offline_rate()]
        serving_runs = []
        for _ in range(rounds):
            serving_runs.append(serve_once())
            offline_runs.append(offline_rate())
        calls, batched_sentences = (
            after - before for after, before in zip(_batch_totals(server.port), (calls_before, sentences_before))
        )
        if errors:
            logger.warning("server log:\n%s", server.log())
    references = [(before + after) / 2 for before, after in zip(offline_runs, offline_runs[1:])]
    efficiencies = [served / reference for served, reference in zip(serving_runs, references)]
    serving_rate, offline = statistics.median(serving_runs), statistics.median(references)
    result = {
        "serving_sentences_per_second": serving_rate,
        "offline_sentences_per_second": offline,
        "serving_efficiency": statistics.median(efficiencies),
        "serving_efficiency_rounds": efficiencies,
        "offline_runs": offline_runs,
        "latency_p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "latency_p95_ms": 1000 * _percentile(latencies, 0.95) if latencies else float("nan"),
        "single_client_latency_ms": 1000 * statistics.median(single),
        "mean_batch_sentences": batched_sentences / calls if calls else 0.0,
        "errors": len(errors),
        "clients": clients,
        "requests": total,
        "rounds": rounds,
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
