from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_mnist_dir, write_idx
from trainer.data.mnist import DataError, read_idx, read_mnist


def test_read_idx_gzip_and_raw_agree(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    gz = write_idx(tmp_path / "a-idx3-ubyte", array, compress=True)
    raw = write_idx(tmp_path / "b-idx3-ubyte", array, compress=False)
    np.testing.assert_array_equal(read_idx(gz), array)
    np.testing.assert_array_equal(read_idx(raw), array)


def test_read_mnist_returns_matching_images_and_labels(tmp_path: Path) -> None:
    folder = make_mnist_dir(tmp_path / "m", train=30, test=20, compress=False)
    split = read_mnist(folder, "train")
    assert split.images.shape == (30, 28, 28) and split.labels.shape == (30,)
    assert set(split.labels.tolist()) == set(range(10))


def test_read_idx_bad_magic_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 10)
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)


def test_read_idx_truncated_is_a_clear_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "t", np.zeros((4, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="expected"):
        read_idx(path)


def test_read_mnist_missing_folder_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-dir"):
        read_mnist(tmp_path / "nowhere", "train")


def test_read_mnist_missing_file_names_it(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        read_mnist(tmp_path, "train")


def test_real_mnist_has_the_published_counts(real_mnist: Path) -> None:
    test = read_mnist(real_mnist, "test")
    assert test.images.shape == (10000, 28, 28)
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
