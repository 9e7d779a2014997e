"""Every error row of the HTTP contract, with its status and a detail a person can act on."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.service.conftest import make_client, wait_ready
from tests.service.images import encode_as, png_bytes


def _one(
    field: str, data: bytes, ctype: str = "image/png", name: str = "x.png"
) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (name, data, ctype))]


def bomb_png(width: int = 50000, height: int = 50000) -> bytes:
    """A valid PNG header declaring a huge image, with a few hundred bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 300)) + chunk(b"IEND", b"")
    )


def test_unknown_model_is_404_listing_known_ones(client: TestClient) -> None:
    r = client.post("/encode?model=nope", files=_one("image", png_bytes(0)))
    assert r.status_code == 404
    assert "nope" in r.json()["detail"] and "tiny-a" in r.json()["detail"] and "tiny-b" in r.json()["detail"]
    assert client.get("/models/nope").status_code == 404


def test_body_over_the_byte_limit_is_413(repo: Path) -> None:
    with make_client(repo, max_body_bytes=4096) as c:
        wait_ready(c)
        r = c.post("/encode", files=_one("image", b"\x00" * 10000))
        assert r.status_code == 413 and "4096" in r.json()["detail"]


def test_image_over_the_pixel_limit_is_413_before_decoding(client: TestClient) -> None:
    data = bomb_png()
    assert len(data) < 1000
    r = client.post("/encode", files=_one("image", data))
    assert r.status_code == 413
    assert "pixels" in r.json()["detail"]


def test_image_over_a_configured_pixel_limit_is_413(repo: Path) -> None:
    with make_client(repo, max_image_pixels=1000) as c:
        wait_ready(c)
        r = c.post("/encode", files=_one("image", png_bytes(0, (40, 40))))
        assert r.status_code == 413 and "1600 pixels" in r.json()["detail"]


def test_not_an_image_is_400(client: TestClient) -> None:
    r = client.post("/encode", files=_one("image", b"hello, I am text", "image/png"))
    assert r.status_code == 400 and "not an image" in r.json()["detail"]


def test_empty_file_is_400(client: TestClient) -> None:
    r = client.post("/encode", files=_one("image", b""))
    assert r.status_code == 400 and "empty" in r.json()["detail"]


