"""What every peer shares with our service: the model folder, its preprocessing rule, its PNG encoder.

Only the serving framework differs between the rows of ``make bench``; the work
per request is this module (which is our service's own image code).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modelrepo import load_manifest, to_model_input
from modelrepo.codec import OnnxCodec
from service.images import to_input, to_pixels, to_png

MAX_PIXELS = 4096 * 4096


def _options() -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as our service's default: one core per server in the bench
    options.inter_op_num_threads = 1
    return options


class Pipeline:
    """One model folder (``BENCH_MODEL``, default the shipped digit model) behind swap and encode."""

    def __init__(self, folder: Path | None = None) -> None:
        root = Path(__file__).resolve().parents[2]
        self.folder = folder or Path(os.environ.get("BENCH_MODEL", root / "models" / "colormnist-digit"))
        self.rule = load_manifest(self.folder).preprocessing
        self.codec = OnnxCodec(self.folder, options=_options())

    def swap_bytes(self, z1_image: bytes, z2_image: bytes) -> bytes:
        """Two uploads -> the PNG of G(z1(a), z2(b))."""
        a = to_input(z1_image, self.rule, MAX_PIXELS, "z1_image")
        b = to_input(z2_image, self.rule, MAX_PIXELS, "z2_image")
        return to_png(self.codec.swap(a[None], b[None])[0])

    def swap_images(self, z1_image: Image.Image, z2_image: Image.Image) -> np.ndarray:
        """Two decoded images (a framework that decodes uploads itself) -> the swapped image, float [C, H, W]."""
        batch = np.stack([to_model_input(z1_image, self.rule), to_model_input(z2_image, self.rule)])
        swapped: np.ndarray = self.codec.swap(batch[:1], batch[1:])[0]
        return swapped

    def encode_bytes(self, images: list[bytes]) -> dict[str, list[list[float]]]:
        """Uploads -> their codes, as our /encode answers them."""
        batch = np.stack([to_input(data, self.rule, MAX_PIXELS, f"image {k}") for k, data in enumerate(images)])
        return self.codes(batch)

    def encode_images(self, images: list[Image.Image]) -> dict[str, list[list[float]]]:
        return self.codes(np.stack([to_model_input(image, self.rule) for image in images]))

    def codes(self, batch: np.ndarray) -> dict[str, list[list[float]]]:
        z1, z2 = self.codec.encode(batch)
        return {"z1": z1.tolist(), "z2": z2.tolist()}


def to_pil(image: np.ndarray) -> Image.Image:
    """float [C, H, W] -> a PIL image (for frameworks that encode PIL images themselves)."""
    return Image.fromarray(to_pixels(image))
