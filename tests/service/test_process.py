"""`python -m service` as a real uvicorn process on 127.0.0.1, as `make serve` runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.images import png_bytes

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(repo: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = os.environ | {
        "TWOCODE_PORT": str(port),
        "TWOCODE_HOST": "127.0.0.1",
        "TWOCODE_MODEL_REPOSITORY": str(repo),
        "TWOCODE_DEFAULT_MODEL": "tiny-a",
        "TWOCODE_DEVICE": "cpu",
        "TWOCODE_LOG_JSON": "true",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode() if proc.stdout else "server exited")
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("server did not become ready in 60 s")
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_served_process_swaps_and_stops_cleanly_on_sigterm(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = server
    files = [("z1_image", ("a.png", png_bytes(1), "image/png")), ("z2_image", ("b.png", png_bytes(2), "image/png"))]
    r = httpx.post(f"{url}/swap", files=files, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert '"message": "model tiny-a v1 loaded on CPUExecutionProvider"' in output  # JSON log lines
    assert '"request_id"' in output
