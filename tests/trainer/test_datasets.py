"""CelebA (official layout) and a user's grouped folder: the real loaders on generated fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CELEBA_ATTRIBUTES, make_image_folder
from trainer.config import DataConfig
from trainer.data.celeba import CelebA
from trainer.data.folder import ImageFolderPairs
from trainer.data.mnist import DataError


def test_celeba_uses_the_official_partition_and_crops_to_the_size(tiny_celeba: Path) -> None:
    train = CelebA(tiny_celeba, "train", "Smiling,Eyeglasses", image_size=64, seed=0)
    valid = CelebA(tiny_celeba, "valid", "Smiling,Eyeglasses", image_size=64, seed=0)
    test = CelebA(tiny_celeba, "test", "Smiling,Eyeglasses", image_size=64, seed=0)
    assert (len(train.paths), len(valid.paths), len(test.paths)) == (24, 8, 8)
    assert not {p.name for p in train.paths} & {p.name for p in test.paths}
    batch = next(train.batches(0, 4))
    assert batch.x.shape == (4, 3, 64, 64) and 0.0 <= float(batch.x.min()) and float(batch.x.max()) <= 1.0
    assert train.factor_classes == 4 and train.specified_factors == ["Smiling", "Eyeglasses"]


def test_celeba_partners_share_every_specified_attribute(tiny_celeba: Path) -> None:
    train = CelebA(tiny_celeba, "train", "Smiling,Eyeglasses", image_size=16, seed=3)
    for batch in train.batches(0, 6):
        half = len(batch.x)
        assert np.array_equal(batch.classes[:half].numpy(), batch.classes[half:].numpy())
        assert all(not np.array_equal(x.numpy(), p.numpy()) for x, p in zip(batch.x, batch.partner, strict=True))


def test_celeba_unknown_attribute_lists_the_valid_names(tiny_celeba: Path) -> None:
    with pytest.raises(DataError, match="unknown CelebA attribute") as info:
        CelebA(tiny_celeba, "train", "Smiling,Smiles", image_size=16, seed=0)
    assert "Eyeglasses" in str(info.value) and "Smiles" in str(info.value)
    assert len(CELEBA_ATTRIBUTES) == 40


def test_celeba_missing_image_and_broken_file_are_named(tiny_celeba: Path, tmp_path: Path) -> None:
    broken = tmp_path / "celeba"
    shutil.copytree(tiny_celeba, broken)
    (broken / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DataError, match="000002.jpg"):
        CelebA(broken, "train", "Smiling", image_size=16, seed=0)
    attrs = broken / "list_attr_celeba.txt"
    lines = attrs.read_text().splitlines()
    attrs.write_text("\n".join([lines[0], lines[1], lines[2] + " 1", *lines[3:]]) + "\n")
    with pytest.raises(DataError, match="list_attr_celeba.txt:3"):
        CelebA(broken, "train", "Smiling", image_size=16, seed=0)
    attrs.write_text("\n".join(lines) + "\n")
    shutil.rmtree(broken / "img_align_celeba")
    with pytest.raises(DataError, match="img_align_celeba"):
        CelebA(broken, "train", "Smiling", image_size=16, seed=0)


def test_celeba_needs_specified_attributes() -> None:
    with pytest.raises(ValueError, match="--specified is required for celeba"):
        DataConfig(dataset="celeba", data_dir="x")
    assert DataConfig(dataset="folder").specified == "group"
    assert DataConfig().specified == "digit"


@pytest.mark.parametrize("csv", [False, True])
def test_folder_layouts_pair_within_groups(tmp_path: Path, csv: bool) -> None:
    data = ImageFolderPairs(make_image_folder(tmp_path / "data", csv=csv), 32, 3, seed=0, specified="shape")
    assert len(data) == 24 and data.factor_classes == 4 and data.specified_factors == ["shape"]
    batch = next(data.batches(0, 8))
    assert batch.x.shape == (8, 3, 32, 32)
    assert np.array_equal(batch.classes[:8].numpy(), batch.classes[8:].numpy())
    examples = data.examples(4)
    assert len({e.factors["shape"] for e in examples}) == 4  # one example per group


def test_folder_errors_say_what_to_fix(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "data", groups=3, per_group=2)
    (root / "group-0" / "1.png").unlink()
    with pytest.raises(DataError, match="single image.*group-0"):
        ImageFolderPairs(root, 32, 3, seed=0)
    (root / "group-0" / "1.png").write_bytes(b"not an image at all")
    (root / "group-1" / "0.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match="2 of 6 images cannot be used") as info:
        ImageFolderPairs(root, 32, 3, seed=0)
    assert "group-0/1.png" in str(info.value) and "group-1/0.png" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="one sub-folder per group"):
        ImageFolderPairs(empty, 32, 3, seed=0)
    listed = make_image_folder(tmp_path / "listed", csv=True)
    (listed / "img-1-2.png").unlink()
    with pytest.raises(DataError, match="do not exist.*img-1-2.png"):
        ImageFolderPairs(listed, 32, 3, seed=0)
    (listed / "groups.csv").write_text("file,label\na.png,x\n")
    with pytest.raises(DataError, match="header 'path,group'"):
        ImageFolderPairs(listed, 32, 3, seed=0)
