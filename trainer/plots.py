"""Pictures written during training: the loss curves and a swap grid."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from trainer.networks import TwoCodeVAE

TERMS = ("total", "rec", "swap", "kl1", "kl2", "mi1", "mi2", "adv", "between1", "pair2", "critic1", "hsic1")


def to_uint8(images: Tensor) -> np.ndarray:
    """[N, C, H, W] in [0, 1] -> uint8 [N, H, W, 3]."""
    arr = (images.detach().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    arr = arr.transpose(0, 2, 3, 1)
    return np.repeat(arr, 3, axis=3) if arr.shape[3] == 1 else arr


def image_grid(tiles: np.ndarray, rows: int, cols: int, pad: int = 2, scale: int = 2) -> Image.Image:
    """Lay uint8 tiles [rows * cols, H, W, 3] on a grey canvas."""
    _, h, w, _ = tiles.shape
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 64, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = tile
    img = Image.fromarray(canvas)
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


@torch.no_grad()
def swap_grid(model: TwoCodeVAE, z1_images: Tensor, z2_images: Tensor) -> Image.Image:
    """First row: the z2 images; first column: the z1 images; inside: G(z1(row), z2(column))."""
    n, m = len(z1_images), len(z2_images)
    a, b = model.encode(z1_images).z1.mode(), model.encode(z2_images).z2.mode()
    swaps = model.decode(a.repeat_interleave(m, dim=0), b.repeat(n, 1))
    blank = torch.zeros_like(z1_images[:1])
    rows = [torch.cat([blank, z2_images])]
    for i in range(n):
        rows.append(torch.cat([z1_images[i : i + 1], swaps[i * m : (i + 1) * m]]))
    return image_grid(to_uint8(torch.cat(rows)), n + 1, m + 1)


def loss_curve(log_csv: Path, out_png: Path) -> None:
    """Plot every logged term against the step, one panel per term (log scale where positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(3, 3, figsize=(12, 9))
    for ax, term in zip(axes.flat, TERMS, strict=False):
        values = [float(r[term]) for r in rows]
        ax.plot(steps, values)
        ax.set_title(term)
        ax.set_xlabel("step")
        if min(values) > 0:
            ax.set_yscale("log")
    axes.flat[-1].plot(steps, [float(r["images_per_s"]) for r in rows])
    axes.flat[-1].set_title("images/s")
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
