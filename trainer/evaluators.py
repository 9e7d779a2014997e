"""Judges independent of the VAE: a digit classifier trained on real MNIST and a hue estimator.

Neither ever enters the VAE's objective. The classifier reads the maximum over
colour channels, which for Color MNIST is exactly the original grey digit
(pixel = g * rgb with max(rgb) = 1), so one greyscale classifier judges
digits of any colour. The hue estimator is analytic: the chroma-weighted
circular mean of every pixel's HSV hue; black pixels have no chroma and so no
weight.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.checkpoint import save_atomic
from trainer.data.colormnist import PAD
from trainer.data.mnist import read_mnist


class DigitClassifier(nn.Module):
    """A small CNN on 32x32 greyscale digits (about 99 % on the MNIST test split)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(128 * 16, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, images: Tensor) -> Tensor:
        """Logits from images [N, C, 32, 32] in [0, 1] of any colour."""
        grey = images.max(dim=1, keepdim=True).values
        return self.net(grey)


def _padded(images: np.ndarray) -> Tensor:
    padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)))
    return torch.from_numpy(padded).float().div_(255.0)[:, None]


def _augment(batch: Tensor, generator: torch.Generator) -> Tensor:
    """Random shifts of up to 2 pixels and contrast scaling, so blurry or dim swaps are judged fairly."""
    n = batch.shape[0]
    shifts = torch.randint(-2, 3, (2,), generator=generator).tolist()
    batch = torch.roll(batch, shifts=shifts, dims=(2, 3))
    gain = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)
    return batch * gain


def train_digit_classifier(data_dir: Path, out: Path, epochs: int = 3, seed: int = 0) -> float:
    """Train on the MNIST training split, save to ``out``, return test accuracy."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train, test = read_mnist(data_dir, "train"), read_mnist(data_dir, "test")
    x, y = _padded(train.images), torch.from_numpy(train.labels.astype(np.int64))
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * ((len(x) + 127) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 128):
            idx = order[start : start + 128]
            loss = F.cross_entropy(model.net(_augment(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    model.eval()
    accuracy = classifier_accuracy(model, _padded(test.images), test.labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"model": model.state_dict(), "test_accuracy": accuracy, "epochs": epochs, "seed": seed}, out)
    return accuracy


@torch.no_grad()
def classifier_accuracy(model: DigitClassifier, images: Tensor, labels: np.ndarray) -> float:
    preds = predict_digits(model, images)
    return float((preds == labels).mean())


@torch.no_grad()
def predict_digits(model: DigitClassifier, images: Tensor | np.ndarray, batch: int = 1000) -> np.ndarray:
    tensor = torch.as_tensor(images)
    return np.concatenate([model(tensor[i : i + batch]).argmax(1).numpy() for i in range(0, len(tensor), batch)])


def load_digit_classifier(path: Path) -> DigitClassifier:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no digit classifier; train it with "
            "`python -m trainer train-classifier --data-dir DIR --out {path}`"
        )
    model = DigitClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return model.eval()


def estimate_hue(images: np.ndarray) -> np.ndarray:
    """Hue in [0, 1) of each image [N, 3, H, W]: chroma-weighted circular mean of pixel hues."""
    rgb = np.asarray(images, dtype=np.float64)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    chroma = mx - mn
    safe = np.where(chroma > 0, chroma, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    angle = h / 6.0 * 2.0 * math.pi
    c = (chroma * np.cos(angle)).sum(axis=(1, 2))
    s = (chroma * np.sin(angle)).sum(axis=(1, 2))
    return (np.arctan2(s, c) / (2.0 * math.pi)) % 1.0


def hue_error_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute circular difference of hues in [0, 1), in degrees (0..180)."""
    d = np.abs((np.asarray(a) - np.asarray(b) + 0.5) % 1.0 - 0.5)
    return d * 360.0
