"""/admin/reload: pick up new model versions without a restart (also on SIGHUP)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from service.deps import require_api_key
from service.routes.inference import ERRORS
from service.runtime import sync

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_api_key)])


@router.post("/reload", responses={401: ERRORS[401], 503: ERRORS[503]}, summary="Reload the model repository")
async def reload(request: Request) -> dict[str, Any]:
    """Load new or changed model folders (a broken new version leaves the old one serving), drop removed ones."""
    return await reload_models(request.app)


async def reload_models(app: Any) -> dict[str, Any]:
    """One reload at a time: a second caller waits for the first to finish."""
    state = app.state
    async with state.reload_lock:
        report: dict[str, Any] = await sync(state.registry, state.settings, state.metrics, state.batcher_factory)
    return report
