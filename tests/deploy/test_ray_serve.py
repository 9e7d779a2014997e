"""The service on Ray Serve, for real: a local Ray head (loopback, 2 CPUs, bounded memory), the app
deployed from deploy/serve.yaml with two replicas, answers equal to the plain service's, and a
replica killed mid-load while requests keep being answered and the replica comes back.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray.serve", reason="the ray extra is not installed")
from bench.servers import ray_serve, replica_pids  # noqa: E402  (needs ray)

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[2]
KEY = "ray-test-key"


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    """deploy/serve.yaml with two fixed replicas on a local loopback Ray head, via `serve run`."""
    with ray_serve(replicas=2, env_vars={"TWOCODE_API_KEYS": KEY}, timeout_s=300) as running:
        yield f"http://127.0.0.1:{running.port}"


def _examples() -> tuple[bytes, bytes]:
    folder = ROOT / "models" / "colormnist-digit" / "examples"
    files = sorted(folder.iterdir())
    return files[0].read_bytes(), files[3].read_bytes()


def _swap(client: httpx.Client, url: str) -> httpx.Response:
    a, b = _examples()
    files = [("z1_image", ("a.png", a, "image/png")), ("z2_image", ("b.png", b, "image/png"))]
    return client.post(f"{url}/swap", files=files, headers={"X-API-Key": KEY}, timeout=30)


def test_answers_equal_the_plain_service(serve_url: str) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings
    from tests.service.conftest import wait_ready

    settings = Settings(model_repository=ROOT / "models", default_model="colormnist-digit", device="cpu")
    a, b = _examples()
    with TestClient(create_app(settings)) as plain, httpx.Client() as client:
        wait_ready(plain)
        served = _swap(client, serve_url)
        assert served.status_code == 200, (served.status_code, served.text[:500])
        assert served.headers["content-type"] == "image/png"
        expected = plain.post("/swap", files=[("z1_image", ("a.png", a)), ("z2_image", ("b.png", b))])
        got_pixels = np.asarray(Image.open(io.BytesIO(served.content)), dtype=int)
        want_pixels = np.asarray(Image.open(io.BytesIO(expected.content)), dtype=int)
        assert np.abs(got_pixels - want_pixels).max() <= 1  # thread counts may move a float by an ulp
        encoded = client.post(
            f"{serve_url}/encode", files=[("image", ("a.png", a)), ("image", ("b.png", b))], headers={"X-API-Key": KEY}
        )
        reference = plain.post("/encode", files=[("image", ("a.png", a)), ("image", ("b.png", b))]).json()
        assert encoded.status_code == 200, (encoded.status_code, encoded.text[:500])
        assert np.allclose(encoded.json()["z2"], reference["z2"], atol=1e-5)
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
