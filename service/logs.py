"""Logging set-up: plain lines or one JSON object per line, with the request id when there is one."""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

# Record attributes that are not the caller's extra fields (uvicorn adds a terminal-coloured copy).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request {request_id}]" if request_id else line


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# uvicorn's own loggers, which write through our handler. Its access logger stays silent: the
# service's access middleware writes the one line per request (with request id, status, route).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")


def uvicorn_log_config(level: str, as_json: bool) -> dict[str, Any]:
    """The ``logging.dictConfig`` that uvicorn applies in every worker: one format for every line."""
    formatter = {"()": JsonFormatter} if as_json else {"()": PlainFormatter, "format": PLAIN_FORMAT}
    handler = {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stderr"}
    loggers = {name: {"handlers": ["service"], "level": level.upper(), "propagate": False} for name in UVICORN_LOGGERS}
    loggers["uvicorn.access"] = {"handlers": [], "level": "CRITICAL", "propagate": False}
    loggers["service"] = {"handlers": ["service"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": formatter},
        "handlers": {"service": handler},
        "loggers": loggers,
    }


def configure(level: str, as_json: bool) -> None:
    """The service's loggers, and uvicorn's where it runs us (they share one handler and format)."""
    logging.config.dictConfig(uvicorn_log_config(level, as_json))
