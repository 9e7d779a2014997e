"""Hostile slow clients against a real uvicorn process: hundreds of trickled uploads starve nobody.

Each slow client sends the headers of a multipart /swap and part of its body, then
stops. The service must keep answering complete requests (200, not 503) and stay
ready while they are open, count none of them as in flight, and answer each with
408 and a closed connection once the body deadline passes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.service.conftest import parse_metrics
from tests.service.images import png_bytes
from tests.serving import serve

SLOW_CLIENTS = 300
BODY_TIMEOUT_S = 6.0


async def _open_slow_upload(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Headers of a 100 kB multipart upload, then 1 kB of its body, then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    boundary = "slowslowslow"
    head = (
        f"POST /swap HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    )
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="z1_image"; filename="a.png"\r\n'
    writer.write(head.encode() + part.encode() + b"Content-Type: image/png\r\n\r\n" + b"\x89PNG" + b"\0" * 1000)
    await writer.drain()
    return reader, writer


async def _scenario(url: str, port: int) -> dict[str, object]:
    slow = await asyncio.gather(*(_open_slow_upload(port) for _ in range(SLOW_CLIENTS)))
    opened = time.monotonic()
    files = [("z1_image", ("a.png", png_bytes(1), "image/png")), ("z2_image", ("b.png", png_bytes(2), "image/png"))]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        statuses = []
        for _ in range(20):  # normal requests, one after another, while every slow upload is open
            statuses.append((await http.post("/swap", files=files)).status_code)
        ready = (await http.get("/readyz")).status_code
        metrics = (await http.get("/metrics")).text.splitlines()
        in_flight_line = next(line for line in metrics if line.startswith("twocode_requests_in_flight"))
    normal_done = time.monotonic() - opened

    async def outcome(reader: asyncio.StreamReader) -> bytes:
        """Everything the server sends until it closes the connection (a server that does not times out)."""
        return await asyncio.wait_for(reader.read(), timeout=BODY_TIMEOUT_S * 3)

    outcomes = await asyncio.gather(*(outcome(reader) for reader, _ in slow))
    for _, writer in slow:
        writer.close()
    return {
        "statuses": statuses,
        "ready": ready,
        "in_flight": in_flight_line,
        "normal_done_s": normal_done,
        "outcomes": outcomes,
    }


def test_slow_uploads_neither_block_complete_requests_nor_stay_open(repo: Path) -> None:
    # max_concurrency far below the number of slow clients: counted as in flight, they would
    # turn every normal request into a 503.
    with serve(repo, "tiny-a", max_concurrency="8", body_timeout_s=str(BODY_TIMEOUT_S)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        result = asyncio.run(_scenario(server.url, port))
        still_ready = httpx.get(f"{server.url}/readyz", timeout=5).status_code
        metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert result["statuses"] == [200] * 20, result["statuses"]
    assert result["ready"] == 200 and still_ready == 200
    assert result["in_flight"] == "twocode_requests_in_flight 0.0"
    done_s = result["normal_done_s"]
    assert isinstance(done_s, float) and done_s < BODY_TIMEOUT_S, (
        "the normal requests only got through once the slow ones left"
    )
    outcomes = result["outcomes"]
    assert isinstance(outcomes, list) and len(outcomes) == SLOW_CLIENTS
    for answer in outcomes:  # each read until the server closed the connection
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"did not arrive within 6 s" in answer and b"connection: close" in answer.lower()
    samples = parse_metrics(metrics)
    assert samples['twocode_rejected_total{reason="body_timeout"}'] == SLOW_CLIENTS
    assert samples.get('twocode_rejected_total{reason="concurrency"}', 0) == 0
