"""The common ``/swap`` (one pair, a PNG back) answered without FastAPI's request machinery.

A 32x32 swap is about 0.6 ms of work (two PNG decodes, the preprocessing rule,
two ONNX Runtime runs, one PNG encode); FastAPI's form parsing into
``UploadFile`` objects, its dependency solving and its response handling cost
about as much again (docs/performance.md). This layer sits inside the
service's own middleware (so limits, slow-client timeouts, request ids, logs
and metrics apply unchanged) and in front of the routes. It answers a
``/swap`` itself only when the request is the ordinary case: a multipart body
with exactly one ``z1_image`` and one ``z2_image`` file, no query parameter
but ``model``, no JSON asked for, the API key right when keys are configured,
images that decode, and room in the queue. Anything else, and any failure, is
handed on, body and all, to the FastAPI route, which answers it exactly as it
always did (its errors, in the API's words, are the only errors /swap gives).
So the fast path needs no error handling of its own, and the route stays the
one description of /swap in the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import parse_options_header
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.batching import BatcherStoppedError, QueueFullError
from service.deps import api_key_header, bearer, require_api_key
from service.errors import ApiError
from service.images import ImageError, encode_images, to_inputs, to_png
from service.middleware import route_path
from service.routes import inference
from service.runtime import Registry
from service.settings import Settings

FIELDS = ("z1_image", "z2_image")


# The one Content-Disposition an ordinary client (curl, requests, httpx, a browser) sends for a file
# field: anything else (escapes, extra parameters, RFC 2231 names) is left to the route's parser.
_DISPOSITION = re.compile(rb'form-data; ?name="(z1_image|z2_image)"; ?filename="([^"\\\r\n]*)"')
_PART_HEADERS = frozenset({b"content-disposition", b"content-type"})  # a part with any other header: the route's


def pair_from_multipart(body: bytes, content_type: bytes) -> tuple[tuple[bytes, str], tuple[bytes, str]] | None:
    """((z1 data, file name), (z2 data, file name)) of an ordinary swap body, else None.

    A strict reader of the one shape ordinary clients send: the body starts with the first
    delimiter, two parts with only Content-Disposition and Content-Type headers, the closing
    delimiter last. Any other shape (a preamble, an epilogue, other headers, a delimiter not
    followed by CRLF or "--") gives None, and the route's own parser (python-multipart) reads it:
    so where both read a body they read the same bytes, and this one costs a few microseconds
    where the streaming parser's per-event callbacks cost about 45 (docs/performance.md).
    """
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    delimiter = b"--" + boundary
    if not body.startswith(delimiter + b"\r\n"):
        return None
    *parts, closing = body[len(delimiter) :].split(b"\r\n" + delimiter)
    if len(parts) != len(FIELDS) or closing not in (b"--", b"--\r\n"):
        return None
    found: dict[bytes, tuple[bytes, str]] = {}
    for part in parts:
        read = _file_part(part)
        if read is None or read[0] in found:
            return None
        found[read[0]] = read[1]
    return found[b"z1_image"], found[b"z2_image"]


def _file_part(part: bytes) -> tuple[bytes, tuple[bytes, str]] | None:
    """(field name, (data, file name)) of one part: CRLF, its header lines, a blank line, the data."""
    head, blank, data = part.partition(b"\r\n\r\n")
    if not blank or not head.startswith(b"\r\n"):
        return None
    headers: dict[bytes, bytes] = {}
    for line in head[2:].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        name = name.lower()
        if not colon or name not in _PART_HEADERS or name in headers:
            return None
        headers[name] = value.strip(b" \t")
    match = _DISPOSITION.fullmatch(headers.get(b"content-disposition", b""))
    if match is None:
        return None
    try:
        return match[1], (data, match[2].decode())
    except UnicodeDecodeError:
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already-read body once more, then whatever the client sends next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client went away before sending it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class FastSwap:
    """ASGI layer: ordinary /swap requests answered here, everything else passed to ``app``."""

    def __init__(self, app: ASGIApp, service: Any) -> None:
        self.app, self.service = app, service  # service: the FastAPI app (its settings, registry, counters)
        self.route = next(r for r in inference.router.routes if getattr(r, "path", None) == "/swap")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or route_path(scope) != "/swap":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        png = await self._swap(scope, body)
        if png is None:
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"] = self.route  # the metrics' route label, as the router would set it
        headers = [(b"content-length", str(len(png)).encode()), (b"content-type", b"image/png")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": png})
        self.service.state.fast_swaps += 1  # how many this layer answered (the tests read it)

    async def _swap(self, scope: Scope, body: bytes) -> bytes | None:
        """The swap's PNG, or None for anything the route must answer."""
        settings: Settings = self.service.state.settings
        registry: Registry = self.service.state.registry
        headers = dict(scope["headers"])
        if b"application/json" in headers.get(b"accept", b""):
            return None
        if settings.api_keys and not await _key_accepted(scope, settings):
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if any(key != "model" for key, _ in query) or len(query) > 1:
            return None
        model = registry.models.get(query[0][1] if query else settings.default_model) if registry.ready else None
        if model is None:
            return None
        pair = pair_from_multipart(body, headers.get(b"content-type", b""))
        if pair is None:
            return None
        (a, a_name), (b, b_name) = pair
        labels = [f"z1_image[0] ({a_name or 'unnamed'})", f"z2_image[0] ({b_name or 'unnamed'})"]
        try:
            images = await to_inputs([a, b], labels, model.manifest.preprocessing, settings.max_image_pixels)
            swapped, _, _ = await model.swap(images[:1], images[1:])
        except (ImageError, QueueFullError, BatcherStoppedError):
            return None  # the route answers these (400/413/415, 503 with Retry-After)
        except Exception:  # noqa: BLE001 (a failed run, too, is answered by the route, in its words)
            return None
        (png,) = await encode_images(swapped, None, to_png)
        return png


async def _key_accepted(scope: Scope, settings: Settings) -> bool:
    """Whether the route's own API-key dependency, fed this request's headers, lets it through."""
    connection = HTTPConnection(scope)
    try:
        await require_api_key(settings, await api_key_header(connection), await bearer(connection))
    except ApiError:
        return False
    return True
