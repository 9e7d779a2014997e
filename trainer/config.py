"""The full training configuration: one typed dataclass per concern.

The whole config is saved beside every checkpoint and copied into the
exported model's manifest, so any model can be traced to how it was made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from trainer.networks import NetworkConfig
from trainer.objective import ObjectiveConfig


@dataclass
class DataConfig:
    """Where the images come from and what the pairs share."""

    dataset: Literal["colormnist", "celeba", "folder"] = "colormnist"  # Color MNIST, CelebA, or a folder of yours
    data_dir: str = ""  # the dataset's folder (MNIST: the four IDX files; CelebA: the official layout)
    # What z2 holds. colormnist: digit or colour; celeba: attribute names, comma-separated
    # (Smiling,Eyeglasses); folder: a name for what a group shares (default "group").
    specified: str = ""
    groups_csv: str = ""  # folder dataset: the path,group CSV (default DIR/groups.csv, else sub-folders)
    data_seed: int = 0  # seeds the colours (Color MNIST) and the pairing
    limit_items: int = 0  # use only the first N training items (0 = all); for tiny runs

    def __post_init__(self) -> None:
        if not self.specified:
            defaults = {"colormnist": "digit", "folder": "group"}
            if self.dataset not in defaults:
                raise ValueError(f"--specified is required for {self.dataset}: the attribute names z2 must hold")
            self.specified = defaults[self.dataset]


@dataclass
class OptimConfig:
    """How long, how fast and where to train."""

    epochs: int = 8  # passes over the training pairs
    max_steps: int = 0  # stop after this many steps in all (0 = only the epoch count stops)
    batch_size: int = 64  # pairs per step; each step sees 2 * batch_size images
    lr: float = 1e-3  # Adam's learning rate
    critic_lr_scale: float = 1.0  # the pair critic learns this many times faster (an adversary must keep up)
    seed: int = 0  # weights and sampling noise
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    log_every: int = 100  # steps between CSV rows
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0 = per epoch only)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.log_every < 1 or self.critic_lr_scale <= 0:
            raise ValueError(
                "epochs >= 1, batch_size >= 2, lr > 0, critic_lr_scale > 0 and log_every >= 1 are required"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class TrainConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Rebuild a config, rejecting unknown sections and keys (a typo must not pass silently)."""
        sections = {f.name: f.type for f in fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        built = {}
        for name, section_cls in SECTION_TYPES.items():
            values = raw.get(name, {})
            known = {f.name for f in fields(section_cls)}
            bad = set(values) - known
            if bad:
                raise ValueError(f"unknown keys in config section {name!r}: {sorted(bad)}")
            built[name] = section_cls(**values)
        return cls(**built)


SECTION_TYPES: dict[str, type] = {
    "network": NetworkConfig,
    "objective": ObjectiveConfig,
    "data": DataConfig,
    "optim": OptimConfig,
}
