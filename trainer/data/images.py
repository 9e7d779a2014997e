"""Image files -> model inputs, with the one preprocessing rule the service applies too.

Training on photos goes through ``modelrepo.to_model_input`` (EXIF, alpha on
black, centre crop, bilinear resize), so an image POSTed to the service is
turned into exactly what the model saw in training.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from modelrepo import Preprocessing, to_model_input
from trainer.data.mnist import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def read_image(path: Path, rule: Preprocessing) -> np.ndarray:
    """One file -> uint8 [C, H, W]; an unreadable file is a DataError naming it."""
    try:
        with Image.open(path) as image:
            arr = to_model_input(image, rule)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    return (arr * 255.0 + 0.5).astype(np.uint8)


def read_images(paths: list[Path], rule: Preprocessing, threads: int = 4) -> np.ndarray:
    """Many files -> uint8 [N, C, H, W], decoded on a few threads (Pillow releases the GIL)."""
    if not paths:
        return np.zeros((0, rule.channels, rule.height, rule.width), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return np.stack(list(pool.map(lambda p: read_image(p, rule), paths)))


def read_all_or_explain(paths: list[Path], rule: Preprocessing, threads: int = 4) -> np.ndarray:
    """Like ``read_images``, but reports every unreadable file at once (up to ten), not just the first."""

    def attempt(path: Path) -> np.ndarray | str:
        try:
            return read_image(path, rule)
        except DataError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(attempt, paths))
    bad = [r for r in results if isinstance(r, str)]
    if bad:
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise DataError(f"{len(bad)} of {len(paths)} images cannot be used: " + "; ".join(bad[:10]) + more)
    return np.stack([r for r in results if not isinstance(r, str)])


def to_float(images: np.ndarray) -> Tensor:
    return torch.from_numpy(images).float().div_(255.0)
