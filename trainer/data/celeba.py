"""CelebA in its official layout: aligned faces, 40 binary attributes, the official partition.

    DIR/img_align_celeba/000001.jpg ...
    DIR/list_attr_celeba.txt      line 1: the image count; line 2: the 40 attribute names;
                                  then "000001.jpg -1  1 ..." (1 = has it, -1 = has not)
    DIR/list_eval_partition.txt   "000001.jpg 0" (0 train, 1 valid, 2 test)

The specified factors are attribute names (``--specified Smiling,Eyeglasses``);
two images are partners when they agree on every specified attribute, so z2
must carry those attributes and z1 everything else (identity, pose, light).
Images are decoded per batch, not held in memory (the train split is 162,770
faces), through the same preprocessing rule the service applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from modelrepo import Preprocessing
from trainer.data.images import read_images, to_float
from trainer.data.mnist import DataError
from trainer.data.pairs import GroupedPairs

IMAGES_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SPLITS = {"train": 0, "valid": 1, "test": 2}


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(
            f"{path} is missing; a CelebA folder holds {IMAGES_DIR}/, {ATTR_FILE} and {PARTITION_FILE} "
            "as distributed (the aligned-and-cropped images)"
        )
    return path


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(file names, attribute names, values in {0, 1} [N, A]) from list_attr_celeba.txt."""
    lines = _need(path).read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}: line 1 must be the image count, as in the official file")
    count, names = int(lines[0]), lines[1].split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise DataError(f"{path}: line 1 says {count} images but {len(rows)} rows follow")
    files, values = [], np.zeros((count, len(names)), dtype=np.uint8)
    for i, row in enumerate(rows):
        if len(row) != len(names) + 1 or any(v not in ("1", "-1") for v in row[1:]):
            raise DataError(f"{path}:{i + 3}: expected a file name and {len(names)} values of 1 or -1")
        files.append(row[0])
        values[i] = [v == "1" for v in row[1:]]
    return files, names, values


def read_partition(path: Path) -> dict[str, int]:
    partition = {}
    for i, line in enumerate(_need(path).read_text().splitlines()):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(f"{path}:{i + 1}: expected 'FILE PARTITION' with partition 0, 1 or 2")
        partition[parts[0]] = int(parts[1])
    return partition


def parse_specified(text: str, names: list[str]) -> list[int]:
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    if not wanted:
        raise DataError(f"--specified needs one or more CelebA attributes, from: {', '.join(names)}")
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise DataError(f"unknown CelebA attribute(s) {unknown}; valid names: {', '.join(names)}")
    return [names.index(w) for w in wanted]


class CelebA(GroupedPairs):
    """One official split; partners share the values of the specified attributes."""

    def __init__(self, root: Path, split: str, specified: str, image_size: int, seed: int, limit: int = 0) -> None:
        files, names, values = read_attributes(root / ATTR_FILE)
        partition = read_partition(root / PARTITION_FILE)
        columns = parse_specified(specified, names)
        keep = [i for i, f in enumerate(files) if partition.get(f) == SPLITS[split]]
        if limit:
            keep = keep[:limit]
        if not keep:
            raise DataError(f"{root / PARTITION_FILE} lists no images in the {split} split")
        image_dir = _need(root / IMAGES_DIR)
        present = {p.name for p in image_dir.iterdir()}
        missing = [files[i] for i in keep if files[i] not in present]
        if missing:
            raise DataError(f"{len(missing)} images listed for {split} are not in {image_dir}: {missing[:5]}")
        self.paths = [image_dir / files[i] for i in keep]
        self.attribute_names = [names[c] for c in columns]
        self.attributes = values[keep][:, columns]
        bits = 2 ** np.arange(len(columns))[::-1]
        groups = self.attributes.astype(np.int64) @ bits
        group_names = [
            ",".join(f"{n}={(g >> (len(columns) - 1 - k)) & 1}" for k, n in enumerate(self.attribute_names))
            for g in range(2 ** len(columns))
        ]
        self.rule = Preprocessing(channels=3, height=image_size, width=image_size)
        super().__init__(self._load, groups, group_names, self.attribute_names, seed)

    def _load(self, indices: np.ndarray) -> Tensor:
        return to_float(read_images([self.paths[i] for i in indices], self.rule))

    def factors_of(self, index: int) -> dict[str, Any]:
        return {n: bool(v) for n, v in zip(self.attribute_names, self.attributes[index], strict=True)} | {
            "file": self.paths[index].name
        }
