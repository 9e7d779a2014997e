"""The service batched by Ray Serve's ``@serve.batch`` queue, outside Ray (``python -m bench.ray_batching``).

Serve's batch queue reads one thing from its replica (``max_ongoing_requests``,
for a warning); given a stand-in for that, the queue runs as it does in a
replica. Served by plain uvicorn beside the same app on its own batcher, the
two queues can be compared without Serve's proxy hop, which costs far more
per request on a small machine than either queue.
"""

from __future__ import annotations

import types

from fastapi import FastAPI
from ray import serve

from service.app import create_app as create_service
from service.ray_batching import batcher_for
from service.settings import Settings

STAND_IN = types.SimpleNamespace(_deployment_config=types.SimpleNamespace(max_ongoing_requests=64))


def create_app() -> FastAPI:
    """``uvicorn --factory bench.serve_batch_app:create_app``; TWOCODE_BATCHING picks the queue."""
    settings = Settings()
    serve.get_replica_context = lambda: STAND_IN  # type: ignore[assignment,return-value]
    return create_service(settings, batcher_for(settings))
