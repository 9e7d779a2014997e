"""Ray Serve's ``@serve.batch`` behind the app's batcher interface (``TWOCODE_BATCHING=serve``).

Same contract as ``service.batching.DynamicBatcher``: a request submits a
block of rows, blocks larger than ``max_batch`` ride successive batches, a
full queue is refused at once (503), ONNX Runtime runs on a worker thread,
and the same metrics are recorded. What differs is the queue: Serve's counts
rows here through ``batch_size_fn``, closes a batch when ``max_batch`` rows
or ``batch_wait_timeout_s`` are reached, and forms the next batch while the
previous one still runs (``max_concurrent_batches=1`` makes it wait for the
session, not for company). Which of the two queues serves faster is
measured by ``python -m bench.ray_batching``.

Serve's queue exists only inside a replica: it is created on the first
request, and its loop lives as long as the replica (a model replaced by a
hot reload leaves an idle one behind).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ray import serve

from service.batching import (
    Arrays,
    BatcherBase,
    BatcherFactory,
    BatcherStoppedError,
    BatchSpec,
    DynamicBatcher,
    RunFn,
    join,
)
from service.metrics import Metrics
from service.settings import Settings


@dataclass
class _Block:
    inputs: Arrays
    rows: int
    enqueued: float = field(default_factory=time.perf_counter)
    started: bool = False


def _rows(blocks: list[_Block]) -> int:
    return sum(b.rows for b in blocks)


class ServeBatcher(BatcherBase):
    """One network of one model, queued by ``@serve.batch``; the run itself is the base's."""

    def __init__(self, run: RunFn, spec: BatchSpec, metrics: Metrics) -> None:
        super().__init__(run, spec, metrics)
        decorate = serve.batch(
            max_batch_size=spec.max_batch, batch_wait_timeout_s=spec.max_delay_s, batch_size_fn=_rows
        )
        self._batched = decorate(self._run_blocks)

    def start(self) -> None:
        """Nothing to start: Serve creates its queue on the first request."""

    async def submit(self, inputs: Arrays) -> Arrays:
        """Run ``inputs`` (equal first dimensions) through the network, batched by Serve with other requests."""
        blocks = [_Block(chunk, rows) for chunk, rows in self.blocks(inputs)]
        try:
            return join(list(await asyncio.gather(*(self._batched(block) for block in blocks))))
        finally:  # blocks Serve dropped (the client went away) must not stay counted
            self._count_queued(-_rows([b for b in blocks if not b.started]))

    async def _run_blocks(self, blocks: list[_Block]) -> list[Arrays]:
        """Serve's batch handler: one ONNX Runtime run for every block in the batch."""
        self._begin_run()
        try:
            for block in blocks:
                block.started = True
            self._count_queued(-_rows(blocks))
            if self.stopped:
                raise BatcherStoppedError("the service is shutting down")
            return await self.run_blocks([(b.inputs, b.enqueued) for b in blocks])
        finally:
            self._end_run()


def batcher_for(settings: Settings) -> BatcherFactory:
    """The batcher a replica's settings ask for: Serve's queue for ``batching=serve``, else the app's own."""
    return ServeBatcher if settings.batching == "serve" else DynamicBatcher
