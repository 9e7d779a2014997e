"""Dynamic batching: concurrent requests for one network of one model share one ONNX Runtime run.

Each request submits a block of rows. The batcher waits at most
``max_delay_s`` after the first waiting row for more to arrive, up to
``max_batch`` rows, then runs them together on a worker thread so the event
loop (and /healthz) stays responsive. A request larger than ``max_batch`` is
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
    """The batcher holds as many rows as it may; try again shortly."""


@dataclass(frozen=True)
class BatchSpec:
    """What one batcher batches (one network of one model) and its bounds."""

    model: str
    network: str
    max_batch: int
    max_delay_s: float
    max_queue: int

    def blocks(self, inputs: Arrays, queued_rows: int, stopped: bool) -> list[tuple[Arrays, int]]:
        """A request's rows cut into blocks of at most ``max_batch``, or why it may not queue now."""
        if stopped:
            raise QueueFullError(f"{self.model} was just replaced or is shutting down")
        rows = next(iter(inputs.values())).shape[0]
        if rows == 0:
            raise ValueError("no rows to run")
        if queued_rows + rows > self.max_queue:
            raise QueueFullError(f"{self.model}/{self.network}: {queued_rows} rows already queued")
        return [
            ({k: v[start : start + self.max_batch] for k, v in inputs.items()}, min(self.max_batch, rows - start))
            for start in range(0, rows, self.max_batch)
        ]

    def observe(self, metrics: Metrics, enqueued: list[float], started: float, rows: int) -> None:
        """One finished run: each block's wait, the rows run together, the run's time."""
        for at in enqueued:
            metrics.queue_time.labels(self.model, self.network).observe(started - at)
        metrics.batch_size.labels(self.model, self.network).observe(rows)
        metrics.inference_time.labels(self.model, self.network).observe(time.perf_counter() - started)


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
    """What the routes and the model registry need of a batcher, whichever queue is behind it.

    ``DynamicBatcher`` (below) is the app's own; ``service.ray_batching.ServeBatcher``
    puts Ray Serve's ``@serve.batch`` behind the same interface.
    """

    spec: BatchSpec
    busy: bool
    runs: int

    @property
    def queued_rows(self) -> int: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, inputs: Arrays) -> Arrays: ...


BatcherFactory = Callable[[RunFn, BatchSpec, Metrics], Batcher]


@dataclass
class _Job:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Coalesces row blocks for one ONNX Runtime session."""

    def __init__(self, run: RunFn, spec: BatchSpec, metrics: Metrics) -> None:
        self._run, self.spec, self._metrics = run, spec, metrics
        self._jobs: deque[_Job] = deque()
        self._queued_rows = 0
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{spec.model}-{spec.network}")
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.busy = False
        self.runs = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"batcher-{self.spec.model}-{self.spec.network}"
            )

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(QueueFullError("the service is shutting down"))
        self._jobs.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(self, inputs: Arrays) -> Arrays:
        """Run ``inputs`` (equal first dimensions) through the network, batched with other requests."""
        blocks = self.spec.blocks(inputs, self._queued_rows, self._stopped)
        loop = asyncio.get_running_loop()
        futures = []
        for chunk, rows in blocks:
            job = _Job(chunk, rows, loop.create_future())
            self._jobs.append(job)
            self._queued_rows += rows
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
        while self._jobs and rows + self._jobs[0].rows <= self.spec.max_batch:
            job = self._jobs.popleft()
            self._queued_rows -= job.rows
            if job.future.done():  # the client went away; do not spend a run on it
                continue
            batch.append(job)
            rows += job.rows
        return batch

    async def _execute(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        inputs = {k: np.concatenate([j.inputs[k] for j in batch]) for k in batch[0].inputs}
        self.busy = True
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, inputs)
        except Exception as exc:  # an ORT failure must reach every waiting request, not kill the loop
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self.busy = False
        self.runs += 1
        self.spec.observe(self._metrics, [j.enqueued for j in batch], started, sum(j.rows for j in batch))
        for job, part in zip(batch, split(outputs, [j.rows for j in batch]), strict=True):
            if not job.future.done():
                job.future.set_result(part)
