"""Reader for the canonical MNIST IDX files (gzip-compressed or raw).

The directory comes from the caller (a CLI flag or setting): the project
never assumes where MNIST lies.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Split = Literal["train", "test"]
_PREFIX = {"train": "train", "test": "t10k"}
_DTYPES: dict[int, str | type] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """Missing or malformed data files, with a message that says what to do."""


@dataclass(frozen=True)
class MnistSplit:
    """One split: images uint8 [N, 28, 28] and labels uint8 [N]."""

    images: np.ndarray
    labels: np.ndarray


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{directory}: neither {stem}.gz nor {stem} found; point --data-dir at a folder "
        "holding the four canonical MNIST IDX files"
    )


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file: magic (0, 0, dtype, ndim), big-endian dims, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: expected {expected} data bytes for shape {dims}, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_mnist(directory: Path | str, split: Split) -> MnistSplit:
    """Load one MNIST split from ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such data folder; pass --data-dir with the MNIST IDX files")
    prefix = _PREFIX[split]
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match")
    return MnistSplit(images=images.astype(np.uint8), labels=labels.astype(np.uint8))
