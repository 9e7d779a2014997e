"""``python -m bench.ray_batching``: the app's own batcher against Ray Serve's ``@serve.batch``.

A variant is the batcher (``TWOCODE_BATCHING=app`` or ``serve``) and the
batching window (``TWOCODE_MAX_QUEUE_DELAY_MS``), measured two ways: on Ray
Serve (one replica, the whole local Ray head pinned to core 1) and in one
uvicorn process (``bench.serve_batch_app``: the same two queues without
Serve's proxy hop, whose cost on this machine hides any difference between
them). The load generator runs on core 0, as in ``python -m bench``. Each
variant runs the same workloads; for ``/encode`` at concurrency 32 the
report also gives the mean rows per encoder run (from /metrics), which is
what the two queues do differently. Writes bench/results/ray_batching.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from bench import servers
from bench.workloads import Workload, batch_histogram, counts_diff, measure
from bench.workloads import workloads as bench_workloads

BASE = {
    "TWOCODE_MODEL_REPOSITORY": "models",
    "TWOCODE_DEFAULT_MODEL": "colormnist-digit",
    "TWOCODE_DEVICE": "cpu",
    "TWOCODE_LOG_LEVEL": "warning",
}
WORKLOADS = (("encode", 1), ("encode", 32), ("swap", 8), ("swap", 32), ("encode16", 2))
VARIANTS = {
    "app batcher, window 0 ms": {"TWOCODE_BATCHING": "app", "TWOCODE_MAX_QUEUE_DELAY_MS": "0"},
    "@serve.batch, window 0 ms": {"TWOCODE_BATCHING": "serve", "TWOCODE_MAX_QUEUE_DELAY_MS": "0"},
    "app batcher, window 2 ms": {"TWOCODE_BATCHING": "app", "TWOCODE_MAX_QUEUE_DELAY_MS": "2"},
    "@serve.batch, window 2 ms": {"TWOCODE_BATCHING": "serve", "TWOCODE_MAX_QUEUE_DELAY_MS": "2"},
}


def rows_per_run(histogram: dict[str, float]) -> float:
    """Mean rows per encoder run, from a cumulative histogram's +Inf bucket and its sum (kept as 'sum')."""
    runs = histogram.get("+Inf", 0.0)
    return histogram.get("sum", 0.0) / runs if runs else 0.0


def _with_sum(metrics_text: str) -> dict[str, float]:
    out = batch_histogram(metrics_text)
    for line in metrics_text.splitlines():
        if line.startswith("twocode_batch_size_sum") and 'network="encoder"' in line:
            out["sum"] = float(line.rsplit(" ", 1)[1])
    return out


def workloads(running: servers.Running, seconds: float, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    loads: dict[str, Workload] = bench_workloads()
    for route, concurrency in WORKLOADS:
        key = f"{route}@{concurrency}"
        before = _with_sum(running.get("/metrics"))
        out[key] = measure(running.port, loads[route], concurrency, seconds, reps)
        if key == "encode@32":
            rows = rows_per_run(counts_diff(_with_sum(running.get("/metrics")), before))
            out[key]["encoder_rows_per_run"] = round(rows, 2)
    return out


def on_ray(env: dict[str, str], seconds: float, reps: int, cores: set[int]) -> dict[str, Any]:
    with servers.ray_serve(1, env | {"TWOCODE_INTRA_OP_THREADS": "1"}, cores) as running:
        return workloads(running, seconds, reps)


def in_process(env: dict[str, str], seconds: float, reps: int, cores: set[int]) -> dict[str, Any]:
    command, base = servers.uvicorn_app("bench.serve_batch_app:create_app", **BASE)
    with servers.start([*command, "--factory"], base | env, cores) as running:
        return workloads(running, seconds, reps)


def markdown(results: dict[str, Any], seconds: float, reps: int) -> str:
    head = "| variant | " + " | ".join(f"{r} c={c}: req/s, p50/p99 ms" for r, c in WORKLOADS)
    lines = [
        "# The app's batcher against @serve.batch",
        "",
        f"`python -m bench.ray_batching`: medians of {reps} x {seconds} s; "
        "rows/run: mean rows per encoder run during /encode at c=32.",
    ]
    for where, title in (("ray", "On Ray Serve, one replica"), ("process", "In one uvicorn process, no Serve proxy")):
        lines += ["", f"## {title}", "", head + " | rows/run |", "|" + " --- |" * (len(WORKLOADS) + 2)]
        for name, cells in results[where].items():
            values = [cells[f"{r}@{c}"] for r, c in WORKLOADS]
            row = " | ".join(f"{v['requests_per_s']}, {v['p50_ms']}/{v['p99_ms']}" for v in values)
            lines.append(f"| {name} | {row} | {cells['encode@32']['encoder_rows_per_run']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_batching")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="names from VARIANTS")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    results: dict[str, dict[str, Any]] = {"ray": {}, "process": {}}
    for where, run in (("process", in_process), ("ray", on_ray)):
        for name in args.variants:
            print(where, name, flush=True)
            results[where][name] = run(VARIANTS[name], args.seconds, args.reps, {cpus[-1]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray_batching.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "ray_batching.md").write_text(markdown(results, args.seconds, args.reps))
    print((out / "ray_batching.md").read_text())


if __name__ == "__main__":
    main()
