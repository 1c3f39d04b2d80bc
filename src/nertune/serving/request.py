"""The body of `POST /predict`, checked: what the server's predict endpoint accepts and the 4xx answer to what
it does not.

`read_body` reads a request's body, but never more than the server's limits could accept (413 past that,
whether the body is sent with a Content-Length or chunked). `read_predict_request` turns the bytes and a
Content-Type into the texts to predict, validated by the pydantic model `PredictRequest`, or raises
`BadPredictRequest` with the status and message of the answer: 400 for a body that is not JSON or is empty,
415 for a content type other than JSON, 422 for wrong fields or types, 413 for too many or too long texts.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from starlette.requests import Request

RequestKind = Literal["text", "texts", "document"]


class PredictRequest(BaseModel):
    """Exactly one of `text`, `texts` or `document`; unknown keys (a typo such as `txt`) are an error."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = None
    texts: list[StrictStr] | None = None
    document: list[StrictStr] | None = None  # the sentences of one document, in order


@dataclass
class BadPredictRequest(Exception):
    """A request the server answers with `status` and `{"detail": detail, "errors": errors}`."""

    status: int
    detail: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "errors": self.errors} if self.errors else {"detail": self.detail}


@dataclass(frozen=True)
class ParsedPredictRequest:
    kind: RequestKind
    texts: list[str]


def _is_json(media_type: str) -> bool:
    media_type = media_type.lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _errors(e: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]} for error in e.errors()]


def max_body_bytes(max_batch: int, max_chars: int) -> int:
    """The largest body that `max_batch` texts of `max_chars` characters can take: a character is at most 12
    bytes of JSON (a surrogate pair written as two `\\uXXXX` escapes), plus quotes, commas and keys."""
    return max_batch * (12 * max_chars + 8) + 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, or 413 as soon as it is over `limit` bytes (declared or read so far).

    Not Starlette's `max_body_size`: its 413 replaces the app's answer with plain text, and every error answer
    here is `{"detail": ...}`. uvicorn discards whatever of the body is still to come, without buffering it, and
    the connection stays usable: closing it instead would reset it over the unread bytes, and the client would
    lose the 413. Raises `starlette.requests.ClientDisconnect` when the client goes away first."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async with aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> BadPredictRequest:
    return BadPredictRequest(
        413,
        f"the request body is over {limit} bytes, more than --max-texts-per-request texts of --max-chars "
        "characters take",
    )


def read_predict_request(body: bytes, content_type: str, max_batch: int, max_chars: int) -> ParsedPredictRequest:
    """The texts of a `/predict` body, checked against the server's limits (`BadPredictRequest` otherwise)."""
    if not body.strip():
        raise BadPredictRequest(400, 'the request body is empty: send {"text": "..."} or {"texts": [...]}')
    media_type = content_type.split(";")[0].strip()
    if not _is_json(media_type):
        # e.g. `curl -d` without `-H "Content-Type: application/json"`
        raise BadPredictRequest(
            415,
            f"send the body as JSON with Content-Type: application/json, not {media_type or 'without a Content-Type'}",
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadPredictRequest(
            400, "the request body is not valid JSON", [{"loc": ["body"], "msg": str(e), "type": "json_invalid"}]
        ) from None
    try:
        request = PredictRequest.model_validate(payload)
    except ValidationError as e:
        errors = _errors(e)
        summary = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'body'}: {error['msg']}" for error in errors
        )
        raise BadPredictRequest(422, f"invalid request: {summary}", errors) from None
    given: list[RequestKind] = [kind for kind in ("text", "texts", "document") if getattr(request, kind) is not None]
    if len(given) != 1:
        raise BadPredictRequest(
            422,
            'give exactly one of "text" (a string), "texts" (a list of strings) or '
            f'"document" (a list of sentences); got {given or "none"}',
        )
    kind = given[0]
    texts = [request.text] if kind == "text" else getattr(request, kind)
    if len(texts) > max_batch:
        raise BadPredictRequest(
            413,
            f"{len(texts)} {'sentences' if kind == 'document' else 'texts'} in one request; "
            f"the limit is {max_batch} (--max-texts-per-request)",
        )
    for i, text in enumerate(texts):
        where = "text" if kind == "text" else f"{kind}[{i}]"
        if len(text) > max_chars:
            raise BadPredictRequest(413, f"{where} has {len(text)} characters; the limit is {max_chars} (--max-chars)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but not text the tokenizer takes
            raise BadPredictRequest(422, f"{where} is not valid Unicode (it has a lone surrogate)") from None
    return ParsedPredictRequest(kind, texts)
