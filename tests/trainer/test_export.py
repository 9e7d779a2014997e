from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from modelrepo import ManifestError, load_manifest, verify_files
from tests.trainer.helpers import tiny_config
from trainer.export import ExportError, check_parity, export_run
from trainer.train import load_model, start_or_resume


@pytest.fixture(scope="module")
def exported(tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    run = root / "run"
    start_or_resume(tiny_config(tiny_mnist, max_steps=3), run, resume=False).run(show_progress=False)
    folder = export_run(run, name="tiny", models_dir=root / "models")
    return run, folder


def test_export_writes_self_contained_files_and_manifest(exported: tuple[Path, Path]) -> None:
    _, folder = exported
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["README.md", "decoder.onnx", "encoder.onnx", "examples", "manifest.json"]
    assert (folder / "README.md").read_text().startswith(f"# {folder.name} (version ")  # the model card
    manifest = load_manifest(folder)
    assert [e.factors["digit"] for e in manifest.examples] == list(range(8))
    assert all((folder / e.file).is_file() for e in manifest.examples)
    assert manifest.name == "tiny" and manifest.specified_factors == ["digit"]
    assert (manifest.z1_dim, manifest.z2_dim) == (4, 3)
    assert manifest.image.channels == 3 and manifest.image.height == 32
    assert manifest.config["network"]["width"] == 4  # the full training config travels along
    verify_files(folder, manifest)


def test_onnx_interface_names_and_dynamic_batch(exported: tuple[Path, Path]) -> None:
    _, folder = exported
    enc = ort.InferenceSession(str(folder / "encoder.onnx"))
    dec = ort.InferenceSession(str(folder / "decoder.onnx"))
    assert [i.name for i in enc.get_inputs()] == ["image"]
    assert [o.name for o in enc.get_outputs()] == ["z1", "z2", "z1_logvar", "z2_logvar"]
    assert [i.name for i in dec.get_inputs()] == ["z1", "z2"] and [o.name for o in dec.get_outputs()] == ["image"]
    for n in (1, 5, 33):
        z1, z2, *_ = enc.run(None, {"image": np.random.rand(n, 3, 32, 32).astype(np.float32)})
        assert z1.shape == (n, 4) and z2.shape == (n, 3)
        (img,) = dec.run(None, {"z1": z1, "z2": z2})
        assert img.shape == (n, 3, 32, 32) and 0 <= img.min() and img.max() <= 1


def test_onnx_matches_pytorch(exported: tuple[Path, Path]) -> None:
    run, folder = exported
    model, _, _ = load_model(run)
    worst = check_parity(model, folder, torch.rand(9, 3, 32, 32), seed=3)
    assert set(worst) == {"z1", "z2", "z1_logvar", "z2_logvar", "image"}
    assert max(worst.values()) < 1e-4


def test_parity_check_fails_loudly_for_other_weights(exported: tuple[Path, Path]) -> None:
    run, folder = exported
    model, _, _ = load_model(run)
    with torch.no_grad():
        model.decoder.fc[0].bias.add_(0.5)  # type: ignore[operator]
    with pytest.raises(ExportError, match="differs from PyTorch"):
        check_parity(model, folder, None)


def test_tampered_onnx_file_fails_the_hash_check(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, folder = exported
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    data = bytearray(copy.joinpath("decoder.onnx").read_bytes())
    data[-1] ^= 0xFF
    copy.joinpath("decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="does not match the manifest"):
        verify_files(copy, load_manifest(copy))


def test_manifest_with_unknown_field_is_refused(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, folder = exported
    raw = json.loads((folder / "manifest.json").read_text())
    raw["surprise"] = 1
    tmp_path.joinpath("manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="invalid manifest"):
        load_manifest(tmp_path)


def test_latent_directions_are_unit_principal_axes(exported: tuple[Path, Path]) -> None:
    _, folder = exported
    axes = load_manifest(folder).latent_directions
    assert set(axes) == {"z1", "z2"}
    d = np.asarray(axes["z1"].directions)
    assert d.shape == (4, 4)
    np.testing.assert_allclose(d @ d.T, np.eye(4), atol=1e-4)  # orthonormal
    std = axes["z1"].std
    assert std == sorted(std, reverse=True) and len(axes["z2"].directions) == 3
