"""One real turn of the data loop, through the CLI, on the tiny BERT: a weak model (v1) serves from `runs/current`;
`nertune select` picks the pool sentences it is least sure of, `nertune export-annotations` turns them into Label
Studio tasks, an annotator (this test: it knows the pool's gold labels) answers them, `nertune retrain` trains
v2 on the export and promotes it (`runs/current -> v2`), and SIGHUP swaps it into the running server under load
without a failed request."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from nertune.cli import main
from nertune.schemes import tags_to_spans

from .helpers import make_sentences, running_server, scrape, server_process, tiny_overrides, write_corpus

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow

FAST = ("eval_strategy=no", "save_strategy=no")
COUNT = 30  # sentences selected for annotation
CLIENTS = 4
RELOADED = ("nertune_model_reloads_total", (("result", "ok"),))
FAILED = ("nertune_model_reloads_total", (("result", "failed"),))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_pool(path: Path, n: int, seed: int) -> dict[str, tuple[list[str], list[str]]]:
    """An unlabelled JSONL pool of distinct synthetic sentences, each with an `id` and a `document_id`; returns
    the gold labels by id (the annotator's knowledge)."""
    gold, lines = {}, []
    for tokens, tags in make_sentences(n, seed=seed):
        text = " ".join(tokens)
        if any(" ".join(t) == text for t, _ in gold.values()):
            continue
        record_id = f"pool-{len(gold):03d}"
        gold[record_id] = (tokens, tags)
        lines.append(json.dumps({"id": record_id, "document_id": f"doc-{len(gold) // 5}", "text": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return gold


def gold_regions(tokens: list[str], tags: list[str]) -> list[dict]:
    """The gold entities of a sentence as the regions of a Label Studio annotation (character offsets in the
    words joined by single spaces, which is how the pool's text was written)."""
    starts = [sum(len(t) + 1 for t in tokens[:k]) for k in range(len(tokens))]
    text = " ".join(tokens)
    regions = []
    for n, (type_, a, b) in enumerate(tags_to_spans(tags)):
        start, end = starts[a], starts[b - 1] + len(tokens[b - 1])
        value = {"start": start, "end": end, "text": text[start:end], "labels": [type_]}
        regions.append(
            {"value": value, "id": f"gold{n}", "from_name": "label", "to_name": "text", "type": "labels",
             "origin": "manual"}
        )  # fmt: skip
    return regions


def annotate(tasks: list[dict], gold: dict[str, tuple[list[str], list[str]]]) -> list[dict]:
    """The tasks as Label Studio's full JSON export after an annotator labelled each one with its gold entities:
    the task gets Label Studio's id, the pre-annotation stays under `predictions`, the labels go in
    `annotations[].result[]`."""
    exported = []
    for n, task in enumerate(tasks, start=1):
        tokens, tags = gold[task["data"]["record_id"]]
        assert task["data"]["text"] == " ".join(tokens)
        annotation = {
            "id": 1000 + n,
            "completed_by": 1,
            "result": gold_regions(tokens, tags),
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": "2024-05-01T10:00:00.000000Z",
            "updated_at": "2024-05-01T10:00:00.000000Z",
            "lead_time": 4.2,
            "prediction": task["predictions"][0],
            "result_count": 0,
            "task": n,
            "project": 1,
        }
        exported.append({**task, "id": n, "annotations": [annotation], "drafts": [], "meta": {}, "project": 1})
    return exported


class Clients:
    """CLIENTS threads posting `texts` back to back until stopped (at most 400 requests or 120 s each):
    `answers` holds (sent at, status, tags of each text or the body)."""

    def __init__(self, url: str, texts: list[str]) -> None:
        self.url, self.texts = url, texts
        self.answers: list[tuple[float, int, object]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]

    def _client(self) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=60) as client:
            for _ in range(400):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                try:
                    response = client.post(f"{self.url}/predict", json={"texts": self.texts})
                    status = response.status_code
                    body = [r["tags"] for r in response.json()["results"]] if status == 200 else response.text
                except httpx.HTTPError as e:  # a dropped connection is a failed request too
                    status, body = 0, repr(e)
                with self._lock:
                    self.answers.append((sent, status, body))

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in self._threads)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.answers) < count:
            assert time.monotonic() < deadline, f"only {len(self.answers)} answers in 60 s"
            time.sleep(0.02)


def wait_for_metric(url: str, key: tuple, value: float) -> dict:
    deadline = time.monotonic() + 60
    while (metrics := scrape(url)).get(key, 0.0) < value:
        assert time.monotonic() < deadline, f"{key} never reached {value}: {metrics.get(key)}"
        time.sleep(0.05)
    return metrics


def test_select_annotate_retrain_promote_and_hot_swap(tiny_model_dir, tmp_path):
    from nertune.data.json_records import read_json
    from nertune.inference.predictor import NerPredictor
    from nertune.training.retrain import PROMOTED_LINK, promote

    root = tmp_path.resolve()
    runs = root / "runs"
    (root / "data").mkdir()
    corpus = write_corpus(root / "data", (40, 40, 60))
    (root / "recipe.yaml").write_text("report_to: none\n")  # the command line sets the rest

    # 1. v1: a few steps on a small labelled set (room for the annotations to help), served from runs/current.
    v1, v2 = runs / "v1", runs / "v2"
    overrides = tiny_overrides(tiny_model_dir, corpus, v1, "max_steps=6", *FAST)
    assert main(["train", str(root / "recipe.yaml"), *overrides]) == 0
    current = promote(v1, runs)
    assert current == runs / PROMOTED_LINK and current.is_symlink() and current.resolve() == v1

    (root / "admin.key").write_text("adm1n\n")
    with running_server(
        current, root / "server.log", "--max-wait-ms", "5", "--admin-key-file", str(root / "admin.key")
    ) as url:
        info = httpx.get(f"{url}/info").json()
        assert (info["model"], info["model_path"], info["generation"]) == ("v1", str(v1), 1)

        # 2. select: the COUNT pool sentences v1 is least sure of, with its entities as pre-annotations.
        gold = write_pool(root / "pool.jsonl", 400, seed=21)
        assert len(gold) > 2 * COUNT
        picked = root / "picked.jsonl"
        pool = root / "pool.jsonl"
        assert main(["select", str(current), "--pool", str(pool), "--count", str(COUNT), "--output", str(picked)]) == 0
        chosen = read_jsonl(picked)
        assert len(chosen) == COUNT and [r["rank"] for r in chosen] == list(range(1, COUNT + 1))
        assert len({r["id"] for r in chosen}) == COUNT and {r["id"] for r in chosen} <= set(gold)
        scores = [r["score"] for r in chosen]
        assert scores == sorted(scores, reverse=True)
        scored = read_jsonl(root / "picked.scored.jsonl")
        assert [r["id"] for r in scored] == list(gold)  # every pool record scored, in pool order
        assert min(scores) >= max(r["score"] for r in scored if r["id"] not in {c["id"] for c in chosen})

        # 3. export: one Label Studio task per selected sentence, its ids in `data`, v1's entities as a prediction.
        tasks_path = root / "tasks.json"
        assert main(["export-annotations", str(picked), "--tool", "label-studio", "--output", str(tasks_path)]) == 0
        tasks = json.loads(tasks_path.read_text())
        assert [t["data"]["record_id"] for t in tasks] == [r["id"] for r in chosen]
        assert [t["data"]["document_id"] for t in tasks] == [r["document_id"] for r in chosen]
        assert [len(t["predictions"][0]["result"]) for t in tasks] == [len(r["entities"]) for r in chosen]

        # 4. annotate: the gold entities, as Label Studio exports them; read back, they are the gold tags.
        export = root / "export.json"
        export.write_text(json.dumps(annotate(tasks, gold), indent=2))
        imported = read_json(export)
        wanted = [gold[r["id"]] for r in chosen]
        assert [(row["tokens"], row["ner_tags"]) for row in imported] == wanted
        assert list(imported["document_id"]) == [r["document_id"] for r in chosen]
        assert sum(tags != v1_tags for (_, tags), v1_tags in zip(wanted, (r["tags"] for r in chosen))) > 0

        # 5. retrain v1 (runs/current) on the export; the candidate is better and is promoted: runs/current -> v2.
        argv = ["retrain", str(current), "--new", str(export), "--output-dir", str(v2), "--bootstrap", "0"]
        assert main([*argv, "max_steps=40", *FAST]) == 0
        comparison = json.loads((v2 / "comparison.json").read_text())
        assert comparison["promote"] is True and comparison["candidate_f1"] > comparison["current_f1"], comparison
        assert (comparison["current_dir"], comparison["candidate_dir"]) == (str(v1), str(v2))
        assert comparison["promoted_link"] == str(current)
        assert current.is_symlink() and current.resolve() == v2
        new_rows = read_jsonl(v2 / "data" / "new.jsonl")
        assert [(r["tokens"], r["ner_tags"], r["document_id"]) for r in new_rows] == [
            (*gold[r["id"]], r["document_id"]) for r in chosen
        ]
        assert httpx.get(f"{url}/info").json()["model_path"] == str(v1)  # still v1 until told

        # 6. hot swap under load: probes on which v1 and v2 disagree tell which model answered.
        probes = [" ".join(tokens) for tokens, _ in make_sentences(24, seed=3)]  # one request: at most 32 texts
        expected = {
            name: [r["tags"] for r in NerPredictor.from_pretrained(path, device="cpu").predict(probes)]
            for name, path in (("v1", v1), ("v2", v2))
        }
        assert expected["v1"] != expected["v2"]
        with Clients(url, probes) as clients:
            clients.wait_for(10)
            server_process(url).send_signal(signal.SIGHUP)
            metrics = wait_for_metric(url, RELOADED, 1)
            swapped_at = time.monotonic()  # v2 took over before the counter moved
            clients.wait_for(len(clients.answers) + 20)
        assert all(status == 200 for _, status, _ in clients.answers), [a for a in clients.answers if a[1] != 200][:3]
        assert all(body in (expected["v1"], expected["v2"]) for _, _, body in clients.answers)
        assert any(body == expected["v1"] for _, _, body in clients.answers)
        after = [body for sent, _, body in clients.answers if sent > swapped_at]
        assert after and all(body == expected["v2"] for body in after)
        info = httpx.get(f"{url}/info").json()
        assert (info["model"], info["model_path"], info["generation"]) == ("v2", str(v2), 2)
        assert (metrics[RELOADED], metrics[FAILED], metrics[("nertune_model_generation", ())]) == (1, 0, 2)

        # The admin endpoint, with its key, reloads runs/current again: still v2, one more reload.
        response = httpx.post(f"{url}/admin/reload", headers={"X-API-Key": "adm1n"}, timeout=120)
        assert response.status_code == 200 and response.json()["model_path"] == str(v2), response.text
        answer = httpx.post(f"{url}/predict", json={"texts": probes}, timeout=60).json()
        assert [r["tags"] for r in answer["results"]] == expected["v2"]
        metrics = scrape(url)
        assert (metrics[RELOADED], metrics[FAILED], metrics[("nertune_model_generation", ())]) == (2, 0, 3)
    log = (root / "server.log").read_text()
    assert f"reloaded: serving {v2} (generation 2" in log and f"reloaded: serving {v2} (generation 3" in log
