"""The measurements ``make bench`` combines: prebuilt requests, measured points, suites of points.

The library of the benchmark (``python -m bench`` is its command line): other benchmarks
(variants, ab, ray_batching, gpu_check) and the tests use the same requests and measurements.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import servers
from bench.loadgen import build_request, multipart, run_load
from bench.wrk import WRK, WrkResult, run_wrk
from modelrepo import load_manifest

ROOT = servers.ROOT
MODEL = ROOT / "models" / "colormnist-digit"
CONCURRENCY = (1, 8, 32)
MULTI = (16, 64)


def example_pngs(folder: Path = MODEL) -> list[bytes]:
    """The PNG bytes of a model folder's shipped examples, in manifest order."""
    return [(folder / e.file).read_bytes() for e in load_manifest(folder).examples]


@dataclass(frozen=True)
class Workload:
    """One request of the bench: where it goes, its multipart body, and how many images it carries."""

    path: str
    body: bytes
    content_type: str
    images: int = 1

    def raw(self, port: int) -> bytes:
        """The whole HTTP/1.1 request, for the bench's own asyncio client."""
        return build_request("POST", self.path, f"127.0.0.1:{port}", self.body, self.content_type)


def workloads() -> dict[str, Workload]:
    """Every workload by name: encode (one image), swap, encode16/encode64, trivial."""
    pngs = example_pngs()

    def files(field: str, n: int) -> tuple[bytes, str]:
        return multipart([(field, f"{k}.png", pngs[k % len(pngs)], "image/png") for k in range(n)])

    out = {"encode": Workload("/encode", *files("image", 1))}
    body, ctype = multipart([("z1_image", "a.png", pngs[0], "image/png"), ("z2_image", "b.png", pngs[1], "image/png")])
    out["swap"] = Workload("/swap", body, ctype)
    for n in MULTI:
        out[f"encode{n}"] = Workload("/encode", *files("image", n), images=n)
    out["trivial"] = Workload("/trivial", *files("image", 1))
    return out


def requests_for(port: int) -> dict[str, bytes]:
    """The prebuilt HTTP requests of every workload."""
    return {name: w.raw(port) for name, w in workloads().items()}


def client_core() -> int | None:
    """The core the load generator runs on: the lowest one this process may use (the servers get the others)."""
    cores = sorted(os.sched_getaffinity(0))
    return cores[0] if len(cores) > 1 else None


def _one_run(port: int, workload: Workload, concurrency: int, seconds: float) -> WrkResult:
    """One measured run: wrk (C, one thread, on the client core) when installed, else our asyncio client."""
    if WRK is not None:
        url = f"http://127.0.0.1:{port}{workload.path}"
        result = run_wrk(url, workload.body, workload.content_type, concurrency, seconds, core=client_core())
        if result.errors:
            raise RuntimeError(f"{result.errors} failed requests under load on {workload.path}")
        return result
    run = run_load("127.0.0.1", port, workload.raw(port), concurrency, seconds)
    bad = {s: c for s, c in run.statuses.items() if s != 200}
    if bad:
        raise RuntimeError(f"non-200 answers under load on {workload.path}: {bad}")
    p50, p99 = 1000 * run.percentile(50), 1000 * run.percentile(99)
    return WrkResult(run.requests_per_s, p50, p99, len(run.latencies), errors=0)


def measure(port: int, workload: Workload, concurrency: int, seconds: float, reps: int) -> dict[str, Any]:
    """Medians over ``reps`` runs of requests/s, images/s and p50/p99 latency (ms)."""
    runs = [_one_run(port, workload, concurrency, seconds) for _ in range(reps)]
    rps = statistics.median(r.requests_per_s for r in runs)
    return {
        "concurrency": concurrency,
        "requests_per_s": round(rps, 1),
        "images_per_s": round(rps * workload.images, 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in runs), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 2),
        "requests": sum(r.requests for r in runs),
        "client": "wrk" if WRK is not None else "asyncio",
    }


def http_suite(port: int, seconds: float, reps: int, routes: tuple[str, ...] = ("encode", "swap")) -> dict[str, Any]:
    loads = workloads()
    out: dict[str, Any] = {}
    for route in routes:
        out[route] = [measure(port, loads[route], c, seconds, reps) for c in CONCURRENCY]
    if "encode" in routes:
        for n in MULTI:
            out[f"encode{n}"] = [measure(port, loads[f"encode{n}"], c, seconds, reps) for c in (1, 2)]
    return out


def batch_histogram(metrics_text: str, network: str = "encoder") -> dict[str, float]:
    """Cumulative counts of twocode_batch_size for one network, by upper bound."""
    out = {}
    for line in metrics_text.splitlines():
        if line.startswith("twocode_batch_size_bucket") and f'network="{network}"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[le.removesuffix(".0")] = float(line.rsplit(" ", 1)[1])  # prometheus_client writes 1.0
    return out


def counts_diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def batching_suite(seconds: float, reps: int, cores: set[int]) -> dict[str, Any]:
    """/encode at concurrency 32 with dynamic batching on (the defaults) and off (batches of one)."""
    out: dict[str, Any] = {}
    for label, settings in (("on", {}), ("off", {"max_batch_size": "1"})):
        command, env = servers.ours(settings=settings)
        with servers.start(command, env, cores) as running:
            before = batch_histogram(running.get("/metrics"))
            result = measure(running.port, workloads()["encode"], 32, seconds, reps)
            result["batch_size_histogram"] = counts_diff(batch_histogram(running.get("/metrics")), before)
            out[label] = result
    return out


def ceilings(threads: int, seconds: float, cores: set[int], swap_pipeline_only: bool = False) -> dict[str, Any]:
    """bench.inprocess's ceilings, measured in a process pinned to ``cores``."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "ort.json"
        command = [sys.executable, "-m", "bench.inprocess", "--model", str(MODEL), "--threads", str(threads)]
        command += ["--swap-pipeline-only"] if swap_pipeline_only else []
        subprocess.run(
            [*command, "--seconds", str(seconds), "--json", str(target)],
            cwd=ROOT,
            check=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )
        result: dict[str, Any] = json.loads(target.read_text())
        return result
