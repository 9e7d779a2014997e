"""Uploaded bytes -> model input, and model output -> PNG, with every check a hostile upload needs.

The pixel count is read from the header and checked *before* any pixel is
decoded, so a tiny file declaring 50000x50000 pixels costs nothing. Only the
allow-listed formats are opened. The conversion itself is the manifest's
preprocessing rule (modelrepo.preprocess), the same one training data uses.
Small requests are converted on the event loop and large ones on a worker
thread (``to_inputs``, ``encode_images``): below ``INLINE_PIXELS`` the hop costs
more than the work.
"""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from modelrepo import PreprocessError, Preprocessing, to_model_input

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF"})
PNG_COMPRESS_LEVEL = 1  # fast: these images are small, and latency matters more than bytes
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Requests this small are decoded and their answers encoded on the event loop: for them a hop to
# the thread pool and back cost more than the work (bench/results/pipeline_ab.md). A Color MNIST swap is
# 2 x 784 pixels; two 64x64 faces are 8,192. Anything larger leaves the loop.
INLINE_PIXELS = 16_384
INLINE_BYTES = 256 * 1024
INLINE_FILES = 4  # more files go to a thread whole, headers included
T = TypeVar("T")


class ImageError(ValueError):
    """An upload that cannot be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def open_header(data: bytes, max_pixels: int, label: str) -> Image.Image:
    """Open ``data`` lazily and check format and size from the header; no pixel is decoded yet."""
    if not data:
        raise ImageError(f"{label}: the file is empty", 400)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=None)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError(f"{label}: not an image we can read (send PNG, JPEG, WebP, BMP or GIF)", 400) from exc
        raise ImageError(f"{label}: image too large (over {max_pixels} pixels)", 413) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{label}: truncated or corrupt image header ({exc})", 400) from exc
    if image.format not in ALLOWED_FORMATS:
        raise ImageError(f"{label}: {image.format} images are not accepted; send PNG, JPEG, WebP, BMP or GIF", 415)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{label}: the image has no pixels", 400)
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: {width}x{height} is {width * height} pixels, over the limit of {max_pixels}; downscale it first",
            413,
        )
    return image


def to_model_input_checked(image: Image.Image, rule: Preprocessing, label: str) -> np.ndarray:
    """Decode the first frame of a checked image and apply the model's preprocessing rule."""
    try:
        image.seek(0)
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{label}: truncated or corrupt image data ({exc})", 400) from exc
    try:
        return to_model_input(image, rule)
    except (PreprocessError, OSError, ValueError) as exc:
        raise ImageError(f"{label}: cannot convert the image ({exc})", 400) from exc


def to_input(data: bytes, rule: Preprocessing, max_pixels: int, label: str) -> np.ndarray:
    """Bytes of one upload -> float32 [C, H, W] by the model's preprocessing rule."""
    return to_model_input_checked(open_header(data, max_pixels, label), rule, label)


def _output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """(width, height) of the PNG for an image of ``width`` x ``height`` whose long side becomes ``size``."""
    if size is None or size == max(width, height):
        return width, height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of(pixels: np.ndarray) -> bytes:
    """uint8 [H, W] (grey) or [H, W, 3] (RGB) -> an 8-bit PNG, every row unfiltered, zlib level 1.

    The whole format for what we answer with; Pillow's encoder spent 3x longer on a 32x32 swap
    answer (about 150 against 45 us, ``tests/service/test_images.py`` checks the pixels).
    """
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    rows = np.zeros((height, 1 + pixels[0].size), np.uint8)  # a leading 0 per row: filter type None
    rows[:, 1:] = pixels.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    body = zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def to_pixels(image: np.ndarray) -> np.ndarray:
    """A model output, float [C, H, W] in [0, 1], as rounded uint8 pixels: [H, W] (grey) or [H, W, 3]."""
    arr: np.ndarray = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def to_png(image: np.ndarray, size: int | None = None) -> bytes:
    """float [C, H, W] in [0, 1] -> PNG bytes, upscaled (nearest neighbour, crisp) so the long side is ``size``."""
    pixels = to_pixels(image)
    target = _output_size(pixels.shape[1], pixels.shape[0], size)
    if target != (pixels.shape[1], pixels.shape[0]):
        mode = "L" if pixels.ndim == 2 else "RGB"
        pixels = np.asarray(Image.fromarray(pixels, mode).resize(target, Image.Resampling.NEAREST))
    return png_of(pixels)


def to_base64_png(image: np.ndarray, size: int | None = None) -> str:
    return base64.b64encode(to_png(image, size)).decode("ascii")


async def _here_if_small(work: Callable[[], T], pixels: int) -> T:
    """Run ``work`` on the event loop when it touches at most INLINE_PIXELS pixels, else on a thread."""
    return work() if pixels <= INLINE_PIXELS else await run_in_threadpool(work)


async def to_inputs(payloads: list[bytes], labels: list[str], rule: Preprocessing, max_pixels: int) -> np.ndarray:
    """Uploads -> float32 [N, C, H, W]: small ones here, on the event loop; larger ones on a thread."""
    if len(payloads) > INLINE_FILES or sum(len(data) for data in payloads) > INLINE_BYTES:
        pairs = zip(payloads, labels, strict=True)
        return await run_in_threadpool(lambda: np.stack([to_input(d, rule, max_pixels, label) for d, label in pairs]))
    headers = [open_header(data, max_pixels, label) for data, label in zip(payloads, labels, strict=True)]
    return await _here_if_small(
        lambda: np.stack([to_model_input_checked(im, rule, lb) for im, lb in zip(headers, labels, strict=True)]),
        sum(image.width * image.height for image in headers),
    )


async def encode_images(images: np.ndarray, size: int | None, encode: Callable[[np.ndarray, int | None], T]) -> list[T]:
    """Model outputs -> ``encode`` of each (``to_png``, ``to_base64_png``): small answers here, larger on a thread."""
    sizes = [_output_size(image.shape[-1], image.shape[-2], size) for image in images]
    return await _here_if_small(lambda: [encode(image, size) for image in images], sum(w * h for w, h in sizes))
