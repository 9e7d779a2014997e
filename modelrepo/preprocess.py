"""The one rule that turns an uploaded image into a model's input tensor.

Training data that does not already have the model's shape, the service, the
web page and any third-party client all apply this rule, so a code computed
anywhere means the same thing. The manifest records the rule's parameters.

The rule, in order:
1. apply the EXIF orientation (phones store rotated pixels plus a tag);
2. take the first frame of an animation;
3. bring high-bit-depth and float images to 8 bits per channel;
4. composite any transparency over black (Color MNIST's background);
5. convert to the model's channels (RGB, or L as ITU-R 601-2 luma);
6. centre-crop to the model's aspect ratio, then resize to its height and
   width with Pillow's antialiased bilinear filter;
7. scale to float32 in [0, 1], channels first: ``[C, H, W]``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field


class PreprocessError(ValueError):
    """An image that the rule cannot turn into a model input."""


class Preprocessing(BaseModel):
    """Parameters of the preprocessing rule, as stored in the manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["exif-alpha_on_black-centre_crop-bilinear-v1"] = "exif-alpha_on_black-centre_crop-bilinear-v1"
    channels: Literal[1, 3] = 3
    height: int = Field(32, ge=4, le=4096)
    width: int = Field(32, ge=4, le=4096)
    background: Literal["black"] = "black"
    resample: Literal["bilinear"] = "bilinear"
    value_range: tuple[float, float] = (0.0, 1.0)


def _to_8bit(image: Image.Image) -> Image.Image:
    """Rescale 16/32-bit integer and float images into 8-bit 'L'.

    Pillow's own ``convert`` clips 16-bit values instead of scaling them, which
    would turn most 16-bit greyscale PNGs white.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(image, dtype=np.float64) / 65535.0
    elif image.mode == "I":
        arr = np.asarray(image, dtype=np.float64)
        arr = arr / 65535.0 if arr.max(initial=0) > 255 else arr / 255.0
    elif image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        arr = arr if arr.max(initial=0) <= 1.0 else arr / 255.0
    else:
        return image
    return Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite any transparency over black and drop the alpha channel."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _centre_crop(image: Image.Image, height: int, width: int) -> Image.Image:
    """Crop the largest centred box with the target aspect ratio."""
    w, h = image.size
    target = width / height
    if abs(w / h - target) < 1e-6:
        return image
    if w / h > target:
        new_w = max(1, round(h * target))
        left = (w - new_w) // 2
        return image.crop((left, 0, left + new_w, h))
    new_h = max(1, round(w / target))
    top = (h - new_h) // 2
    return image.crop((0, top, w, top + new_h))


def to_model_input(image: Image.Image, rule: Preprocessing) -> np.ndarray:
    """Apply the preprocessing rule: any PIL image -> float32 ``[C, H, W]``."""
    try:
        image.seek(0)
    except EOFError as exc:  # pragma: no cover - Pillow raises this on empty animations
        raise PreprocessError("the image has no frames") from exc
    image = ImageOps.exif_transpose(image) or image
    image = _flatten_alpha(_to_8bit(image))
    image = image.convert("RGB" if rule.channels == 3 else "L")
    image = _centre_crop(image, rule.height, rule.width)
    if image.size != (rule.width, rule.height):
        image = image.resize((rule.width, rule.height), Image.Resampling.BILINEAR)
    arr = np.asarray(image, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)
