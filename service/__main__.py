"""``python -m service``: serve the model repository with uvicorn, configured from TWOCODE_* settings."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from service import logs
from service.app import create_app, own_batcher
from service.lifecycle import DrainingServer
from service.metrics import MULTIPROCESS_ENV
from service.runtime import StartupError
from service.settings import get_settings


def share_metrics_between_workers() -> None:
    """Before the workers start: an empty folder in which they all write their metrics (see service.metrics)."""
    folder = os.environ.get(MULTIPROCESS_ENV)
    if folder:  # the operator's: empty it, values from an earlier run would be added to this one's
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        os.environ[MULTIPROCESS_ENV] = tempfile.mkdtemp(prefix="twocode-metrics-")


def main() -> int:
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"TWOCODE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        sys.stderr.write(f"error: invalid settings: {problems}\n")
        return 2
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": logs.uvicorn_log_config(settings.log_level, settings.log_json),
        "access_log": False,  # one access line per request: the service's own (service.middleware)
        "timeout_graceful_shutdown": int(settings.drain_timeout_s) + 5,
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
    }
    try:
        own_batcher(settings)  # refuse before uvicorn's workers would each fail on their own
        if settings.workers > 1:  # uvicorn's own supervisor; each worker drains the uvicorn way
            share_metrics_between_workers()
            uvicorn.run("service.app:create_app", factory=True, workers=settings.workers, **common)  # type: ignore[arg-type]
            return 0
        app = create_app(settings)
        server = DrainingServer(uvicorn.Config(app, **common), app.state.lifecycle, settings.drain_timeout_s)  # type: ignore[arg-type]
        server.run()
    except StartupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0 if server.started else 3


if __name__ == "__main__":
    raise SystemExit(main())
