"""Datasets: one module per source. Each yields batches of pairs sharing the specified factor.

``training_pairs`` and ``heldout_pairs`` pick the source named in the config;
every source has the shape of ``pairs.PairDataset``.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import TrainConfig
from trainer.data.colormnist import ColorMNIST, ColorPairBatch, hsv_to_rgb
from trainer.data.mnist import DataError, MnistSplit, read_mnist
from trainer.data.pairs import Example, PairBatch, PairDataset


def _colormnist(config: TrainConfig, split: str, data_dir: Path) -> ColorMNIST:
    data = config.data
    if data.specified not in ("digit", "colour"):
        raise DataError(f"--specified must be digit or colour for colormnist, got {data.specified!r}")
    if (config.network.image_size, config.network.channels) != (32, 3):
        raise DataError("Color MNIST images are 32x32 RGB: keep --image-size 32 and --channels 3")
    mnist = read_mnist(data_dir, "train" if split == "train" else "test")
    if data.limit_items and split == "train":
        mnist = MnistSplit(mnist.images[: data.limit_items], mnist.labels[: data.limit_items])
    return ColorMNIST(mnist, seed=data.data_seed, specified="digit" if data.specified == "digit" else "colour")


def _build(config: TrainConfig, split: str, data_dir: Path) -> PairDataset:
    data, net = config.data, config.network
    if data.dataset == "colormnist":
        return _colormnist(config, split, data_dir)
    if data.dataset == "celeba":
        from trainer.data.celeba import CelebA

        limit = data.limit_items if split == "train" else 0
        return CelebA(data_dir, split, data.specified, net.image_size, data.data_seed, limit)
    from trainer.data.folder import ImageFolderPairs

    return ImageFolderPairs(data_dir, net.image_size, net.channels, data.data_seed, data.specified, data.groups_csv)


def training_pairs(config: TrainConfig, data_dir: str | None = None) -> PairDataset:
    """The training split of the configured dataset (from ``data_dir`` when given)."""
    return _build(config, "train", Path(data_dir or config.data.data_dir))


def heldout_pairs(config: TrainConfig, data_dir: str | None = None) -> PairDataset | None:
    """Images the model did not train on, for export (examples, directions, parity), or None when absent.

    Color MNIST and CelebA have an official test split; a user's folder has none, so its
    own images are used (documented in the README).
    """
    split = "train" if config.data.dataset == "folder" else "test"
    try:
        return _build(config, split, Path(data_dir or config.data.data_dir))
    except DataError:
        return None


__all__ = [
    "ColorMNIST",
    "ColorPairBatch",
    "DataError",
    "Example",
    "MnistSplit",
    "PairBatch",
    "PairDataset",
    "heldout_pairs",
    "hsv_to_rgb",
    "read_mnist",
    "training_pairs",
]
