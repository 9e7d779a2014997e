"""``python -m service`` (or ``twocode-serve``): serve the model repository with uvicorn.

Settings come from TWOCODE_* environment variables (and a .env file); the
command-line flags below override the most common ones. Every other setting
is listed with ``--help`` under its variable name.
"""

from __future__ import annotations

import argparse
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
from service.settings import ENV_PREFIX, Settings, get_settings

# The settings a person most often sets when starting the service by hand.
FLAGS = ("host", "port", "model_repository", "default_model", "device", "workers", "log_level", "log_json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve the two-code VAE's model repository over HTTP (/encode, /decode, /swap, /docs).",
        epilog="Every setting is also an environment variable: "
        + ", ".join(f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields)
        + ". Flags override the environment. API keys go in TWOCODE_API_KEYS, never on the command line.",
    )
    for name in FLAGS:
        info = Settings.model_fields[name]
        choices = getattr(info.annotation, "__args__", None) if name in ("device", "log_level") else None
        kind = bool if info.annotation is bool else (str if choices else info.annotation)
        flag = f"--{name.replace('_', '-')}"
        what = info.description or name.replace("_", " ")
        help_text = f"{what} (env {ENV_PREFIX}{name.upper()}; default: {info.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, choices=choices, default=None, help=help_text)  # type: ignore[arg-type]
    return parser


def apply_flags(args: argparse.Namespace) -> None:
    """Flags become environment variables, so uvicorn's workers (new processes) see them too."""
    for name in FLAGS:
        value = getattr(args, name)
        if value is not None:
            os.environ[f"{ENV_PREFIX}{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    get_settings.cache_clear()


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


def main(argv: list[str] | None = None) -> int:
    apply_flags(build_parser().parse_args(argv))
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
