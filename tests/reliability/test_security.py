"""Security basics: keys never logged, no path tricks, no stack traces out, CORS closed by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import make_client, wait_ready
from tests.service.images import png_bytes
from tests.serving import serve


def test_api_keys_are_never_logged(repo: Path) -> None:
    with serve(repo, "tiny-a", api_keys="very-secret-key", log_json="true", log_level="debug") as server:
        for key in ("very-secret-key", "wrong-guess-key"):
            httpx.get(f"{server.url}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            httpx.get(f"{server.url}/models", headers={"X-API-Key": key}, timeout=5)
        server.process.terminate()
        server.process.wait(timeout=30)
        output = server.output()
    assert "/models" in output  # the requests were logged...
    assert "very-secret-key" not in output and "wrong-guess-key" not in output  # ...the keys were not


def test_model_names_cannot_reach_outside_the_repository(client: TestClient) -> None:
    for path in (
        "/models/..%2F..%2Fetc",
        "/models/tiny-a/examples/..%2Fmanifest.json",
        "/models/tiny-a/examples/%2Fetc%2Fpasswd",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
    r = client.post("/encode?model=../tiny-a", files=[("image", ("a.png", png_bytes(0), "image/png"))])
    assert r.status_code == 404


def test_unexpected_errors_carry_no_stack_trace_or_path(repo: Path) -> None:
    app = create_app(Settings(model_repository=repo, default_model="tiny-a", device="cpu"))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)

        def broken(_: dict[str, Any]) -> dict[str, Any]:
            raise RuntimeError(f"kaboom in {repo}/tiny-a/decoder.onnx")

        app.state.registry.models["tiny-a"].batchers["decoder"]._run = broken
        r = client.post("/decode", json={"z1": [0] * 4, "z2": [0] * 3})
        assert r.status_code == 500
        detail = r.json()["detail"]
        assert "request id" in detail and "kaboom" not in detail and str(repo) not in detail
        assert "Traceback" not in r.text


def test_cors_is_closed_unless_configured(repo: Path) -> None:
    preflight = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    with make_client(repo) as closed:
        wait_ready(closed)
        assert "access-control-allow-origin" not in closed.options("/encode", headers=preflight).headers
    with make_client(repo, cors_origins=["https://elsewhere.example"]) as opened:
        wait_ready(opened)
        r = opened.options("/encode", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"
