"""Ceilings measured in-process, with no HTTP: raw ONNX Runtime, and the whole request pipeline.

The pipeline is what a request costs a server before any HTTP: decode the
uploaded PNGs, the manifest's preprocessing rule, ONNX Runtime, and the answer
(a PNG for a swap, JSON codes for an encode), with our service's own image code.
A server can at best reach it; ``make bench`` states ours as a share of it.

python -m bench.inprocess --model models/colormnist-digit --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCHES = (1, 8, 64)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _time(fn: Any, seconds: float) -> list[float]:
    """Per-call seconds of ``fn`` repeated for about ``seconds`` (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    times, stop = [], time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def _calls(enc: Any, dec: Any, images: np.ndarray, z1: np.ndarray, z2: np.ndarray) -> dict[str, Any]:
    """The three timed calls on one batch: encode, decode, and swap (encode both images, then decode)."""
    n = len(images)
    pair = np.concatenate([images, images[::-1]])

    def swap() -> None:
        a, b = enc.run(["z1", "z2"], {"image": pair})
        dec.run(["image"], {"z1": a[:n], "z2": b[n:]})

    return {
        "encode": lambda: enc.run(["z1", "z2"], {"image": images}),
        "decode": lambda: dec.run(["image"], {"z1": z1, "z2": z2}),
        "swap": swap,
    }


def onnx_ceilings(folder: Path, threads: int, seconds: float) -> dict[str, Any]:
    """Images/s and latency of encode, decode and swap (encode both, decode) at each batch size."""
    manifest = json.loads((folder / "manifest.json").read_text())
    shape, z1_dim, z2_dim = manifest["image"], manifest["z1_dim"], manifest["z2_dim"]
    enc, dec = _session(folder / "encoder.onnx", threads), _session(folder / "decoder.onnx", threads)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"threads": threads}
    for n in BATCHES:
        images = rng.random((n, shape["channels"], shape["height"], shape["width"]), dtype=np.float32)
        z1, z2 = rng.standard_normal((n, z1_dim), dtype=np.float32), rng.standard_normal((n, z2_dim), dtype=np.float32)

        for name, fn in _calls(enc, dec, images, z1, z2).items():
            times = _time(fn, seconds)
            median = statistics.median(times)
            out[f"{name}@{n}"] = {
                "images_per_s": round(n / median, 1),
                "latency_ms_p50": round(1000 * median, 3),
                "latency_ms_p99": round(1000 * float(np.percentile(times, 99)), 3),
                "calls": len(times),
            }
    return out


def pipeline_ceilings(folder: Path, seconds: float, batches: tuple[int, ...] = (1, 16, 64)) -> dict[str, Any]:
    """Requests/s and latency of the swap pipeline (two PNGs in, one PNG out) and of the encode
    pipeline (``n`` PNGs in, their codes as JSON out), one thread. The codes are written with the
    fastest JSON writer the service has (pydantic-core's, what /encode's response model uses; 5x
    json.dumps for 64 images' codes), so the ceiling holds no slower step than the service's own."""
    from pydantic_core import to_json

    from bench.peers.shared import Pipeline
    from bench.workloads import example_pngs

    pipeline = Pipeline(folder)
    pngs = example_pngs(folder)
    calls: dict[str, Any] = {"swap@1": lambda: pipeline.swap_bytes(pngs[0], pngs[1])}
    for n in batches:
        files = [pngs[k % len(pngs)] for k in range(n)]
        calls[f"encode@{n}"] = lambda files=files: to_json(pipeline.encode_bytes(files))
    out: dict[str, Any] = {}
    for name, fn in calls.items():
        times = _time(fn, seconds)
        median = statistics.median(times)
        n = int(name.split("@")[1])
        out[name] = {
            "requests_per_s": round(1 / median, 1),
            "images_per_s": round(n / median, 1),
            "latency_ms_p50": round(1000 * median, 3),
            "latency_ms_p99": round(1000 * float(np.percentile(times, 99)), 3),
            "calls": len(times),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models/colormnist-digit")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", required=True)
    parser.add_argument("--swap-pipeline-only", action="store_true", help="only the swap pipeline (bench.ratio)")
    args = parser.parse_args()
    if args.swap_pipeline_only:
        result = {"pipeline": pipeline_ceilings(Path(args.model), args.seconds, batches=())}
    else:
        result = onnx_ceilings(Path(args.model), args.threads, args.seconds)
        result["pipeline"] = pipeline_ceilings(Path(args.model), args.seconds)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
