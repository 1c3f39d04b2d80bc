"""`nertune serve`: the real server in a subprocess, called over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .helpers import running_server, scrape, server_process

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client.parser")

SRC = Path(__file__).resolve().parents[1] / "src"

MAX_BATCH, MAX_CHARS = 8, 200


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve") / "server.log"


@pytest.fixture(scope="module")
def server(trained_model_dir, server_log):
    """Base URL of a running `nertune serve` on the trained tiny model; stopped after the module."""
    with running_server(
        trained_model_dir, server_log, "--max-texts-per-request", str(MAX_BATCH), "--max-chars", str(MAX_CHARS)
    ) as url:
        yield url


def post(url: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/predict", timeout=30, **kwargs)


def test_predict_a_document(server):
    # This model was trained without context (context_size=0): a document is its sentences, one result each.
    sentences = ["john lives in paris .", "", "mary works at nasa ."]
    response = post(server, json={"document": sentences})
    assert response.status_code == 200, response.text
    assert response.json() == post(server, json={"texts": sentences}).json()
    assert [[e["text"] for e in r["entities"]] for r in response.json()["results"]] == [
        ["john", "paris"],
        [],
        ["mary", "nasa"],
    ]


def test_health_and_info(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    info = httpx.get(f"{server}/info").json()
    assert info["model"] == "run" and info["labels"][0] == "O" and "B-PER" in info["labels"]
    assert (info["max_batch"], info["max_chars"], info["max_length"], info["device"]) == (
        MAX_BATCH,
        MAX_CHARS,
        32,
        "cpu",
    )
    assert info["context_size"] == 0


def test_predict_one_text(server):
    text = "John lives in Paris."
    response = post(server, json={"text": text})
    assert response.status_code == 200
    result = response.json()
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in result["entities"]] == [
        ("PER", "John", 0, 4),
        ("LOC", "Paris", 14, 19),
    ]
    assert result["words"] == ["John", "lives", "in", "Paris", "."]
    assert result["tags"] == ["B-PER", "O", "O", "B-LOC", "O"]


def test_predict_a_batch(server):
    texts = ["mary works at google in rome today .", "", "carol dave visited the oslo ."]
    response = post(server, json={"texts": texts})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [[(e["type"], e["text"]) for e in r["entities"]] for r in results] == [
        [("PER", "mary"), ("ORG", "google"), ("LOC", "rome")],
        [],
        [("PER", "carol dave"), ("LOC", "oslo")],
    ]
    assert post(server, json={"texts": []}).json() == {"results": []}


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
        (
            {"content": b'{"text": "john"}', "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "Content-Type: application/json",
        ),
        ({"content": b'{"text": "john"}'}, 415, "without a Content-Type"),
        ({"json": {}}, 422, "exactly one of"),
        ({"json": {"text": "a", "texts": ["b"]}}, 422, "exactly one of"),
        ({"json": {"text": None}}, 422, "exactly one of"),
        ({"json": {"text": "a", "document": ["b"]}}, 422, "exactly one of"),
        ({"json": {"document": "john lives in paris"}}, 422, "document: Input should be a valid list"),
        ({"json": {"document": ["a"] * (MAX_BATCH + 1)}}, 413, f"{MAX_BATCH + 1} sentences in one request"),
        ({"json": {"document": ["ok", "a" * (MAX_CHARS + 1)]}}, 413, f"document[1] has {MAX_CHARS + 1} characters"),
        ({"json": {"text": 3}}, 422, "text: Input should be a valid string"),
        ({"json": {"texts": "john"}}, 422, "texts: Input should be a valid list"),
        ({"json": {"texts": ["ok", 5]}}, 422, "texts.1: Input should be a valid string"),
        ({"json": {"txt": "john"}}, 422, "txt: Extra inputs are not permitted"),
        ({"json": ["john"]}, 422, "invalid request"),
        (
            {"json": {"texts": ["a"] * (MAX_BATCH + 1)}},
            413,
            f"{MAX_BATCH + 1} texts in one request; the limit is {MAX_BATCH}",
        ),
        (
            {"json": {"texts": ["ok", "a" * (MAX_CHARS + 1)]}},
            413,
            f"texts[1] has {MAX_CHARS + 1} characters; the limit is {MAX_CHARS}",
        ),
        ({"json": {"text": "a" * (MAX_CHARS + 1)}}, 413, f"text has {MAX_CHARS + 1} characters"),
        (
            {"content": b'{"text": "john \\ud800"}', "headers": {"content-type": "application/json"}},
            422,
            "lone surrogate",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx(server, kwargs, status, message):
    response = post(server, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert httpx.get(f"{server}/health").status_code == 200  # still up


def test_limits_are_inclusive(server):
    assert post(server, json={"texts": ["john"] * MAX_BATCH}).status_code == 200
    assert post(server, json={"text": "john " * (MAX_CHARS // 5)}).status_code == 200


def same(a: dict, b: dict) -> bool:
    """Equal results up to float noise in the scores (a text batched with others is padded differently)."""

    def strip(r):
        return {**r, "entities": [{k: v for k, v in e.items() if k != "score"} for e in r["entities"]]}

    scores = [(x["score"], y["score"]) for x, y in zip(a["entities"], b["entities"])]
    return strip(a) == strip(b) and all(abs(x - y) < 1e-4 for x, y in scores)


DISCONNECTS = ("nertune_client_disconnects_total", (("endpoint", "/predict"),))


def predict_requests_ok(metrics: dict) -> float:
    return metrics.get(("nertune_requests_total", (("endpoint", "/predict"), ("status", "200"))), 0.0)


def test_concurrent_clients(server):
    """32 clients x 20 requests at once: every client gets its own answers, in order, equal to one-by-one
    predictions; the requests really share model calls (fewer batches than requests, no sentence lost)."""
    texts = ["john lives in paris .", "mary works at nasa in berlin today .", "alice bob visited the rome ."]
    expected = [post(server, json={"text": t}).json() for t in texts]
    before = scrape(server)
    failures: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=server, timeout=60) as http:
            for i in range(20):
                j = (k + i) % len(texts)
                try:
                    if i % 3 == 1:
                        response = http.post("/predict", json={"texts": [texts[j], texts[j - 1]]})
                        results = response.json()["results"] if response.status_code == 200 else []
                        ok = len(results) == 2 and same(results[0], expected[j]) and same(results[1], expected[j - 1])
                    elif i % 3 == 2:
                        response = http.post("/predict", json={"document": [texts[j - 1], texts[j], texts[j - 2]]})
                        results = response.json()["results"] if response.status_code == 200 else []
                        ok = len(results) == 3 and all(same(r, expected[n]) for r, n in zip(results, (j - 1, j, j - 2)))
                    else:
                        response = http.post("/predict", json={"text": texts[j]})
                        ok = response.status_code == 200 and same(response.json(), expected[j])
                    if not ok:
                        raise AssertionError(f"{response.status_code} {response.text[:200]}")
                except Exception as e:  # noqa: BLE001 - collected and reported below
                    with lock:
                        failures.append(f"client {k} request {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "clients still running after 300 s"
    assert failures == [], failures[:5]

    after = scrape(server)
    requests = predict_requests_ok(after) - predict_requests_ok(before)
    batches = after[("nertune_batch_sentences_count", ())] - before[("nertune_batch_sentences_count", ())]
    sentences = after[("nertune_batch_sentences_sum", ())] - before[("nertune_batch_sentences_sum", ())]
    assert requests == 32 * 20
    assert sentences == 32 * (7 * 1 + 7 * 2 + 6 * 3)  # per client: 7 single texts, 7 pairs, 6 documents of 3
    assert batches < requests / 2, (batches, requests)
    assert after[("nertune_queue_sentences", ())] == 0


def test_unknown_routes_and_methods_answer_json(server):
    assert httpx.get(f"{server}/predict").status_code == 405
    response = httpx.get(f"{server}/nope")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


def read_answer(connection: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one HTTP/1.1 answer with a Content-Length, read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536) or pytest.fail(f"the server closed the connection: {data[:500]!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    (length,) = [int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    while len(body) < length:
        body += connection.recv(65536)
    return head, body


PREDICT_HEAD = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def test_a_chunked_body_over_the_limit_is_413_and_not_buffered(server):
    """A chunked body has no Content-Length to refuse up front: the server stops taking it at the limit
    (what --max-batch texts of --max-chars characters can take) and answers 413 at once, instead of buffering
    the whole body first; the rest is discarded and the connection still works."""
    process = server_process(server)
    rss_before = process.memory_info().rss
    limit = MAX_BATCH * (12 * MAX_CHARS + 8) + 1024
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), timeout=30) as connection:
        connection.sendall(PREDICT_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        while sent < 50 * 2**20 and not select.select([connection], [], [], 0)[0]:
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        head, body = read_answer(connection)
        assert head.startswith(b"HTTP/1.1 413"), head
        assert f"the request body is over {limit} bytes" in json.loads(body)["detail"]
        assert sent < 10 * 2**20  # answered after the first kilobytes (and what the sockets buffer), not 50 MB
        assert process.memory_info().rss - rss_before < 10 * 2**20
        # The end of the body, then another request on the same connection: it is answered.
        connection.sendall(b"0\r\n\r\n" + PREDICT_HEAD + b'Content-Length: 16\r\n\r\n{"text": "john"}')
        head, body = read_answer(connection)
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["words"] == ["john"], head + body
    # A declared Content-Length over the limit is refused before any of the body is read.
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), timeout=30) as connection:
        connection.sendall(PREDICT_HEAD + b"Content-Length: 99999999\r\n\r\n")
        head, body = read_answer(connection)
    assert head.startswith(b"HTTP/1.1 413") and "the request body is over" in json.loads(body)["detail"]


def test_a_client_that_disconnects_mid_body_is_one_log_line_and_a_counter(server, server_log):
    before = scrape(server).get(DISCONNECTS, 0.0)
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), timeout=30) as connection:
        connection.sendall(PREDICT_HEAD + b'Content-Length: 1000\r\n\r\n{"text": "john lives')
        time.sleep(0.2)  # the server has started reading the body
    deadline = time.monotonic() + 30
    while scrape(server).get(DISCONNECTS, 0.0) < before + 1:
        assert time.monotonic() < deadline, "the disconnect was never counted"
        time.sleep(0.05)
    assert post(server, json={"text": "john lives in paris ."}).status_code == 200
    log = server_log.read_text()
    assert log.count("the client disconnected before sending the whole body") == before + 1, log
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log


def test_metrics_and_info_show_batching(server):
    info = httpx.get(f"{server}/info").json()
    assert (info["max_batch_sentences"], info["max_wait_ms"], info["max_queue_sentences"]) == (64, 2.0, 1024)
    assert info["api_key_required"] is False
    post(server, json={"text": "john"})
    post(server, json={"txt": "john"})
    httpx.get(f"{server}/nope")
    metrics = scrape(server)
    assert predict_requests_ok(metrics) >= 1
    assert metrics[("nertune_requests_total", (("endpoint", "/predict"), ("status", "422")))] >= 1
    assert metrics[("nertune_requests_total", (("endpoint", "other"), ("status", "404")))] >= 1
    assert metrics[("nertune_request_duration_seconds_count", (("endpoint", "/predict"),))] >= 2
    assert metrics[("nertune_batch_sentences_bucket", (("le", "+Inf"),))] >= 1


def test_a_full_queue_answers_503_with_retry_after(trained_model_dir, tmp_path):
    # A queue of 4 sentences and a long wait for more: a first request of 4 texts fills it until the wait ends.
    with running_server(
        trained_model_dir,
        tmp_path / "server.log",
        "--max-texts-per-request",
        "4",
        "--max-queue-sentences",
        "4",
        "--max-wait-ms",
        "3000",
    ) as url:
        first: list[httpx.Response] = []
        sender = threading.Thread(target=lambda: first.append(post(url, json={"texts": ["john lives in paris ."] * 4})))
        sender.start()
        deadline = time.monotonic() + 30
        while scrape(url)[("nertune_queue_sentences", ())] < 4:
            assert time.monotonic() < deadline, "the first request never reached the queue"
            time.sleep(0.05)
        refused = post(url, json={"text": "mary works at nasa ."})
        sender.join(timeout=60)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "4 sentences are queued; the limit is 4" in refused.json()["detail"]
        assert first[0].status_code == 200 and len(first[0].json()["results"]) == 4
        assert post(url, json={"text": "mary works at nasa ."}).status_code == 200  # room again
        assert scrape(url)[("nertune_requests_total", (("endpoint", "/predict"), ("status", "503")))] == 1
    assert '"POST /predict HTTP/1.1"' not in (tmp_path / "server.log").read_text()  # no access log by default


def test_api_key(trained_model_dir, tmp_path):
    key_file = tmp_path / "key.txt"
    key_file.write_text("s3cret-key\n")
    log = tmp_path / "server.log"
    with running_server(trained_model_dir, log, "--api-key-file", str(key_file), "--access-log") as url:
        body = {"text": "john lives in paris ."}
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"X-API-Key": "s3cret"},
            {"Authorization": "s3cret-key"},
        ):
            response = post(url, json=body, headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert "API key" in response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{url}/info").status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no key
        for headers in ({"Authorization": "Bearer s3cret-key"}, {"X-API-Key": "s3cret-key"}):
            response = post(url, json=body, headers=headers)
            assert response.status_code == 200 and response.json()["tags"][0] == "B-PER", response.text
        assert httpx.get(f"{url}/info", headers={"X-API-Key": "s3cret-key"}).json()["api_key_required"] is True
        metrics = scrape(url, headers={"X-API-Key": "s3cret-key"})
        assert metrics[("nertune_requests_total", (("endpoint", "/predict"), ("status", "401")))] == 4
    assert log.read_text().count('"POST /predict HTTP/1.1" 401') == 4  # --access-log: a line per request


def test_api_key_from_the_environment(monkeypatch, tmp_path):
    from nertune.serving.app import read_api_key

    monkeypatch.delenv("NERTUNE_API_KEY", raising=False)
    assert read_api_key() is None
    monkeypatch.setenv("NERTUNE_API_KEY", " from-env ")
    assert read_api_key() == "from-env"
    (tmp_path / "key").write_text("from-file")
    assert read_api_key(tmp_path / "key") == "from-file"  # the file wins
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="API key file .*empty is empty"):
        read_api_key(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="API key file not found"):
        read_api_key(tmp_path / "missing")


def test_sigterm_finishes_the_request_in_flight_and_exits_0(trained_model_dir, tmp_path):
    log_path = tmp_path / "server.log"
    with running_server(trained_model_dir, log_path, "--max-wait-ms", "2000") as url:
        process = server_process(url)
        answers: list[httpx.Response] = []
        sender = threading.Thread(target=lambda: answers.append(post(url, json={"text": "john lives in paris ."})))
        sender.start()
        deadline = time.monotonic() + 30
        while scrape(url)[("nertune_queue_sentences", ())] < 1:  # in flight: waiting in the batcher
            assert time.monotonic() < deadline, "the request never reached the queue"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        sender.join(timeout=60)
        assert process.wait(timeout=60) == 0
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["tags"] == ["B-PER", "O", "O", "B-LOC", "O"]
    log = log_path.read_text()
    assert "batcher drained and stopped" in log and "stopped by SIGTERM" in log, log


def test_batches_keep_documents_apart(trained_model_dir):
    """Documents of different requests in one model call are never each other's context."""
    from nertune.inference.predictor import NerPredictor
    from nertune.serving.batcher import DynamicBatcher

    loaded = NerPredictor.from_pretrained(trained_model_dir, device="cpu", precision="fp32")
    # The same model read with 2 sentences of context on each side: context changes every score.
    predictor = NerPredictor(loaded.model, loaded.tokenizer, max_length=32, window_overlap=8, context_size=2)
    predictor.head.temperature = None  # raw scores: the tiny model, perfect on validation, is calibrated to 1.0
    first = ["john lives in paris .", "mary works at nasa in berlin today ."]
    second = ["alice bob visited the rome .", "carol lives in oslo ."]
    alone = [predictor.predict_document(first), predictor.predict_document(second), predictor.predict_texts(second)]
    mixed = predictor.predict_document(first + second)
    assert any(abs(a["entities"][0]["score"] - b["entities"][0]["score"]) > 1e-3 for a, b in zip(alone[0], mixed[:2]))

    batch_sizes: list[int] = []
    batcher = DynamicBatcher(predictor, max_batch_sentences=64, max_wait_ms=2000, on_batch=batch_sizes.append)
    batcher.start()
    futures = [batcher.submit(first, document=True), batcher.submit(second, document=True), batcher.submit(second)]
    batcher.close()  # drains: the queued requests are answered before the worker stops
    assert batch_sizes == [6]
    for future, expected in zip(futures, alone):
        got = future.result(timeout=0)
        assert len(got) == len(expected) and all(same(g, e) for g, e in zip(got, expected))


