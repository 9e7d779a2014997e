"""`python -m service` as a real uvicorn process on 127.0.0.1, as `make serve` runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.servers import free_port
from tests.service.images import png_bytes
from tests.serving import ROOT, serve


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
            assert main([]) == 2
        finally:
            get_settings.cache_clear()
        assert "batching=serve needs Ray Serve" in capsys.readouterr().err


def test_help_describes_the_flags_and_starts_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for flag in ("--host", "--port", "--model-repository", "--workers", "--device", "--log-json"):
        assert flag in done.stdout
    assert "TWOCODE_MAX_CONCURRENCY" in done.stdout and "Uvicorn running" not in done.stdout + done.stderr


def test_the_console_script_serves_with_flags_over_the_environment(tmp_path: Path) -> None:
    """twocode-serve --port/--model-repository/--default-model win over TWOCODE_* in the environment."""
    script = Path(sys.executable).with_name("twocode-serve")
    port = free_port()
    env = os.environ | {"TWOCODE_PORT": "1", "TWOCODE_MODEL_REPOSITORY": str(tmp_path / "nowhere")}
    command = [str(script), "--port", str(port), "--model-repository", str(ROOT / "models")]
    process = subprocess.Popen([*command, "--default-model", "colormnist-colour", "--device", "cpu"], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/models", timeout=5).json()["default_model"] == "colormnist-colour"
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
