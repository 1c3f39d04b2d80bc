"""`nertune serve`: the real server in a subprocess, called over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from .helpers import running_server

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SRC = Path(__file__).resolve().parents[1] / "src"

MAX_BATCH, MAX_CHARS = 8, 200


@pytest.fixture(scope="module")
def server(trained_model_dir, tmp_path_factory):
    """Base URL of a running `nertune serve` on the trained tiny model; stopped after the module."""
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    with running_server(trained_model_dir, log_path, "--max-batch", str(MAX_BATCH), "--max-chars", str(MAX_CHARS)) as url:
        yield url


def post(url: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/predict", timeout=30, **kwargs)


def test_predict_a_document(server):
    # This model was trained without context (context_size=0): a document is its sentences, one result each.
    sentences = ["john lives in paris .", "", "mary works at nasa ."]
    response = post(server, json={"document": sentences})
    assert response.status_code == 200, response.text
    assert response.json() == post(server, json={"texts": sentences}).json()
    assert [[e["text"] for e in r["entities"]] for r in response.json()["results"]] == [["john", "paris"], [], ["mary", "nasa"]]


def test_health_and_info(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    info = httpx.get(f"{server}/info").json()
    assert info["model"] == "run" and info["labels"][0] == "O" and "B-PER" in info["labels"]
    assert (info["max_batch"], info["max_chars"], info["max_length"], info["device"]) == (MAX_BATCH, MAX_CHARS, 32, "cpu")
    assert info["context_size"] == 0


def test_predict_one_text(server):
    text = "John lives in Paris."
    response = post(server, json={"text": text})
    assert response.status_code == 200
    result = response.json()
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in result["entities"]] == \
        [("PER", "John", 0, 4), ("LOC", "Paris", 14, 19)]
    assert result["words"] == ["John", "lives", "in", "Paris", "."]
    assert result["tags"] == ["B-PER", "O", "O", "B-LOC", "O"]


def test_predict_a_batch(server):
    texts = ["mary works at google in rome today .", "", "carol dave visited the oslo ."]
    response = post(server, json={"texts": texts})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [[(e["type"], e["text"]) for e in r["entities"]] for r in results] == [
        [("PER", "mary"), ("ORG", "google"), ("LOC", "rome")], [], [("PER", "carol dave"), ("LOC", "oslo")]]
    assert post(server, json={"texts": []}).json() == {"results": []}


@pytest.mark.parametrize("kwargs, status, message", [
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
    ({"content": b'{"text": "john"}', "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415,
     "Content-Type: application/json"),
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
    ({"json": {"texts": ["a"] * (MAX_BATCH + 1)}}, 413, f"{MAX_BATCH + 1} texts in one request; the limit is {MAX_BATCH}"),
    ({"json": {"texts": ["ok", "a" * (MAX_CHARS + 1)]}}, 413, f"texts[1] has {MAX_CHARS + 1} characters; the limit is {MAX_CHARS}"),
    ({"json": {"text": "a" * (MAX_CHARS + 1)}}, 413, f"text has {MAX_CHARS + 1} characters"),
    ({"content": b'{"text": "john \\ud800"}', "headers": {"content-type": "application/json"}}, 422, "lone surrogate"),
])
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


def test_concurrent_clients(server):
    """32 clients x 20 requests at once: every answer is right, none is an error."""
    texts = ["john lives in paris .", "mary works at nasa in berlin today .", "alice bob visited the rome ."]
    expected = [post(server, json={"text": t}).json() for t in texts]
    failures: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=server, timeout=60) as http:
            for i in range(20):
                j = (k + i) % len(texts)
                try:
                    if i % 2:
                        response = http.post("/predict", json={"texts": [texts[j], texts[j - 1]]})
                        results = response.json()["results"] if response.status_code == 200 else []
                        ok = len(results) == 2 and same(results[0], expected[j]) and same(results[1], expected[j - 1])
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


def test_missing_model_dir_is_one_error_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "nertune.cli", "serve", str(tmp_path / "nope"), "--port", "0"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert f"error: model directory not found: {tmp_path / 'nope'}" in result.stderr
    assert "Traceback" not in result.stderr
