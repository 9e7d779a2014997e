"""Ray Serve's @serve.batch behind the app's batcher interface (service/ray_batching.py).

Serve's batch queue asks for the replica's context when it is created; these
tests give it a stand-in (only ``max_ongoing_requests`` is read), so the
queue runs as it does in a replica without starting Ray. The real replica is
exercised by tests/deploy/test_ray_serve.py.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

serve = pytest.importorskip("ray.serve", reason="the ray extra is not installed")
from service.batching import Arrays, BatchSpec, QueueFullError, RunFn  # noqa: E402
from service.metrics import Metrics  # noqa: E402
from service.ray_batching import ServeBatcher  # noqa: E402
from tests.service.conftest import parse_metrics, running_app  # noqa: E402
from tests.service.test_ops import _decode_concurrently  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def replica_context(monkeypatch: pytest.MonkeyPatch) -> None:
    config = types.SimpleNamespace(max_ongoing_requests=64)
    monkeypatch.setattr(serve, "get_replica_context", lambda: types.SimpleNamespace(_deployment_config=config))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _batcher(run: RunFn, max_batch: int = 4, max_queue: int = 100) -> ServeBatcher:
    spec = BatchSpec(model="m", network="encoder", max_batch=max_batch, max_delay_s=0.0, max_queue=max_queue)
    return ServeBatcher(run, spec, Metrics())


def _held(release: threading.Event) -> RunFn:
    """A run that waits for ``release``: the requests behind it stay queued meanwhile."""

    def run(inputs: Arrays) -> Arrays:
        release.wait(10)
        return {"y": inputs["x"]}

    return run


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=int)


def _doubling(seen: list[int], pause_s: float = 0.02) -> RunFn:
    def run(inputs: Arrays) -> Arrays:
        seen.append(inputs["x"].shape[0])
        time.sleep(pause_s)
        return {"y": inputs["x"] * 2}

    return run


async def test_concurrent_blocks_share_runs_and_each_gets_its_own_rows() -> None:
    seen: list[int] = []
    batcher = _batcher(_doubling(seen))
    blocks = [np.full((n, 2), i, np.float32) for i, n in enumerate([1, 2, 1, 9, 1, 3, 1, 1])]
    results = await asyncio.gather(*(batcher.submit({"x": b}) for b in blocks))
    for block, result in zip(blocks, results, strict=True):
        np.testing.assert_array_equal(result["y"], block * 2)
    assert sum(seen) == sum(b.shape[0] for b in blocks)
    assert max(seen) <= 4, "a run took more rows than max_batch"  # the 9-row block rode three batches
    assert batcher.runs == len(seen) < len(blocks) + 2  # fewer runs than blocks: they were batched
    assert batcher.queued_rows == 0


async def test_a_full_queue_is_refused_at_once() -> None:
    release = threading.Event()
    batcher = _batcher(_held(release), max_queue=4)
    first = asyncio.ensure_future(batcher.submit({"x": np.zeros((3, 1), np.float32)}))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1), np.float32)}))
    await asyncio.sleep(0.05)
    assert batcher.queued_rows == 1  # the first block is running, the second waits
    with pytest.raises(QueueFullError, match="already queued"):
        await batcher.submit({"x": np.zeros((4, 1), np.float32)})
    release.set()
    assert (await first)["y"].shape == (3, 1) and (await waiting)["y"].shape == (1, 1)
    assert batcher.queued_rows == 0


async def test_a_cancelled_request_releases_its_rows() -> None:
    release = threading.Event()
    batcher = _batcher(_held(release), max_queue=8)
    running = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1), np.float32)}))
    await asyncio.sleep(0.05)
    gone = asyncio.ensure_future(batcher.submit({"x": np.zeros((5, 1), np.float32)}))
    await asyncio.sleep(0.05)
    assert batcher.queued_rows == 5
    gone.cancel()  # the client went away while its rows waited
    await asyncio.sleep(0.01)
    assert batcher.queued_rows == 0
    release.set()
    assert (await running)["y"].shape == (1, 1)


async def test_a_failed_run_reaches_every_waiting_request_and_the_next_runs() -> None:
    calls = {"n": 0}

    def flaky(inputs: Arrays) -> Arrays:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("onnxruntime failed")
        return {"y": inputs["x"]}

    batcher = _batcher(flaky)
    outcome = await asyncio.gather(
        *(batcher.submit({"x": np.zeros((1, 1), np.float32)}) for _ in range(3)), return_exceptions=True
    )
    assert any(isinstance(o, RuntimeError) and "onnxruntime failed" in str(o) for o in outcome)
    assert (await batcher.submit({"x": np.ones((2, 1), np.float32)}))["y"].shape == (2, 1)


async def test_a_stopped_batcher_refuses() -> None:
    batcher = _batcher(_doubling([]))
    await batcher.stop()
    with pytest.raises(QueueFullError, match="shutting down"):
        await batcher.submit({"x": np.zeros((1, 1), np.float32)})


async def test_the_app_on_serve_batch_answers_as_on_its_own_batcher(repo: Path) -> None:
    window = {"max_queue_delay_ms": 200.0}  # all twelve requests arrive inside one window
    async with running_app(repo, **window) as (_, plain), running_app(repo, ServeBatcher, **window) as (app, batched):
        assert isinstance(app.state.registry.models["tiny-a"].batchers["decoder"], ServeBatcher)
        ours, theirs = await _decode_concurrently(batched, 12), await _decode_concurrently(plain, 12)
        assert [r.status_code for r in ours] == [200] * 12
        for got, want in zip(ours, theirs, strict=True):  # batch composition may move a float by an ulp
            difference = np.abs(_pixels(got.content) - _pixels(want.content))
            assert difference.max() <= 1
        metrics = parse_metrics((await batched.get("/metrics")).text)
        assert metrics['twocode_batch_size_sum{model="tiny-a",network="decoder"}'] == 12
        assert metrics['twocode_batch_size_count{model="tiny-a",network="decoder"}'] < 12  # batched by Serve
