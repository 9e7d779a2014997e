"""A bounded HTTP/1.1 load generator on raw asyncio streams.

Each of ``concurrency`` clients holds one keep-alive connection and sends the
same prebuilt request back to back (a closed loop), so the offered load is
exactly ``concurrency`` requests in flight. Prebuilt bytes and a minimal
response parser keep the client's own cost per request to a few tens of
microseconds, far below the server's, and the bench pins the client to a core
of its own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """Latencies (seconds) of the requests that completed inside the measured window."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def build_request(method: str, path: str, host: str, body: bytes = b"", content_type: str = "") -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if body or method == "POST":
        head += [f"Content-Length: {len(body)}"] + ([f"Content-Type: {content_type}"] if content_type else [])
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def multipart(fields: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    """(body, content type) for files given as (field, filename, data, mime)."""
    boundary = "benchboundary7d9a1c"
    parts = []
    for name, filename, data, mime in fields:
        header = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        ).encode()
        parts.append(header + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status. Needs Content-Length (the service always sends it)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
        elif line[:18].lower() == b"transfer-encoding:":
            raise RuntimeError("chunked responses are not supported by this load generator")
    if length:
        await reader.readexactly(length)
    return status


async def _client(host: str, port: int, request: bytes, until: float, start: float, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            sent = time.perf_counter()
            if sent >= until:
                return
            writer.write(request)
            status = await _read_response(reader)
            done = time.perf_counter()
            if done <= until and sent >= start:
                result.latencies.append(done - sent)
                result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run(host: str, port: int, request: bytes, concurrency: int, warmup_s: float, seconds: float) -> LoadResult:
    now = time.perf_counter()
    start, until = now + warmup_s, now + warmup_s + seconds
    result = LoadResult(seconds=seconds)
    await asyncio.gather(*(_client(host, port, request, until, start, result) for _ in range(concurrency)))
    return result


def run_load(
    host: str, port: int, request: bytes, concurrency: int, seconds: float, warmup_s: float = 0.5
) -> LoadResult:
    """Closed-loop load for ``warmup_s + seconds``; only requests sent after the warm-up count."""
    return asyncio.run(_run(host, port, request, concurrency, warmup_s, seconds))
