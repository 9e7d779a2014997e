"""``python -m bench.ab --base REV``: the service at git revision REV against the working tree.

Both run as ``python -m service`` on the same core (core 1; the load
generator on core 0), one after the other, for ``--rounds`` rounds, so drift
on a shared machine hits both alike; the report gives each point's median
over the rounds and the ratio. The base is checked out into a temporary git
worktree and serves the working tree's model repository. Writes OUT.md and
OUT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import servers
from bench.workloads import measure, workloads

POINTS = (("swap", 1), ("swap", 8), ("encode", 1), ("encode", 32), ("encode64", 1))


def serve_env(root: Path) -> dict[str, str]:
    return {
        "TWOCODE_PORT": "{port}",
        "TWOCODE_MODEL_REPOSITORY": str(servers.ROOT / "models"),
        "TWOCODE_DEFAULT_MODEL": "colormnist-digit",
        "TWOCODE_DEVICE": "cpu",
        "TWOCODE_LOG_LEVEL": "warning",
        "PYTHONPATH": str(root),
    }


def one_round(root: Path, seconds: float, core: set[int]) -> dict[str, float]:
    """Requests/s at every point for the service in ``root`` (run from there, so its code is imported)."""
    out = {}
    with servers.start([sys.executable, "-m", "service"], serve_env(root), core, cwd=root) as running:
        loads = workloads()
        for route, concurrency in POINTS:
            point = measure(running.port, loads[route], concurrency, seconds, 1)
            out[f"{route}@{concurrency}"] = point["requests_per_s"]
    return out


def markdown(base: str, rows: dict[str, dict[str, float]], rounds: int, seconds: float) -> str:
    lines = [
        f"# The service at {base} against the working tree",
        "",
        f"`python -m bench.ab --base {base}`: req/s, medians of {rounds} alternating rounds of {seconds} s per point.",
        "",
        "| point | base | new | new / base |",
        "| --- | --- | --- | --- |",
    ]
    for point, row in rows.items():
        lines.append(f"| {point} | {row['base']} | {row['new']} | {row['ratio']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab")
    parser.add_argument("--base", required=True, help="a git revision of this repository")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", default="bench/results/ab", help="writes OUT.md and OUT.json")
    args = parser.parse_args()
    git = ["git", "rev-parse", "--short", args.base]
    args.base = subprocess.run(git, cwd=servers.ROOT, check=True, capture_output=True, text=True).stdout.strip()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    runs: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.base], cwd=servers.ROOT, check=True)
        try:
            for round_ in range(args.rounds):
                for label, root in (("base", worktree), ("new", servers.ROOT)):
                    print(f"round {round_ + 1}: {label}", flush=True)
                    runs[label].append(one_round(root, args.seconds, {cpus[-1]}))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=servers.ROOT, check=False)
    rows: dict[str, dict[str, Any]] = {}
    for route, concurrency in POINTS:
        key = f"{route}@{concurrency}"
        base = statistics.median(r[key] for r in runs["base"])
        new = statistics.median(r[key] for r in runs["new"])
        rows[key] = {"base": round(base, 1), "new": round(new, 1), "ratio": round(new / base, 2) if base else None}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"base": args.base, "runs": runs, "medians": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(args.base, rows, args.rounds, args.seconds))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
