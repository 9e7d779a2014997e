"""``python -m bench`` (``make bench``): every speed figure of the README, measured side by side in one run.

Rows: the in-process pipeline and raw ONNX Runtime (ceilings, no HTTP), a
trivial endpoint (what HTTP alone costs), our service, the same routes on
LitServe and BentoML (bench/peers, from the ``.venv-bench`` environment) and a
PyTorch eager baseline, Ray Serve, and dynamic batching on and off.

Servers run pinned to core 1 and the load generator, wrk (C, one thread), to
core 0 (on a machine with 2 cores: the two-worker service gets both cores and
shares core 0 with the client, which the report says). Every point is
repeated ``--reps`` times; the report gives medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import servers
from bench.report import write_report
from bench.training import training_throughput
from bench.workloads import MODEL, batching_suite, ceilings, http_suite
from bench.wrk import WRK


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
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip the LitServe and BentoML rows")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.reps, args.train_steps = 0.5, 1, 0
    elif WRK is None:  # our asyncio client saturates its core before the server does at concurrency 8
        raise SystemExit("wrk is not installed (apt-get install wrk): the bench's figures need a compiled client")
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
    if args.peers:
        if not servers.PEERS_PYTHON.exists():
            raise SystemExit(f"{servers.PEERS_PYTHON} is missing: `make bench-venv` builds it (or pass --no-peers)")
        for name, peer in (("litserve", servers.litserve()), ("bentoml", servers.bentoml())):
            print(f"{name} ...", flush=True)
            with servers.start(peer.command, peer.env, server_cores, ready_path=peer.ready_path) as running:
                results[name] = http_suite(running.port, args.seconds, args.reps)
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
