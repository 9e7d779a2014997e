"""Builds the FastAPI app. Models load in the lifespan, in the background, never at import."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from service import logs, openapi
from service.batching import BatcherFactory, BatcherStoppedError, DynamicBatcher, QueueFullError
from service.errors import code_for, validation_detail
from service.fast_paths import FastPaths
from service.lifecycle import Lifecycle
from service.metrics import Metrics, mark_dead
from service.middleware import AccessMiddleware, LimitsMiddleware
from service.routes import admin, docs, inference, models, ops, page
from service.runtime import Registry, StartupError, choose_providers, discover, sync
from service.settings import Settings, get_settings

log = logging.getLogger("service.app")


async def _load(app: FastAPI) -> None:
    """Load and warm every model (the same sync as a reload, from an empty registry), then mark the app ready."""
    settings: Settings = app.state.settings
    registry: Registry = app.state.registry
    async with app.state.reload_lock:
        await sync(registry, settings, app.state.metrics, app.state.batcher_factory)
    if settings.default_model not in registry.models:
        log.warning("default model %r is not serving; requests without ?model= will get 404", settings.default_model)
    registry.ready = True
    log.info("ready: %d model(s) serving, %d refused", len(registry.models), len(registry.refused))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.registry = Registry()
    settings: Settings = app.state.settings
    try:  # fail start-up at once, not in the background, when the configuration cannot be honoured
        choose_providers(settings.device)
        discover(settings.model_repository)
    except StartupError as exc:
        log.critical("cannot start: %s", exc)
        raise
    app.state.reload_lock = asyncio.Lock()  # start-up's load and every reload take turns
    loading = asyncio.create_task(_load(app))
    app.state.loading = loading
    if settings.load_before_serving:
        await loading
    _reload_on_sighup(app)
    try:
        yield
    finally:
        app.state.registry.ready = False
        if not loading.done():
            loading.cancel()
        for task in app.state.registry.retiring:
            task.cancel()
        for model in app.state.registry.models.values():
            for batcher in model.batchers.values():
                await batcher.stop()
        mark_dead(os.getpid())  # a worker's live gauges leave the sum with it


def _reload_on_sighup(app: FastAPI) -> None:
    """`kill -HUP PID` reloads the model repository (where the loop can own signals: the main thread)."""
    loop = asyncio.get_running_loop()

    def schedule() -> None:
        task = loop.create_task(admin.reload_models(app))
        app.state.registry.retiring.add(task)
        task.add_done_callback(app.state.registry.retiring.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, schedule)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread (tests), or no SIGHUP
        log.debug("SIGHUP reload not available here")


def own_batcher(settings: Settings) -> BatcherFactory:
    """The plain service's batcher; TWOCODE_BATCHING=serve is refused outside Ray Serve."""
    if settings.batching != "app":
        raise StartupError(
            f"batching={settings.batching} needs Ray Serve: deploy service.ray_serve:app, or set "
            "TWOCODE_BATCHING=app for the plain service"
        )
    return DynamicBatcher


FRONT_PASSED = "twocode.front"  # scope key: the request has been through the front layers


