"""``python -m trainer figures``: the pictures of the README, drawn from an exported model.

Everything comes from the ONNX files and the manifest (the principal
directions computed at export), i.e. from what the service serves:
- a swap grid: first row the z2 images, first column the z1 images;
- traversals along each code's principal directions;
- interpolations in z1 with z2 fixed, and in z2 with z1 fixed;
- PCA scatter plots of z1 and z2 on test images, coloured by digit and by hue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelrepo import Manifest, load_manifest
from trainer.data.colormnist import ColorMNIST
from trainer.data.mnist import read_mnist
from trainer.evaluate import TEST_HUE_SEED, DecodeFn, EncodeFn, onnx_codec
from trainer.plots import image_grid

STEPS = 9  # images per traversal or interpolation row
SPAN = 2.5  # traversals reach this many standard deviations either side of the start


def _tiles(images: np.ndarray) -> np.ndarray:
    """float [N, 3, H, W] in [0, 1] -> uint8 [N, H, W, 3]."""
    return (np.clip(images, 0, 1).transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)


def _showcase(test: ColorMNIST, count: int = 8, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``count`` test images with distinct digits, painted with evenly spread hues."""
    rng = np.random.default_rng(seed)
    picks = np.array([int(rng.choice(np.flatnonzero(test.labels == d))) for d in range(count)])
    return picks, (np.arange(count) / count + 0.03) % 1.0


def swap_grid_figure(encode: EncodeFn, decode: DecodeFn, test: ColorMNIST, path: Path) -> Path:
    picks, hues = _showcase(test)
    z1_images = test.render(picks, hues).numpy()
    z2_images = test.render(picks[::-1].copy(), np.roll(hues, 3)).numpy()
    n = len(picks)
    z1, _ = encode(z1_images)
    _, z2 = encode(z2_images)
    swaps = decode(np.repeat(z1, n, axis=0), np.tile(z2, (n, 1)))
    blank = np.zeros_like(z1_images[:1])
    rows = [np.concatenate([blank, z2_images])]
    rows += [np.concatenate([z1_images[i : i + 1], swaps[i * n : (i + 1) * n]]) for i in range(n)]
    image_grid(_tiles(np.concatenate(rows)), n + 1, n + 1, scale=3).save(path)
    return path


def _labelled(grid: np.ndarray, rows: list[str], title: str, path: Path) -> Path:
    """A uint8 picture with one label per row, via matplotlib (titles need text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = grid.shape[0] / 80
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 80 + 1.6, height + 0.5))
    ax.imshow(grid)
    step = grid.shape[0] / len(rows)
    ax.set_yticks([step * (i + 0.5) for i in range(len(rows))], rows, fontsize=8)
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def traversal_figure(decode: DecodeFn, encode: EncodeFn, manifest: Manifest, test: ColorMNIST, path: Path) -> Path:
    """Each row moves one code along one principal direction; the other code stays put."""
    picks, hues = _showcase(test)
    z1, z2 = encode(test.render(picks[3:4], hues[3:4]).numpy())
    offsets = np.linspace(-SPAN, SPAN, STEPS)
    tiles, labels = [], []
    for code in ("z1", "z2"):
        axes = manifest.latent_directions.get(code)
        if axes is None:
            continue
        for k, (direction, std) in enumerate(zip(axes.directions, axes.std, strict=True)):
            moved = (z1 if code == "z1" else z2) + np.outer(offsets * std, np.asarray(direction, dtype=np.float32))
            fixed = np.repeat(z2 if code == "z1" else z1, STEPS, axis=0)
            pair = (moved, fixed) if code == "z1" else (fixed, moved)
            tiles.append(decode(pair[0].astype(np.float32), pair[1].astype(np.float32)))
            labels.append(f"{code} PC{k + 1}")
    grid = np.asarray(image_grid(_tiles(np.concatenate(tiles)), len(labels), STEPS, scale=2))
    return _labelled(grid, labels, f"principal directions, -{SPAN} to +{SPAN} std", path)


def interpolation_figure(encode: EncodeFn, decode: DecodeFn, test: ColorMNIST, path: Path) -> Path:
    """Row 1: z1 from A to B with z2 of A; row 2: z2 from A to B with z1 of A; then the reverse pair."""
    picks, hues = _showcase(test)
    tiles, labels = [], []
    for a, b in ((1, 6), (4, 7)):
        images = test.render(picks[[a, b]], hues[[a, b]]).numpy()
        z1, z2 = encode(images)
        t = np.linspace(0, 1, STEPS, dtype=np.float32)[:, None]
        z1_path, z2_path = (1 - t) * z1[0] + t * z1[1], (1 - t) * z2[0] + t * z2[1]
        tiles.append(decode(z1_path, np.repeat(z2[:1], STEPS, axis=0)))
        tiles.append(decode(np.repeat(z1[:1], STEPS, axis=0), z2_path))
        labels += ["z1: A -> B, z2 of A", "z2: A -> B, z1 of A"]
    grid = np.asarray(image_grid(_tiles(np.concatenate(tiles)), len(labels), STEPS, scale=2))
    return _labelled(grid, labels, "interpolation between two test images A (left) and B (right)", path)


def _pca2(codes: np.ndarray) -> np.ndarray:
    centred = codes - codes.mean(axis=0)
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    return np.asarray(centred @ vh[:2].T)


def scatter_figure(encode: EncodeFn, test: ColorMNIST, path: Path, count: int = 3000) -> Path:
    """PCA of z1 and z2 of ``count`` test images, coloured by digit and by hue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.random.default_rng(0).choice(len(test), size=min(count, len(test)), replace=False)
    z1, z2 = encode(test.render(idx, test.hues[idx]).numpy())
    fig, axes = plt.subplots(2, 2, figsize=(9, 8.5))
    for col, (name, codes) in enumerate((("z1", z1), ("z2", z2))):
        xy = _pca2(codes)
        digit = axes[0, col].scatter(xy[:, 0], xy[:, 1], c=test.labels[idx], cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        axes[0, col].set_title(f"{name} (PCA), coloured by digit")
        hue = axes[1, col].scatter(xy[:, 0], xy[:, 1], c=test.hues[idx], cmap="hsv", s=3, vmin=0, vmax=1)
        axes[1, col].set_title(f"{name} (PCA), coloured by hue")
    fig.colorbar(digit, ax=axes[0, :], ticks=range(10), label="digit")
    fig.colorbar(hue, ax=axes[1, :], label="hue")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_figures(folder: Path, data_dir: Path, out: Path, prefix: str | None = None) -> list[Path]:
    """All four pictures of one model into ``out``, named ``KIND-PREFIX.png``."""
    manifest = load_manifest(folder)
    prefix = prefix or manifest.specified_factors[0]
    out.mkdir(parents=True, exist_ok=True)
    test = ColorMNIST(read_mnist(data_dir, "test"), seed=TEST_HUE_SEED, specified="digit")
    encode, decode, _ = onnx_codec(folder)
    return [
        swap_grid_figure(encode, decode, test, out / f"swap-grid-{prefix}.png"),
        traversal_figure(decode, encode, manifest, test, out / f"traversals-{prefix}.png"),
        interpolation_figure(encode, decode, test, out / f"interpolation-{prefix}.png"),
        scatter_figure(encode, test, out / f"scatter-{prefix}.png"),
    ]
