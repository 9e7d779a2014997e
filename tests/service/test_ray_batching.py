"""The whole app on Ray Serve's @serve.batch (service/ray_batching.py) answers as on its own batcher.

The batcher contract both queues share is tested in tests/service/test_batching.py; Serve's queue
gets a stand-in replica context there and here (see the conftest). The real replica is exercised
by tests/deploy/test_ray_serve.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

serve = pytest.importorskip("ray.serve", reason="the ray extra is not installed")
from service.ray_batching import ServeBatcher  # noqa: E402
from tests.service.conftest import decode_concurrently, parse_metrics, running_app  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("replica_context")]


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=int)


async def test_the_app_on_serve_batch_answers_as_on_its_own_batcher(repo: Path) -> None:
    window = {"max_queue_delay_ms": 200.0}  # all twelve requests arrive inside one window
    async with running_app(repo, **window) as (_, plain), running_app(repo, ServeBatcher, **window) as (app, batched):
        assert isinstance(app.state.registry.models["tiny-a"].batchers["decoder"], ServeBatcher)
        ours, theirs = await decode_concurrently(batched, 12), await decode_concurrently(plain, 12)
        assert [r.status_code for r in ours] == [200] * 12
        for got, want in zip(ours, theirs, strict=True):  # batch composition may move a float by an ulp
            difference = np.abs(_pixels(got.content) - _pixels(want.content))
            assert difference.max() <= 1
        metrics = parse_metrics((await batched.get("/metrics")).text)
        assert metrics['twocode_batch_size_sum{model="tiny-a",network="decoder"}'] == 12
        assert metrics['twocode_batch_size_count{model="tiny-a",network="decoder"}'] < 12  # batched by Serve
