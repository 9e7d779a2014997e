"""The GPU check runs end to end here as a CPU dry run, so the day a GPU is lent it only needs running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_checks_parity_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    command = [sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--seconds", "0.3", "--reps", "1"]
    done = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["providers_served"] == {
        "colormnist-colour": "CPUExecutionProvider",
        "colormnist-digit": "CPUExecutionProvider",
    }
    assert all(result["checks"].values()) and len(result["checks"]) == 7
    assert all(p["codes_max_abs_diff"] == 0.0 and p["images"] > 1 for p in result["parity"].values())
    assert set(result["serving"]["encode"]) == {"1", "16", "64", "256"}
    assert result["serving"]["swap_c1"]["p99_ms"] >= result["serving"]["swap_c1"]["p50_ms"] > 0
    assert result["training"] == {"skipped": "no --data-dir given"}
    report = out.with_suffix(".md").read_text()
    assert "Dry run on the CPU" in report and "| colormnist-digit | 8 |" in report


def test_without_a_cuda_provider_it_says_so_and_exits_2(tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this environment has the CUDA provider")
    command = [sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path / "gpu")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "install onnxruntime-gpu" in done.stderr
    assert not (tmp_path / "gpu.md").exists()
