"""``python -m bench.gpu_check`` (``make gpu-check``): the service on an NVIDIA GPU, checked and measured.

Run it on a machine with an NVIDIA GPU, in an environment with ``onnxruntime-gpu``
(and not ``onnxruntime`` beside it). In one run it

1. starts the service as users run it (``python -m service``, ``TWOCODE_DEVICE=cuda``) and
   checks that ``/readyz`` is 200 and ``/models`` reports the CUDA execution provider for
   every shipped model (``/readyz`` is 503 whenever a model fell back to the CPU);
2. checks the GPU's answers against ONNX Runtime on the CPU, in this process, on the
   models' example images: codes within the export tolerance (``PARITY_RTOL``/``PARITY_ATOL``
   in ``modelrepo``) and swapped images within one grey level;
3. measures ``/swap`` latency at concurrency 1 (p50, p99) and ``/encode`` throughput at
   several images per request, and raw ONNX Runtime on the GPU at several batch sizes;
4. with ``--data-dir`` and a CUDA build of torch, measures training speed on the GPU;
5. writes ``bench/results/gpu.{md,json}``, each GPU figure beside the CPU figure of the last
   ``make bench`` run (``bench/results/results.json``) where that run has one.

It exits 1 when a check fails (the report still says what was measured) and 2 when
this environment cannot use the GPU at all. ``--device cpu`` runs every step on the
CPU: a dry run of the script itself, whose report says so.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import servers
from bench.loadgen import build_request, multipart, run_load
from bench.workloads import example_pngs
from modelrepo import load_manifest
from modelrepo.codec import OnnxCodec
from modelrepo.manifest import PARITY_ATOL, PARITY_RTOL

ROOT = servers.ROOT
MODELS = ("colormnist-digit", "colormnist-colour")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
IMAGES_PER_REQUEST = (1, 16, 64, 256)
RAW_BATCHES = (1, 64, 256, 1024)


def environment(device: str) -> dict[str, Any]:
    import onnxruntime as ort

    facts: dict[str, Any] = {
        "device_asked": device,
        "onnxruntime": f"{ort.__version__} ({ort.get_device()})",
        "providers": ort.get_available_providers(),
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        facts["gpu"] = subprocess.run(query, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        facts["gpu"] = "none (nvidia-smi not found or failed)"
    return facts


def _post(port: int, path: str, fields: list[tuple[str, str, bytes, str]], accept: str) -> bytes:
    body, ctype = multipart(fields)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": ctype, "Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def providers_served(running: servers.Running) -> dict[str, str]:
    return {m["name"]: m["provider"] for m in json.loads(running.get("/models"))["models"]}


def parity(running: servers.Running, name: str) -> dict[str, Any]:
    """The served codes and swaps against ONNX Runtime on the CPU, on the model's examples."""
    from PIL import Image

    from deploy.swap_answer import expected_swap
    from service.images import to_input

    folder = ROOT / "models" / name
    manifest = load_manifest(folder)
    pngs = example_pngs(ROOT / "models" / name)
    fields = [("image", f"{i}.png", png, "image/png") for i, png in enumerate(pngs)]
    served = json.loads(_post(running.port, f"/encode?model={name}", fields, "application/json"))
    batch = np.stack([to_input(p, manifest.preprocessing, 1 << 24, str(i)) for i, p in enumerate(pngs)])
    z1, z2 = OnnxCodec(folder).encode(batch)
    codes_ok, worst = True, 0.0
    for got, want in ((np.asarray(served["z1"]), z1), (np.asarray(served["z2"]), z2)):
        codes_ok &= bool(np.allclose(got, want, rtol=PARITY_RTOL, atol=PARITY_ATOL))
        worst = max(worst, float(np.abs(got - want).max()))
    grey = 0
    for a, b in zip(pngs, pngs[1:] + pngs[:1], strict=True):
        fields = [("z1_image", "a.png", a, "image/png"), ("z2_image", "b.png", b, "image/png")]
        answer = _post(running.port, f"/swap?model={name}", fields, "image/png")
        got_px = np.asarray(Image.open(io.BytesIO(answer)).convert("RGB"), dtype=np.int16)
        want_px = np.asarray(Image.open(io.BytesIO(expected_swap(folder, a, b))).convert("RGB"), dtype=np.int16)
        grey = max(grey, int(np.abs(got_px - want_px).max()))
    return {
        "images": len(pngs),
        "codes_max_abs_diff": worst,
        "codes_within_export_tolerance": codes_ok,
        "swap_max_grey_levels": grey,
        "swaps_within_one_grey_level": grey <= 1,
    }


