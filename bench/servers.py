"""Start the servers under test as separate processes, pinned to chosen cores, and stop them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Running:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return str(response.read().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(cores: set[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)


# Consecutive ready answers, each on a new connection, before a server counts as ready. With several
# worker processes behind one socket each connection lands on any of them, and a worker that is still
# loading its models answers 503: one ready answer proved one worker ready, and a two-worker bench run
# once failed 359 requests on the other one. Twenty in a row on a half-ready pair: a chance of 2^-20.
READY_IN_A_ROW = 20


def _wait_ready(running: Running, timeout_s: float, prefix: str = "", path: str = "/readyz") -> None:
    deadline = time.monotonic() + timeout_s
    in_a_row = 0
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"server exited with {running.process.returncode}: {running.log.read_text()[-2000:]}")
        try:
            running.get(f"{prefix}{path}")  # urllib: a new connection each time
            in_a_row += 1
            if in_a_row >= READY_IN_A_ROW:
                return
        except OSError:
            in_a_row = 0
            time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout_s} s: {running.log.read_text()[-2000:]}")


@contextmanager
def start(
    command: list[str],
    env: dict[str, str],
    cores: set[int] | None,
    timeout_s: float = 120,
    cwd: Path = ROOT,
    ready_path: str = "/readyz",
) -> Iterator[Running]:
    """Run ``command`` (``{port}`` in it or in ``env`` becomes a free port), wait until ``ready_path``
    answers 200, and stop its whole process group after."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-")) / "server.log"
    full_env = os.environ | {"PYTHONPATH": str(ROOT)} | {k: v.replace("{port}", str(port)) for k, v in env.items()}
    args = [a.replace("{port}", str(port)) for a in command]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _pin(cores),
            start_new_session=True,  # its own process group: uvicorn's workers are stopped with it
        )
    running = Running(port, process, log)
    try:
        _wait_ready(running, timeout_s, path=ready_path)
        yield running
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group (a supervisor and its workers), SIGKILL after 30 s."""
    for signum, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            os.killpg(process.pid, signal.SIGKILL)  # workers the supervisor left behind, if any
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def ours(workers: int = 1, settings: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Our service as ``make serve`` runs it, with warning-level logs like the other servers."""
    env = {
        "TWOCODE_PORT": "{port}",
        "TWOCODE_MODEL_REPOSITORY": "models",
        "TWOCODE_DEFAULT_MODEL": "colormnist-digit",
        "TWOCODE_DEVICE": "cpu",
        "TWOCODE_WORKERS": str(workers),
        "TWOCODE_LOG_LEVEL": "warning",
    } | {f"TWOCODE_{k.upper()}": v for k, v in (settings or {}).items()}
    return [sys.executable, "-m", "service"], env


def uvicorn_app(target: str, **env: str) -> tuple[list[str], dict[str, str]]:
    """Another app under the same uvicorn set-up as ours (one worker, warning logs, no access log)."""
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", "{port}"]
    return command + ["--log-level", "warning", "--no-access-log"], dict(env)


# The peers (bench/peers) run from their own environment: `make bench-venv` builds it.
PEERS_PYTHON = Path(os.environ.get("BENCH_PEERS_PYTHON", ROOT / ".venv-bench" / "bin" / "python"))


@dataclass(frozen=True)
class Peer:
    """How to start one peer server: command, environment, and the path that says it is ready."""

    command: list[str]
    env: dict[str, str]
    ready_path: str


def litserve() -> Peer:
    """bench/peers/litserve_app.py: LitServe's own server (its API process and one inference worker)."""
    return Peer([str(PEERS_PYTHON), "-m", "bench.peers.litserve_app"], {"PORT": "{port}"}, "/health")


def bentoml() -> Peer:
    """bench/peers/bentoml_app.py under ``bentoml serve`` (one worker; no usage tracking)."""
    command = [str(PEERS_PYTHON), "-m", "bentoml", "serve", "bench.peers.bentoml_app:TwoCode"]
    env = {"BENTOML_DO_NOT_TRACK": "true", "BENTOML_HOME": str(Path(tempfile.gettempdir()) / "bench-bentoml-home")}
    return Peer([*command, "--host", "127.0.0.1", "--port", "{port}"], env, "/readyz")


BIN = Path(sys.executable).parent
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # A loaded 2-core machine starts Serve's proxy slower than Ray's 5 s readiness default.
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
}


