"""The web page at / (static files shipped with the service; no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["page"])


@router.get("/", response_class=FileResponse, include_in_schema=False)
async def index() -> FileResponse:
    """The page: pick a model, drop two images, see the swap, move along the codes."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
