"""The batcher contract, for the app's own queue and for Ray Serve's @serve.batch behind the same base.

Rows come back to their own request in order; blocks above max_batch ride successive runs; the
queue bound refuses at once; a client that leaves releases its rows; a failed run reaches every
waiter and the next run works; a stopped batcher refuses with its own error; idle() waits for the
rows in flight.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from service.batching import (
    Arrays,
    Batcher,
    BatcherStoppedError,
    BatchSpec,
    DynamicBatcher,
    QueueFullError,
    RunFn,
)
from service.metrics import Metrics

pytestmark = pytest.mark.anyio
Factory = Callable[[RunFn, BatchSpec, Metrics], Batcher]


@pytest.fixture(params=["app", "serve"])
def factory(request: pytest.FixtureRequest) -> Factory:
    if request.param == "app":
        return DynamicBatcher
    request.getfixturevalue("replica_context")  # skips without the ray extra
    from service.ray_batching import ServeBatcher

    return ServeBatcher


def _started(factory: Factory, run: RunFn, max_batch: int = 4, max_queue: int = 100) -> Batcher:
    spec = BatchSpec(model="m", network="encoder", max_batch=max_batch, max_delay_s=0.0, max_queue=max_queue)
    batcher = factory(run, spec, Metrics())
    batcher.start()
    return batcher


def _held(release: threading.Event) -> RunFn:
    """A run that waits for ``release``: the requests behind it stay queued meanwhile."""

    def run(inputs: Arrays) -> Arrays:
        release.wait(10)
        return {"y": inputs["x"]}

    return run


def _doubling(seen: list[int], pause_s: float = 0.02) -> RunFn:
    def run(inputs: Arrays) -> Arrays:
        seen.append(inputs["x"].shape[0])
        time.sleep(pause_s)
        return {"y": inputs["x"] * 2}

    return run


async def test_each_request_gets_its_own_rows_in_order_and_blocks_share_runs(factory: Factory) -> None:
    seen: list[int] = []
    batcher = _started(factory, _doubling(seen))
    blocks = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * i for i, n in enumerate([1, 2, 1, 9, 1, 3])]
    results = await asyncio.gather(*(batcher.submit({"x": b}) for b in blocks))
    for block, result in zip(blocks, results, strict=True):
        np.testing.assert_array_equal(result["y"], block * 2)  # its own rows, in its own order
    assert sum(seen) == sum(b.shape[0] for b in blocks)
    assert max(seen) <= 4, "a run took more rows than max_batch"  # the 9-row block rode three runs
    assert batcher.runs == len(seen) < len(blocks) + 2  # fewer runs than blocks: they were batched
    assert batcher.queued_rows == 0
    await batcher.stop()


async def test_a_request_above_max_batch_is_chunked_and_joined(factory: Factory) -> None:
    seen: list[int] = []
    batcher = _started(factory, _doubling(seen, pause_s=0), max_batch=3)
    rows = np.arange(10, dtype=np.float32).reshape(10, 1)
    result = await batcher.submit({"x": rows})
    np.testing.assert_array_equal(result["y"], rows * 2)
    assert seen == [3, 3, 3, 1]
    await batcher.stop()


async def test_a_full_queue_is_refused_at_once(factory: Factory) -> None:
    release = threading.Event()
    batcher = _started(factory, _held(release), max_queue=4)
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
    await batcher.stop()


async def test_a_cancelled_request_releases_its_rows_and_costs_no_run(factory: Factory) -> None:
    release = threading.Event()
    seen: list[int] = []

    def run(inputs: Arrays) -> Arrays:
        release.wait(10)
        seen.append(inputs["x"].shape[0])
        return {"y": inputs["x"]}

    batcher = _started(factory, run, max_queue=8)
    running = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1), np.float32)}))
    await asyncio.sleep(0.05)
    gone = asyncio.ensure_future(batcher.submit({"x": np.zeros((5, 1), np.float32)}))
    await asyncio.sleep(0.05)
    assert batcher.queued_rows == 5
    gone.cancel()  # the client went away while its rows waited
    await asyncio.sleep(0.01)
    release.set()
    assert (await running)["y"].shape == (1, 1)
    await asyncio.wait_for(batcher.idle(), timeout=5)
    assert batcher.queued_rows == 0 and 5 not in seen
    await batcher.stop()


async def test_a_failed_run_reaches_every_waiting_request_and_the_next_runs(factory: Factory) -> None:
    release, calls = threading.Event(), {"n": 0}

    def flaky(inputs: Arrays) -> Arrays:
        calls["n"] += 1
        if calls["n"] == 1:
            release.wait(10)  # the first run holds, so the others queue up and share the second run
            return {"y": inputs["x"]}
        if calls["n"] == 2:
            raise RuntimeError("onnxruntime failed")
        return {"y": inputs["x"]}

    batcher = _started(factory, flaky)
    first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1), np.float32)}))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1), np.float32)})) for _ in range(3)]
    await asyncio.sleep(0.05)
    release.set()
    await first
    outcome = await asyncio.gather(*rest, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) and "onnxruntime failed" in str(o) for o in outcome), outcome
    assert (await batcher.submit({"x": np.ones((2, 1), np.float32)}))["y"].shape == (2, 1)
    await batcher.stop()


async def test_a_stopped_batcher_refuses_with_its_own_error(factory: Factory) -> None:
    batcher = _started(factory, _doubling([]))
    await batcher.stop()
    with pytest.raises(BatcherStoppedError, match="shutting down"):
        await batcher.submit({"x": np.zeros((1, 1), np.float32)})
    assert not issubclass(BatcherStoppedError, QueueFullError)  # a drain is not counted as a full queue


async def test_idle_waits_for_the_rows_in_flight(factory: Factory) -> None:
    release = threading.Event()
    batcher = _started(factory, _held(release))
    await asyncio.wait_for(batcher.idle(), timeout=1)  # idle from the start
    pending = asyncio.ensure_future(batcher.submit({"x": np.zeros((2, 1), np.float32)}))
    await asyncio.sleep(0.05)
    waiter = asyncio.ensure_future(batcher.idle())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    release.set()
    await asyncio.wait_for(waiter, timeout=5)
    assert (await asyncio.wait_for(pending, timeout=5))["y"].shape == (2, 1)
    await batcher.stop()


async def test_small_runs_stay_on_the_event_loop_and_large_ones_leave_it() -> None:
    """A lone request of at most inline_rows rows skips the hop to the worker thread (it cost more
    than the run); larger ones, and runs several requests share, leave the event loop."""
    threads: list[int] = []

    def run(inputs: Arrays) -> Arrays:
        threads.append(threading.get_ident())
        return {"y": inputs["x"] * 2}

    spec = BatchSpec(model="m", network="encoder", max_batch=64, max_delay_s=0.0, max_queue=100, inline_rows=4)
    batcher = DynamicBatcher(run, spec, Metrics())
    batcher.start()
    try:
        small = await batcher.submit({"x": np.arange(4.0)[:, None]})
        large = await batcher.submit({"x": np.arange(5.0)[:, None]})
        shared = await asyncio.gather(*(batcher.submit({"x": np.full((1, 1), float(k))}) for k in range(3)))
    finally:
        await batcher.stop()
    assert small["y"][:, 0].tolist() == [0.0, 2.0, 4.0, 6.0] and large["y"].shape == (5, 1)
    assert [float(r["y"][0, 0]) for r in shared] == [0.0, 2.0, 4.0]
    here = threading.get_ident()
    assert threads[0] == here and threads[1] != here and threads[2] != here and len(threads) == 3
