"""/healthz, /readyz and /metrics: for orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from service.deps import RegistryDep, require_api_key
from service.metrics import Metrics
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """200 while the process is alive (no model needed)."""
    return Health(status="alive")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "not ready yet"}})
async def readyz(registry: RegistryDep, request: Request) -> JSONResponse:
    """200 once every model is loaded and warmed up; 503 before, and from the first moment of shutdown."""
    if request.app.state.lifecycle.draining:
        return JSONResponse(Health(status="draining").model_dump(), status_code=503, headers={"Retry-After": "1"})
    if not registry.ready:
        return JSONResponse(Health(status="loading").model_dump(), status_code=503, headers={"Retry-After": "1"})
    return JSONResponse(Health(status="ready", models=registry.names()).model_dump())


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(require_api_key)],
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format."""
    registry: Metrics = request.app.state.metrics
    return PlainTextResponse(registry.render(), media_type="text/plain; version=0.0.4")
