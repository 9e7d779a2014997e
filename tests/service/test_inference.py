from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modelrepo import Preprocessing, to_model_input
from service.images import INLINE_FILES
from tests.service.images import png_bytes


def _ort(repo: Path, name: str = "tiny-a") -> tuple[ort.InferenceSession, ort.InferenceSession]:
    return (
        ort.InferenceSession(str(repo / name / "encoder.onnx")),
        ort.InferenceSession(str(repo / name / "decoder.onnx")),
    )


def _as_input(data: bytes) -> np.ndarray:
    return to_model_input(Image.open(io.BytesIO(data)), Preprocessing())[None]


def _png_to_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32).transpose(2, 0, 1) / 255.0


def test_encode_gives_one_row_per_image_in_upload_order(client: TestClient, repo: Path) -> None:
    files = [("image", (f"{i}.png", png_bytes(i), "image/png")) for i in range(3)]
    r = client.post("/encode", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-a" and len(body["z1"]) == 3 and len(body["z1"][0]) == 4 and len(body["z2"][0]) == 3
    enc, _ = _ort(repo)
    for i in range(3):
        z1, z2, *_ = enc.run(None, {"image": _as_input(png_bytes(i))})
        np.testing.assert_allclose(body["z1"][i], z1[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(body["z2"][i], z2[0], rtol=1e-5, atol=1e-5)


def test_encode_with_sample_adds_samples(client: TestClient) -> None:
    r = client.post("/encode?sample=true", files=[("image", ("a.png", png_bytes(0), "image/png"))])
    assert r.status_code == 200
    assert len(r.json()["z1_samples"][0]) == 4 and len(r.json()["z2_samples"][0]) == 3


def test_swap_equals_decode_of_codes_from_onnx_runtime(client: TestClient, repo: Path) -> None:
    a, b = png_bytes(10), png_bytes(11)
    r = client.post("/swap", files=[("z1_image", ("a.png", a, "image/png")), ("z2_image", ("b.png", b, "image/png"))])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    enc, dec = _ort(repo)
    z1a = enc.run(["z1"], {"image": _as_input(a)})[0]
    z2b = enc.run(["z2"], {"image": _as_input(b)})[0]
    (expected,) = dec.run(None, {"z1": z1a, "z2": z2b})
    np.testing.assert_allclose(_png_to_array(r.content), expected[0], atol=1 / 255 + 1e-6)


def test_swap_several_pairs_gives_json_with_codes(client: TestClient) -> None:
    files = [("z1_image", (f"a{i}.png", png_bytes(i), "image/png")) for i in range(2)]
    files += [("z2_image", (f"b{i}.png", png_bytes(5 + i), "image/png")) for i in range(2)]
    r = client.post("/swap", files=files)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert len(body["images"]) == 2 and len(body["z1"]) == 2 and len(body["z2"][0]) == 3
    single = client.post("/swap", files=[files[1], files[3]])
    assert base64.b64decode(body["images"][1]) == single.content  # pair order is kept


def test_encode_then_decode_reproduces_the_reconstruction(client: TestClient, repo: Path) -> None:
    codes = client.post("/encode", files=[("image", ("x.png", png_bytes(3), "image/png"))]).json()
    r = client.post("/decode", json={"z1": codes["z1"], "z2": codes["z2"]})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    enc, dec = _ort(repo)
    z1, z2, *_ = enc.run(None, {"image": _as_input(png_bytes(3))})
    (expected,) = dec.run(None, {"z1": z1, "z2": z2})
    np.testing.assert_allclose(_png_to_array(r.content), expected[0], atol=1 / 255 + 1e-5)


def test_decode_flat_vector_is_one_row_and_json_on_request(client: TestClient) -> None:
    r = client.post(
        "/decode", json={"z1": [0.1, 0.2, 0.3, 0.4], "z2": [0, 0, 1]}, headers={"Accept": "application/json"}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    assert image.size == (32, 32) and image.mode == "RGB"


def test_size_upscales_the_output(client: TestClient) -> None:
    r = client.post("/decode?size=128", json={"z1": [0, 0, 0, 0], "z2": [0, 0, 0]})
    assert r.status_code == 200
    assert Image.open(io.BytesIO(r.content)).size == (128, 128)


def test_model_parameter_selects_another_model(client: TestClient) -> None:
    r = client.post("/encode?model=tiny-b", files=[("image", ("x.png", png_bytes(1), "image/png"))])
    assert r.status_code == 200 and r.json()["model"] == "tiny-b"
    assert len(r.json()["z1"][0]) == 2 and len(r.json()["z2"][0]) == 5


def test_any_mode_and_size_is_converted_by_the_rule(client: TestClient) -> None:
    for data in (png_bytes(1, (100, 60), "L"), png_bytes(2, (7, 9), "RGBA")):
        r = client.post("/encode", files=[("image", ("x.png", data, "image/png"))])
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("sizes", "why"),
    [
        ([(32, 32)], "small: decoded on the event loop"),
        ([(200, 200)], "over INLINE_PIXELS: headers read here, pixels decoded on a thread"),
        ([(400, 400)], "over INLINE_BYTES: all of it on a thread"),
        ([(32, 32)] * (INLINE_FILES + 1), "more than INLINE_FILES files: all of it on a thread"),
    ],
)
def test_every_decoding_path_gives_the_codes_of_the_preprocessing_rule(
    client: TestClient, repo: Path, sizes: list[tuple[int, int]], why: str
) -> None:
    uploads = [png_bytes(i, size) for i, size in enumerate(sizes)]
    r = client.post("/encode", files=[("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(uploads)])
    assert r.status_code == 200, (why, r.text)
    enc, _ = _ort(repo)
    for i, data in enumerate(uploads):
        (z2,) = enc.run(["z2"], {"image": _as_input(data)})
        np.testing.assert_allclose(r.json()["z2"][i], z2[0], rtol=1e-5, atol=1e-5, err_msg=why)


@pytest.mark.parametrize("size", [None, 64, 256], ids=["native", "small", "over-INLINE_PIXELS"])
def test_answers_are_the_same_png_whether_encoded_here_or_on_a_thread(client: TestClient, size: int | None) -> None:
    query = f"?size={size}" if size else ""
    one = client.post(f"/decode{query}", json={"z1": [0.5, 0, 0, 0], "z2": [0, 1, 0]})
    rows = {"z1": [[0.5, 0, 0, 0]] * 3, "z2": [[0, 1, 0]] * 3}
    several = client.post(f"/decode{query}", json=rows, headers={"Accept": "application/json"})
    assert one.status_code == several.status_code == 200
    assert all(base64.b64decode(image) == one.content for image in several.json()["images"])
    assert Image.open(io.BytesIO(one.content)).size == ((size, size) if size else (32, 32))
