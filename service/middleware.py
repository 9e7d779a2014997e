"""Pure ASGI middleware: request ids, access logs and metrics; body-size and concurrency bounds.

Written as raw ASGI (not BaseHTTPMiddleware) so a request body over the limit
is refused while it streams in, before it is buffered in memory.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.lifecycle import Lifecycle
from service.metrics import Metrics

log = logging.getLogger("service.access")

INFERENCE_PATHS = frozenset({"/encode", "/decode", "/swap"})


async def send_error(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class LimitsMiddleware:
    """413 for bodies over ``max_body_bytes``; 503 + Retry-After beyond ``max_concurrency`` inference requests."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_concurrency: int,
        retry_after_s: int,
        metrics: Metrics,
        lifecycle: Lifecycle,
    ) -> None:
        self.app, self.max_body, self.max_concurrency = app, max_body_bytes, max_concurrency
        self.retry_after, self.metrics, self.lifecycle = str(retry_after_s), metrics, lifecycle
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            self.metrics.rejected.inc("body_too_large")
            await send_error(
                send,
                413,
                f"request body of {int(declared)} bytes is over the limit of "
                f"{self.max_body} bytes; send fewer or smaller images",
            )
            return
        inference = route_path(scope) in INFERENCE_PATHS
        if inference and self.lifecycle.draining:
            self.metrics.rejected.inc("draining")
            await send_error(
                send, 503, "the service is shutting down; retry on another instance", {"Retry-After": self.retry_after}
            )
            return
        if inference and self.in_flight >= self.max_concurrency:
            self.metrics.rejected.inc("concurrency")
            await send_error(
                send,
                503,
                f"the service is at its limit of {self.max_concurrency} concurrent "
                "requests; retry after the time in Retry-After",
                {"Retry-After": self.retry_after},
            )
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self.lifecycle.enter()
        if inference:
            self.in_flight += 1
            self.metrics.in_flight.set(value=self.in_flight)
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            self.metrics.rejected.inc("body_too_large")
            if not started:
                await send_error(send, 413, f"request body is over the limit of {self.max_body} bytes")
        finally:
            self.lifecycle.leave()
            if inference:
                self.in_flight -= 1
                self.metrics.in_flight.set(value=self.in_flight)


class AccessMiddleware:
    """Gives each request an id (X-Request-ID, kept from the client when sent), logs it, and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_label(scope)
            self.metrics.requests.inc(route, scope["method"], str(status))
            self.metrics.latency.observe(elapsed, route)
            log.info(
                "%s %s -> %d in %.1f ms",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                extra={"request_id": request_id, "status": status, "route": route},
            )


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the prefix a proxy mounted it under (Serve's route_prefix)."""
    path, root = str(scope["path"]), str(scope.get("root_path", "")).rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


def _route_label(scope: Scope) -> str:
    """The route template (/models/{name}), not the raw path, so metrics stay bounded in cardinality."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