def serving(running: servers.Running, seconds: float, reps: int) -> dict[str, Any]:
    """/swap latency at concurrency 1, and /encode images/s at several images per request."""
    pngs = example_pngs(ROOT / "models" / MODELS[0])
    host = f"127.0.0.1:{running.port}"
    body, ctype = multipart([("z1_image", "a.png", pngs[0], "image/png"), ("z2_image", "b.png", pngs[1], "image/png")])
    request = build_request("POST", "/swap", host, body, ctype)
    swap = [run_load("127.0.0.1", running.port, request, 1, seconds) for _ in range(reps)]
    out: dict[str, Any] = {
        "swap_c1": {
            "requests_per_s": round(statistics.median(r.requests_per_s for r in swap), 1),
            "p50_ms": round(statistics.median(r.percentile(50) for r in swap) * 1000, 2),
            "p99_ms": round(statistics.median(r.percentile(99) for r in swap) * 1000, 2),
        },
        "encode": {},
    }
    for n in IMAGES_PER_REQUEST:
        body, ctype = multipart([("image", f"{k}.png", pngs[k % len(pngs)], "image/png") for k in range(n)])
        request = build_request("POST", "/encode", host, body, ctype)
        runs = [run_load("127.0.0.1", running.port, request, 8, seconds) for _ in range(reps)]
        bad = {s: c for r in runs for s, c in r.statuses.items() if s != 200}
        if bad:
            raise RuntimeError(f"/encode with {n} images answered {bad}")
        out["encode"][str(n)] = {
            "images_per_s": round(statistics.median(r.requests_per_s for r in runs) * n, 1),
            "p50_ms": round(statistics.median(r.percentile(50) for r in runs) * 1000, 2),
        }
    return out


def raw_onnx(device: str, seconds: float) -> dict[str, float]:
    """Encoder images/s of ONNX Runtime alone (no HTTP, no image decoding) at several batch sizes."""

    folder = ROOT / "models" / MODELS[0]
    shape = load_manifest(folder).image
    codec = OnnxCodec(folder, [CUDA, CPU] if device == "cuda" else [CPU])
    out = {}
    for n in RAW_BATCHES:
        batch = np.random.default_rng(n).random((n, shape.channels, shape.height, shape.width), dtype=np.float32)
        codec.encode(batch)  # warm-up (CUDA kernels, memory arena)
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            codec.encode(batch)
            runs += 1
        out[str(n)] = round(runs * n / (time.perf_counter() - start), 1)
    return out


def training(data_dir: Path | None, device: str, steps: int) -> dict[str, Any]:
    if data_dir is None:
        return {"skipped": "no --data-dir given"}
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed in this environment"}
    if device == "cuda" and not torch.cuda.is_available():
        return {"skipped": f"torch {torch.__version__} sees no CUDA device"}
    from bench.training import training_throughput

    return training_throughput(data_dir, steps, device=device)


def cpu_reference() -> dict[str, Any]:
    """The CPU figures of the last ``make bench`` run (training from the run that measured it)."""
    results: dict[str, Any] = {}
    for path in (
        ROOT / "bench" / "results" / "first-run" / "results.json",
        ROOT / "bench" / "results" / "results.json",
    ):
        if path.is_file():
            results |= {k: v for k, v in json.loads(path.read_text()).items() if v}
    return results


def _cpu(cpu: dict[str, Any], route: str, key: str, concurrency: int | None = None) -> str:
    """One figure of our service (one worker) on the CPU: at ``concurrency``, or the best measured."""
    rows = [r for r in cpu.get("ours_1_worker", {}).get(route, []) if concurrency in (None, r.get("concurrency"))]
    if not rows:
        return "-"
    row = max(rows, key=lambda r: float(r.get("images_per_s", 0)))
    return f"{row[key]} (c={row['concurrency']})"


