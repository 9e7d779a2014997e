"""``python -m bench.variants``: our service under alternative settings, side by side in one run.

The evidence behind the service's defaults: each variant changes one knob of
the default configuration (the batching window, ONNX Runtime threads, the
HTTP parser and event loop) and runs the same four workloads, pinned like
``python -m bench``. Writes bench/results/variants.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench import servers
from bench.workloads import measure, workloads

WORKLOADS = (("encode", 1), ("encode", 32), ("swap", 1), ("swap", 8))
BASE = {"TWOCODE_MODEL_REPOSITORY": "models", "TWOCODE_DEFAULT_MODEL": "colormnist-digit", "TWOCODE_DEVICE": "cpu"}


def uvicorn_service(http: str, loop: str, **settings: str) -> tuple[list[str], dict[str, str]]:
    """The app under uvicorn with an explicit HTTP parser and event loop."""
    command = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--port", "{port}"]
    command += ["--http", http, "--loop", loop, "--log-level", "warning", "--no-access-log"]
    return command, BASE | {f"TWOCODE_{k.upper()}": v for k, v in settings.items()}


VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "h11 + asyncio, delay 2 ms, ORT threads 1": uvicorn_service(
        "h11", "asyncio", max_queue_delay_ms="2", intra_op_threads="1"
    ),
    "httptools + uvloop, delay 2 ms, ORT threads 1": uvicorn_service(
        "httptools", "uvloop", max_queue_delay_ms="2", intra_op_threads="1"
    ),
    "httptools + uvloop, delay 0 ms, ORT threads 1": uvicorn_service(
        "httptools", "uvloop", max_queue_delay_ms="0", intra_op_threads="1"
    ),
    "httptools + uvloop, delay 2 ms, ORT threads default": uvicorn_service(
        "httptools", "uvloop", max_queue_delay_ms="2", intra_op_threads="0"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.variants")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    results: dict[str, Any] = {}
    for name, (command, env) in VARIANTS.items():
        print(name, flush=True)
        with servers.start(command, env, {cpus[-1]}) as running:
            loads = workloads()
            results[name] = {
                f"{route}@{c}": measure(running.port, loads[route], c, args.seconds, args.reps)
                for route, c in WORKLOADS
            }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "variants.json").write_text(json.dumps(results, indent=2) + "\n")
    head = "| variant | " + " | ".join(f"{r} c={c}: req/s, p50/p99 ms" for r, c in WORKLOADS) + " |"
    lines = [
        "# Service variants",
        "",
        f"`python -m bench.variants`: medians of {args.reps} x {args.seconds} s.",
        "",
        head,
        "|" + " --- |" * (len(WORKLOADS) + 1),
    ]
    for name, cells in results.items():
        values = [cells[f"{r}@{c}"] for r, c in WORKLOADS]
        lines.append(
            f"| {name} | " + " | ".join(f"{v['requests_per_s']}, {v['p50_ms']}/{v['p99_ms']}" for v in values) + " |"
        )
    (out / "variants.md").write_text("\n".join(lines) + "\n")
    print((out / "variants.md").read_text())


if __name__ == "__main__":
    main()
