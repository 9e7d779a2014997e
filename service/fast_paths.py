"""The common ``/swap`` and ``/encode`` answered without FastAPI's request machinery.

A 32x32 swap is about 0.6 ms of work (two PNG decodes, the preprocessing rule,
two ONNX Runtime runs, one PNG encode); FastAPI's form parsing into
``UploadFile`` objects, its dependency solving and its response handling cost
about as much again. A 64-image /encode is about 10 ms of work, and the form
parsing alone added 2 ms of it (docs/performance.md). This layer sits inside
the service's own layers (so limits, slow-client timeouts, request ids, logs
and metrics apply unchanged) and in front of FastAPI. It answers a request
itself only when it is the ordinary case:

- ``/swap``: exactly one ``z1_image`` and one ``z2_image`` file, no JSON asked
  for; a PNG back;
- ``/encode``: one or more ``image`` files (at most the configured count), no
  ``sample``; the codes as JSON, serialised by the route's own response model;

both with no query parameter but ``model``, a body the strict reader knows
(service/multipart.py), the API key right when keys are configured, images that
decode, and room in the queue. Anything else, and any failure, is handed on,
body and all, to the FastAPI route, which answers it exactly as it always did
(its errors, in the API's words, are the only errors these paths give). So the
fast paths need no error handling of their own, and the routes stay the one
description of the API in the OpenAPI document.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.deps import api_key_header, bearer, require_api_key
from service.errors import ApiError
from service.images import encode_images, to_inputs, to_png
from service.middleware import route_path
from service.multipart import file_parts, pair_from_multipart
from service.routes import inference
from service.runtime import LoadedModel, Registry
from service.schemas import EncodeResponse
from service.settings import Settings

Answer = tuple[bytes, bytes]  # (body, content type)
Handler = Callable[[LoadedModel, dict[bytes, bytes], bytes, Settings], Awaitable[Answer | None]]


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


async def swap_answer(
    model: LoadedModel, headers: dict[bytes, bytes], body: bytes, settings: Settings
) -> Answer | None:
    """One pair in, the swap's PNG out; None for anything the route must answer."""
    if b"application/json" in headers.get(b"accept", b""):
        return None
    pair = pair_from_multipart(body, headers.get(b"content-type", b""))
    if pair is None:
        return None
    labels = [f"{p.field}[0] ({p.filename or 'unnamed'})" for p in pair]
    images = await to_inputs([p.data for p in pair], labels, model.manifest.preprocessing, settings.max_image_pixels)
    swapped, _, _ = await model.swap(images[:1], images[1:])
    (png,) = await encode_images(swapped, None, to_png)
    return png, b"image/png"


async def encode_answer(
    model: LoadedModel, headers: dict[bytes, bytes], body: bytes, settings: Settings
) -> Answer | None:
    """Images in, their codes out as the route's JSON; None for anything the route must answer."""
    parts = file_parts(body, headers.get(b"content-type", b""), frozenset({"image"}))
    if parts is None or len(parts) > settings.max_images_per_request:
        return None
    labels = [f"image[{i}] ({p.filename or 'unnamed'})" for i, p in enumerate(parts)]
    images = await to_inputs([p.data for p in parts], labels, model.manifest.preprocessing, settings.max_image_pixels)
    codes = await model.encode(images)
    answer = EncodeResponse.model_construct(model=model.name, z1=codes["z1"].tolist(), z2=codes["z2"].tolist())
    return answer.model_dump_json().encode(), b"application/json"  # the bytes FastAPI writes for the route


HANDLERS: dict[str, Handler] = {"/swap": swap_answer, "/encode": encode_answer}


class FastPaths:
    """ASGI layer: ordinary /swap and /encode requests answered here, everything else passed to ``app``."""

    def __init__(self, app: ASGIApp, service: Any, paths: frozenset[str] = frozenset(HANDLERS)) -> None:
        self.app, self.service = app, service  # service: the FastAPI app (its settings, registry, counters)
        self.handlers = {path: HANDLERS[path] for path in paths}
        self.routes = {r.path: r for r in inference.router.routes if getattr(r, "path", None) in paths}  # type: ignore[attr-defined]
        self.answered: Counter[str] = service.state.fast_answers  # per path, how many this layer answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        handler = self.handlers.get(path)
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        answer = await self._answer(handler, scope, body)
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
            return
        content, content_type = answer
        scope["route"] = self.routes[path]  # the metrics' route label, as the router would set it
        headers = [(b"content-length", str(len(content)).encode()), (b"content-type", content_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        self.answered[path] += 1

    async def _answer(self, handler: Handler, scope: Scope, body: bytes) -> Answer | None:
        """The handler's answer, or None for anything the route must answer (failures included)."""
        settings: Settings = self.service.state.settings
        registry: Registry = self.service.state.registry
        if settings.api_keys and not await _key_accepted(scope, settings):
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if any(key != "model" for key, _ in query) or len(query) > 1:
            return None
        model = registry.models.get(query[0][1] if query else settings.default_model) if registry.ready else None
        if model is None:
            return None
        try:
            return await handler(model, dict(scope["headers"]), body, settings)
        except Exception:  # noqa: BLE001 (bad images, a full queue, a failed run: the route answers, in its words)
            return None


async def _key_accepted(scope: Scope, settings: Settings) -> bool:
    """Whether the route's own API-key dependency, fed this request's headers, lets it through."""
    connection = HTTPConnection(scope)
    try:
        await require_api_key(settings, await api_key_header(connection), await bearer(connection))
    except ApiError:
        return False
    return True
