"""The service on Ray Serve, for real: a local Ray head (loopback, 2 CPUs, bounded memory), the app
deployed from deploy/serve.yaml with two replicas, answers equal to the plain service's, and a
replica killed mid-load while requests keep being answered and the replica comes back.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.serving import free_port

pytest.importorskip("ray.serve", reason="the ray extra is not installed")
pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEY = "ray-test-key"


def replica_pids() -> set[int]:
    """Processes Ray titled as replicas of our deployment."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"ServeReplica:twocode:twocode" in title:
                pids.add(int(entry.name))
    return pids


def serve_config(tmp_path: Path, port: int) -> Path:
    """deploy/serve.yaml with what a test machine needs: two fixed replicas, loopback, absolute paths."""
    config = yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    application = config["applications"][0]
    application["runtime_env"]["env_vars"] |= {
        "TWOCODE_MODEL_REPOSITORY": str(ROOT / "models"),
        "TWOCODE_DEVICE": "cpu",
        "TWOCODE_API_KEYS": KEY,
    }
    deployment = application["deployments"][0]
    deployment.pop("autoscaling_config")
    deployment |= {"num_replicas": 2, "health_check_period_s": 1}
    deployment["ray_actor_options"] = {"num_cpus": 0.5}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _wait(url: str, timeout_s: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve run exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200 and len(replica_pids()) == 2:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"Ray Serve not ready in {timeout_s} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ray")
    ray_tmp = Path("/tmp") / f"ray-test-{os.getpid()}"  # Ray's socket paths must stay short
    gcs_port, http_port = free_port(), free_port()
    # A loaded 2-core machine (CI) starts Serve's proxy slower than Ray's 5 s readiness default.
    env = os.environ | {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
        "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
        "PYTHONPATH": str(ROOT),
    }
    head = [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs_port)]
    bounds = ["--num-cpus", "2", "--memory", str(2 * 1024**3), "--object-store-memory", str(100 * 1024**2)]
    subprocess.run(
        [*head, *bounds, "--include-dashboard", "false", "--temp-dir", str(ray_tmp), "--disable-usage-stats"],
        check=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    log = tmp / "serve.log"
    address = f"127.0.0.1:{gcs_port}"
    with log.open("wb") as sink:
        serve = subprocess.Popen(
            [str(BIN / "serve"), "run", "--address", address, str(serve_config(tmp, http_port))],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait(f"{url}/readyz", 180, serve, log)
        yield url
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(ray_tmp, ignore_errors=True)


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
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
        expected = plain.post("/swap", files=[("z1_image", ("a.png", a)), ("z2_image", ("b.png", b))])
        got_pixels = np.asarray(Image.open(io.BytesIO(served.content)), dtype=int)
        want_pixels = np.asarray(Image.open(io.BytesIO(expected.content)), dtype=int)
        assert np.abs(got_pixels - want_pixels).max() <= 1  # thread counts may move a float by an ulp
        encoded = client.post(
            f"{serve_url}/encode", files=[("image", ("a.png", a)), ("image", ("b.png", b))], headers={"X-API-Key": KEY}
        )
        reference = plain.post("/encode", files=[("image", ("a.png", a)), ("image", ("b.png", b))]).json()
        assert np.allclose(encoded.json()["z2"], reference["z2"], atol=1e-5)
        # The same statuses, metrics and keys as the plain service, through Serve's proxy.
        assert client.post(f"{serve_url}/encode", files=[("image", ("a.png", a))]).status_code == 401
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
    after = replica_pids()
    assert len(after) == 2 and victim not in after, "Serve did not replace the killed replica"
    failures_during = [s for s in statuses[killed_at:recovered_at] if s != 200]
    assert len(failures_during) <= 8, f"more than the in-flight requests failed: {failures_during}"
    assert statuses[recovered_at:] and all(s == 200 for s in statuses[recovered_at:]), statuses[recovered_at:]
    assert statuses[:killed_at].count(200) == len(statuses[:killed_at])