def test_a_cancelled_request_is_skipped(trained_model_dir):
    """A client that goes away cancels its request; the worker skips it and keeps serving the others."""
    from nertune.inference.predictor import NerPredictor
    from nertune.serving.batcher import DynamicBatcher

    predictor = NerPredictor.from_pretrained(trained_model_dir, device="cpu", precision="fp32")
    batch_sizes: list[int] = []
    batcher = DynamicBatcher(predictor, max_wait_ms=2000, on_batch=batch_sizes.append)
    batcher.start()
    gone = batcher.submit(["john lives in paris ."])
    assert gone.cancel()
    kept = batcher.submit(["mary works at nasa ."])
    batcher.close()
    assert batch_sizes == [1]
    assert kept.result(timeout=0)[0]["tags"][0] == "B-PER"


def test_a_batch_starts_once_the_clients_answered_last_are_back(trained_model_dir):
    """Under steady load the clients just answered come back: waiting out max_wait_ms then only idles the model."""
    from nertune.inference.predictor import NerPredictor
    from nertune.serving.batcher import DynamicBatcher

    predictor = NerPredictor.from_pretrained(trained_model_dir, device="cpu", precision="fp32")
    batch_sizes: list[int] = []
    batcher = DynamicBatcher(predictor, max_batch_sentences=64, max_wait_ms=50, on_batch=batch_sizes.append)
    batcher.start()
    try:
        batcher.submit(["john lives in paris ."] * 3).result(timeout=60)  # a batch of 3, after 50 ms
        batcher.max_wait_s = 30
        started = time.monotonic()
        first = batcher.submit(["mary works at nasa ."])
        time.sleep(0.3)
        assert not first.done()  # 1 of the last batch's 3 sentences: still waiting for the others
        second = batcher.submit(["john lives in paris .", "mary works at nasa ."])
        assert first.result(timeout=60)[0]["tags"][0] == "B-PER" and len(second.result(timeout=60)) == 2
        assert time.monotonic() - started < 20  # far sooner than max_wait_ms
        assert batch_sizes == [3, 3]
    finally:
        batcher.close()