def markdown(result: dict[str, Any], cpu: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        "# The service on a GPU (`make gpu-check`)",
        "",
        f"GPU: {env['gpu']}; ONNX Runtime {env['onnxruntime']}, providers {env['providers']}; "
        f"Python {env['python']}; {env['when']}.",
    ]
    if env["device_asked"] != "cuda":
        lines += ["", "**Dry run on the CPU (`--device cpu`): these are not GPU figures.**"]
    lines += ["", "## Checks", "", "| check | result |", "| --- | --- |"]
    lines += [f"| {name} | {'pass' if ok else 'FAIL'} |" for name, ok in result["checks"].items()]
    lines += ["", "## Parity with ONNX Runtime on the CPU", ""]
    lines += ["| model | images | codes: largest difference | swaps: largest grey-level difference |"]
    lines += ["| --- | --- | --- | --- |"]
    for name, p in result["parity"].items():
        lines.append(f"| {name} | {p['images']} | {p['codes_max_abs_diff']:.2e} | {p['swap_max_grey_levels']} |")
    s = result["serving"]
    lines += ["", "## Serving (one service process)", "", "| workload | this run | CPU (last make bench) |"]
    lines += ["| --- | --- | --- |"]
    lines.append(f"| /swap p50 ms, c=1 | {s['swap_c1']['p50_ms']} | {_cpu(cpu, 'swap', 'p50_ms', 1)} |")
    lines.append(f"| /swap p99 ms, c=1 | {s['swap_c1']['p99_ms']} | {_cpu(cpu, 'swap', 'p99_ms', 1)} |")
    for n, row in s["encode"].items():
        route = "encode" if n == "1" else f"encode{n}"
        lines.append(f"| /encode, {n} image(s) per request: images/s | {row['images_per_s']} (c=8) | "
                     f"{_cpu(cpu, route, 'images_per_s')} |")  # fmt: skip
    ort_cpu = cpu.get("onnxruntime", {})
    lines += ["", "## ONNX Runtime alone, encoder images/s", "", "| batch | this run | CPU (one thread) |"]
    lines += ["| --- | --- | --- |"]
    for n, v in result["raw_onnx"].items():
        lines.append(f"| {n} | {v} | {ort_cpu.get(f'encode@{n}', {}).get('images_per_s', '-')} |")
    t = result["training"]
    lines += ["", "## Training", ""]
    if "skipped" in t:
        lines.append(f"Not measured: {t['skipped']}.")
    else:
        cpu_rate = cpu.get("training", {}).get("images_per_s_median", "-")
        lines.append(f"{t['images_per_s_median']} images/s on {t['device']} ({t['steps']} steps); CPU: {cpu_rate}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a dry run of the script")
    parser.add_argument("--data-dir", type=Path, default=None, help="MNIST, for the training measurement")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measured point")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu")
    args = parser.parse_args()
    env = environment(args.device)
    if args.device == "cuda" and CUDA not in env["providers"]:
        print(
            f"no CUDA execution provider in this ONNX Runtime ({env['onnxruntime']}, {env['providers']}): "
            "install onnxruntime-gpu, and not onnxruntime beside it",
            file=sys.stderr,
        )
        return 2
    # A queue bound above 8 clients x 256 images, so the largest point measures speed, not refusals.
    command, server_env = servers.ours(settings={"device": args.device, "max_queue_size": "8192"})
    with servers.start(command, server_env, cores=None) as running:
        served = providers_served(running)
        want = CUDA if args.device == "cuda" else CPU
        checks = {f"{name} served by {want}": served.get(name) == want for name in MODELS}
        checks["/readyz is 200"] = json.loads(running.get("/readyz"))["status"] == "ready"
        result_parity = {name: parity(running, name) for name in MODELS}
        for name, p in result_parity.items():
            checks[f"{name}: codes within the export tolerance"] = p["codes_within_export_tolerance"]
            checks[f"{name}: swaps within one grey level"] = p["swaps_within_one_grey_level"]
        result_serving = serving(running, args.seconds, args.reps)
    result = {
        "environment": env,
        "providers_served": served,
        "checks": checks,
        "parity": result_parity,
        "serving": result_serving,
        "raw_onnx": raw_onnx(args.device, args.seconds),
        "training": training(args.data_dir, args.device, args.train_steps),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result, cpu_reference()))
    print(args.out.with_suffix(".md").read_text())
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
