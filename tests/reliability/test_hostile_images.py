"""A hostile-image corpus, generated here: each gets the contract's status and a useful detail, never a 5xx."""

from __future__ import annotations

import base64
import io
import resource
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.service.images import encode_as, png_bytes


def _png_bomb(width: int = 50000, height: int = 50000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 300)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _animated_gif() -> bytes:
    frames = [Image.new("P", (16, 16), i) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return out.getvalue()


def _cmyk_jpeg() -> bytes:
    return encode_as(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG")


def _png16() -> bytes:
    return encode_as(Image.fromarray(np.full((12, 12), 40000, dtype=np.uint16)), "PNG")


def _palette_transparent() -> bytes:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    return encode_as(image, "PNG", transparency=0)


def _exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (40, 20), (0, 255, 0))
    exif = image.getexif()
    exif[0x0112] = 6
    return encode_as(image, "JPEG", exif=exif.tobytes())


ACCEPTED = {
    "1x1": png_bytes(0, (1, 1)),
    "10000x1": png_bytes(0, (10000, 1)),
    "animated GIF": _animated_gif(),
    "CMYK JPEG": _cmyk_jpeg(),
    "16-bit PNG": _png16(),
    "palette PNG with transparency": _palette_transparent(),
    "EXIF-rotated JPEG": _exif_rotated_jpeg(),
}

REFUSED = {
    "50000x50000 PNG bomb": (_png_bomb(), 413, "pixels"),
    "truncated PNG": (png_bytes(0, (64, 64))[:200], 400, "corrupt"),
    "truncated JPEG": (encode_as(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:300], 400, "truncated"),
    "zero bytes": (b"", 400, "empty"),
    "random bytes": (np.random.default_rng(0).bytes(5000), 400, "not an image"),
    "text as image/png": (b"GIF89a? no, just text", 400, "image"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_odd_but_valid_images_are_encoded(client: TestClient, name: str) -> None:
    r = client.post("/encode", files=[("image", ("x", ACCEPTED[name], "image/png"))])
    assert r.status_code == 200, (name, r.text)
    assert len(r.json()["z1"]) == 1


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_images_get_a_clear_4xx(client: TestClient, name: str) -> None:
    data, status, words = REFUSED[name]
    r = client.post("/encode", files=[("image", ("x.png", data, "image/png"))])
    assert r.status_code == status, (name, r.text)
    assert words in r.json()["detail"]
    assert client.get("/readyz").status_code == 200


def test_thousands_of_parts_are_refused(client: TestClient) -> None:
    files = [("image", (f"{i}.png", b"x", "image/png")) for i in range(3000)]
    r = client.post("/encode", files=files)
    assert r.status_code in (400, 413), r.text
    assert "files" in r.json()["detail"].lower() or "at most" in r.json()["detail"]


def test_base64_json_where_multipart_is_expected(client: TestClient) -> None:
    body = {"image": base64.b64encode(png_bytes(0)).decode()}
    r = client.post("/swap", json=body)
    assert r.status_code == 415 and "z1_image" in r.json()["detail"] and "multipart/form-data" in r.json()["detail"]


def test_memory_stays_bounded_over_the_corpus(client: TestClient) -> None:
    """Peak RSS may not jump by more than 200 MB (a decoded 50000x50000 bomb would need 7.5 GB)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        for data in [d for d, _, _ in REFUSED.values()] + list(ACCEPTED.values()):
            client.post("/encode", files=[("image", ("x", data, "image/png"))])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200
    assert client.get("/readyz").status_code == 200
