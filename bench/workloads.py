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
from pathlib import Path
from typing import Any

from bench import servers
from bench.loadgen import build_request, multipart, run_load

ROOT = servers.ROOT
MODEL = ROOT / "models" / "colormnist-digit"
CONCURRENCY = (1, 8, 32)
MULTI = (16, 64)


def _examples() -> list[bytes]:
    manifest = json.loads((MODEL / "manifest.json").read_text())
    return [(MODEL / e["file"]).read_bytes() for e in manifest["examples"]]


def requests_for(port: int) -> dict[str, bytes]:
    """The prebuilt HTTP requests of every workload."""
    pngs = _examples()
    host = f"127.0.0.1:{port}"
    out = {}
    body, ctype = multipart([("image", "a.png", pngs[0], "image/png")])
    out["encode"] = build_request("POST", "/encode", host, body, ctype)
    body, ctype = multipart([("z1_image", "a.png", pngs[0], "image/png"), ("z2_image", "b.png", pngs[1], "image/png")])
    out["swap"] = build_request("POST", "/swap", host, body, ctype)
    for n in MULTI:
        body, ctype = multipart([("image", f"{k}.png", pngs[k % len(pngs)], "image/png") for k in range(n)])
        out[f"encode{n}"] = build_request("POST", "/encode", host, body, ctype)
    body, ctype = multipart([("image", "a.png", pngs[0], "image/png")])
    out["trivial"] = build_request("POST", "/trivial", host, body, ctype)
    return out


def measure(port: int, request: bytes, concurrency: int, seconds: float, reps: int, images: int = 1) -> dict[str, Any]:
    """Medians over ``reps`` runs of requests/s, images/s and p50/p99 latency."""
    runs = [run_load("127.0.0.1", port, request, concurrency, seconds) for _ in range(reps)]
    bad = {s: c for r in runs for s, c in r.statuses.items() if s != 200}
    if bad:
        raise RuntimeError(f"non-200 answers under load: {bad}")
    rps = statistics.median(r.requests_per_s for r in runs)
    return {
        "concurrency": concurrency,
        "requests_per_s": round(rps, 1),
        "images_per_s": round(rps * images, 1),
        "p50_ms": round(1000 * statistics.median(r.percentile(50) for r in runs), 2),
        "p99_ms": round(1000 * statistics.median(r.percentile(99) for r in runs), 2),
        "requests": sum(len(r.latencies) for r in runs),
    }


def http_suite(port: int, seconds: float, reps: int, routes: tuple[str, ...] = ("encode", "swap")) -> dict[str, Any]:
    reqs = requests_for(port)
    out: dict[str, Any] = {}
    for route in routes:
        out[route] = [measure(port, reqs[route], c, seconds, reps) for c in CONCURRENCY]
    if "encode" in routes:
        for n in MULTI:
            out[f"encode{n}"] = [measure(port, reqs[f"encode{n}"], c, seconds, reps, images=n) for c in (1, 2)]
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
            result = measure(running.port, requests_for(running.port)["encode"], 32, seconds, reps)
            result["batch_size_histogram"] = counts_diff(batch_histogram(running.get("/metrics")), before)
            out[label] = result
    return out


def ceilings(threads: int, seconds: float, cores: set[int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "ort.json"
        command = [sys.executable, "-m", "bench.inprocess", "--model", str(MODEL), "--threads", str(threads)]
        subprocess.run(
            [*command, "--seconds", str(seconds), "--json", str(target)],
            cwd=ROOT,
            check=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )
        result: dict[str, Any] = json.loads(target.read_text())
        return result
