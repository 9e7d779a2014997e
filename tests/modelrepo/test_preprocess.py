from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modelrepo import Preprocessing, to_model_input

RGB32 = Preprocessing(channels=3, height=32, width=32)


def test_output_is_channels_first_float_in_unit_range() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = to_model_input(Image.fromarray(arr), RGB32)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, arr.transpose(2, 0, 1) / 255.0, atol=1e-7)


def test_alpha_is_composited_on_black() -> None:
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, half transparent
    rgba[..., 3] = 128
    out = to_model_input(Image.fromarray(rgba, "RGBA"), RGB32)
    assert out[0].mean() == pytest.approx(128 / 255, abs=1 / 255)
    assert out[1:].max() == 0


def test_palette_with_transparency_is_composited_on_black() -> None:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 255, 255] + [0, 255, 0] * 255)
    image.info["transparency"] = 0
    assert to_model_input(image, RGB32).max() == 0


def test_non_square_is_centre_cropped_then_resized() -> None:
    arr = np.zeros((32, 96, 3), dtype=np.uint8)
    arr[:, 32:64] = 255  # only the centre third is white
    out = to_model_input(Image.fromarray(arr), RGB32)
    assert out.shape == (3, 32, 32) and out.min() == pytest.approx(1.0)


def test_grey_model_gets_luma_and_sixteen_bit_is_scaled() -> None:
    grey = Preprocessing(channels=1, height=8, width=8)
    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    out = to_model_input(sixteen, grey)
    assert out.shape == (1, 8, 8) and out.min() == pytest.approx(1.0)
    rgb_grey = to_model_input(Image.new("RGB", (8, 8), (255, 0, 0)), grey)
    assert rgb_grey.mean() == pytest.approx(76 / 255, abs=1 / 255)  # ITU-R 601-2 luma of pure red


def test_exif_orientation_is_applied() -> None:
    arr = np.zeros((32, 64, 3), dtype=np.uint8)
    arr[:, :32] = 255  # left half white
    image = Image.fromarray(arr)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    import io

    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    shown = to_model_input(Image.open(buf), Preprocessing(channels=3, height=64, width=32))
    assert shown[:, :32].mean() > 0.9 and shown[:, 32:].mean() < 0.1  # white half is now on top


def test_manifest_rule_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError):
        Preprocessing.model_validate({"channels": 3, "height": 32, "width": 32, "mystery": 1})
