"""`python -m service` as a real uvicorn process on 127.0.0.1, as `make serve` runs it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.service.images import png_bytes
from tests.serving import serve


def test_served_process_swaps_and_stops_cleanly_on_sigterm(repo: Path) -> None:
    with serve(repo, "tiny-a", log_json="true") as server:
        files = [("z1_image", ("a.png", png_bytes(1), "image/png")), ("z2_image", ("b.png", png_bytes(2), "image/png"))]
        r = httpx.post(f"{server.url}/swap", files=files, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        output = server.output()
    assert '"message": "model tiny-a v1 loaded on CPUExecutionProvider"' in output  # JSON log lines
    assert '"request_id"' in output
