"""Data-parallel training under ``torchrun``: which process am I, and the few collectives we need.

``torchrun --nproc-per-node N -m trainer train ...`` starts N copies of the
trainer with RANK / WORLD_SIZE / LOCAL_RANK in their environment. Each one
trains the same model (DistributedDataParallel keeps the gradients, hence
the weights, identical) on its own shard of every global batch; rank 0 alone
writes checkpoints, logs and pictures. Without those variables everything
here is a no-op and training is the plain single-process loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This rank's pairs of a global batch: contiguous, equal shares."""
        share = batch_size // self.size
        return slice(self.rank * share, (self.rank + 1) * share)


def from_environment() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def join(world: World, device: torch.device) -> None:
    """Join the process group torchrun set up: NCCL between GPUs, gloo on CPUs."""
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=world.rank, world_size=world.size)


def leave(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()  # no rank tears gloo down while another is still in a collective (it aborted, once)
        dist.destroy_process_group()


def gather_objects(world: World, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (on every rank)."""
    if not world.distributed:
        return [value]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def mean_across(world: World, values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over the ranks (for logging the whole global batch, not one shard)."""
    if not world.distributed:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / world.size for k, v in zip(keys, tensor.tolist(), strict=True)}


def weights_agree(world: World, module: torch.nn.Module) -> bool:
    """True when every rank holds the same weights (checked at each checkpoint)."""
    if not world.distributed:
        return True
    with torch.no_grad():
        signature = torch.stack([p.detach().double().sum() for p in module.parameters()]).cpu()
    signatures = gather_objects(world, signature)
    return all(torch.equal(signatures[0], s) for s in signatures[1:])
