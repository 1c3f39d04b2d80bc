"""Dynamic batching for serving: concurrent requests gathered into one model call.

Requests enter a bounded queue (counted in sentences, so memory stays bounded whatever the clients send);
one worker (a thread of its own, or the caller's thread with `run`) takes whatever is queued, up to
`max_batch_sentences`, waiting at most `max_wait_ms` for more to arrive (less once the clients answered
last are back), and calls
`NerPredictor.predict` once for all of it. Every request gets only its own results, in order.
Sentences of a `document` request share a document id of their own, so sentences of different requests
never become each other's context.

The worker owns the predictor: `swap_predictor` hands it a new one, which it takes over between two model
calls (a hot reload, see `reload.py`), so every batch runs on exactly one model.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from nertune.errors import RequestError
from nertune.inference.predictor import NerPredictor

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The batcher's queue has no room for a request (the server answers 503 with Retry-After)."""


class BatcherClosedError(RuntimeError):
    """The batcher is not running (not started yet, or shutting down)."""


@dataclass
class _Job:
    texts: list[str]
    document_id: str | None  # None: independent texts, each read without context
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    """Gathers `submit`ted texts of concurrent requests into one `predict` call per batch.

    `on_batch(sentences)` is called after every model call (metrics); `on_queue(sentences)` whenever
    the number of queued sentences changes.
    """

    def __init__(
        self,
        predictor: NerPredictor,
        max_batch_sentences: int = 64,
        max_wait_ms: float = 2.0,
        max_queue_sentences: int = 1024,
        on_batch: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_sentences < 1 or max_queue_sentences < 1:
            raise RequestError(
                f"max_batch_sentences and max_queue_sentences must be at least 1, got "
                f"{max_batch_sentences} and {max_queue_sentences}"
            )
        if max_wait_ms < 0:
            raise RequestError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self.predictor = predictor
        self.max_batch_sentences = max_batch_sentences
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue_sentences = max_queue_sentences
        self._on_batch = on_batch or (lambda sentences: None)
        self._on_queue = on_queue or (lambda sentences: None)
        self._jobs: deque[_Job] = deque()
        self._queued_sentences = 0
        self._condition = threading.Condition()
        self._accepting = False
        self._worker: threading.Thread | None = None
        self._swap: tuple[NerPredictor, Future] | None = None  # the predictor to take over, and who waits for it
        self._document_numbers = itertools.count()
        # Sentences queued when the last batch was answered plus that batch's own (see `_expect_answered_back`);
        # the first batch waits max_wait_ms for company.
        self._expected_sentences = max_batch_sentences

    @property
    def queued_sentences(self) -> int:
        return self._queued_sentences

    def start(self) -> None:
        with self._condition:
            if self._worker is not None:
                raise RuntimeError("the batcher is already started")
            self._accepting = True
            self._worker = threading.Thread(target=self._run, name="nertune-batcher", daemon=True)
            self._worker.start()

    def run(self, keep_running: Callable[[], bool] = lambda: True) -> None:
        """Accept requests and work in the calling thread until `close` (after draining the queue) or until
        `keep_running()` turns false (checked at least every half second while idle).

        `nertune serve` runs the model here, in the thread that loaded it: torch gives every thread that runs
        ops a thread pool of its own, and two pools on the same cores make every forward pass slower."""
        with self._condition:
            if self._worker is not None or self._accepting:
                raise RuntimeError("the batcher is already started")
            self._accepting = True
        try:
            self._run(keep_running)
        finally:
            with self._condition:
                self._accepting = False

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, let the worker finish every queued request (drain), then stop it."""
        with self._condition:
            self._accepting = False
            self._condition.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout)

    def swap_predictor(self, predictor: NerPredictor) -> Future:
        """Hand the worker a loaded `predictor`: it takes over before the next model call (the call in progress
        finishes on the old one). The future resolves to the predictor it replaced, for the caller to release,
        or fails with `BatcherClosedError` when the batcher stops first. Raises `BatcherClosedError` when the
        batcher is not running and `RuntimeError` while another swap is pending."""
        future: Future = Future()
        with self._condition:
            if not self._accepting:
                raise BatcherClosedError("the server is not accepting requests (starting or shutting down)")
            if self._swap is not None:
                raise RuntimeError("another predictor is already waiting to take over")
            self._swap = (predictor, future)
            self._condition.notify_all()
        return future

    def submit(self, texts: Sequence[str], document: bool = False) -> Future:
        """A future of one `{"entities", "words", "tags"}` per text (see `NerPredictor.predict`).

        `document=True`: the texts are the sentences of one document, read with their neighbours when the
        model was trained with `context_size`. Raises `QueueFullError` when the queue has no room for them
        and `BatcherClosedError` when the batcher is not running.
        """
        job = _Job(list(texts), f"request-{next(self._document_numbers)}" if document else None)
        if not job.texts:
            job.future.set_result([])
            return job.future
        with self._condition:
            if not self._accepting:
                raise BatcherClosedError("the server is not accepting requests (starting or shutting down)")
            # A request larger than the whole queue could never be taken: refuse it as a full queue would.
            if self._queued_sentences + len(job.texts) > self.max_queue_sentences:
                raise QueueFullError(
                    f"{self._queued_sentences} sentences are queued; the limit is "
                    f"{self.max_queue_sentences} (--max-queue-sentences)"
                )
            self._jobs.append(job)
            self._queued_sentences += len(job.texts)
            self._on_queue(self._queued_sentences)
            self._condition.notify_all()
        return job.future

    # -- the worker

    def _next_batch(self, keep_running: Callable[[], bool]) -> list[_Job] | None:
        """The jobs of the next model call (None: closed and drained, or `keep_running()` false)."""
        with self._condition:
            while not self._jobs:
                if self._swap is not None:
                    return []  # idle: take the new predictor over now rather than with the next request
                if not self._accepting or not keep_running():
                    return None
                self._condition.wait(0.5)
            # Wait a little for more requests, unless the server is draining or the clients answered last are back
            # (under steady load they are the next batch, and waiting longer only idles the model).
            deadline = time.monotonic() + self.max_wait_s
            enough = min(self.max_batch_sentences, self._expected_sentences)
            while self._queued_sentences < enough and self._accepting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch = [self._jobs.popleft()]  # always at least one, even when it alone exceeds the maximum
            sentences = len(batch[0].texts)
            while self._jobs and sentences + len(self._jobs[0].texts) <= self.max_batch_sentences:
                batch.append(self._jobs.popleft())
                sentences += len(batch[-1].texts)
            self._queued_sentences -= sentences
            self._on_queue(self._queued_sentences)
            return batch

    def _take_over(self) -> None:
        """Between two model calls: the predictor handed to `swap_predictor`, if any, replaces the current one."""
        with self._condition:
            swap, self._swap = self._swap, None
        if swap is not None:
            new, future = swap
            old, self.predictor = self.predictor, new
            future.set_result(old)

    def _run(self, keep_running: Callable[[], bool] = lambda: True) -> None:
        try:
            self._work(keep_running)
        finally:
            with self._condition:
                self._accepting = False  # no swap can be handed over from here on
                swap, self._swap = self._swap, None
            if swap is not None:
                swap[1].set_exception(BatcherClosedError("the server stopped before the new model took over"))

    def _work(self, keep_running: Callable[[], bool]) -> None:
        while (batch := self._next_batch(keep_running)) is not None:
            self._take_over()
            # A request whose client went away was cancelled: skip it (and a running future can no longer be
            # cancelled, so setting its result below cannot fail).
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                results = self._predict(batch)
            except Exception as e:  # noqa: BLE001 - retried alone below, so one bad request fails only itself
                self._expect_answered_back(batch)
                if len(batch) == 1:
                    logger.exception("prediction failed")
                    batch[0].future.set_exception(e)
                    continue
                for job in batch:
                    try:
                        job.future.set_result(self._predict([job])[0])
                    except Exception as e_alone:  # noqa: BLE001 - handed to the request that caused it
                        logger.exception("prediction failed")
                        job.future.set_exception(e_alone)
                continue
            self._expect_answered_back(batch)
            for job, result in zip(batch, results):
                job.future.set_result(result)

    def _expect_answered_back(self, batch: list[_Job]) -> None:
        """Before `batch` is answered: the next batch is complete once its clients are back too."""
        with self._condition:
            self._expected_sentences = self._queued_sentences + sum(len(job.texts) for job in batch)

    def _predict(self, batch: list[_Job]) -> list[list[dict[str, Any]]]:
        texts = [text for job in batch for text in job.texts]
        document_ids = [job.document_id for job in batch for _ in job.texts]
        results = self.predictor.predict(texts, document_ids if any(document_ids) else None)
        self._on_batch(len(texts))
        per_job, first = [], 0
        for job in batch:
            per_job.append(results[first : first + len(job.texts)])
            first += len(job.texts)
        return per_job