def test_truncated_png_and_jpeg_are_400(client: TestClient) -> None:
    png = png_bytes(0, (64, 64))
    jpeg = encode_as(Image.fromarray(np.full((64, 64, 3), 128, np.uint8)), "JPEG")
    for data in (png[: len(png) // 2], jpeg[: len(jpeg) // 2]):
        r = client.post("/encode", files=_one("image", data))
        assert r.status_code == 400, r.text
        assert "corrupt" in r.json()["detail"] or "truncated" in r.json()["detail"]


def test_unsupported_image_type_is_415(client: TestClient) -> None:
    tiff = encode_as(Image.new("RGB", (8, 8)), "TIFF")
    r = client.post("/encode", files=_one("image", tiff, "image/tiff", "x.tiff"))
    assert r.status_code == 415 and "TIFF" in r.json()["detail"]


def test_wrong_latent_size_is_422(client: TestClient) -> None:
    r = client.post("/decode", json={"z1": [[0, 0]], "z2": [[0, 0, 0]]})
    assert r.status_code == 422 and "4 numbers" in r.json()["detail"]


def test_unequal_row_counts_are_422(client: TestClient) -> None:
    r = client.post("/decode", json={"z1": [[0] * 4, [0] * 4], "z2": [[0] * 3]})
    assert r.status_code == 422 and "equal" in r.json()["detail"]


def test_nan_and_infinity_are_422(client: TestClient) -> None:
    for bad in ("NaN", "Infinity"):
        body = '{"z1": [[0, 0, 0, ' + bad + ']], "z2": [[0, 0, 0]]}'
        r = client.post("/decode", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == "z1[0][3] is NaN or infinite; codes must be finite numbers", r.text


def test_missing_fields_are_422_with_a_string_detail(client: TestClient) -> None:
    r = client.post("/decode", json={"z1": [[0] * 4]})
    assert r.status_code == 422 and "z2" in r.json()["detail"] and isinstance(r.json()["detail"], str)
    r = client.post("/swap", files=_one("z1_image", png_bytes(0)))
    assert r.status_code == 422 and "z2_image" in r.json()["detail"]


def test_unequal_swap_counts_are_422(client: TestClient) -> None:
    files = _one("z1_image", png_bytes(0)) + _one("z1_image", png_bytes(1)) + _one("z2_image", png_bytes(2))
    r = client.post("/swap", files=files)
    assert r.status_code == 422 and "equal numbers" in r.json()["detail"]


def test_size_over_the_bound_is_422(client: TestClient) -> None:
    r = client.post("/decode?size=100000", json={"z1": [0] * 4, "z2": [0] * 3})
    assert r.status_code == 422 and "1024" in r.json()["detail"]


def test_too_many_images_is_413(repo: Path) -> None:
    with make_client(repo, max_images_per_request=2) as c:
        wait_ready(c)
        files = [("image", (f"{i}.png", png_bytes(i), "image/png")) for i in range(3)]
        r = c.post("/encode", files=files)
        assert r.status_code == 413 and "at most 2" in r.json()["detail"]


def test_api_keys_guard_everything_but_health(repo: Path) -> None:
    with make_client(repo, api_keys=["s3cret", "other"]) as c:
        wait_ready(c)
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        for path in ("/models", "/metrics"):
            assert c.get(path).status_code == 401
        r = c.post("/encode", files=_one("image", png_bytes(0)))
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        ok = c.post("/encode", files=_one("image", png_bytes(0)), headers={"X-API-Key": "other"})
        assert ok.status_code == 200


def test_json_or_raw_png_where_multipart_is_expected_says_how_to_send_images(client: TestClient) -> None:
    for r in (
        client.post("/encode", json={"image": "aGVsbG8="}),
        client.post("/encode", content=png_bytes(0), headers={"Content-Type": "image/png"}),
    ):
        body = r.json()
        assert r.status_code == 415 and body["code"] == "unsupported_media_type"
        assert "multipart/form-data" in body["detail"] and "-F image=@" in body["detail"]
        assert "body.image" not in body["detail"] and "Field required" not in body["detail"]
    swap = client.post("/swap", json={}).json()["detail"]
    assert "'z1_image' and 'z2_image'" in swap and "-F z1_image=@digit.png -F z2_image=@digit.png" in swap


def test_a_missing_file_field_is_named(client: TestClient) -> None:
    r = client.post("/swap", files=_one("z1_image", png_bytes(0)))
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert r.json()["detail"] == "no file field 'z2_image': send each image as a multipart file field named 'z2_image'"


def test_model_in_a_json_body_points_to_the_query_parameter(client: TestClient) -> None:
    r = client.post("/decode", json={"z1": [0.0] * 4, "z2": [0.0] * 3, "model": "tiny-b"})
    assert r.status_code == 422 and "?model=NAME" in r.json()["detail"]
    assert "Extra inputs" not in r.json()["detail"]


def test_every_error_carries_a_listed_code(client: TestClient) -> None:
    from service.errors import CODES

    answers = {
        "unknown_model": client.post("/encode?model=nope", files=_one("image", png_bytes(0))),
        "invalid_image": client.post("/encode", files=_one("image", b"not an image")),
        "not_found": client.get("/no-such-route"),
        "method_not_allowed": client.get("/encode"),
        "invalid_request": client.post("/decode", json={"z1": [0.0] * 4}),
        "unknown_example": client.get("/models/tiny-a/examples/nope.png"),
    }
    for code, r in answers.items():
        assert r.json()["code"] == code and code in CODES, (code, r.status_code, r.text)
