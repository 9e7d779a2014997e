"""Tiny configs for trainer tests: seconds, not minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trainer.config import DataConfig, OptimConfig, TrainConfig
from trainer.networks import NetworkConfig
from trainer.objective import ObjectiveConfig


def tiny_config(data_dir: Path, specified: str = "digit", **optim: int) -> TrainConfig:
    return TrainConfig(
        network=NetworkConfig(z1_dim=4, z2_dim=3, width=4, hidden=16),
        objective=ObjectiveConfig(),
        data=DataConfig(data_dir=str(data_dir), specified=specified),
        optim=OptimConfig(**{"epochs": 2, "batch_size": 16, "log_every": 2, "threads": 1} | optim),
    )


ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
