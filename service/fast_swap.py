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

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header
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

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FIELDS = ("z1_image", "z2_image")


class _Parts:
    """The fields of a multipart body, gathered by python-multipart's streaming parser callbacks."""

    def __init__(self) -> None:
        self.files: list[tuple[bytes, bytes | None, bytes]] = []  # (field name, file name, data)
        self._header_field, self._header_value = b"", b""
        self._name: bytes = b""
        self._filename: bytes | None = None
        self._data: list[bytes] = []

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._add_field,
            "on_header_value": self._add_value,
            "on_header_end": self._header_end,
            "on_part_data": self._add_data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._name, self._filename, self._data = b"", None, []

    def _add_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _add_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _add_data(self, data: bytes, start: int, end: int) -> None:
        self._data.append(data[start:end])

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, params = parse_options_header(self._header_value)
            self._name, self._filename = params.get(b"name", b""), params.get(b"filename")
        self._header_field, self._header_value = b"", b""

    def _end(self) -> None:
        self.files.append((self._name, self._filename, b"".join(self._data)))


def pair_from_multipart(body: bytes, content_type: bytes) -> tuple[tuple[bytes, str], tuple[bytes, str]] | None:
    """((z1 data, file name), (z2 data, file name)) of an ordinary swap body, else None."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(body)
        parser.finalize()
    except Exception:  # noqa: BLE001 (any malformed body is the route's to answer)
        return None
    if sorted(name for name, _, _ in parts.files) != [f.encode() for f in FIELDS]:
        return None
    found: dict[bytes, tuple[bytes, str]] = {}
    for name, filename, data in parts.files:
        if filename is None:  # a plain form field, not a file: the route says what it wants
            return None
        try:
            found[name] = (data, filename.decode())
        except UnicodeDecodeError:
            return None
    return found[b"z1_image"], found[b"z2_image"]


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
