"""Logs as an operator reads them: one format for every line, one access line per request."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.serving import ROOT, serve


@pytest.mark.parametrize("workers", ["1", "2"])
def test_json_logs_are_json_on_every_line_with_one_access_line_per_request(workers: str) -> None:
    with serve(ROOT / "models", "colormnist-digit", log_json="true", workers=workers) as server:
        ids = [f"log-test-{i}" for i in range(4)]
        for request_id in ids:
            r = httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": request_id, "Connection": "close"})
            assert r.status_code == 200
        server.process.terminate()
        server.process.wait(timeout=30)
        lines = [line for line in server.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # a plain-text line (uvicorn's own) fails here
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert {e["logger"] for e in entries} >= {"uvicorn.error", "service.app", "service.access"}
    for request_id in ids:
        access = [e for e in entries if e.get("request_id") == request_id]
        assert len(access) == 1 and access[0]["logger"] == "service.access", access
    assert not any(e["logger"] == "uvicorn.access" for e in entries)


def test_plain_logs_carry_the_same_lines(tmp_path: Path) -> None:
    with serve(ROOT / "models", "colormnist-digit") as server:
        httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": "plain-1"})
        server.process.terminate()
        server.process.wait(timeout=30)
        lines = server.output().splitlines()
    assert sum("[request plain-1]" in line for line in lines) == 1
    assert any(" INFO uvicorn.error: " in line for line in lines)
    assert not any('"GET /healthz HTTP/1.1" 200' in line for line in lines)  # uvicorn's access line is off
