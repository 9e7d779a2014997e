"""Every error answer has one shape: ``{"detail": what to do, "code": a stable name}``.

``detail`` is for people and may be reworded; ``code`` is for programs and does
not change (docs/api.md lists them; a test checks the list against this table).
Errors raised without a code get the one their status implies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException

# code -> when it is answered (with its status)
CODES: dict[str, str] = {
    "invalid_image": "400: a file is not an image, or a truncated or corrupt one",
    "unauthorized": "401: API keys are configured and none, or a wrong one, was sent",
    "not_found": "404: no such route",
    "unknown_model": "404: no model of that name is serving",
    "unknown_example": "404: the model lists no example of that name",
    "method_not_allowed": "405: the route exists for another HTTP method",
    "body_timeout": "408: the request body did not arrive within the body timeout",
    "too_large": "413: the body, an image's pixels, or the number of images is over a limit",
    "unsupported_media_type": "415: an image type the service does not read, or a body that is not multipart",
    "invalid_request": "422: missing or extra fields, wrong code sizes, unequal counts, NaN or infinity",
    "internal_error": "500: a fault of the service; the detail names the request id to quote",
    "loading": "503: models are still loading",
    "draining": "503: the service is shutting down",
    "overloaded": "503: the concurrency bound is reached",
    "queue_full": "503: the inference queue is full",
}

_BY_STATUS = {
    400: "invalid_image",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "overloaded",
}


class ApiError(HTTPException):
    """An HTTP error with its machine-readable code."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unlisted error code {code!r}")
        super().__init__(status, detail, headers)
        self.code = code


def code_for(status: int, exc: Exception | None = None) -> str:
    return getattr(exc, "code", None) or _BY_STATUS.get(status, "invalid_request" if status < 500 else "internal_error")


def error_body(status: int, detail: str, code: str | None = None) -> bytes:
    return json.dumps({"detail": detail, "code": code or code_for(status)}).encode()


def _parts(loc: Sequence[Any]) -> list[Any]:
    """The user's field path: union members show up as type tags ('list[list[float]]'), pydantic's internals."""
    return [p for p in loc if p not in ("body", "query", "path", "header") and not (isinstance(p, str) and "[" in p)]


def _where(loc: Sequence[Any]) -> str:
    """('body', 'z1', 0, 2) -> 'z1[0][2]'; ('query', 'size') -> 'size'."""
    text = ""
    for part in _parts(loc):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the body"


def _closest_union_member(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A value that fits no member of a union (rows of codes, or one flat row) fails once per member:
    keep, per field, only the errors of the member it came closest to (the deepest location)."""

    def field(error: dict[str, Any]) -> str:
        return str(_parts(error.get("loc", ()))[:1])

    depth: dict[str, int] = {}
    for error in errors:
        depth[field(error)] = max(depth.get(field(error), 0), len(_parts(error.get("loc", ()))))
    return [e for e in errors if len(_parts(e.get("loc", ()))) == depth[field(e)]]


FILE_FIELDS = {"/encode": ("image",), "/swap": ("z1_image", "z2_image")}


def validation_detail(errors: Sequence[dict[str, Any]], path: str, content_type: str) -> tuple[int, str, str]:
    """(status, detail, code) for a request FastAPI could not validate, phrased as what to send instead."""
    fields = FILE_FIELDS.get(path)
    if fields and not content_type.startswith("multipart/form-data"):
        example = " ".join(f"-F {f}=@digit.png" for f in fields)
        sent = content_type.split(";")[0] or "no content type"
        return (
            415,
            f"{path} takes images as multipart/form-data file fields named {' and '.join(map(repr, fields))} "
            f"(got {sent}); for example: curl {example} http://HOST{path}",
            "unsupported_media_type",
        )
    parts = []
    for error in _closest_union_member(errors):
        where, kind = _where(error.get("loc", ())), error.get("type", "")
        if kind == "extra_forbidden" and where == "model":
            parts.append("'model' is not a body field: choose the model with the query parameter ?model=NAME")
        elif kind == "extra_forbidden":
            parts.append(f"{where!r} is not a field of this body; send only the fields the API lists")
        elif kind == "finite_number":
            parts.append(f"{where} is NaN or infinite; codes must be finite numbers")
        elif kind == "missing" and fields and where in fields:
            parts.append(f"no file field {where!r}: send each image as a multipart file field named {where!r}")
        elif kind == "missing":
            parts.append(f"{where} is missing")
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return 422, "; ".join(dict.fromkeys(parts)) or "invalid request", "invalid_request"