def _pids_whose(read: str, marker: bytes) -> set[int]:
    """Processes whose /proc/PID/{read} (cmdline, environ) contains ``marker`` (a regular expression)."""
    pattern = re.compile(marker)
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if pattern.search((entry / read).read_bytes()):
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def replica_pids(deployment: str = "twocode") -> set[int]:
    """Processes Ray titled as replicas of the deployment."""
    return _pids_whose("cmdline", re.escape(f"ServeReplica:twocode:{deployment}".encode()))


def stop_our_ray(ray_tmp: Path, gcs_port: int, grace_s: float = 20.0) -> set[int]:
    """Stop the Ray processes of the head we started, and no other (``ray stop --force`` stops every
    Ray on the host: another user's cluster, a second benchmark). Ours name our temp dir or our GCS
    port on their command line, or carry our temp dir in their environment."""
    here = re.escape(str(ray_tmp).encode())
    ours = _pids_whose("cmdline", here) | _pids_whose("environ", here)
    ours |= _pids_whose("cmdline", rb"127\.0\.0\.1:%d(?!\d)" % gcs_port)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_alive(pid) for pid in ours):
            time.sleep(0.2)
    return ours


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to reap it (a zombie has stopped all the same)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def serve_config(
    target: Path,
    port: int,
    replicas: int,
    env_vars: dict[str, str],
    cpus_per_replica: float,
    also: dict[str, dict[str, str]] | None = None,
) -> Path:
    """deploy/serve.yaml with fixed replicas, a loopback proxy on ``port`` and absolute paths.

    ``also`` adds, per route prefix, a one-replica copy of the application with other settings.
    """
    import yaml

    config = yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    application = config["applications"][0]
    application["runtime_env"]["env_vars"] |= {
        "TWOCODE_MODEL_REPOSITORY": str(ROOT / "models"),
        "TWOCODE_DEVICE": "cpu",
    } | env_vars
    deployment = application["deployments"][0]
    deployment.pop("autoscaling_config")
    deployment |= {"num_replicas": replicas, "health_check_period_s": 1}
    deployment["ray_actor_options"] = {"num_cpus": cpus_per_replica}
    for prefix, overrides in (also or {}).items():
        config["applications"].append(copy_application(application, prefix, overrides))
    target.write_text(yaml.safe_dump(config))
    return target


def copy_application(application: dict[str, Any], prefix: str, overrides: dict[str, str]) -> dict[str, Any]:
    """The application again, as one replica under ``prefix`` (named after it) with other settings."""
    copy = deepcopy(application)
    copy |= {"name": "twocode" + prefix.replace("/", "-"), "route_prefix": prefix}
    copy["runtime_env"]["env_vars"] |= overrides
    copy["deployments"][0]["num_replicas"] = 1
    return copy


@contextmanager
def ray_serve(
    replicas: int,
    env_vars: dict[str, str] | None = None,
    cores: set[int] | None = None,
    timeout_s: float = 240,
    also: dict[str, dict[str, str]] | None = None,
) -> Iterator[Running]:
    """A local Ray head (loopback, 2 CPUs, bounded memory) running ``serve run`` on our config.

    ``also``: more one-replica applications, by route prefix (see ``serve_config``); the two CPUs
    are shared evenly by every replica.
    """
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    ray_tmp = Path("/tmp") / f"ray-{os.getpid()}-{free_port()}"  # Ray's socket paths must stay short
    gcs_port, http_port = free_port(), free_port()
    env = os.environ | RAY_ENV | {"PYTHONPATH": str(ROOT)}
    head = [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs_port)]
    bounds = ["--num-cpus", "2", "--memory", str(2 * 1024**3), "--object-store-memory", str(100 * 1024**2)]
    extra = ["--include-dashboard", "false", "--temp-dir", str(ray_tmp), "--disable-usage-stats"]
    subprocess.run(
        [*head, *bounds, *extra],
        check=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        preexec_fn=lambda: _pin(cores),
    )
    share = 2 / max(replicas + len(also or {}), 2)
    config = serve_config(tmp / "serve.yaml", http_port, replicas, env_vars or {}, share, also)
    log = tmp / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "serve"), "run", "--address", f"127.0.0.1:{gcs_port}", str(config)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = Running(http_port, process, log)
    try:
        deadline = time.monotonic() + timeout_s
        while len(replica_pids()) < replicas:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"Ray Serve did not start {replicas} replicas: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        for _ in range(2 * replicas):  # every replica answers, not just the first to start
            _wait_ready(running, max(1.0, deadline - time.monotonic()))
        for prefix in also or {}:
            _wait_ready(running, max(1.0, deadline - time.monotonic()), prefix)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        stop_our_ray(ray_tmp, gcs_port)
        shutil.rmtree(ray_tmp, ignore_errors=True)
