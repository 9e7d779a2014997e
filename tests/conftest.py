"""Shared fixtures: tiny generated MNIST files, so no test needs the real data."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzip-compressed when asked."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def fake_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-dependent blobs: digit d is a bar at row 2 + 2d, so classes differ visibly."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for i, d in enumerate(labels):
        row = 2 + 2 * int(d)
        start = int(rng.integers(4, 10))
        images[i, row : row + 3, start : start + 14] = rng.integers(150, 256)
    return images, labels


def make_mnist_dir(root: Path, train: int = 200, test: int = 100, compress: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = fake_digits(count, seed)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return root


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mnist_dir(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST folder from TWOCODE_MNIST_DIR; the test is skipped, saying so, when absent."""
    path = Path(os.environ.get("TWOCODE_MNIST_DIR", "../shared/data/mnist"))
    if not (path / "t10k-images-idx3-ubyte.gz").is_file() and not (path / "t10k-images-idx3-ubyte").is_file():
        pytest.skip(f"real MNIST not found at {path} (set TWOCODE_MNIST_DIR to the folder of IDX files)")
    return path
