"""The HTTP ceiling: the same uvicorn set-up answering a multipart POST with no work at all.

uvicorn bench.trivial_app:app
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, File, UploadFile
from fastapi.responses import Response

app = FastAPI(title="trivial")


@app.post("/trivial")
async def trivial(image: Annotated[list[UploadFile], File()]) -> Response:
    return Response(b"ok", media_type="text/plain")


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
