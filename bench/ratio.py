"""``python -m bench.ratio``: /swap at concurrency 8 as a share of the in-process pipeline, round after round.

``make bench`` measures every row once, so each of its ratios is one draw: on
this shared 2-core machine two runs an hour apart gave our /swap at
concurrency 8 68 % and 76 % of the pipeline. This measures just that pair,
the pipeline (one thread, the server's core) and then our service under wrk
(the server on that core, wrk on the other), ``--rounds`` times in turn, and
reports every round's ratio and their median: the distribution, not one draw.
Writes OUT.md and OUT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from bench import servers
from bench.workloads import ceilings, measure, workloads


def markdown(rounds: list[dict[str, float]], seconds: float, concurrency: int) -> str:
    median = statistics.median(r["ratio"] for r in rounds)
    lines = [
        f"# /swap at concurrency {concurrency} against the in-process pipeline, {len(rounds)} rounds",
        "",
        f"`python -m bench.ratio --rounds {len(rounds)} --seconds {seconds:g}`: each round measures the pipeline, "
        "then our service under wrk (one core each).",
        "",
        "| round | pipeline swaps/s | ours req/s | ours / pipeline |",
        "| --- | --- | --- | --- |",
    ]
    for k, r in enumerate(rounds, 1):
        lines.append(f"| {k} | {r['pipeline']} | {r['ours']} | {r['ratio']:.2f} |")
    ratios = sorted(r["ratio"] for r in rounds)
    lines += ["", f"Median {median:.2f}; lowest {ratios[0]:.2f}, highest {ratios[-1]:.2f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ratio")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", default="bench/results/swap_ratio", help="writes OUT.md and OUT.json")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    client_core, server_core = {cpus[0]}, {cpus[-1]}
    os.sched_setaffinity(0, client_core)
    rounds = []
    for k in range(args.rounds):
        pipeline = ceilings(1, args.seconds, server_core, swap_pipeline_only=True)["pipeline"]["swap@1"][
            "requests_per_s"
        ]
        command, env = servers.ours()
        with servers.start(command, env, server_core) as running:
            ours = measure(running.port, workloads()["swap"], args.concurrency, args.seconds, 1)["requests_per_s"]
        rounds.append({"pipeline": pipeline, "ours": ours, "ratio": round(ours / pipeline, 4)})
        print(f"round {k + 1}: pipeline {pipeline}, ours {ours}, {ours / pipeline:.2f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"concurrency": args.concurrency, "rounds": rounds}, indent=2) + "\n"
    )
    out.with_suffix(".md").write_text(markdown(rounds, args.seconds, args.concurrency))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
