"""``python -m bench.http_stack``: does uvicorn's standard set (uvloop + httptools) pay for our service?

Our service as ``make serve`` runs it, started from two environments that differ
only in that set: the serving venv (asyncio event loop, h11 parser) and one with
uvloop and httptools (uvicorn picks them up when installed). /swap with two
shipped examples, measured with wrk (C, one thread, pinned to core 0) against the
server pinned to core 1, at concurrency 1, 8 and 32; rounds alternate between the
two stacks and the report gives medians. Writes bench/results/http_stack.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import servers
from bench.workloads import workloads
from bench.wrk import run_wrk

ROOT = servers.ROOT
CONCURRENCY = (1, 8, 32)


def measure(python: Path, seconds: float) -> dict[int, dict[str, float]]:
    command, env = servers.ours()
    swap = workloads()["swap"]
    body, ctype = swap.body, swap.content_type
    out = {}
    with servers.start([str(python), *command[1:]], env, cores={1}) as running:
        url = f"http://127.0.0.1:{running.port}/swap"
        run_wrk(url, body, ctype, 8, 1.0, core=0)  # warm-up
        for c in CONCURRENCY:
            result = run_wrk(url, body, ctype, c, seconds, core=0)
            if result.errors:
                raise RuntimeError(f"{python}: {result.errors} failed requests at concurrency {c}")
            out[c] = {"requests_per_s": result.requests_per_s, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=Path, default=ROOT / ".venv-serve" / "bin" / "python",
                        help="python of an environment without uvloop and httptools")  # fmt: skip
    parser.add_argument("--standard", type=Path, default=Path(sys.executable),
                        help="python of an environment with them")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "http_stack")
    args = parser.parse_args()
    runs: dict[str, list[dict[int, dict[str, float]]]] = {"plain": [], "standard": []}
    for _ in range(args.rounds):  # alternating, so drift on a shared machine hits both alike
        for name in ("plain", "standard"):
            runs[name].append(measure(getattr(args, name), args.seconds))
    summary: dict[str, Any] = {}
    for name, rounds in runs.items():
        summary[name] = {
            str(c): {k: round(statistics.median(r[c][k] for r in rounds), 2) for k in rounds[0][c]} for c in CONCURRENCY
        }
    lines = [
        "# uvicorn's standard set (uvloop + httptools) against asyncio + h11: `/swap`, wrk",
        "",
        f"`python -m bench.http_stack` ({args.rounds} alternating rounds of {args.seconds:g} s per point, medians; "
        "server on core 1, wrk on core 0).",
        "",
        "| concurrency | asyncio + h11: req/s (p50 / p99 ms) | uvloop + httptools: req/s (p50 / p99 ms) | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for c in CONCURRENCY:
        a, b = summary["plain"][str(c)], summary["standard"][str(c)]
        lines.append(
            f"| {c} | {a['requests_per_s']} ({a['p50_ms']} / {a['p99_ms']}) | "
            f"{b['requests_per_s']} ({b['p50_ms']} / {b['p99_ms']}) | {b['requests_per_s'] / a['requests_per_s']:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"summary": summary, "rounds": runs}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
