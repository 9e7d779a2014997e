"""The bench's markdown table, JSON and plot, and the issue's targets checked as ratios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PEERS = ("litserve", "bentoml", "pytorch_baseline")  # the same routes on other servers, one core each


def _at(rows: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    return next(r for r in rows if r["concurrency"] == concurrency)


def _ratio(target: str, ours: float, reference: float, at_least: float) -> dict[str, Any]:
    """A throughput target: ours / reference must reach ``at_least`` (strictly more when it is 1)."""
    met = ours > reference if at_least == 1 else ours >= at_least * reference
    return {"target": target, "ours": ours, "reference": reference, "ratio": round(ours / reference, 2), "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the performance work: the two figures, their ratio or margin, and whether it is met.

    The references are the servers a user would pick instead (LitServe), the in-process pipeline
    (what one request costs before any HTTP: the ceiling of any server on that core), and the trivial
    endpoint (what HTTP alone costs in Python on that core).
    """
    ours, pipeline = results["ours_1_worker"], results["onnxruntime"]["pipeline"]
    swap8 = _at(ours["swap"], 8)["requests_per_s"]
    encode64 = _at(ours["encode64"], 1)["images_per_s"]
    out = []
    if "litserve" in results:
        litserve8 = _at(results["litserve"]["swap"], 8)["requests_per_s"]
        out.append(_ratio("/swap req/s at concurrency 8 >= 2x LitServe", swap8, litserve8, 2))
    out += [
        _ratio(
            "/swap req/s at concurrency 8 >= 70 % of the in-process pipeline",
            swap8,
            pipeline["swap@1"]["requests_per_s"],
            0.7,
        ),
        _ratio(
            "/encode of 64 images: images/s >= 70 % of the in-process pipeline for 64 images",
            encode64,
            pipeline["encode@64"]["images_per_s"],
            0.7,
        ),
    ]
    latency = _at(ours["swap"], 1)["p99_ms"]
    trivial = _at(results["trivial"]["trivial"], 1)["p99_ms"]
    bound = round(pipeline["swap@1"]["latency_ms_p50"] + trivial + 1, 2)
    out.append(
        {
            "target": "/swap p99 at concurrency 1 <= in-process pipeline + trivial endpoint's p99 + 1 ms",
            "ours": latency,
            "reference": bound,
            "margin_ms": round(latency - bound, 2),
            "met": latency <= bound,
        }
    )
    batching = results["batching"]
    on, off = batching["on"]["requests_per_s"], batching["off"]["requests_per_s"]
    out.append(_ratio("/encode req/s at concurrency 32: batching on > off", on, off, 1))
    return out


def _table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| server | route | concurrency | req/s | images/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    servers = (s for s in results if s.startswith(("ours_", "ray_serve_")))
    order = ("trivial", *servers, *(s for s in PEERS if s in results))
    for server in order:
        for route, rows in results.get(server, {}).items():
            for r in rows:
                lines.append(
                    f"| {server} | {route} | {r['concurrency']} | {r['requests_per_s']} | {r['images_per_s']} "
                    f"| {r['p50_ms']} | {r['p99_ms']} |"
                )
    return lines


def markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` on {results['date']}: {m['cpus']} CPU cores ({m['processor']}), Python {m['python']}. "
        f"Servers pinned to cores {s['server_cores']} (the multi-worker service: all cores), the load generator "
        f"to {s['client_core']}; each point is the median of {s['reps']} runs of {s['seconds']} s. "
        f"Total {results['wall_s']} s.",
        "",
        "## Targets",
        "",
        "| target | ours | reference | ratio or margin | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in targets(results):
        ratio = f"{t['ratio']}x" if "ratio" in t else f"{t['margin_ms']:+} ms"
        lines.append(f"| {t['target']} | {t['ours']} | {t['reference']} | {ratio} | {'yes' if t['met'] else 'NO'} |")
    lines += [
        "",
        "## Raw ONNX Runtime, in-process (one thread, the server's core)",
        "",
        "| call | batch | images/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, v in results["onnxruntime"].items():
        if "@" in key:
            call, batch = key.split("@")
            lines.append(f"| {call} | {batch} | {v['images_per_s']} | {v['latency_ms_p50']} | {v['latency_ms_p99']} |")
    lines += [
        "",
        "## The in-process pipeline (one thread): decode the PNGs, preprocess, ONNX Runtime, the answer",
        "",
        "| request | images | req/s | images/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, v in results["onnxruntime"].get("pipeline", {}).items():
        call, batch = key.split("@")
        lines.append(
            f"| {call} | {batch} | {v['requests_per_s']} | {v['images_per_s']} | {v['latency_ms_p50']} "
            f"| {v['latency_ms_p99']} |"
        )
    lines += ["", "## Over HTTP", ""] + _table(results)
    b = results["batching"]
    lines += [
        "",
        "## Dynamic batching, /encode at concurrency 32",
        "",
        "| batching | req/s | p50 ms | p99 ms | encoder batch sizes (cumulative count by upper bound) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label in ("on", "off"):
        hist = ", ".join(f"<={k}: {int(v)}" for k, v in b[label]["batch_size_histogram"].items() if v)
        lines.append(
            f"| {label} | {b[label]['requests_per_s']} | {b[label]['p50_ms']} | {b[label]['p99_ms']} | {hist} |"
        )
    if "training" in results:
        t = results["training"]
        shipped = "; ".join(f"{k}: {v['train_minutes']} min for {v['steps']} steps" for k, v in t["shipped"].items())
        lines += [
            "",
            "## Training",
            "",
            f"Default config on all cores: {t['images_per_s_median']} images/s (median over {t['steps']} steps). "
            f"Wall time of the shipped models (from their manifests): {shipped}.",
        ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for row, route in enumerate(("swap", "encode")):
        for server in (s for s in results if s.startswith(("ours_", "ray_serve_")) or s in PEERS):
            rows = results[server][route]
            conc = [r["concurrency"] for r in rows]
            axes[row, 0].plot(conc, [r["requests_per_s"] for r in rows], marker="o", label=server)
            axes[row, 1].plot(conc, [r["p50_ms"] for r in rows], marker="o", label=server)
            axes[row, 2].plot(conc, [r["p99_ms"] for r in rows], marker="o", label=server)
        for col, title in enumerate(("requests/s", "p50 latency (ms)", "p99 latency (ms)")):
            axes[row, col].set_title(f"/{route}: {title}")
            axes[row, col].set_xlabel("concurrency")
            axes[row, col].set_xscale("log", base=2)
            if col:
                axes[row, col].set_yscale("log")
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    paths = [out / "results.json", out / "results.md", out / "results.png"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results))
    plot(results, paths[2])
    return paths
