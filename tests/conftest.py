"""Shared fixtures: tiny generated MNIST files, so no test needs the real data."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw


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


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def _face(rng: np.random.Generator, smiling: bool, glasses: bool) -> Image.Image:
    """A 178x218 drawing standing in for an aligned CelebA face: a smile and glasses are visible."""
    image = Image.new("RGB", (178, 218), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    skin = tuple(int(v) for v in rng.integers(120, 255, 3))
    draw.ellipse((39, 49, 139, 179), fill=skin)
    draw.arc((64, 120, 114, 160), 0 if smiling else 180, 180 if smiling else 360, fill=(120, 0, 0), width=6)
    if glasses:
        draw.rectangle((55, 85, 85, 105), outline=(0, 0, 0), width=4)
        draw.rectangle((93, 85, 123, 105), outline=(0, 0, 0), width=4)
    return image


def make_celeba_dir(root: Path, count: int = 40) -> Path:
    """A tiny CelebA in the official layout: JPEGs, the attribute file and the partition file.

    The text files copy the official formats: the attribute file's first line is
    the count, the second the 40 names, then one row per image with values 1 or -1
    padded to two characters; the partition file has 0/1/2 per image (train 60 %,
    valid 20 %, test 20 %).
    """
    rng = np.random.default_rng(0)
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    rows, partition = [], []
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        values = rng.choice([-1, 1], size=len(CELEBA_ATTRIBUTES))
        smiling, glasses = i % 2 == 0, i % 4 < 2
        values[CELEBA_ATTRIBUTES.index("Smiling")] = 1 if smiling else -1
        values[CELEBA_ATTRIBUTES.index("Eyeglasses")] = 1 if glasses else -1
        _face(rng, smiling, glasses).save(images / name, quality=90)
        rows.append(name + " " + " ".join(f"{v:2d}" for v in values))
        partition.append(f"{name} {0 if i < count * 0.6 else 1 if i < count * 0.8 else 2}")
    (root / "list_attr_celeba.txt").write_text(
        f"{count}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n" + "\n".join(rows) + "\n"
    )
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root


def make_image_folder(root: Path, groups: int = 4, per_group: int = 6, csv: bool = False) -> Path:
    """A user's grouped images: one sub-folder per group, or flat files plus groups.csv."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    lines = ["path,group"]
    for g in range(groups):
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        for k in range(per_group):
            image = Image.new("RGB", (48 + 8 * k, 48), (0, 0, 0))
            ImageDraw.Draw(image).ellipse((4 + 2 * k, 6, 40 + 2 * k, 42), fill=colour)
            if csv:
                path = f"img-{g}-{k}.png"
                lines.append(f"{path},group-{g}")
            else:
                (root / f"group-{g}").mkdir(exist_ok=True)
                path = f"group-{g}/{k}.png"
            image.save(root / path)
    if csv:
        (root / "groups.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_celeba(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba_dir(tmp_path_factory.mktemp("celeba"))
