"""HTTP serving of a trained model with FastAPI + uvicorn (`nertune serve`).

- `POST /predict` `{"text": "..."}` -> one result `{"entities", "words", "tags"}` (see
  `NerPredictor.predict_texts`); `{"texts": [...]}` -> `{"results": [...]}`, one per text;
  `{"document": ["sentence", ...]}` -> `{"results": [...]}`, one per sentence, each sentence read with
  its neighbours when the model was trained with document context (`context_size`).
- `GET /health` -> `{"status": "ok"}`; `GET /info` -> the model, its labels and the server's limits.

Bad input gets a 4xx answer `{"detail": "<message>"}` (validation errors add `"errors"`), never a 500:
400 for a body that is not JSON or is empty, 415 for a content type other than JSON, 422 for wrong
fields or types, 413 for too many or too long texts. The predict endpoint is a plain `def`, so FastAPI runs it in its thread pool and the event
loop keeps answering; the predictor's lock serializes model calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictStr

from .errors import RequestError
from .predictor import NerPredictor


class PredictRequest(BaseModel):
    """Exactly one of `text`, `texts` or `document`; unknown keys (a typo such as `txt`) are an error."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = None
    texts: list[StrictStr] | None = None
    document: list[StrictStr] | None = None  # the sentences of one document, in order


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):
        return JSONResponse({"detail": "the request body is not valid JSON", "errors": errors}, status_code=400)
    if any(e["type"] == "missing" and e["loc"] == ["body"] for e in errors):
        return JSONResponse({"detail": 'the request body is empty: send {"text": "..."} or {"texts": [...]}',
                             "errors": errors}, status_code=400)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        # e.g. `curl -d` without `-H "Content-Type: application/json"`: FastAPI then never parses the JSON.
        return JSONResponse({"detail": "send the body as JSON with Content-Type: application/json, not "
                                       f"{content_type or 'without a Content-Type'}", "errors": errors}, status_code=415)
    summary = "; ".join(f"{'.'.join(str(part) for part in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, status_code=422)


def create_app(predictor: NerPredictor, max_batch: int = 32, max_chars: int = 10_000) -> FastAPI:
    """The FastAPI application around one predictor (tests use it directly)."""
    if max_batch < 1 or max_chars < 1:
        raise RequestError(f"max_batch and max_chars must be at least 1, got {max_batch} and {max_chars}")
    app = FastAPI(title="nertune", summary=f"named entities with {predictor.name}")
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        return {"model": predictor.name, "labels": predictor.labels, "scheme": predictor.scheme,
                "max_batch": max_batch, "max_chars": max_chars, "max_length": predictor.max_length,
                "context_size": predictor.context_size, "device": str(predictor.device)}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        given = [key for key in ("text", "texts", "document") if getattr(request, key) is not None]
        if len(given) != 1:
            raise HTTPException(422, 'give exactly one of "text" (a string), "texts" (a list of strings) or '
                                     f'"document" (a list of sentences); got {given or "none"}')
        kind = given[0]
        single = kind == "text"
        texts = [request.text] if single else getattr(request, kind)
        if len(texts) > max_batch:
            raise HTTPException(413, f"{len(texts)} {'sentences' if kind == 'document' else 'texts'} in one request; "
                                     f"the limit is {max_batch} (--max-batch)")
        for i, text in enumerate(texts):
            where = "text" if single else f"{kind}[{i}]"
            if len(text) > max_chars:
                raise HTTPException(413, f"{where} has {len(text)} characters; the limit is {max_chars} (--max-chars)")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but not text the tokenizer takes
                raise HTTPException(422, f"{where} is not valid Unicode (it has a lone surrogate)") from None
        results = predictor.predict_document(texts) if kind == "document" else predictor.predict_texts(texts)
        return results[0] if single else {"results": results}

    return app


def run_server(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32,
               max_chars: int = 10_000, batch_size: int = 32, device: str | None = None,
               precision: str = "auto") -> None:
    """Load the model (errors surface here, before listening), then serve until interrupted."""
    import uvicorn

    predictor = NerPredictor.from_pretrained(model_dir, device=device, batch_size=batch_size, precision=precision)
    app = create_app(predictor, max_batch=max_batch, max_chars=max_chars)
    uvicorn.run(app, host=host, port=port, log_level="info")
