"""Process life cycle: draining on SIGTERM, so a rolling restart loses no request.

On the first SIGTERM (or SIGINT) /readyz turns 503 at once and new inference
requests are refused with 503 + Retry-After, while requests already in
flight finish; once none is left (or the drain bound passes) uvicorn's own
shutdown runs. A second signal exits at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

import uvicorn

log = logging.getLogger("service.lifecycle")


@dataclass
class Lifecycle:
    """Shared between the middleware (which counts requests) and the server (which drains)."""

    draining: bool = False
    in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal drains in-flight requests before shutting down."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.lifecycle, self.drain_timeout_s = lifecycle, drain_timeout_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.draining:  # a second signal: no more waiting
            super().handle_exit(sig, frame)
            return
        self.lifecycle.draining = True
        log.info("signal %d: draining %d request(s) in flight, refusing new ones", sig, self.lifecycle.in_flight)
        threading.Thread(target=self._exit_when_drained, name="drain", daemon=True).start()

    def _exit_when_drained(self) -> None:
        deadline = time.monotonic() + self.drain_timeout_s
        while self.lifecycle.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        log.info("drained (%d left); shutting down", self.lifecycle.in_flight)
        self.should_exit = True
