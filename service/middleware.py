"""Pure ASGI middleware: request ids, access logs and metrics; body-size, body-time and concurrency bounds.

Written as raw ASGI (not BaseHTTPMiddleware) so a request body over the limit
is refused while it streams in, before it is buffered in memory.

Slow clients cannot starve the others: an inference request takes a place
among the ``max_concurrency`` in flight only once its whole body has arrived
(as nginx and Triton do), and a body that has not arrived within
``body_timeout_s`` of the request's start gets 408 and its connection closed.
A client trickling an upload therefore holds a connection for a bounded time,
and never a slot that a complete request needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.lifecycle import Lifecycle
from service.metrics import Metrics

log = logging.getLogger("service.access")

INFERENCE_PATHS = frozenset({"/encode", "/decode", "/swap"})


async def send_error(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None, code: str | None = None
) -> None:
    body = error_body(status, detail, code)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class _Refused(Exception):
    """Raised out of ``receive``: the body is refused (too large, too slow) or no capacity is left for it.

    FastAPI turns any error while it parses a body into its own 400, so the refusal
    itself is kept beside the request and replaces whatever answer the app starts.
    """


class LimitsMiddleware:
    """413 over ``max_body_bytes``; 408 past ``body_timeout_s``; 503 + Retry-After beyond ``max_concurrency``."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_concurrency: int,
        retry_after_s: int,
        metrics: Metrics,
        lifecycle: Lifecycle,
        body_timeout_s: float = 60.0,
    ) -> None:
        self.app, self.max_body, self.max_concurrency = app, max_body_bytes, max_concurrency
        self.retry_after, self.metrics, self.lifecycle = str(retry_after_s), metrics, lifecycle
        self.body_timeout_s = body_timeout_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            self.metrics.rejected.labels("body_too_large").inc()
            await send_error(
                send,
                413,
                f"request body of {int(declared)} bytes is over the limit of "
                f"{self.max_body} bytes; send fewer or smaller images",
            )
            return
        inference = route_path(scope) in INFERENCE_PATHS
        if inference and self.lifecycle.draining:
            self.metrics.rejected.labels("draining").inc()
            await send_error(
                send,
                503,
                "the service is shutting down; retry on another instance",
                {"Retry-After": self.retry_after},
                "draining",
            )
            return
        received = 0
        started = complete = counted = False
        refusal: tuple[int, str, dict[str, str], str] | None = None
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s

        def refuse(reason: str, code: str, status: int, detail: str, headers: dict[str, str] | None = None) -> _Refused:
            """Count the refusal under ``reason`` and keep the answer (status, detail, headers, error code)."""
            nonlocal refusal
            self.metrics.rejected.labels(reason).inc()
            refusal = (status, detail, headers or {}, code)
            return _Refused(detail)

        async def limited_receive() -> Message:
            nonlocal received, complete, counted
            if complete:  # after the body only a disconnect can come, whenever it comes: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise refuse(
                    "body_timeout",
                    "body_timeout",
                    408,
                    f"the request body did not arrive within {self.body_timeout_s:g} s ({received} bytes came); "
                    "send it in one go, or retry on a faster link",
                    {"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    detail = f"request body is over the limit of {self.max_body} bytes"
                    raise refuse("body_too_large", "too_large", 413, detail)
                complete = not message.get("more_body", False)
                if complete and inference:  # capacity is taken here, with the body in hand
                    if self.in_flight >= self.max_concurrency:
                        raise refuse(
                            "concurrency",
                            "overloaded",
                            503,
                            f"the service is at its limit of {self.max_concurrency} concurrent "
                            "requests; retry after the time in Retry-After",
                            {"Retry-After": self.retry_after},
                        )
                    counted = True
                    self._count(+1)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:  # the app's own answer to a refused body (FastAPI's 400) is dropped
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await send_error(send, *refusal)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self.lifecycle.enter()
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _Refused:
            if not started and refusal is not None:
                await send_error(send, *refusal)
        finally:
            self.lifecycle.leave()
            if counted:
                self._count(-1)

    def _count(self, step: int) -> None:
        self.in_flight += step
        self.metrics.in_flight.set(self.in_flight)


class AccessMiddleware:
    """Gives each request an id (X-Request-ID, kept from the client when sent), logs it, and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics
        # metric children by (metric, label values), looked up once each (prometheus_client's labels() is ~1 us)
        self._children: dict[tuple[Any, ...], Any] = {}

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
            self._child(self.metrics.requests, route, scope["method"], str(status)).inc()
            self._child(self.metrics.latency, route).observe(elapsed)
            log.info(
                "%s %s -> %d in %.1f ms",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                extra={"request_id": request_id, "status": status, "route": route},
            )

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child


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
