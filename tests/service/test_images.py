"""service/images.py's own PNG writer: any decoder reads back exactly the pixels it was given."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.images import png_of, to_png


@pytest.mark.parametrize("shape", [(32, 32, 3), (7, 5, 3), (1, 1, 3), (32, 32), (5, 9)])
def test_the_png_holds_exactly_the_pixels(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = png_of(pixels)
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == ("RGB" if len(shape) == 3 else "L") and decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded), pixels)


@pytest.mark.parametrize("channels", [1, 3])
def test_answers_are_the_rounded_model_output_upscaled_by_nearest_neighbour(channels: int) -> None:
    image = np.random.default_rng(channels).random((channels, 4, 6)).astype(np.float32)
    expected = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    expected = expected[0] if channels == 1 else expected.transpose(1, 2, 0)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(to_png(image)))), expected)
    big = np.asarray(Image.open(io.BytesIO(to_png(image, size=12))))  # long side 6 -> 12: each pixel twice
    assert big.shape[:2] == (8, 12) and np.array_equal(big[::2, ::2], expected)
