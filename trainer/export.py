"""Export a trained run to a model folder: ``encoder.onnx``, ``decoder.onnx``, ``manifest.json``.

The exported graphs are the deterministic path (posterior means), with the
fixed input/output names of the ONNX interface in api.md and a dynamic batch
axis. Each file is self-contained (weights embedded, no external ``.data``),
checked by ``onnx.checker``, and compared with PyTorch on random and real
inputs; a mismatch beyond rtol 1e-3 / atol 1e-5 aborts the export.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from modelrepo import ImageShape, Manifest, Preprocessing, file_sha256, load_manifest
from modelrepo.card import write_card
from modelrepo.codec import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS
from modelrepo.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    PARITY_ATOL,
    PARITY_RTOL,
    Example,
    FileEntry,
    LatentDirections,
)
from trainer.config import SECTION_TYPES, TrainConfig
from trainer.data import PairDataset, heldout_pairs
from trainer.data.colormnist import ColorMNIST
from trainer.networks import TwoCodeVAE
from trainer.prune import prune_trained

RTOL, ATOL = PARITY_RTOL, PARITY_ATOL
OPSET = 18


class ExportError(RuntimeError):
    """The exported graph is invalid or disagrees with PyTorch."""


class EncoderGraph(nn.Module):
    """image -> (z1, z2, z1_logvar, z2_logvar): the means are the codes."""

    def __init__(self, model: TwoCodeVAE) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.encoder(image)
        return out.z1.mean, out.z2.mean, out.z1.logvar, out.z2.logvar


class DecoderGraph(nn.Module):
    """(z1, z2) -> image in [0, 1]."""

    def __init__(self, model: TwoCodeVAE) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z1, z2))


def _export_graph(
    module: nn.Module, inputs: tuple[Tensor, ...], names_in: list[str], names_out: list[str], path: Path
) -> None:
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    dynamic = {name: {0: batch} for name in names_in}
    program = torch.onnx.export(
        module,
        inputs,
        dynamo=True,
        input_names=names_in,
        output_names=names_out,
        dynamic_shapes=dynamic,
        opset_version=OPSET,
        external_data=False,
    )
    if program is None:  # pragma: no cover - the dynamo exporter always returns a program
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def export_onnx(model: TwoCodeVAE, folder: Path) -> None:
    """Write encoder.onnx and decoder.onnx for ``model`` into ``folder`` and check them."""
    import onnx

    cfg = model.config
    model.eval()
    image = torch.rand(2, cfg.channels, cfg.image_size, cfg.image_size)
    z1, z2 = torch.randn(2, cfg.z1_dim), torch.randn(2, cfg.z2_dim)
    _export_graph(EncoderGraph(model), (image,), list(ENCODER_INPUTS), list(ENCODER_OUTPUTS), folder / ENCODER_FILE)
    _export_graph(DecoderGraph(model), (z1, z2), list(DECODER_INPUTS), list(DECODER_OUTPUTS), folder / DECODER_FILE)
    for name in (ENCODER_FILE, DECODER_FILE):
        onnx.checker.check_model(str(folder / name), full_check=True)
    leftovers = [p.name for p in folder.iterdir() if p.suffix == ".data"]
    if leftovers:
        raise ExportError(
            f"the exporter wrote external weight files {leftovers}; the ONNX files must be self-contained"
        )


@torch.no_grad()
def check_parity(model: TwoCodeVAE, folder: Path, real_images: Tensor | None, seed: int = 0) -> dict[str, float]:
    """Run ONNX Runtime and PyTorch on the same inputs; raise ExportError beyond rtol/atol."""
    import onnxruntime as ort

    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.rand(7, cfg.channels, cfg.image_size, cfg.image_size, generator=gen)]
    if real_images is not None:
        batches.append(real_images)
    enc = ort.InferenceSession(str(folder / ENCODER_FILE), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / DECODER_FILE), providers=["CPUExecutionProvider"])
    worst: dict[str, float] = {}
    for images in batches:
        ref = model.encode(images)
        got = enc.run(None, {"image": images.numpy()})
        for name, expected, actual in zip(
            ("z1", "z2", "z1_logvar", "z2_logvar"),
            (ref.z1.mean, ref.z2.mean, ref.z1.logvar, ref.z2.logvar),
            got,
            strict=True,
        ):
            worst[name] = max(worst.get(name, 0.0), _compare(name, expected.numpy(), actual))
        z1 = torch.cat([ref.z1.mean, torch.randn(ref.z1.mean.shape, generator=gen)])
        z2 = torch.cat([ref.z2.mean, torch.randn(ref.z2.mean.shape, generator=gen)])
        (image,) = dec.run(None, {"z1": z1.numpy(), "z2": z2.numpy()})
        worst["image"] = max(worst.get("image", 0.0), _compare("image", model.decode(z1, z2).numpy(), image))
    return worst


def _compare(name: str, expected: np.ndarray, actual: Any) -> float:
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        raise ExportError(f"ONNX output {name} has shape {actual.shape}, PyTorch {expected.shape}")
    if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
        diff = float(np.max(np.abs(actual - expected)))
        raise ExportError(f"ONNX output {name} differs from PyTorch by up to {diff:.3g} (rtol {RTOL}, atol {ATOL})")
    return float(np.max(np.abs(actual - expected))) if actual.size else 0.0


@torch.no_grad()
def latent_directions(model: TwoCodeVAE, images: Tensor, k: int = 4) -> dict[str, LatentDirections]:
    """PCA of each code's posterior means: the leading directions and the spread along them."""
    codes = model.encode(images)
    out = {}
    for name, z in (("z1", codes.z1.mean), ("z2", codes.z2.mean)):
        mean = z.mean(dim=0)
        _, s, vh = torch.linalg.svd(z - mean, full_matrices=False)
        keep = min(k, vh.shape[0])
        std = s[:keep] / max(len(z) - 1, 1) ** 0.5
        out[name] = LatentDirections(mean=mean.tolist(), directions=vh[:keep].tolist(), std=std.tolist())
    return out


