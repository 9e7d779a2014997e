"""What every training dataset gives the trainer: batches of pairs that share the specified factor.

A dataset is anything with this shape (``PairDataset``); Color MNIST,
CelebA and a user's folder of grouped images all are. ``GroupedPairs``
implements it for the common case where items carry a group id and
partners are drawn from the same group (a digit, a combination of CelebA
attributes, a user's group).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor


@dataclass
class PairBatch:
    """Images float32 [B, C, H, W] in [0, 1]: x[i] and partner[i] share the specified factor."""

    x: Tensor
    partner: Tensor
    classes: Tensor  # the specified factor's class of x, then of partner ([2B]): for the adversary


@dataclass
class Example:
    """A held-out image and its known factors, shipped with an exported model."""

    image: Tensor  # [C, H, W]
    factors: dict[str, Any]


class PairDataset(Protocol):
    specified_factors: list[str]
    factor_classes: int  # classes the leakage adversary predicts

    def __len__(self) -> int: ...

    def batches(self, epoch: int, batch_size: int, skip: int = 0, shard: slice | None = None) -> Iterator[Any]:
        """Batches of one epoch from batch ``skip`` on; ``shard`` keeps this process's pairs of each."""
        ...

    def batches_per_epoch(self, batch_size: int) -> int: ...

    def preview(self, count: int) -> tuple[Tensor, Tensor]:
        """(z1 images, z2 images) for the swap grid drawn during training."""
        ...

    def sample_images(self, count: int) -> Tensor:
        """Up to ``count`` images for export's parity check and principal directions."""
        ...

    def examples(self, count: int) -> list[Example]: ...


Loader = Callable[[np.ndarray], Tensor]


class GroupedPairs:
    """Items with a group id; a partner is another item of the same group, chosen by a seeded RNG.

    The order and the partners depend only on (seed, epoch), so a resumed run
    sees the batches an uninterrupted one would. Items alone in their group
    have no partner and are left out of the epochs (``unpaired`` counts them).
    """

    def __init__(
        self, load: Loader, groups: np.ndarray, group_names: list[str], specified: list[str], seed: int
    ) -> None:
        self.load, self.seed = load, seed
        self.groups = np.asarray(groups, dtype=np.int64)
        self.group_names, self.specified_factors = group_names, specified
        self.factor_classes = max(len(group_names), 1)
        self._members = [np.flatnonzero(self.groups == g) for g in range(len(group_names))]
        self._rank = np.zeros(len(self.groups), dtype=np.int64)
        for members in self._members:
            self._rank[members] = np.arange(len(members))
        sizes = np.array([len(m) for m in self._members])
        self._pairable = np.flatnonzero(sizes[self.groups] >= 2)
        self.unpaired = len(self.groups) - len(self._pairable)

    def __len__(self) -> int:
        return len(self._pairable)

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self) // batch_size

    def _partners(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        groups = self.groups[anchors]
        sizes = np.array([len(self._members[g]) for g in groups])
        pos = (self._rank[anchors] + 1 + rng.integers(0, np.maximum(sizes - 1, 1))) % sizes
        return np.array([self._members[g][p] for g, p in zip(groups, pos, strict=True)], dtype=np.int64)

    def batches(self, epoch: int, batch_size: int, skip: int = 0, shard: slice | None = None) -> Iterator[PairBatch]:
        rng = np.random.default_rng([self.seed, 1 + epoch])
        order = self._pairable[rng.permutation(len(self._pairable))]
        partners = self._partners(order, rng) if len(order) else order
        part = shard or slice(None)
        for b in range(skip, self.batches_per_epoch(batch_size)):
            a = order[b * batch_size : (b + 1) * batch_size][part]
            p = partners[b * batch_size : (b + 1) * batch_size][part]
            yield PairBatch(
                x=self.load(a),
                partner=self.load(p),
                classes=torch.from_numpy(np.concatenate([self.groups[a], self.groups[p]])),
            )

    def _spread(self, count: int) -> np.ndarray:
        """``count`` items from as many different groups as possible, the same ones every time."""
        rng = np.random.default_rng(12345)
        by_size = sorted(
            (g for g in range(len(self._members)) if len(self._members[g])), key=lambda g: -len(self._members[g])
        )
        picks = [int(rng.choice(self._members[g])) for g in by_size[:count]]
        rest = [i for i in range(len(self.groups)) if i not in set(picks)]
        picks += rest[: max(0, count - len(picks))]
        return np.array(picks[:count], dtype=np.int64)

    def preview(self, count: int) -> tuple[Tensor, Tensor]:
        picks = self._spread(count)
        return self.load(picks), self.load(picks[::-1].copy())

    def sample_images(self, count: int) -> Tensor:
        idx = np.sort(np.random.default_rng(0).permutation(len(self.groups))[:count])
        return self.load(idx)

    def examples(self, count: int) -> list[Example]:
        picks = self._spread(count)
        images = self.load(picks)
        return [Example(image, self.factors_of(int(i))) for image, i in zip(images, picks, strict=True)]

    def factors_of(self, index: int) -> dict[str, Any]:
        return {"group": self.group_names[self.groups[index]]}
