"""/healthz, /readyz and /metrics: for orchestrators and Prometheus."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from service.deps import RegistryDep, SettingsDep, require_api_key
from service.metrics import CONTENT_TYPE, Metrics
from service.routes.inference import ERRORS
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    """200 while the process is alive (no model needed)."""
    return Health(status="alive")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "not ready: the reason says why"}},
    summary="Readiness: the models serve",
)
async def readyz(registry: RegistryDep, settings: SettingsDep, request: Request) -> JSONResponse:
    """200 once the models are loaded and warm and the default model serves (on the GPU when device=cuda).

    503 with a reason before that, when nothing or not the default model serves, and from the first
    moment of shutdown: the HEALTHCHECK, Kubernetes probes and Ray's health check all rely on it.
    """
    reason: str | None
    if request.app.state.lifecycle.draining:
        status, reason = "draining", "shutting down; requests in flight are finishing"
    else:
        status = "loading" if not registry.ready else "unavailable"
        reason = registry.unready_reason(settings)
    if reason is None:
        return JSONResponse(Health(status="ready", models=registry.names()).model_dump())
    body = Health(status=status, models=registry.names(), reason=reason).model_dump()
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(require_api_key)],
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, 401: ERRORS[401]},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    """Prometheus text format; with several workers, the sum over all of them."""
    registry: Metrics = request.app.state.metrics
    return Response(await asyncio.to_thread(registry.render), media_type=CONTENT_TYPE)
