"""A real Prometheus server (Debian's package) scrapes the service running two workers.

Each scrape reaches one worker; with per-process counters ten requests read as 6
on one scrape and 4 on the next. Through Prometheus's query API the request
counter must equal what was sent, on every one of several scrapes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.servers import free_port
from tests.service.images import png_bytes
from tests.serving import serve

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="no Prometheus installed (apt-get install prometheus): the scrape test NOT run"
)
SENT = 10
QUERY = 'sum(twocode_requests_total{route="/encode",status="200"})'


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: twocode\n    static_configs:\n      - targets: ['{target}']\n"
        )
        log = Path(tempfile.mkdtemp(prefix="prometheus-")) / "prometheus.log"
        with log.open("wb") as sink:
            command = [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}"]
            command += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
            started.append(subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"Prometheus did not start: {log.read_text()[-2000:]}")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def _query(prometheus: str, expression: str) -> float | None:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_two_workers_count_every_request_through_prometheus(
    prometheus_for: Callable[[str], str], tmp_path: Path
) -> None:
    repo = Path(__file__).resolve().parents[2] / "models"
    with serve(repo, "colormnist-digit", workers="2") as server:
        prometheus = prometheus_for(server.url.removeprefix("http://"))
        files = [("image", ("a.png", png_bytes(0), "image/png"))]
        # A new connection per request, as the kernel hands each to either worker (one kept-alive
        # connection would stay with one worker).
        close = {"Connection": "close"}
        statuses = [httpx.post(f"{server.url}/encode", files=files, headers=close).status_code for _ in range(SENT)]
        assert statuses == [200] * SENT

        seen: list[float | None] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(seen) < 5 or seen[-1] != SENT):
            time.sleep(1.1)  # one scrape interval: each reading comes from a new scrape
            seen.append(_query(prometheus, QUERY))
        assert _query(prometheus, 'up{job="twocode"}') == 1
    # every scrape after the requests: the total, never one worker's share
    readings = [v for v in seen if v is not None]
    assert readings and readings[-1] == SENT, seen
    assert all(v == SENT for v in readings[-4:]), f"per-scrape readings {seen}"
