"""Data-parallel training: torchrun end to end, and one 2-process step == one 1-process step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from bench.servers import free_port
from tests.trainer.helpers import ROOT, tiny_config
from trainer import checkpoint
from trainer.networks import Gaussian
from trainer.train import Trainer, TrainingError, build_dataset

pytestmark = pytest.mark.slow
TINY = ["--width", "4", "--hidden", "16", "--z1-dim", "4", "--z2-dim", "3", "--batch-size", "16", "--threads", "1"]


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
    ]
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, "-m", "trainer", "train", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_torchrun_trains_and_resumes_with_rank0_alone_writing(tiny_mnist: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _torchrun(
        "--data-dir", str(tiny_mnist), "--out", str(run), "--max-steps", "4", "--log-every", "2", "--quiet", *TINY
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("trained 4 steps") == 1 and "on 2 processes" in first.stdout
    saved = checkpoint.load(run / checkpoint.CHECKPOINT_NAME)
    assert len(saved["noise_rng_per_rank"]) == 2 and saved["state"]["step"] == 4
    again = _torchrun("--out", str(run), "--resume", "--max-steps", "6", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "trained 6 steps" in again.stdout
    steps = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["2", "4", "6"]  # one writer, no duplicate rows


def _one_step(rank: int, world: int, port: int, data: str, out: str) -> None:
    """One training step on this rank's shard of the first batch; the weights after it go to a file."""
    os.environ |= {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)}
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    Gaussian.sample = lambda self, generator=None: self.mean  # type: ignore[method-assign]  # no sampling noise
    config = tiny_config(Path(data), batch_size=16)
    config.objective.l_mi1 = config.objective.l_mi2 = 0.0  # the MI terms pair codes within a shard
    trainer = Trainer(config, Path(out), build_dataset(config))
    shard = trainer.world.shard(16) if world > 1 else None
    batch = next(trainer.dataset.batches(0, 16, shard=shard))
    trainer.train_step(batch.x, batch.partner, batch.classes)
    torch.save(trainer.model.state_dict(), Path(out) / f"weights-{world}-{rank}.pt")
    torch.distributed.destroy_process_group() if world > 1 else None


def test_two_process_step_equals_one_step_on_the_combined_batch(tiny_mnist: Path, tmp_path: Path) -> None:
    spawn_args = (2, free_port(), str(tiny_mnist), str(tmp_path))
    mp.spawn(_one_step, args=spawn_args, nprocs=2, join=True)  # type: ignore[attr-defined]
    ctx = mp.get_context("spawn")
    single = ctx.Process(target=_one_step, args=(0, 1, 0, str(tiny_mnist), str(tmp_path)))
    single.start()
    single.join(timeout=120)
    assert single.exitcode == 0
    rank0, rank1 = (torch.load(tmp_path / f"weights-2-{r}.pt") for r in (0, 1))
    alone = torch.load(tmp_path / "weights-1-0.pt")
    for name, value in alone.items():
        assert torch.equal(rank0[name], rank1[name]), name  # the ranks agree exactly
        assert torch.allclose(rank0[name], value, rtol=1e-4, atol=1e-6), name  # and match one process


def test_batch_that_does_not_split_into_equal_shards_is_refused(
    tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = tiny_config(tiny_mnist, batch_size=15)
    with pytest.raises(TrainingError, match="does not split into 2 equal shards"):
        Trainer(config, tmp_path, build_dataset(config))
