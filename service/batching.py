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

import numpy as np

from service.metrics import Metrics

Arrays = dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]


class QueueFullError(RuntimeError):
    """The batcher holds as many rows as it may; try again shortly."""


@dataclass
class _Job:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Coalesces row blocks for one ONNX Runtime session."""

    def __init__(
        self,
        run: RunFn,
        *,
        model: str,
        network: str,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
        metrics: Metrics,
    ) -> None:
        self._run, self.model, self.network = run, model, network
        self.max_batch, self.max_delay_s, self.max_queue = max_batch, max_delay_s, max_queue
        self._metrics = metrics
        self._jobs: deque[_Job] = deque()
        self._queued_rows = 0
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{model}-{network}")
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.busy = False
        self.runs = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"batcher-{self.model}-{self.network}"
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
        if self._stopped:
            raise QueueFullError(f"{self.model} was just replaced or is shutting down")
        rows = next(iter(inputs.values())).shape[0]
        if rows == 0:
            raise ValueError("no rows to run")
        if self._queued_rows + rows > self.max_queue:
            raise QueueFullError(f"{self.model}/{self.network}: {self._queued_rows} rows already queued")
        loop = asyncio.get_running_loop()
        futures = []
        for start in range(0, rows, self.max_batch):
            chunk = {k: v[start : start + self.max_batch] for k, v in inputs.items()}
            job = _Job(chunk, min(self.max_batch, rows - start), loop.create_future())
            self._jobs.append(job)
            self._queued_rows += job.rows
            futures.append(job.future)
        self._arrived.set()
        parts = await asyncio.gather(*futures)
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

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
        deadline = self._jobs[0].enqueued + self.max_delay_s
        while self._queued_rows < self.max_batch:
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
        while self._jobs and rows + self._jobs[0].rows <= self.max_batch:
            job = self._jobs.popleft()
            self._queued_rows -= job.rows
            if job.future.done():  # the client went away; do not spend a run on it
                continue
            batch.append(job)
            rows += job.rows
        return batch

    async def _execute(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        for job in batch:
            self._metrics.queue_time.observe(started - job.enqueued, self.model, self.network)
        inputs = {k: np.concatenate([j.inputs[k] for j in batch]) for k in batch[0].inputs}
        rows = sum(j.rows for j in batch)
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
        self._metrics.batch_size.observe(rows, self.model, self.network)
        self._metrics.inference_time.observe(time.perf_counter() - started, self.model, self.network)
        offset = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result({k: v[offset : offset + job.rows] for k, v in outputs.items()})
            offset += job.rows
