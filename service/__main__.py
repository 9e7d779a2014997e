"""``python -m service``: serve the model repository with uvicorn, configured from TWOCODE_* settings."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from service.app import create_app, own_batcher
from service.lifecycle import DrainingServer
from service.runtime import StartupError
from service.settings import get_settings


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
        "timeout_graceful_shutdown": int(settings.drain_timeout_s) + 5,
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
    }
    try:
        own_batcher(settings)  # refuse before uvicorn's workers would each fail on their own
        if settings.workers > 1:  # uvicorn's own supervisor; each worker drains the uvicorn way
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
