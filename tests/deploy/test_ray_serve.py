"""The service on Ray Serve, for real: a local Ray head (loopback, 2 CPUs, bounded memory), the app
deployed from deploy/serve.yaml with two replicas, answers equal to the plain service's, and a
replica killed mid-load while requests keep being answered and the replica comes back. Beside it,
one replica batching with @serve.batch under a route prefix answers the same.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray.serve", reason="the ray extra is not installed")
from bench.servers import ray_serve, replica_pids  # noqa: E402  (needs ray)

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[2]
KEY = "ray-test-key"
SERVE_BATCH = "/serve-batch"  # the same app, batched by @serve.batch, under a route prefix


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    """deploy/serve.yaml with two fixed replicas on a local loopback Ray head, via `serve run`."""
    also = {SERVE_BATCH: {"TWOCODE_BATCHING": "serve", "TWOCODE_MAX_QUEUE_DELAY_MS": "20"}}
    with ray_serve(replicas=2, env_vars={"TWOCODE_API_KEYS": KEY}, timeout_s=300, also=also) as running:
        yield f"http://127.0.0.1:{running.port}"


def _examples() -> tuple[bytes, bytes]:
    folder = ROOT / "models" / "colormnist-digit" / "examples"
    files = sorted(folder.iterdir())
    return files[0].read_bytes(), files[3].read_bytes()


def _swap(client: httpx.Client, url: str) -> httpx.Response:
    a, b = _examples()
    files = [("z1_image", ("a.png", a, "image/png")), ("z2_image", ("b.png", b, "image/png"))]
    return client.post(f"{url}/swap", files=files, headers={"X-API-Key": KEY}, timeout=30)


@pytest.fixture(scope="module")
def plain() -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings
    from tests.service.conftest import wait_ready

    settings = Settings(model_repository=ROOT / "models", default_model="colormnist-digit", device="cpu")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=int)


def _check_answers(url: str, plain: Any) -> None:
    """/swap and /encode through Serve equal the plain service's (pixels within one level, codes 1e-5)."""
    a, b = _examples()
    with httpx.Client() as client:
        served = _swap(client, url)
        assert served.status_code == 200, (served.status_code, served.text[:500])
        assert served.headers["content-type"] == "image/png"
        expected = plain.post("/swap", files=[("z1_image", ("a.png", a)), ("z2_image", ("b.png", b))])
        assert np.abs(_pixels(served.content) - _pixels(expected.content)).max() <= 1  # thread counts: an ulp
        pair = [("image", ("a.png", a)), ("image", ("b.png", b))]
        encoded = client.post(f"{url}/encode", files=pair, headers={"X-API-Key": KEY})
        reference = plain.post("/encode", files=pair).json()
        assert encoded.status_code == 200, (encoded.status_code, encoded.text[:500])
        assert np.allclose(encoded.json()["z2"], reference["z2"], atol=1e-5)


def test_answers_equal_the_plain_service(serve_url: str, plain: Any) -> None:
    _check_answers(serve_url, plain)
    a, b = _examples()
    with httpx.Client() as client:
        # The same statuses, metrics and keys as the plain service, through Serve's proxy.
        unauthorised = client.post(f"{serve_url}/encode", files=[("image", ("a.png", a))])
        assert unauthorised.status_code == 401, (unauthorised.status_code, unauthorised.text[:500])
        assert (
            client.post(
                f"{serve_url}/encode", files=[("image", ("x.png", b"no"))], headers={"X-API-Key": KEY}
            ).status_code
            == 400
        )
        assert client.get(f"{serve_url}/models/nope", headers={"X-API-Key": KEY}).status_code == 404
        assert "twocode_requests_total" in client.get(f"{serve_url}/metrics", headers={"X-API-Key": KEY}).text


def test_serve_batch_replica_batches_and_answers_the_same(serve_url: str, plain: Any) -> None:
    url = serve_url + SERVE_BATCH
    _check_answers(url, plain)

    def swap_once(_: int) -> int:
        with httpx.Client() as client:
            return _swap(client, url).status_code

    with ThreadPoolExecutor(8) as pool:  # concurrent swaps inside a 20 ms window share decoder runs
        assert list(pool.map(swap_once, range(16))) == [200] * 16
    with httpx.Client() as client:
        metrics = client.get(f"{url}/metrics", headers={"X-API-Key": KEY}).text
    runs = _sample(metrics, 'twocode_batch_size_count{model="colormnist-digit",network="decoder"}')
    rows = _sample(metrics, 'twocode_batch_size_sum{model="colormnist-digit",network="decoder"}')
    assert rows == 17 and runs < rows, (runs, rows)


def _sample(metrics: str, name: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


def test_a_killed_replica_is_replaced_while_requests_keep_being_answered(serve_url: str) -> None:
    before = replica_pids()
    assert len(before) == 2
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    statuses.append(_swap(client, serve_url).status_code)
                except httpx.HTTPError:
                    statuses.append(-1)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(1.0)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = len(statuses)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (len(replica_pids()) == 2 and victim not in replica_pids()):
        time.sleep(0.5)
    time.sleep(2.0)
    recovered_at = len(statuses)
    time.sleep(2.0)
    stop.set()
    for w in workers:
        w.join(timeout=60)
    # Serve may still be settling (a replacement can itself be restarted under load): wait for it.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (len(replica_pids()) == 2 and victim not in replica_pids()):
        time.sleep(0.5)
    after = replica_pids()
    assert len(after) == 2 and victim not in after, "Serve did not replace the killed replica"
    with httpx.Client() as client:
        assert _swap(client, serve_url).status_code == 200
    failures_during = [s for s in statuses[killed_at:recovered_at] if s != 200]
    assert len(failures_during) <= 8, f"more than the in-flight requests failed: {failures_during}"
    assert statuses[recovered_at:] and all(s == 200 for s in statuses[recovered_at:]), statuses[recovered_at:]
    assert statuses[:killed_at].count(200) == len(statuses[:killed_at])
