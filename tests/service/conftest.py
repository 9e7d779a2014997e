"""The service's fixtures: committed tiny ONNX models in a throwaway repository, and test helpers.

Nothing here imports torch or the trainer: the service's tests run in the serving environment alone.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.app import create_app
from service.batching import BatcherFactory
from service.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"  # committed; tests/fixtures/make_tiny_models.py


def tiny_model(name: str, into: Path) -> Path:
    """A copy of a committed tiny model folder (models/tiny-a, versions/tiny-a-v2, ...) as ``into``."""
    shutil.copytree(FIXTURES / name, into)
    return into


@pytest.fixture(scope="session")
def model_source() -> Path:
    """Tiny models made once by the trainer and committed: tiny-a (z1 4, z2 3) and tiny-b (z1 2, z2 5)."""
    return FIXTURES / "models"


@pytest.fixture
def repo(model_source: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, so a test may break a model without touching the others."""
    target = tmp_path / "models"
    shutil.copytree(model_source, target)
    return target


def wait_ready(client: TestClient, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("service did not become ready")


def make_client(repo: Path, **overrides: object) -> TestClient:
    settings = Settings(
        model_repository=repo, default_model="tiny-a", device="cpu", max_queue_delay_ms=5.0, **overrides
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client(repo: Path) -> Iterator[TestClient]:
    with make_client(repo) as c:
        wait_ready(c)
        yield c


@asynccontextmanager
async def running_app(
    repo: Path, batcher_factory: BatcherFactory | None = None, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan run and models loaded, and an in-process async client."""
    app = create_app(Settings(model_repository=repo, default_model="tiny-a", device="cpu", **settings), batcher_factory)
    async with app.router.lifespan_context(app):
        await app.state.loading
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            yield app, http


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[str, float]:
    """Parse Prometheus text strictly: every line a comment or a valid sample, values numeric.

    Keys are ``name{label="value",...}`` with the labels sorted by name, whatever order the
    exposition used.
    """
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"bad metrics line: {line!r}"
        name, labels, value = match.group(1), match.group(3), match.group(4)
        pairs = sorted(LABEL.findall(labels or ""))
        key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else "")
        samples[key] = float("inf") if value == "+Inf" else float(value)
    return samples


@pytest.fixture
def replica_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray Serve's batch queue asks for its replica's context (only max_ongoing_requests is read)."""
    import types

    serve = pytest.importorskip("ray.serve", reason="the ray extra is not installed")
    config = types.SimpleNamespace(max_ongoing_requests=64)
    monkeypatch.setattr(serve, "get_replica_context", lambda: types.SimpleNamespace(_deployment_config=config))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def decode_concurrently(http: httpx.AsyncClient, n: int) -> list[httpx.Response]:
    """``n`` /decode requests at once, each with codes of its own."""
    bodies = [{"z1": [float(i)] * 4, "z2": [0.0] * 3} for i in range(n)]
    return list(await asyncio.gather(*(http.post("/decode", json=b) for b in bodies)))
