from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from tests.trainer.helpers import tiny_config
from trainer.config import TrainConfig
from trainer.train import Trainer, TrainingError, build_dataset, load_model, start_or_resume


def _params(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_one_train_step_changes_every_network(tiny_mnist: Path, tmp_path: Path) -> None:
    trainer = start_or_resume(tiny_config(tiny_mnist), tmp_path / "run", resume=False)
    batch = next(trainer.dataset.batches(0, 16))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train_step(batch.x, batch.partner)
    after = dict(trainer.model.named_parameters())
    for prefix in ("encoder.trunk", "encoder.head1", "encoder.head2", "decoder"):
        assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(prefix)), prefix


def test_eval_step_does_not_change_weights(tiny_mnist: Path, tmp_path: Path) -> None:
    trainer = start_or_resume(tiny_config(tiny_mnist), tmp_path / "run", resume=False)
    before = _params(trainer)
    trainer.write_pictures()  # encodes and decodes in eval mode
    batch = next(trainer.dataset.batches(0, 16))
    with torch.no_grad():
        trainer.model.swap(batch.x, batch.partner)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(trainer), strict=True))


def test_run_writes_checkpoint_log_and_pictures(tiny_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    state = start_or_resume(tiny_config(tiny_mnist), out, resume=False).run(show_progress=False)
    assert state.epoch == 2 and state.step == 2 * (200 // 16)
    for name in ("checkpoint.pt", "config.json", "log.csv", "loss_curve.png", "swap_grid.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert {"rec", "swap", "kl1", "kl2", "mi1", "mi2", "images_per_s"} <= set(rows[0])
    assert TrainConfig.from_dict(json.loads((out / "config.json").read_text())).data.data_dir == str(tiny_mnist)


def test_resume_continues_identically(tiny_mnist: Path, tmp_path: Path) -> None:
    """Stop after 5 steps (checkpointed), resume to 20: same weights and log as 20 straight steps."""
    straight = start_or_resume(tiny_config(tiny_mnist, max_steps=20, log_every=1), tmp_path / "a", resume=False)
    straight.run(show_progress=False)

    first = start_or_resume(tiny_config(tiny_mnist, max_steps=5, log_every=1), tmp_path / "b", resume=False)
    first.run(show_progress=False)  # stops mid-epoch 0 and checkpoints
    second = start_or_resume(tiny_config(tiny_mnist, max_steps=20, log_every=1), tmp_path / "b", resume=True)
    second.run(show_progress=False)

    assert second.state.step == straight.state.step == 20
    for a, b in zip(straight.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    rows_a = list(csv.DictReader((tmp_path / "a" / "log.csv").open()))
    rows_b = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert [r["total"] for r in rows_a] == [r["total"] for r in rows_b]


def test_new_run_refuses_to_overwrite_an_existing_one(tiny_mnist: Path, tmp_path: Path) -> None:
    start_or_resume(tiny_config(tiny_mnist, max_steps=1), tmp_path / "r", resume=False).run(show_progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        start_or_resume(tiny_config(tiny_mnist), tmp_path / "r", resume=False)


def test_load_model_rebuilds_from_checkpoint_alone(tiny_mnist: Path, tmp_path: Path) -> None:
    trainer = start_or_resume(tiny_config(tiny_mnist, max_steps=3), tmp_path / "r", resume=False)
    trainer.run(show_progress=False)
    model, config, _ = load_model(tmp_path / "r")
    assert config.network.z1_dim == 4
    x = next(build_dataset(config).batches(0, 4)).x
    torch.testing.assert_close(model.encode(x).z1.mean, trainer.model.encode(x).z1.mean)


def test_non_finite_loss_is_an_error(tiny_mnist: Path, tmp_path: Path) -> None:
    trainer = start_or_resume(tiny_config(tiny_mnist), tmp_path / "r", resume=False)
    batch = next(trainer.dataset.batches(0, 16))
    with pytest.raises(TrainingError, match="not finite"):
        trainer.train_step(batch.x * float("nan"), batch.partner)
