"""Hot swap of the served model: SIGHUP and `POST /admin/reload` on a real `nertune serve`, under load.

Two tiny models with disjoint entity types (so every answer says which one gave it); `current` is a symlink
swapped as `nertune retrain` promotes (`retrain.promote`)."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import weakref
from pathlib import Path

import pytest

from .helpers import random_head_model, running_server, scrape, server_process

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

PROBE = "john lives in paris with mary and bob ."
OLD_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
NEW_LABELS = ["O", "B-ANIMAL", "I-ANIMAL", "B-FOOD", "I-FOOD"]
CLIENTS = 6
RELOADS = ("nertune_model_reloads_total", (("result", "ok"),)), ("nertune_model_reloads_total", (("result", "failed"),))


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir) -> dict:
    """Two model dirs, the tags each gives PROBE (they differ), and a broken one (its weights cut short)."""
    from nertune.inference.predictor import NerPredictor

    root = tmp_path_factory.mktemp("hot-swap").resolve()
    old = random_head_model(root / "old", tiny_model_dir, OLD_LABELS, seed=0)
    new = random_head_model(root / "new", tiny_model_dir, NEW_LABELS, seed=1)
    broken = Path(shutil.copytree(new, root / "broken"))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    tags = {
        name: NerPredictor.from_pretrained(path, device="cpu").predict([PROBE])[0]["tags"]
        for name, path in (("old", old), ("new", new))
    }
    assert tags["old"] != tags["new"] and set(tags["new"]) - {"O"}, tags
    return {"old": old, "new": new, "broken": broken, "tags": tags}


def point_current(root: Path, target: Path) -> Path:
    """`root/current` -> `target`, replaced atomically as `nertune retrain` promotes."""
    from nertune.training.retrain import promote

    return promote(target, root)


class Clients:
    """CLIENTS threads posting PROBE back to back until `stop` (at most 600 requests or 120 s each):
    `answers` holds (sent at, status, tags or the body)."""

    def __init__(self, url: str, headers: dict | None = None) -> None:
        self.url, self.headers = url, headers or {}
        self.answers: list[tuple[float, int, object]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]

    def _client(self) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=60, headers=self.headers) as client:
            for _ in range(600):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                response = client.post(f"{self.url}/predict", json={"text": PROBE})
                body = response.json()["tags"] if response.status_code == 200 else response.text
                with self._lock:
                    self.answers.append((sent, response.status_code, body))

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.answers) < count:
            assert time.monotonic() < deadline, f"only {len(self.answers)} answers in 60 s"
            time.sleep(0.02)

    def check(self, tags: dict, swapped_at: float) -> None:
        """Every request answered 200 by one of the models: the old one before the swap (some), the new one
        for every request sent after it took over (some)."""
        assert all(status == 200 for _, status, _ in self.answers), [a for a in self.answers if a[1] != 200][:3]
        assert all(body in (tags["old"], tags["new"]) for _, _, body in self.answers)
        after = [body for sent, _, body in self.answers if sent > swapped_at]
        assert after and all(body == tags["new"] for body in after)
        assert any(body == tags["old"] for _, _, body in self.answers)


def wait_for_metric(url: str, key: tuple, value: float, **kwargs) -> dict:
    deadline = time.monotonic() + 60
    while (metrics := scrape(url, **kwargs)).get(key, 0.0) < value:
        assert time.monotonic() < deadline, f"{key} never reached {value}: {metrics.get(key)}"
        time.sleep(0.05)
    return metrics


def test_sighup_swaps_current_under_load_and_a_failed_reload_keeps_serving(models, tmp_path):
    root = tmp_path.resolve() / "runs"
    root.mkdir()
    current = point_current(root, models["old"])
    log = tmp_path / "server.log"
    with running_server(current, log, "--max-wait-ms", "5") as url:
        info = httpx.get(f"{url}/info").json()
        assert (info["model"], info["model_path"], info["generation"]) == ("old", str(models["old"]), 1)
        assert info["admin_enabled"] is False
        with Clients(url) as clients:
            clients.wait_for(30)
            point_current(root, models["new"])
            server_process(url).send_signal(signal.SIGHUP)
            metrics = wait_for_metric(url, RELOADS[0], 1)
            swapped_at = time.monotonic()  # the new model took over before the counter moved
            clients.wait_for(len(clients.answers) + 60)
        clients.check(models["tags"], swapped_at)
        info = httpx.get(f"{url}/info").json()
        assert (info["model"], info["model_path"], info["generation"]) == ("new", str(models["new"]), 2)
        assert info["labels"] == NEW_LABELS
        assert metrics[("nertune_model_generation", ())] == 2 and metrics[RELOADS[1]] == 0

        # A reload that fails (the link points nowhere, then at a broken model) keeps the new model serving.
        for failures, target in ((1, tmp_path / "gone"), (2, models["broken"])):
            os.unlink(current)
            current.symlink_to(target)
            server_process(url).send_signal(signal.SIGHUP)
            metrics = wait_for_metric(url, RELOADS[1], failures)
            assert metrics[RELOADS[0]] == 1 and metrics[("nertune_model_generation", ())] == 2
            assert httpx.post(f"{url}/predict", json={"text": PROBE}).json()["tags"] == models["tags"]["new"]
        assert httpx.get(f"{url}/info").json()["generation"] == 2

        # No key at all: the admin endpoint is refused, whatever is sent.
        for headers in ({}, {"X-API-Key": "anything"}):
            response = httpx.post(f"{url}/admin/reload", headers=headers)
            assert response.status_code == 403 and "--admin-key-file" in response.json()["detail"], response.text
    text = log.read_text()
    failed = [line for line in text.splitlines() if "reload of " in line and " failed: " in line]
    assert len(failed) == 2, text
    assert f"model directory not found: {tmp_path / 'gone'}" in failed[0] and "still serving" in failed[0]
    assert "broken" in failed[1] and "(generation 2)" in failed[1]


def test_admin_reload_under_load_needs_the_api_key(models, tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    key = {"X-API-Key": "s3cret"}
    with running_server(models["old"], tmp_path / "server.log", "--api-key-file", str(tmp_path / "key")) as url:
        admin = f"{url}/admin/reload"
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer s3cre"}):
            assert httpx.post(admin, json={"model": str(models["new"])}, headers=headers).status_code == 401
        assert httpx.get(f"{url}/info", headers=key).json()["generation"] == 1  # nothing was reloaded
        for body, status in ((b"{not json", 400), (b'{"model": 1}', 422), (b'{"modle": "x"}', 422)):
            response = httpx.post(admin, content=body, headers={**key, "content-type": "application/json"})
            assert response.status_code == status, response.text
        with Clients(url, key) as clients:
            clients.wait_for(30)
            response = httpx.post(admin, json={"model": str(models["new"])}, headers=key, timeout=120)
            swapped_at = time.monotonic()
            clients.wait_for(len(clients.answers) + 60)
        assert response.status_code == 200, response.text
        assert (response.json()["model_path"], response.json()["generation"]) == (str(models["new"]), 2)
        clients.check(models["tags"], swapped_at)

        # A failed reload answers 422 with the reason; the new model keeps serving.
        for target in (tmp_path / "gone", models["broken"]):
            response = httpx.post(admin, json={"model": str(target)}, headers=key, timeout=120)
            assert response.status_code == 422 and f"reload of {target} failed" in response.json()["detail"]
            assert (response.json()["generation"], response.json()["model_path"]) == (2, str(models["new"]))
        # Without a body: the model serving (now `new`), loaded again even though it is the same dir.
        response = httpx.post(admin, headers=key, timeout=120)
        assert response.status_code == 200 and response.json()["generation"] == 3, response.text
        assert httpx.post(f"{url}/predict", json={"text": PROBE}, headers=key).json()["tags"] == models["tags"]["new"]
        metrics = scrape(url, headers=key)
        assert (metrics[RELOADS[0]], metrics[RELOADS[1]], metrics[("nertune_model_generation", ())]) == (2, 2, 3)
        assert metrics[("nertune_requests_total", (("endpoint", "/admin/reload"), ("status", "401")))] == 3


def test_an_admin_key_without_an_api_key(models, tmp_path):
    (tmp_path / "admin").write_text("adm1n")
    with running_server(models["old"], tmp_path / "server.log", "--admin-key-file", str(tmp_path / "admin")) as url:
        assert httpx.post(f"{url}/predict", json={"text": PROBE}).status_code == 200  # no API key: open
        assert httpx.post(f"{url}/admin/reload").status_code == 401
        response = httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer adm1n"}, timeout=120)
        assert response.status_code == 200 and response.json()["generation"] == 2, response.text
        assert httpx.get(f"{url}/info").json()["admin_enabled"] is True


def test_with_both_keys_only_the_admin_key_opens_admin_and_the_old_model_is_released(models):
    from starlette.testclient import TestClient

    from nertune.inference.predictor import NerPredictor
    from nertune.serving.app import create_app

    predictor = NerPredictor.from_pretrained(models["old"], device="cpu")
    old_model = weakref.ref(predictor.model)
    app = create_app(predictor, api_key="user", admin_key="admin", model_path=models["old"])
    del predictor
    with TestClient(app) as client:
        body = {"model": str(models["new"])}
        assert client.post("/admin/reload", json=body, headers={"X-API-Key": "user"}).status_code == 401
        assert client.get("/info", headers={"X-API-Key": "admin"}).status_code == 401
        response = client.post("/admin/reload", json=body, headers={"X-API-Key": "admin"})
        assert response.status_code == 200 and response.json()["generation"] == 2, response.text
        assert old_model() is None  # released once the new model took over
        answer = client.post("/predict", json={"text": PROBE}, headers={"X-API-Key": "user"}).json()
        assert answer["tags"] == models["tags"]["new"]
