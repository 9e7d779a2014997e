"""Training faults: kill -9 mid-epoch and resume identically; disk errors are clear, not lost work."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.trainer.helpers import tiny_config
from trainer.checkpoint import OutputError
from trainer.train import start_or_resume

ROOT = Path(__file__).resolve().parents[2]
FLAGS = [
    "--width",
    "4",
    "--hidden",
    "16",
    "--z1-dim",
    "4",
    "--z2-dim",
    "3",
    "--batch-size",
    "16",
    "--threads",
    "1",
    "--log-every",
    "1",
    "--checkpoint-every",
    "3",
    "--epochs",
    "30",
    "--max-steps",
    "150",
    "--quiet",
]


def _train(data: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "trainer", "train", "--data-dir", str(data), "--out", str(out), *FLAGS, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_mnist: Path, tmp_path: Path) -> None:
    straight = _train(tiny_mnist, tmp_path / "straight")
    assert straight.wait(timeout=600) == 0

    victim = _train(tiny_mnist, tmp_path / "killed")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until it is well into its run, past some checkpoints
        if (tmp_path / "killed" / "log.csv").exists() and len(_rows(tmp_path / "killed")) >= 40:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = len(_rows(tmp_path / "killed"))
    assert killed_at < 150, "the run finished before it could be killed"

    resumed = _train(tiny_mnist, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read() if resumed.stderr else ""
    a, b = _rows(tmp_path / "straight"), _rows(tmp_path / "killed")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    assert [r["total"] for r in a] == [r["total"] for r in b]  # the very same losses, step by step
    ca = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    cb = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(ca[k], cb[k]) for k in ca)


def test_a_failed_checkpoint_write_keeps_the_previous_one(
    tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = start_or_resume(tiny_config(tiny_mnist, max_steps=2), tmp_path / "r", resume=False)
    trainer.run(show_progress=False)
    good = (tmp_path / "r" / "checkpoint.pt").read_bytes()

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)  # what trainer.checkpoint calls
    with pytest.raises(OutputError, match="No space left on device"):
        trainer.save()
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == good  # never half-written
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


def test_a_checkpoint_another_version_wrote_is_refused_in_words(tiny_mnist: Path, tmp_path: Path) -> None:
    """A run saved by an older trainer (a state renamed since) gets a clear error naming the part, not a traceback."""
    from trainer import checkpoint
    from trainer.train import TrainingError

    trainer = start_or_resume(tiny_config(tiny_mnist, max_steps=2), tmp_path / "r", resume=False)
    trainer.run(show_progress=False)
    path = tmp_path / "r" / checkpoint.CHECKPOINT_NAME
    saved = checkpoint.load(path)
    saved["pair_moments"] = {("var" if k == "cov" else k): v for k, v in saved["pair_moments"].items()}
    checkpoint.save_atomic(saved, path)
    with pytest.raises(TrainingError, match="the checkpoint's pair_moments does not fit") as caught:
        start_or_resume(tiny_config(tiny_mnist, max_steps=4), tmp_path / "r", resume=True)
    assert "new --out" in str(caught.value) and len(str(caught.value).splitlines()) == 1