JUDGE = Path("evaluators/digit_cnn.pt")


def clearest_digit(judge_path: Path) -> Callable[[Tensor, int], int] | None:
    """Which of several images of one digit the independent judge reads with the largest margin.

    Margin: its probability for the true digit minus the largest other one. None when there is
    no judge to ask (examples are then the first image of each digit).
    """
    if not judge_path.is_file():
        return None
    from trainer.evaluators import load_digit_classifier

    judge = load_digit_classifier(judge_path)

    @torch.no_grad()
    def pick(images: Tensor, digit: int) -> int:
        probabilities = torch.softmax(judge(images), dim=1)
        others = probabilities.clone()
        others[:, digit] = -1.0
        return int((probabilities[:, digit] - others.max(dim=1).values).argmax())

    return pick


def write_examples(folder: Path, data: PairDataset, count: int = 8, judge_path: Path = JUDGE) -> list[Example]:
    """Save held-out images as PNGs in ``folder/examples``, with their known factors.

    Color MNIST examples are the digits the judge reads most clearly, so none is ambiguous.
    """
    (folder / "examples").mkdir()
    examples = []
    chosen = data.examples(count, clearest_digit(judge_path)) if isinstance(data, ColorMNIST) else data.examples(count)
    for k, example in enumerate(chosen):
        arr = (example.image.numpy().transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        image = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        index = example.factors.get("index", k)
        name = f"examples/test-{index:05d}.png"
        image.save(folder / name)
        factors = {key: v for key, v in example.factors.items() if key != "index"}
        examples.append(Example(file=name, factors=factors))
    return examples


def build_manifest(
    config: TrainConfig,
    name: str,
    version: str,
    description: str,
    folder: Path,
    parity: dict[str, float],
    train_state: dict[str, Any],
    extras: dict[str, Any] | None = None,
    export_notes: dict[str, Any] | None = None,
) -> Manifest:
    net = config.network
    factors = [s.strip() for s in config.data.specified.split(",") if s.strip()]
    files = {
        f: FileEntry(sha256=file_sha256(folder / f), bytes=(folder / f).stat().st_size)
        for f in (ENCODER_FILE, DECODER_FILE)
    }
    return Manifest(
        name=name,
        version=version,
        description=description or f"Two-code VAE on {config.data.dataset}; z2 holds: {', '.join(factors)}",
        specified_factors=factors,
        image=ImageShape(channels=net.channels, height=net.image_size, width=net.image_size),
        z1_dim=net.z1_dim,
        z2_dim=net.z2_dim,
        preprocessing=Preprocessing(
            channels=3 if net.channels == 3 else 1, height=net.image_size, width=net.image_size
        ),
        training_data={
            "dataset": config.data.dataset,
            "split": "train",
            "items": config.data.limit_items or "all",
            "colour_seed": config.data.data_seed,
            "steps": train_state.get("step"),
            "epochs_completed": train_state.get("epoch"),
            "train_seconds": round(float(train_state.get("elapsed_s", 0.0)), 1),
        },
        config=config.to_dict() | {"export": {"opset": OPSET, "parity_max_abs_diff": parity} | (export_notes or {})},
        files=files,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **(extras or {}),
    )


def export_run(
    run: Path,
    name: str,
    models_dir: Path,
    description: str = "",
    version: str = "1",
    data_dir: str | None = None,
    prune_below: float = 0.0,
    state_dict_out: Path | None = None,
) -> Path:
    """Export ``run`` to ``models_dir/name``, replacing that folder only once everything checked out.

    With ``prune_below`` > 0, code dimensions carrying less than that many nats over training
    images are pruned first (trainer/prune.py); the manifest records which. ``state_dict_out``
    receives the PyTorch weights of exactly what was exported (the PyTorch baseline of the bench
    serves them; the ONNX files fold some weights into constants, so they cannot be read back).
    """
    from trainer.train import load_model

    model, config, saved = load_model(run)
    heldout = heldout_pairs(config, data_dir)
    export_notes: dict[str, Any] = {}
    if prune_below > 0:
        export_notes["pruned"] = prune_trained(model, config, data_dir, prune_below).as_dict()
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    try:
        extras: dict[str, Any] = {}
        real = None
        if heldout is not None:
            images = heldout.sample_images(5000)
            real = images[:64]
            extras = {
                "latent_directions": latent_directions(model, images),
                "examples": write_examples(staging, heldout),
            }
        export_onnx(model, staging)
        parity = check_parity(model, staging, real)
        manifest = build_manifest(
            config, name, version, description, staging, parity, saved["state"], extras, export_notes
        )
        target = models_dir / name
        if target.exists():
            shutil.rmtree(target)
        manifest.save(staging)
        write_card(staging, manifest)
        staging.chmod(0o755)  # mkdtemp makes it private; served images run as another user
        staging.rename(target)
        if state_dict_out is not None:
            state_dict_out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), state_dict_out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def refresh_examples(folder: Path, data_dir: str | None = None) -> list[Example]:
    """Choose a model folder's example images again (by the current rule) and record them in its manifest.

    The ONNX files are untouched; the manifest's examples and the model card follow.
    """
    manifest = load_manifest(folder)
    config = TrainConfig.from_dict({k: v for k, v in manifest.config.items() if k in SECTION_TYPES})
    heldout = heldout_pairs(config, data_dir)
    if heldout is None:
        raise ExportError(f"no held-out images found for {folder.name}; pass --data-dir")
    staging = Path(tempfile.mkdtemp(prefix=".examples.", dir=folder))
    try:
        examples = write_examples(staging, heldout)
        shutil.rmtree(folder / "examples", ignore_errors=True)
        (staging / "examples").rename(folder / "examples")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest.examples = examples
    manifest.save(folder)
    write_card(folder, manifest)
    return examples
