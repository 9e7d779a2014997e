"""Image payloads for service tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png_bytes(seed: int, size: tuple[int, int] = (32, 32), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def encode_as(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()
