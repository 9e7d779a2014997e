"""``python -m service``: serve the model repository with uvicorn, configured from TWOCODE_* settings."""

from __future__ import annotations

import sys

import uvicorn

from service.runtime import StartupError
from service.settings import get_settings


def main() -> int:
    settings = get_settings()
    try:
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            timeout_graceful_shutdown=10,
        )
    except StartupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
