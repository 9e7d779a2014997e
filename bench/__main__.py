"""``python -m bench`` (``make bench``): every speed figure of the README, measured side by side in one run.

Servers run pinned to core 1 and the load generator to core 0 (on a machine
with 2 cores: the two-worker service gets both cores and shares core 0 with
the client, which the report says). Every point is repeated ``--reps`` times;
the report gives medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import servers
from bench.loadgen import build_request, multipart, run_load
from bench.report import write_report
from bench.training import training_throughput

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


def _diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def batching_suite(seconds: float, reps: int, cores: set[int]) -> dict[str, Any]:
    """/encode at concurrency 32 with dynamic batching on (the defaults) and off (batches of one)."""
    out: dict[str, Any] = {}
    for label, settings in (("on", {}), ("off", {"max_batch_size": "1"})):
        command, env = servers.ours(settings=settings)
        with servers.start(command, env, cores) as running:
            before = batch_histogram(running.get("/metrics"))
            result = measure(running.port, requests_for(running.port)["encode"], 32, seconds, reps)
            result["batch_size_histogram"] = _diff(batch_histogram(running.get("/metrics")), before)
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--out", default="bench/results", help="writes results.md, results.json and results.png")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per point and repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--data-dir", default="../shared/data/mnist", help="for training throughput (skipped if absent)"
    )
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--quick", action="store_true", help="one short repetition per point: checks the harness")
    parser.add_argument("--no-ray", dest="ray", action="store_false", help="skip the Ray Serve rows")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.reps, args.train_steps = 0.5, 1, 0
    cpus = sorted(os.sched_getaffinity(0))
    client_core, server_cores = {cpus[0]}, {cpus[-1]}
    os.sched_setaffinity(0, client_core)
    started = time.time()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": len(cpus),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "settings": {
            "seconds": args.seconds,
            "reps": args.reps,
            "client_core": sorted(client_core),
            "server_cores": sorted(server_cores),
        },
    }
    print("raw ONNX Runtime ceilings ...", flush=True)
    results["onnxruntime"] = ceilings(1, max(args.seconds, 0.5), server_cores)
    print("HTTP ceiling (trivial endpoint) ...", flush=True)
    command, env = servers.uvicorn_app("bench.trivial_app:app")
    with servers.start(command, env, server_cores) as running:
        results["trivial"] = http_suite(running.port, args.seconds, args.reps, routes=("trivial",))
    print("our service, one worker ...", flush=True)
    command, env = servers.ours()
    with servers.start(command, env, server_cores) as running:
        results["ours_1_worker"] = http_suite(running.port, args.seconds, args.reps)
    print(f"our service, {len(cpus)} workers (all cores) ...", flush=True)
    command, env = servers.ours(workers=len(cpus))
    with servers.start(command, env, set(cpus)) as running:
        results[f"ours_{len(cpus)}_workers"] = http_suite(running.port, args.seconds, args.reps)
    print("PyTorch eager baseline ...", flush=True)
    command, env = servers.uvicorn_app("bench.baseline_torch:app", BENCH_MODEL=str(MODEL))
    with servers.start(command, env, server_cores) as running:
        results["pytorch_baseline"] = http_suite(running.port, args.seconds, args.reps)
    if args.ray:
        for replicas, cores in ((1, server_cores), (len(cpus), set(cpus))):
            print(f"Ray Serve, {replicas} replica(s) ...", flush=True)
            with servers.ray_serve(replicas, {"TWOCODE_INTRA_OP_THREADS": "1"}, cores) as running:
                results[f"ray_serve_{replicas}_replicas"] = http_suite(running.port, args.seconds, args.reps)
    print("dynamic batching on and off ...", flush=True)
    results["batching"] = batching_suite(args.seconds, args.reps, server_cores)
    data_dir = Path(args.data_dir)
    if args.train_steps and (data_dir / "train-images-idx3-ubyte.gz").exists():
        print("training throughput ...", flush=True)
        os.sched_setaffinity(0, set(cpus))
        results["training"] = training_throughput(data_dir, args.train_steps)
    results["wall_s"] = round(time.time() - started, 1)
    for path in write_report(results, Path(args.out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
