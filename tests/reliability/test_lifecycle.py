"""Life cycle: drain on SIGTERM, hot reload of new model versions, refusal of broken ones."""

from __future__ import annotations

import asyncio
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import running_app, tiny_model
from tests.serving import serve

DECODE = {"z1": [0.5] * 4, "z2": [0.0] * 3}


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(repo: Path) -> None:
    # A long batching window keeps requests in flight for ~1.5 s.
    with serve(repo, "tiny-a", max_queue_delay_ms="1500", drain_timeout_s="10") as server:
        results: list[int] = []

        def call() -> None:
            results.append(httpx.post(f"{server.url}/decode", json=DECODE, timeout=30).status_code)

        workers = [threading.Thread(target=call) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.5)  # they are now waiting in the batcher
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503
        refused = httpx.post(f"{server.url}/decode", json=DECODE, timeout=5)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "shutting down" in refused.json()["detail"]
        for w in workers:
            w.join(timeout=30)
        assert results == [200, 200, 200, 200]
        assert server.process.wait(timeout=30) == 0
        assert time.monotonic() - started < 10


def _replace_with_new_version(repo: Path, tmp: Path) -> None:
    """tiny-a version 2 (other weights), swapped in the way a deployment would: staged, then renamed."""
    staged = tiny_model("versions/tiny-a-v2", tmp / "tiny-a")
    old = repo / ".tiny-a.old"
    (repo / "tiny-a").rename(old)
    staged.rename(repo / "tiny-a")
    shutil.rmtree(old)


@pytest.mark.anyio
async def test_new_version_is_picked_up_without_failing_requests_in_flight(repo: Path, tmp_path: Path) -> None:
    async with running_app(repo, max_queue_delay_ms=400.0) as (app, http):
        before = (await http.post("/decode", json=DECODE)).content
        in_flight = asyncio.create_task(http.post("/decode", json=DECODE))
        await asyncio.sleep(0.1)
        _replace_with_new_version(repo, tmp_path)
        report = (await http.post("/admin/reload")).json()
        assert report["loaded"] == ["tiny-a"] and report["unchanged"] == ["tiny-b"]
        assert (await in_flight).status_code == 200
        assert (await http.get("/models/tiny-a")).json()["version"] == "2"
        after = await http.post("/decode", json=DECODE)
        assert after.status_code == 200 and after.content != before  # the new weights answer


@pytest.mark.anyio
async def test_broken_new_version_leaves_the_old_one_serving(repo: Path, tmp_path: Path) -> None:
    async with running_app(repo) as (_, http):
        _replace_with_new_version(repo, tmp_path)
        data = bytearray((repo / "tiny-a" / "encoder.onnx").read_bytes())
        data[-5] ^= 0xFF
        (repo / "tiny-a" / "encoder.onnx").write_bytes(bytes(data))
        report = (await http.post("/admin/reload")).json()
        assert "tiny-a" in report["refused"] and "keeps serving" in report["refused"]["tiny-a"]
        assert (await http.get("/models/tiny-a")).json()["version"] == "1"
        assert (await http.post("/decode", json=DECODE)).status_code == 200


@pytest.mark.anyio
async def test_removed_and_added_models_follow_the_repository(repo: Path, tmp_path: Path) -> None:
    async with running_app(repo) as (_, http):
        shutil.rmtree(repo / "tiny-b")
        tiny_model("versions/tiny-c", repo / "tiny-c")
        report = (await http.post("/admin/reload")).json()
        assert report["removed"] == ["tiny-b"] and report["loaded"] == ["tiny-c"]
        names = [m["name"] for m in (await http.get("/models")).json()["models"]]
        assert names == ["tiny-a", "tiny-c"]
        assert (await http.post("/decode?model=tiny-b", json=DECODE)).status_code == 404


@pytest.mark.anyio
async def test_reload_needs_the_api_key_when_keys_are_set(repo: Path) -> None:
    async with running_app(repo, api_keys=["k"]) as (_, http):
        assert (await http.post("/admin/reload")).status_code == 401
        assert (await http.post("/admin/reload", headers={"X-API-Key": "k"})).status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
