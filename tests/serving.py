"""Run `python -m service` as a real uvicorn process on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.servers import free_port

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
    """Start the service on a free port, wait for /readyz, and kill it afterwards whatever happens."""
    port = free_port()
    env = (
        os.environ
        | {
            "TWOCODE_PORT": str(port),
            "TWOCODE_HOST": "127.0.0.1",
            "TWOCODE_MODEL_REPOSITORY": str(repo),
            "TWOCODE_DEFAULT_MODEL": default_model,
            "TWOCODE_DEVICE": "cpu",
            "PYTHONPATH": str(ROOT),
        }
        | {f"TWOCODE_{k.upper()}": v for k, v in settings.items()}
    )
    # Output goes to a file, never a pipe: an unread pipe fills up after ~64 KB of access logs
    # and then blocks the server's event loop on its next log line.
    log = Path(tempfile.mkdtemp(prefix="twocode-serve-")) / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {timeout_s} s")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
