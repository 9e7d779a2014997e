"""Training throughput: a short run of the default recipe, timed from its own log."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def training_throughput(data_dir: Path, steps: int, device: str = "cpu", threads: int = 2) -> dict[str, Any]:
    """Images/s of the default training config on ``device``, and the shipped models' wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        command = [sys.executable, "-m", "trainer", "train", "--data-dir", str(data_dir), "--out", str(run)]
        options = {"--max-steps": steps, "--log-every": 25, "--threads": threads, "--device": device}
        subprocess.run(
            [*command, *(str(x) for pair in options.items() for x in pair), "--quiet"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        rows = (run / "log.csv").read_text().splitlines()[1:]
    rates = [float(r.split(",")[2]) for r in rows[1:]]  # the first window includes warm-up
    shipped = {}
    for name in ("colormnist-digit", "colormnist-colour"):
        data = json.loads((ROOT / "models" / name / "manifest.json").read_text())["training_data"]
        shipped[name] = {"train_minutes": round(data["train_seconds"] / 60, 1), "steps": data["steps"]}
    return {
        "images_per_s_median": round(statistics.median(rates), 1),
        "steps": steps,
        "device": device,
        "shipped": shipped,
    }