def test_the_batcher_can_work_in_the_calling_thread(trained_model_dir):
    """`nertune serve` runs the model in the thread that loaded it (`DynamicBatcher.run`): requests from
    other threads are answered there, `close` drains and ends it, and so does `keep_running` turning false."""
    from nertune.inference.predictor import NerPredictor
    from nertune.serving.batcher import BatcherClosedError, DynamicBatcher

    predictor = NerPredictor.from_pretrained(trained_model_dir, device="cpu", precision="fp32")
    model_threads: list[str] = []
    batcher = DynamicBatcher(
        predictor, max_wait_ms=50, on_batch=lambda n: model_threads.append(threading.current_thread().name)
    )
    answers = []

    def client() -> None:
        while True:
            try:
                future = batcher.submit(["john lives in paris ."])
                break
            except BatcherClosedError:  # `run` has not started accepting yet
                time.sleep(0.01)
        answers.append(future.result(timeout=60))
        batcher.close()

    sender = threading.Thread(target=client, name="client")
    sender.start()
    batcher.run()
    sender.join()
    assert model_threads == [threading.current_thread().name]
    assert answers[0][0]["tags"] == ["B-PER", "O", "O", "B-LOC", "O"]

    stopped = DynamicBatcher(predictor)
    started = time.monotonic()
    stopped.run(keep_running=lambda: time.monotonic() - started < 0.3)  # e.g. the HTTP thread died
    with pytest.raises(BatcherClosedError, match="not accepting"):
        stopped.submit(["john lives in paris ."])


def test_a_taken_port_is_one_error_line(trained_model_dir):
    import socket

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "nertune.cli", "serve", str(trained_model_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert result.returncode == 2, result.stderr
    assert f"error: could not listen on 127.0.0.1:{port}" in result.stderr


def test_missing_model_dir_is_one_error_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "nertune.cli", "serve", str(tmp_path / "nope"), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"error: model directory not found: {tmp_path / 'nope'}" in result.stderr
    assert "Traceback" not in result.stderr
