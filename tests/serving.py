"""Run `python -m service` as a real uvicorn process on 127.0.0.1 for tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import servers

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(repo: Path, default_model: str, timeout_s: float = 60.0, **settings: str) -> Iterator[Server]:
    """``python -m service`` on a free port of 127.0.0.1, ready, stopped afterwards whatever happens.

    The benchmarks' server helper (bench.servers), with the test's settings: info-level logs (tests
    read them), the CPU, and ``settings`` as TWOCODE_* variables. Output goes to a file, never a pipe:
    an unread pipe fills after ~64 KB of access logs and then blocks the server's event loop.
    """
    overrides = {"model_repository": str(repo), "default_model": default_model, "log_level": "info"} | settings
    command, env = servers.ours(settings=overrides)
    with servers.start(command, env, cores=None, timeout_s=timeout_s) as running:
        yield Server(f"http://127.0.0.1:{running.port}", running.process, running.log)
