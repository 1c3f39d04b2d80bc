"""Hot reload of the served model (SIGHUP, `POST /admin/reload`): load the new one beside the old, swap, release.

A reload resolves the model reference again (`os.path.realpath`: a `runs/current` symlink that `nertune
retrain` pointed elsewhere loads the new run dir; a Hub id goes through the cache as at startup), loads it in
a thread of its own while the old model keeps serving, checks that it predicts, then hands it to the batcher,
whose worker takes it over between two model calls (`DynamicBatcher.swap_predictor`): a call in progress
finishes on the old model, every later one runs on the new. The old one is then released.

A reload always loads, even when the reference resolves to the dir already serving: it is an operator's
explicit request, and weights rewritten in place cannot be told apart reliably by file times and sizes (a
reload skipped by mistake would leave the old model serving without a word). Reloads run one at a time.
A reload that fails (missing dir, broken model, a model that cannot predict) leaves the old model serving,
logs one error line and is counted as failed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from nertune.errors import NertuneError
from nertune.inference.predictor import NerPredictor
from nertune.serving.batcher import BatcherClosedError, DynamicBatcher
from nertune.serving.request import BadPredictRequest

logger = logging.getLogger(__name__)

ADMIN_BODY_LIMIT = 64 * 1024  # a path, and nothing more


class ReloadError(NertuneError):
    """A reload that failed; the model that was serving still is. `status`: the admin endpoint's answer (422: the
    model cannot be loaded, 503: the server is shutting down)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class ReloadRequest(BaseModel):
    """The optional body of `POST /admin/reload`: another model to load instead of the one serving."""

    model_config = ConfigDict(extra="forbid")
    model: StrictStr | None = None


def read_reload_request(body: bytes, content_type: str) -> str | None:
    """The `model` of an admin reload body (None: reload the model serving); `BadPredictRequest` when invalid."""
    if not body.strip():
        return None
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadPredictRequest(415, 'send {"model": PATH} as JSON with Content-Type: application/json')
    try:
        return ReloadRequest.model_validate(json.loads(body)).model
    except (ValueError, UnicodeDecodeError) as e:  # pydantic's ValidationError is a ValueError too
        status = 422 if isinstance(e, ValidationError) else 400
        raise BadPredictRequest(status, f'expected {{"model": PATH}} or no body: {" ".join(str(e).split())}') from None


def resolve_model(reference: str | Path) -> str:
    """The dir a local model reference points at now (symlinks followed, a dangling one too: the error then names
    its target); a Hub id as it is."""
    reference = os.fspath(reference)
    expanded = os.path.expanduser(reference)
    return os.path.realpath(expanded) if os.path.lexists(expanded) else reference


@dataclass(frozen=True)
class ServingModel:
    """The model serving: its dir (resolved), its generation (1 at startup, +1 per reload) and when it took over."""

    name: str
    path: str
    generation: int
    loaded_at: float  # Unix time
    load_seconds: float | None  # None: the model the server started with (loaded before the app existed)

    def describe(self) -> dict[str, object]:
        return {
            "model": self.name,
            "model_path": self.path,
            "generation": self.generation,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 3),
        }


class ModelReloader:
    """Reloads the model behind `batcher`; `current` describes the one serving.

    `reference`: what the server was started with (a run dir, a `current` symlink, a Hub id), resolved again at
    every reload; a reload of another model (`reload(model)`) makes that one the reference from then on.
    `load(path)` loads a predictor; `on_result("ok" | "failed", current)` is called after every reload."""

    def __init__(
        self,
        batcher: DynamicBatcher,
        reference: str | Path | None,
        load: Callable[[str], NerPredictor],
        on_result: Callable[[str, ServingModel], None] = lambda result, current: None,
    ) -> None:
        self.batcher = batcher
        self.reference = os.fspath(reference) if reference is not None else None
        self._load = load
        self._on_result = on_result
        self._lock = threading.Lock()  # one reload at a time
        path = resolve_model(reference) if reference is not None else batcher.predictor.name
        self.current = ServingModel(batcher.predictor.name, path, 1, time.time(), None)

    @property
    def predictor(self) -> NerPredictor:
        return self.batcher.predictor

    def start(self, model: str | None = None) -> Future:
        """`reload(model)` in a thread of its own (not the event loop's, nor a pooled thread that would keep the
        torch thread pool the load created); the future holds the new `ServingModel` or the `ReloadError`."""
        future: Future = Future()

        def work() -> None:
            try:
                future.set_result(self.reload(model))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(e)

        threading.Thread(target=work, name="nertune-reload", daemon=True).start()
        return future

    def reload(self, model: str | None = None) -> ServingModel:
        """Load `model` (default: the reference, resolved again), swap it in, release the old one."""
        with self._lock:
            reference = model if model is not None else self.reference
            old = self.current
            predictor, path = None, None
            try:
                if reference is None:
                    raise ReloadError('this server has no model path to reload: give {"model": PATH}')
                path = resolve_model(reference)
                started = time.monotonic()
                predictor = self._load(path)
                predictor.predict(["reload check"])  # a model that loads but cannot predict stays out
                load_seconds = time.monotonic() - started
                replaced = self.batcher.swap_predictor(predictor).result()
            except Exception as e:  # noqa: BLE001 - any failure to load keeps the old model serving
                reason = " ".join(str(e).split()) or type(e).__name__
                if not isinstance(e, NertuneError | BatcherClosedError):
                    reason = f"{type(e).__name__}: {reason}"
                what = f"{reference} ({path})" if path not in (None, reference) else reference or "the model"
                message = f"reload of {what} failed: {reason}; still serving {old.path} (generation {old.generation})"
                logger.error("%s", message)
                predictor = None  # the traceback the error keeps must not keep a half-loaded model alive
                _release_memory()
                self._on_result("failed", old)
                raise ReloadError(message, 503 if isinstance(e, BatcherClosedError) else 422) from None
            self.current = ServingModel(predictor.name, path, old.generation + 1, time.time(), load_seconds)
            if model is not None:
                self.reference = model
            del replaced, predictor
            _release_memory()
            logger.info(
                "reloaded: serving %s (generation %d, loaded in %.1f s)", path, self.current.generation, load_seconds
            )
            self._on_result("ok", self.current)
            return self.current


def _release_memory() -> None:
    """Hand the GPU blocks the replaced model held back to the driver. Its last reference is gone, so CPython
    has freed it already; no `gc.collect()`, which holds the GIL long enough to stall the requests meanwhile."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
