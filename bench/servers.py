"""Start the servers under test as separate processes, pinned to chosen cores, and stop them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Running:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return str(response.read().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(cores: set[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)


def _wait_ready(running: Running, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"server exited with {running.process.returncode}: {running.log.read_text()[-2000:]}")
        try:
            running.get("/readyz")
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout_s} s: {running.log.read_text()[-2000:]}")


@contextmanager
def start(command: list[str], env: dict[str, str], cores: set[int] | None, timeout_s: float = 120) -> Iterator[Running]:
    """Run ``command`` (which must read the port from ``env['PORT']``), wait for /readyz, kill it after."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-")) / "server.log"
    full_env = os.environ | {"PYTHONPATH": str(ROOT)} | {k: v.replace("{port}", str(port)) for k, v in env.items()}
    args = [a.replace("{port}", str(port)) for a in command]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, cwd=ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=lambda: _pin(cores)
        )
    running = Running(port, process, log)
    try:
        _wait_ready(running, timeout_s)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ours(workers: int = 1, settings: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Our service as ``make serve`` runs it, with warning-level logs like the other servers."""
    env = {
        "TWOCODE_PORT": "{port}",
        "TWOCODE_MODEL_REPOSITORY": "models",
        "TWOCODE_DEFAULT_MODEL": "colormnist-digit",
        "TWOCODE_DEVICE": "cpu",
        "TWOCODE_WORKERS": str(workers),
        "TWOCODE_LOG_LEVEL": "warning",
    } | {f"TWOCODE_{k.upper()}": v for k, v in (settings or {}).items()}
    return [sys.executable, "-m", "service"], env


def uvicorn_app(target: str, **env: str) -> tuple[list[str], dict[str, str]]:
    """Another app under the same uvicorn set-up as ours (one worker, warning logs, no access log)."""
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", "{port}"]
    return command + ["--log-level", "warning", "--no-access-log"], dict(env)
