"""`python -m service` as a real uvicorn process on 127.0.0.1, as `make serve` runs it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

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


def test_serve_batching_outside_ray_is_refused_before_serving(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.__main__ import main
    from service.settings import get_settings

    monkeypatch.setenv("TWOCODE_MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("TWOCODE_BATCHING", "serve")
    for workers in ("1", "2"):  # uvicorn's supervisor (2) must not start workers that each fail
        monkeypatch.setenv("TWOCODE_WORKERS", workers)
        get_settings.cache_clear()
        try:
            assert main() == 2
        finally:
            get_settings.cache_clear()
        assert "batching=serve needs Ray Serve" in capsys.readouterr().err
