"""The limits middleware in process: what a request's body costs, and when it is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from tests.service.conftest import running_app
from tests.service.images import png_bytes

CODES = {"z1": [0.0] * 4, "z2": [0.0] * 3}


async def _multipart_chunks(total: int, size: int = 1024) -> AsyncIterator[bytes]:
    """A well-formed multipart upload whose one file is ``total`` bytes, sent in chunks (no Content-Length)."""
    yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    for _ in range(total // size):
        yield b"x" * size
    yield b"\r\n--b--\r\n"


def test_a_streamed_body_over_the_limit_is_413_not_fastapis_400(repo: Path) -> None:
    """No Content-Length to refuse up front: the body is cut off as it streams in."""

    async def scenario() -> tuple[int, str]:
        async with running_app(repo, max_body_bytes=4096) as (_, http):
            headers = {"Content-Type": "multipart/form-data; boundary=b"}
            r = await http.post("/encode", content=_multipart_chunks(10 * 1024), headers=headers)
            return r.status_code, r.json()["detail"]

    status, detail = asyncio.run(scenario())
    assert status == 413 and "4096" in detail


def test_capacity_is_taken_only_once_the_body_has_arrived(repo: Path) -> None:
    """With max_concurrency 1, an upload still arriving blocks nobody; a complete one in flight does."""

    async def scenario() -> dict[str, int]:
        async with running_app(repo, max_concurrency=1, max_queue_delay_ms=1500) as (app, http):
            release = asyncio.Event()
            boundary = "b"
            part = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()

            async def slow_body() -> AsyncIterator[bytes]:
                yield part
                await release.wait()  # the rest of the body comes only when the test says so
                yield png_bytes(0) + f"\r\n--{boundary}--\r\n".encode()

            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            slow = asyncio.create_task(http.post("/encode", content=slow_body(), headers=headers))
            await asyncio.sleep(0.2)
            first = await http.post("/decode", json=CODES)  # the slow upload holds no capacity
            held = asyncio.create_task(http.post("/decode", json=CODES))  # in flight for the 1.5 s window
            while app.state.metrics.in_flight_now() < 1:
                await asyncio.sleep(0.01)
            refused = await http.post("/decode", json=CODES)
            held_status = (await held).status_code
            release.set()  # the upload completes now, with capacity free again
            return {
                "first": first.status_code,
                "refused": refused.status_code,
                "held": held_status,
                "slow": (await slow).status_code,
            }

    assert asyncio.run(scenario()) == {"first": 200, "refused": 503, "held": 200, "slow": 200}
