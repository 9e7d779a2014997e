"""Dynamic batching: concurrent requests for one network of one model share one ONNX Runtime run.

Each request submits a block of rows. The batcher waits at most
``max_delay_s`` after the first waiting row for more to arrive, up to
``max_batch`` rows, then runs them together on a worker thread so the event
loop (and /healthz) stays responsive. A lone request of at most
``inline_rows`` rows (no other request shares its run: the service is not
busy) runs on the event loop itself, where the two thread hops cost more than
the run; under load runs leave the loop, which parses the next requests
meanwhile and so forms larger batches (bench/results/inline_runs_ab.md). A request larger than ``max_batch`` is
cut into chunks that ride successive batches. A full queue is refused at
once (the caller answers 503 with Retry-After) instead of growing without
bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from service.metrics import Metrics

Arrays = dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]


class QueueFullError(RuntimeError):
    """The batcher holds as many rows as it may; try again shortly (503, counted as queue_full)."""


class BatcherStoppedError(RuntimeError):
    """The batcher was stopped: its model was replaced or the service is shutting down (503, draining)."""


@dataclass(frozen=True)
class BatchSpec:
    """What one batcher batches (one network of one model) and its bounds: configuration only."""

    model: str
    network: str
    max_batch: int
    max_delay_s: float
    max_queue: int
    inline_rows: int = 0  # runs of at most this many rows stay on the event loop (0: always a worker thread)


def join(parts: list[Arrays]) -> Arrays:
    """The blocks' outputs back into one request's rows."""
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def split(outputs: Arrays, rows: list[int]) -> list[Arrays]:
    """One run's outputs cut back into its blocks, in order."""
    out, offset = [], 0
    for n in rows:
        out.append({k: v[offset : offset + n] for k, v in outputs.items()})
        offset += n
    return out


class Batcher(Protocol):
    """What the routes and the model store need of a batcher, whichever queue is behind it."""

    spec: BatchSpec
    runs: int

    @property
    def queued_rows(self) -> int: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def idle(self) -> None: ...

    async def submit(self, inputs: Arrays) -> Arrays: ...


BatcherFactory = Callable[[RunFn, BatchSpec, Metrics], Batcher]


class BatcherBase:
    """Everything a batcher does but queueing: bounds and chunking, the ONNX Runtime run on a worker
    thread, splitting the outputs back, metrics, idleness and stopping.

    ``DynamicBatcher`` (below, the app's own queue) and ``service.ray_batching.ServeBatcher``
    (Ray Serve's ``@serve.batch``) differ only in how they queue blocks until ``run_blocks``.
    """

    def __init__(self, run: RunFn, spec: BatchSpec, metrics: Metrics) -> None:
        self._run, self.spec = run, spec
        labels = (spec.model, spec.network)  # each run's metric children, looked up once rather than per run
        self._queue_time = metrics.queue_time.labels(*labels)
        self._batch_size = metrics.batch_size.labels(*labels)
        self._inference_time = metrics.inference_time.labels(*labels)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{spec.model}-{spec.network}")
        self._queued_rows = 0
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopped = False
        self.runs = 0

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def blocks(self, inputs: Arrays) -> list[tuple[Arrays, int]]:
        """A request's rows cut into blocks of at most ``max_batch``, counted as queued; or why they may not queue."""
        spec = self.spec
        if self.stopped:
            raise BatcherStoppedError(f"{spec.model} was just replaced or the service is shutting down")
        rows = next(iter(inputs.values())).shape[0]
        if rows == 0:
            raise ValueError("no rows to run")
        if self._queued_rows + rows > spec.max_queue:
            raise QueueFullError(f"{spec.model}/{spec.network}: {self._queued_rows} rows already queued")
        self._count_queued(rows)
        return [
            ({k: v[start : start + spec.max_batch] for k, v in inputs.items()}, min(spec.max_batch, rows - start))
            for start in range(0, rows, spec.max_batch)
        ]

    def _count_queued(self, rows: int) -> None:
        self._queued_rows += rows
        if self._queued_rows or self._running:
            self._idle.clear()
        else:
            self._idle.set()

    def _begin_run(self) -> None:
        """Rows are leaving the queue for a run: counted as running first, so idle() never sees a gap."""
        self._running += 1
        self._idle.clear()

    def _end_run(self) -> None:
        self._running -= 1
        self._count_queued(0)

    async def run_blocks(self, blocks: list[tuple[Arrays, float]]) -> list[Arrays]:
        """One ONNX Runtime run for blocks (inputs, enqueue time) that left the queue; their outputs, in order.

        The caller brackets it with ``_begin_run`` (before taking the rows off the queue) and ``_end_run``.
        """
        started = time.perf_counter()
        rows = [next(iter(inputs.values())).shape[0] for inputs, _ in blocks]
        inputs = {k: np.concatenate([b[k] for b, _ in blocks]) for k in blocks[0][0]}
        if len(blocks) == 1 and rows[0] <= self.spec.inline_rows:
            outputs = self._run(inputs)
        else:
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, inputs)
        self.runs += 1
        for _, enqueued in blocks:
            self._queue_time.observe(started - enqueued)
        self._batch_size.observe(sum(rows))
        self._inference_time.observe(time.perf_counter() - started)
        return split(outputs, rows)

    async def idle(self) -> None:
        """Return once no row is queued or running (a replaced model drains by awaiting this)."""
        await self._idle.wait()

    async def stop(self) -> None:
        self.stopped = True
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Job:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher(BatcherBase):
    """The app's own queue: blocks wait in a deque for a window, then run together."""

    def __init__(self, run: RunFn, spec: BatchSpec, metrics: Metrics) -> None:
        super().__init__(run, spec, metrics)
        self._jobs: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"batcher-{self.spec.model}-{self.spec.network}"
            )

    async def stop(self) -> None:
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(BatcherStoppedError("the service is shutting down"))
        self._count_queued(-sum(job.rows for job in self._jobs))
        self._jobs.clear()
        await super().stop()

    async def submit(self, inputs: Arrays) -> Arrays:
        """Run ``inputs`` (equal first dimensions) through the network, batched with other requests."""
        loop = asyncio.get_running_loop()
        futures = []
        for chunk, rows in self.blocks(inputs):
            job = _Job(chunk, rows, loop.create_future())
            self._jobs.append(job)
            futures.append(job.future)
        self._arrived.set()
        return join(list(await asyncio.gather(*futures)))

    async def _loop(self) -> None:
        while True:
            if not self._jobs:
                self._arrived.clear()
                await self._arrived.wait()
            await self._gather_window()
            batch = self._take()
            if batch:
                await self._execute(batch)

    async def _gather_window(self) -> None:
        """Wait for more rows until the batch is full or the oldest row has waited max_delay_s."""
        deadline = self._jobs[0].enqueued + self.spec.max_delay_s
        while self._queued_rows < self.spec.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Job]:
        batch: list[_Job] = []
        rows = 0
        self._begin_run()
        while self._jobs and rows + self._jobs[0].rows <= self.spec.max_batch:
            job = self._jobs.popleft()
            self._count_queued(-job.rows)
            if job.future.done():  # the client went away; do not spend a run on it
                continue
            batch.append(job)
            rows += job.rows
        if not batch:
            self._end_run()
        return batch

    async def _execute(self, batch: list[_Job]) -> None:
        try:
            parts = await self.run_blocks([(j.inputs, j.enqueued) for j in batch])
        except Exception as exc:  # an ORT failure must reach every waiting request, not kill the loop
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self._end_run()
        for job, part in zip(batch, parts, strict=True):
            if not job.future.done():
                job.future.set_result(part)
