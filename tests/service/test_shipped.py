"""The service on the shipped model repository (models/)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=ROOT / "models", device="cpu"))) as client:
        wait_ready(client)
        yield client


def _digit_png(hue_rgb: tuple[int, int, int]) -> bytes:
    """A crude coloured bar '1' on black, 32x32."""
    arr = np.zeros((32, 32, 3), dtype=np.uint8)
    arr[6:26, 14:18] = hue_rgb
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="PNG")
    return out.getvalue()


def test_both_shipped_models_serve(shipped: TestClient) -> None:
    body = shipped.get("/models").json()
    assert {m["name"] for m in body["models"]} == {"colormnist-digit", "colormnist-colour"}
    assert body["refused"] == {}
    factors = {m["name"]: m["specified_factors"] for m in body["models"]}
    assert factors == {"colormnist-digit": ["digit"], "colormnist-colour": ["colour"]}


@pytest.mark.parametrize("name", ["colormnist-digit", "colormnist-colour"])
def test_swap_on_a_shipped_model_equals_onnx_runtime(shipped: TestClient, name: str) -> None:
    a, b = _digit_png((255, 0, 0)), _digit_png((0, 0, 255))
    r = shipped.post(
        f"/swap?model={name}", files=[("z1_image", ("a.png", a, "image/png")), ("z2_image", ("b.png", b, "image/png"))]
    )
    assert r.status_code == 200
    got = np.asarray(Image.open(io.BytesIO(r.content)), dtype=np.float32).transpose(2, 0, 1) / 255
    enc = ort.InferenceSession(str(ROOT / "models" / name / "encoder.onnx"))
    dec = ort.InferenceSession(str(ROOT / "models" / name / "decoder.onnx"))
    to_in = [np.asarray(Image.open(io.BytesIO(x)), dtype=np.float32).transpose(2, 0, 1)[None] / 255 for x in (a, b)]
    z1 = enc.run(["z1"], {"image": to_in[0]})[0]
    z2 = enc.run(["z2"], {"image": to_in[1]})[0]
    (expected,) = dec.run(None, {"z1": z1, "z2": z2})
    np.testing.assert_allclose(got, expected[0], atol=1 / 255 + 1e-5)


def test_examples_and_directions_are_served(shipped: TestClient) -> None:
    for model in shipped.get("/models").json()["models"]:
        assert len(model["examples"]) == 8
        r = shipped.get(model["examples"][0]["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).size == (32, 32)
        axes = model["latent_directions"]
        assert len(axes["z1"]["directions"]) == 4 and len(axes["z1"]["directions"][0]) == model["z1_dim"]