class TwoCodeAPI(FastAPI):
    """FastAPI behind the service's own ASGI layers (``front``), which wrap the whole app.

    Request ids, logs, metrics, CORS, the body and concurrency limits and the fast paths
    (service/middleware.py, service/fast_paths.py) are plain ASGI. Sitting outside FastAPI rather
    than in its middleware list, they meet every HTTP request first, and an ordinary /swap or /encode
    the fast paths answer never enters FastAPI's own per-request layers (its telemetry check, error,
    exception-telemetry and body-limit middleware; docs/performance.md). Everything else goes on
    into FastAPI, whose error handlers answer as before. Lifespan events go straight to FastAPI.
    """

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http" and FRONT_PASSED not in scope:
            scope[FRONT_PASSED] = True  # the front hands the request back to this method: FastAPI's turn
            await self.front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def build_front(app: FastAPI, settings: Settings, metrics: Metrics, lifecycle: Lifecycle) -> ASGIApp:
    """Outermost first: ids, logs and metrics; CORS (closed unless configured); limits; the fast paths."""
    fast = frozenset(path for path, on in (("/swap", settings.fast_swap), ("/encode", settings.fast_encode)) if on)
    layer: ASGIApp = FastPaths(app, service=app, paths=fast) if fast else app
    layer = LimitsMiddleware(
        layer,
        max_body_bytes=settings.max_body_bytes,
        max_concurrency=settings.max_concurrency,
        retry_after_s=settings.retry_after_s,
        metrics=metrics,
        lifecycle=lifecycle,
        body_timeout_s=settings.body_timeout_s,
    )
    if settings.cors_origins:
        layer = CORSMiddleware(
            layer,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
        )
    return AccessMiddleware(layer, metrics=metrics)


def create_app(settings: Settings | None = None, batcher_factory: BatcherFactory | None = None) -> FastAPI:
    """The service. ``batcher_factory`` replaces the app's own batcher (Ray Serve's ``@serve.batch``)."""
    settings = settings or get_settings()
    batcher_factory = batcher_factory or own_batcher(settings)
    logs.configure(settings.log_level, settings.log_json)
    metrics = Metrics()
    app = TwoCodeAPI(
        title="Two-code VAE: controllable image synthesis",
        version="0.1.0",
        description="Encode images into a complementary code z1 and a specified code z2, decode codes into "
        "images, and swap specified factors between images.",
        lifespan=lifespan,
        # Operation ids are the route functions' names (encode, swap, list_models, ...): generated
        # clients get methods a person would have named, not 'encode_encode_post'.
        generate_unique_id_function=lambda route: route.name,
        docs_url=None,  # /docs and /redoc come from service.routes.docs, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.batcher_factory = batcher_factory
    app.state.lifecycle = lifecycle = Lifecycle()
    app.state.registry = Registry()
    app.state.reload_lock = asyncio.Lock()
    app.include_router(inference.router)
    app.include_router(models.router)
    app.include_router(ops.router)
    app.include_router(page.router)
    app.include_router(admin.router)
    docs.mount(app)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    openapi.customize(app, settings)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        """What to send instead, in the API's words: never pydantic's internal paths."""
        content_type = request.headers.get("content-type", "")
        status, detail, code = validation_detail(exc.errors(), request.url.path, content_type)
        return JSONResponse({"detail": detail, "code": code}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        body = {"detail": detail, "code": code_for(exc.status_code, exc)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Log the traceback; answer without one (no stack traces or paths leave the process)."""
        request_id = request.scope.get("state", {}).get("request_id", "-")
        log.exception("unhandled error", extra={"request_id": request_id})
        detail = f"internal error; quote request id {request_id} to the operator"
        return JSONResponse({"detail": detail, "code": "internal_error"}, status_code=500)

    def retry_later(code: str, detail: str) -> JSONResponse:
        """503 with Retry-After, counted as a rejection of this kind."""
        metrics.rejected.labels(code).inc()
        headers = {"Retry-After": str(settings.retry_after_s)}
        return JSONResponse({"detail": detail, "code": code}, status_code=503, headers=headers)

    @app.exception_handler(BatcherStoppedError)
    async def on_stopped(_: Request, exc: BatcherStoppedError) -> JSONResponse:
        return retry_later("draining", f"{exc}; retry after the time in Retry-After")

    @app.exception_handler(QueueFullError)
    async def on_queue_full(_: Request, exc: QueueFullError) -> JSONResponse:
        return retry_later("queue_full", f"the inference queue is full ({exc}); retry after the time in Retry-After")

    app.state.fast_answers = Counter[str]()  # per path, requests the fast paths answered (the tests read it)
    app.front = build_front(app, settings, metrics, lifecycle)
    return app
