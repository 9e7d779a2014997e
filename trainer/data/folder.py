"""A user's own paired images: a folder of images grouped by what they share.

Two layouts, the first found wins:

    DIR/groups.csv        a header ``path,group``, then one row per image; paths relative to DIR
    DIR/GROUP/IMAGE       one sub-folder per group (the folder name is the group)

Partners are drawn within a group, so z2 learns what a group's images share
(a person, a product, a style) and z1 everything else. All images are
decoded once at start, so a bad file is reported before training begins,
together with every other bad file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from modelrepo import Preprocessing
from trainer.data.images import IMAGE_SUFFIXES, read_all_or_explain, to_float
from trainer.data.mnist import DataError
from trainer.data.pairs import GroupedPairs

CSV_NAME = "groups.csv"


def read_groups_csv(root: Path, csv_path: Path) -> list[tuple[Path, str]]:
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"path", "group"} <= set(reader.fieldnames):
            raise DataError(f"{csv_path}: the first line must be the header 'path,group', got {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            path, group = (row.get("path") or "").strip(), (row.get("group") or "").strip()
            if not path or not group:
                raise DataError(f"{csv_path}:{line}: both path and group are needed")
            rows.append((root / path, group))
    missing = [str(p) for p, _ in rows if not p.is_file()]
    if missing:
        raise DataError(f"{csv_path}: {len(missing)} listed images do not exist: {missing[:5]}")
    return rows


def read_group_folders(root: Path) -> list[tuple[Path, str]]:
    rows = [
        (path, sub.name)
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in sorted(sub.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not rows:
        raise DataError(
            f"{root}: no images found; put one sub-folder per group (DIR/GROUP/IMAGE.png) "
            f"or a {CSV_NAME} with the header 'path,group'"
        )
    return rows


class ImageFolderPairs(GroupedPairs):
    """Every image of the folder in memory (uint8), grouped; partners share a group."""

    def __init__(
        self, root: Path, image_size: int, channels: int, seed: int, specified: str = "group", groups_csv: str = ""
    ) -> None:
        if not root.is_dir():
            raise DataError(f"{root}: no such folder")
        csv_path = Path(groups_csv) if groups_csv else root / CSV_NAME
        if groups_csv and not csv_path.is_file():
            raise DataError(f"{csv_path}: no such file")
        rows = read_groups_csv(root, csv_path) if csv_path.is_file() else read_group_folders(root)
        names = sorted({g for _, g in rows})
        groups = np.array([names.index(g) for _, g in rows], dtype=np.int64)
        counts = np.bincount(groups, minlength=len(names))
        lonely = [names[g] for g in np.flatnonzero(counts < 2)]
        if lonely:
            raise DataError(
                f"groups with a single image have no partner: {lonely[:10]}; add images or drop these groups"
            )
        if len(names) < 2:
            raise DataError(f"only one group ({names[0]!r}): z2 needs groups that differ to learn what they share")
        self.paths = [p for p, _ in rows]
        self.rule = Preprocessing(channels=3 if channels == 3 else 1, height=image_size, width=image_size)
        self.images = read_all_or_explain(self.paths, self.rule)
        super().__init__(self._load, groups, names, [specified], seed)

    def _load(self, indices: np.ndarray) -> Tensor:
        return to_float(self.images[indices])

    def factors_of(self, index: int) -> dict[str, Any]:
        return {self.specified_factors[0]: self.group_names[self.groups[index]], "file": self.paths[index].name}
