"""The training loop: pairs in, checkpoints, a CSV log and pictures out.

Reads top to bottom: set up (or resume) -> for each epoch, for each batch:
objective, step, log -> checkpoint and pictures at the end of each epoch.
A run folder holds ``config.json``, ``log.csv``, ``checkpoint.pt``,
``loss_curve.png`` and ``swap_grid.png``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from trainer import checkpoint, distributed
from trainer.adversary import LeakageAdversary
from trainer.config import TrainConfig
from trainer.data import PairDataset, training_pairs
from trainer.data.mnist import DataError
from trainer.leakage import PairCritic, PairMoments
from trainer.networks import TwoCodeVAE
from trainer.objective import LossTerms, ObjectiveConfig, kl_weights, objective
from trainer.plots import TERMS, loss_curve, swap_grid

LOG_FIELDS = ("step", "epoch", "images_per_s", "b1", "b2", *TERMS)


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an impossible device)."""


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The device to train on; under torchrun each process takes the GPU of its local rank."""
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)


class ObjectiveModule(torch.nn.Module):
    """The model (and the adversary, if any) whose forward is the objective: what DDP wraps.

    DistributedDataParallel synchronises the gradients of the parameters a
    forward call used, so the whole objective, not just the encoder or the
    decoder, has to be one module's forward.
    """

    def __init__(self, model: TwoCodeVAE, adversary: LeakageAdversary | None, config: ObjectiveConfig) -> None:
        super().__init__()
        self.model, self.adversary, self.config = model, adversary, config
        # The pooled between-group estimate (a module of buffers: checkpointed, moved with the model).
        self.moments = PairMoments(model.config.z1_dim, config.between_momentum)
        self.critic = PairCritic(model.config.z1_dim) if config.l_critic1 > 0 else None

    def forward(
        self,
        x: torch.Tensor,
        partner: torch.Tensor,
        step: int,
        noise: torch.Generator,
        classes: torch.Tensor | None,
    ) -> LossTerms:
        return objective(
            self.model, x, partner, self.config, step, noise, self.adversary, classes, self.moments, self.critic
        )


def build_dataset(config: TrainConfig) -> PairDataset:
    """The training split of the configured dataset."""
    return training_pairs(config)


@dataclass
class RunState:
    """Where the run is: the next batch to train is ``batch`` of ``epoch``."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Owns the model, optimiser, RNG and run folder of one training run."""

    def __init__(self, config: TrainConfig, out: Path, dataset: PairDataset) -> None:
        self.config, self.out, self.dataset = config, out, dataset
        self.world = distributed.from_environment()
        if config.optim.batch_size % self.world.size:
            raise TrainingError(
                f"--batch-size {config.optim.batch_size} does not split into {self.world.size} equal shards"
            )
        self.device = pick_device(config.optim.device, self.world.local_rank)
        distributed.join(self.world, self.device)
        if config.optim.threads:
            torch.set_num_threads(config.optim.threads)
        torch.manual_seed(config.optim.seed)
        self.model = TwoCodeVAE(config.network).to(self.device)
        self.adversary: LeakageAdversary | None = None
        params = list(self.model.parameters())
        if config.objective.l_adv > 0:
            self.adversary = LeakageAdversary(config.network.z1_dim, dataset.factor_classes).to(self.device)
            params += list(self.adversary.parameters())
        self.objective_module = ObjectiveModule(self.model, self.adversary, config.objective).to(self.device)
        groups: list[dict[str, Any]] = [{"params": params}]
        if self.objective_module.critic is not None:
            critic_lr = config.optim.lr * config.optim.critic_lr_scale
            groups.append({"params": list(self.objective_module.critic.parameters()), "lr": critic_lr})
        self.optimizer = torch.optim.Adam(groups, lr=config.optim.lr)
        self.noise = torch.Generator(device=self.device).manual_seed(self._noise_seed())
        self.step_module: torch.nn.Module = self.objective_module
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # The pair critic idles until leakage_start_step: DDP must not wait for its gradients.
            unused = self.objective_module.critic is not None
            self.step_module = DistributedDataParallel(
                self.objective_module, device_ids=ids, find_unused_parameters=unused
            )
        self.state = RunState()
        self.preview = self._preview_images()

    def _noise_seed(self) -> int:
        """Rank 0 uses the run's seed (so one process trains as before); other ranks their own."""
        return self.config.optim.seed + 7919 * self.world.rank

    # -- persistence -------------------------------------------------------------------------
    def save(self) -> None:
        """Rank 0 writes the checkpoint; every rank's sampling RNG goes into it (collective call)."""
        noise_states = distributed.gather_objects(self.world, self.noise.get_state())
        if not distributed.weights_agree(self.world, self.model):
            raise TrainingError(f"the ranks' weights differ at step {self.state.step}; the run is not data-parallel")
        if not self.world.main:
            return
        checkpoint.save_atomic(
            {
                "config": self.config.to_dict(),
                "model": self.model.state_dict(),
                "adversary": self.adversary.state_dict() if self.adversary else None,
                "pair_moments": self.objective_module.moments.state_dict(),
                "pair_critic": critic.state_dict() if (critic := self.objective_module.critic) else None,
                "optimizer": self.optimizer.state_dict(),
                "noise_rng": noise_states[0],
                "noise_rng_per_rank": noise_states,
                "torch_rng": torch.get_rng_state(),
                "state": self.state.__dict__,
            },
            self.out / checkpoint.CHECKPOINT_NAME,
        )

    def restore(self, saved: dict[str, Any]) -> None:
        parts: list[tuple[str, Any]] = [("model", self.model)]
        if self.adversary is not None:
            parts.append(("adversary", self.adversary))
        if saved.get("pair_moments") is not None:  # checkpoints from before the term have none
            parts.append(("pair_moments", self.objective_module.moments))
        if self.objective_module.critic is not None and saved.get("pair_critic") is not None:
            parts.append(("pair_critic", self.objective_module.critic))
        parts.append(("optimizer", self.optimizer))
        for name, part in parts:
            try:
                part.load_state_dict(saved[name])
            except (RuntimeError, ValueError, KeyError) as exc:  # torch's words run to pages of key names: cut
                said = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
                said = said if len(said) <= 300 else said[:297] + "..."
                raise TrainingError(
                    f"{self.out}: the checkpoint's {name} does not fit this version of the trainer ({said}); "
                    "it was written by another version or another network shape: train again into a new --out"
                ) from exc
        per_rank = saved.get("noise_rng_per_rank") or [saved["noise_rng"]]
        if len(per_rank) == self.world.size:
            self.noise.set_state(per_rank[self.world.rank])
        else:  # resumed with another process count: a fresh stream per rank, still reproducible
            self.noise.manual_seed(self._noise_seed() + 104729 * saved["state"]["step"])
        torch.set_rng_state(saved["torch_rng"])
        self.state = RunState(**saved["state"])
        if self.world.main:
            self._truncate_log(self.state.step)

    def _truncate_log(self, step: int) -> None:
        """Drop CSV rows a killed run wrote after its last checkpoint, so the log has no duplicates."""
        path = self.out / "log.csv"
        if not path.exists():
            return
        with path.open() as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= step]
        self._write_log(rows, mode="w")

    def _write_log(self, rows: list[dict[str, Any]], mode: str = "a") -> None:
        path = self.out / "log.csv"
        new = mode == "w" or not path.exists()
        with path.open(mode, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    # -- pictures ----------------------------------------------------------------------------
    def _preview_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eight fixed images (distinct factors where the dataset can) for the swap grid."""
        z1_images, z2_images = self.dataset.preview(8)
        return z1_images.to(self.device), z2_images.to(self.device)

    def write_pictures(self) -> None:
        if not self.world.main:
            return
        self.model.eval()
        swap_grid(self.model, *self.preview).save(self.out / "swap_grid.png")
        self.model.train()
        if (self.out / "log.csv").exists():
            loss_curve(self.out / "log.csv", self.out / "loss_curve.png")

    # -- the loop ----------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, partner: torch.Tensor, classes: torch.Tensor | None = None) -> LossTerms:
        terms: LossTerms = self.step_module(x, partner, self.state.step, self.noise, classes)
        if not torch.isfinite(terms.total):
            raise TrainingError(
                f"loss is not finite at step {self.state.step}: {terms.as_floats()}; lower --lr or the term weights"
            )
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.optimizer.step()
        return terms

    def _done(self) -> bool:
        max_steps = self.config.optim.max_steps
        return self.state.epoch >= self.config.optim.epochs or bool(max_steps and self.state.step >= max_steps)

    def run(self, show_progress: bool = True) -> RunState:
        opt = self.config.optim
        per_epoch = self.dataset.batches_per_epoch(opt.batch_size)
        if per_epoch == 0:
            raise DataError(f"{len(self.dataset)} items cannot fill one batch of {opt.batch_size} pairs")
        self.model.train()
        while not self._done():
            bar = tqdm(
                total=per_epoch,
                initial=self.state.batch,
                disable=not show_progress or not self.world.main,
                desc=f"epoch {self.state.epoch + 1}/{opt.epochs}",
                dynamic_ncols=True,
            )
            window: list[dict[str, float]] = []
            tick = time.perf_counter()
            shard = self.world.shard(opt.batch_size) if self.world.distributed else None
            for batch in self.dataset.batches(self.state.epoch, opt.batch_size, skip=self.state.batch, shard=shard):
                terms = self.train_step(
                    batch.x.to(self.device), batch.partner.to(self.device), batch.classes.to(self.device)
                )
                self.state.step += 1
                self.state.batch += 1
                window.append(terms.as_floats())
                bar.update(1)
                if self.state.step % opt.log_every == 0:
                    now = time.perf_counter()
                    self.state.elapsed_s += now - tick
                    rate = len(window) * 2 * opt.batch_size / max(now - tick, 1e-9)
                    row = self._log_row(window, rate)
                    bar.set_postfix(
                        {k: f"{row[k]:.3g}" for k in ("rec", "swap", "kl1", "kl2", "mi1", "mi2")}
                        | {"img/s": f"{rate:.0f}"}
                    )
                    window, tick = [], now
                if opt.checkpoint_every and self.state.step % opt.checkpoint_every == 0:
                    self.save()
                if self._done():
                    break
            bar.close()
            self.state.elapsed_s += time.perf_counter() - tick
            if self.state.batch >= per_epoch:
                self.state.epoch += 1
                self.state.batch = 0
            self.save()
            self.write_pictures()
        distributed.leave(self.world)
        return self.state

    def _log_row(self, window: list[dict[str, float]], rate: float) -> dict[str, Any]:
        means = {t: sum(w[t] for w in window) / len(window) for t in TERMS}
        row: dict[str, Any] = distributed.mean_across(self.world, means)  # the global batch, not one shard
        b1, b2 = kl_weights(self.config.objective, self.state.step)
        row |= {"step": self.state.step, "epoch": self.state.epoch, "images_per_s": round(rate, 1), "b1": b1, "b2": b2}
        if not all(math.isfinite(float(v)) for v in row.values()):
            raise TrainingError(f"non-finite values logged at step {self.state.step}: {row}")
        if self.world.main:
            self._write_log([row])
        return row


def start_or_resume(config: TrainConfig, out: Path, resume: bool) -> Trainer:
    """A fresh trainer on ``config``, or the one saved in ``out`` (its config wins, bar overrides)."""
    checkpoint.ensure_writable(out)
    if resume:
        saved = checkpoint.load(out / checkpoint.CHECKPOINT_NAME)
        trainer = Trainer(config, out, build_dataset(config))
        trainer.restore(saved)
        return trainer
    if (out / checkpoint.CHECKPOINT_NAME).exists():
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or pick another --out")
    trainer = Trainer(config, out, build_dataset(config))
    if trainer.world.main:
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return trainer


def load_model(run: Path) -> tuple[TwoCodeVAE, TrainConfig, dict[str, Any]]:
    """Rebuild the model from a run folder's checkpoint alone (the config travels with it)."""
    saved = checkpoint.load(run / checkpoint.CHECKPOINT_NAME)
    config = TrainConfig.from_dict(saved["config"])
    model = TwoCodeVAE(config.network)
    model.load_state_dict(saved["model"])
    model.eval()
    return model, config, saved
