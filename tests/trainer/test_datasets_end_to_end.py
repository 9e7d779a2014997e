"""Train, export and serve on each fixture: the path a user with their own data walks.

Training and export go through the CLI, as a user would run them; the
service then serves the results next to the shipped Color MNIST model.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import make_image_folder
from tests.service.conftest import wait_ready
from tests.trainer.helpers import ROOT, run_cli

pytestmark = pytest.mark.slow
TINY = ["--width", "4", "--hidden", "16", "--z1-dim", "4", "--z2-dim", "3", "--batch-size", "4", "--quiet"]


def _train_and_export(data: Path, name: str, models: Path, runs: Path, *flags: str) -> None:
    run = runs / name
    trained = run_cli("train", "--data-dir", str(data), "--out", str(run), "--max-steps", "3", *TINY, *flags)
    assert trained.returncode == 0, trained.stderr
    exported = run_cli("export", str(run), "--name", name, "--models-dir", str(models))
    assert exported.returncode == 0, exported.stderr


@pytest.fixture(scope="module")
def repository(tiny_celeba: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    models = root / "models"
    shutil.copytree(ROOT / "models" / "colormnist-digit", models / "colormnist-digit")
    celeba = ["--dataset", "celeba", "--specified", "Smiling,Eyeglasses", "--image-size", "64"]
    _train_and_export(tiny_celeba, "faces", models, root / "runs", *celeba)
    folder = make_image_folder(root / "mine", csv=True)
    own = ["--dataset", "folder", "--specified", "colour_blob", "--image-size", "64"]
    _train_and_export(folder, "mine", models, root / "runs", *own)
    return models


def test_manifests_name_the_specified_factors_and_ship_examples(repository: Path) -> None:
    faces = json.loads((repository / "faces" / "manifest.json").read_text())
    assert faces["specified_factors"] == ["Smiling", "Eyeglasses"]
    assert faces["image"] == {"channels": 3, "height": 64, "width": 64}
    assert faces["examples"] and "Smiling" in faces["examples"][0]["factors"]
    mine = json.loads((repository / "mine" / "manifest.json").read_text())
    assert mine["specified_factors"] == ["colour_blob"]
    assert {e["factors"]["colour_blob"] for e in mine["examples"]} == {f"group-{g}" for g in range(4)}


def test_service_serves_them_beside_color_mnist(repository: Path, tiny_celeba: Path) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(model_repository=repository, default_model="colormnist-digit", device="cpu")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        listed = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert set(listed) == {"colormnist-digit", "faces", "mine"}
        assert listed["faces"]["specified_factors"] == ["Smiling", "Eyeglasses"]
        assert listed["mine"]["specified_factors"] == ["colour_blob"]
        a = (tiny_celeba / "img_align_celeba" / "000001.jpg").read_bytes()  # 178x218: cropped, resized
        b = (tiny_celeba / "img_align_celeba" / "000002.jpg").read_bytes()
        for name in ("faces", "mine"):
            r = client.post(
                f"/swap?model={name}",
                files=[("z1_image", ("a.jpg", a, "image/jpeg")), ("z2_image", ("b.jpg", b, "image/jpeg"))],
            )
            assert r.status_code == 200, r.text
            assert Image.open(io.BytesIO(r.content)).size == (64, 64)
