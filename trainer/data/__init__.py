"""Datasets: one module per source. Each yields batches of pairs sharing the specified factor."""

from trainer.data.colormnist import ColorMNIST, PairBatch, hsv_to_rgb
from trainer.data.mnist import MnistSplit, read_mnist

__all__ = ["ColorMNIST", "MnistSplit", "PairBatch", "hsv_to_rgb", "read_mnist"]
