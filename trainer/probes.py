"""Leakage probes: how much of a factor can a small network read back from a code?

A probe is trained on the codes of one set of images and scored on the codes
of another. Two kinds per question: a linear one (logistic or least-squares
regression) and a small MLP, since a code can hide a factor from a linear
read-out and still give it away to a non-linear one. Every figure comes with
its chance level: the majority-class rate for a class, R^2 = 0 and 90 degrees
mean angular error for a hue.

Beside those, the Cycle-Consistent VAE's protocol, so our figures compare with
its published ones: an MLP with two hidden layers of 256 units, BatchNorm and
LeakyReLU, trained and scored on codes *sampled* from each posterior (kind
``ccvae``). Sampling adds the posterior's noise, which hides what a code's
means carry; the probes on the means measure what a user of ``/encode`` gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ProbeConfig:
    """Budget of the probes: small, so four questions times two kinds take seconds."""

    mlp_hidden: int = 128
    ccvae_hidden: int = 256  # the Cycle-Consistent VAE's probe: 256-256 with BatchNorm and LeakyReLU
    epochs: int = 40
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[Tensor, Tensor]:
    """Zero-mean, unit-variance features from the training codes' statistics (a collapsed dim stays 0)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return (
        torch.from_numpy(((train - mean) / std).astype(np.float32)),
        torch.from_numpy(((test - mean) / std).astype(np.float32)),
    )


def _model(features: int, outputs: int, kind: str, config: ProbeConfig) -> nn.Module:
    if kind == "linear":
        return nn.Linear(features, outputs)
    if kind == "ccvae":
        h = config.ccvae_hidden
        return nn.Sequential(
            nn.Linear(features, h),
            nn.BatchNorm1d(h),
            nn.LeakyReLU(0.2),
            nn.Linear(h, h),
            nn.BatchNorm1d(h),
            nn.LeakyReLU(0.2),
            nn.Linear(h, outputs),
        )
    return nn.Sequential(
        nn.Linear(features, config.mlp_hidden),
        nn.ReLU(),
        nn.Linear(config.mlp_hidden, config.mlp_hidden),
        nn.ReLU(),
        nn.Linear(config.mlp_hidden, outputs),
    )


def _fit(model: nn.Module, x: Tensor, y: Tensor, loss_fn: Any, config: ProbeConfig) -> nn.Module:
    """Adam over mini-batches; a fixed seed so the same codes always give the same figure."""
    generator = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, math.ceil(len(x) / config.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def _fit_linear(model: nn.Module, x: Tensor, y: Tensor, loss_fn: Any, config: ProbeConfig) -> nn.Module:
    """Full-batch L-BFGS with a small L2 penalty: the standard linear probe, converged, not early-stopped."""
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        penalty = sum(p.pow(2).sum() for name, p in model.named_parameters() if "weight" in name)
        loss: Tensor = loss_fn(model(x), y) + config.weight_decay * penalty
        loss.backward()
        return loss

    opt.step(closure)
    model.eval()
    return model


def chance_accuracy(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Accuracy of always answering the training set's most common class."""
    values, counts = np.unique(train_labels, return_counts=True)
    return float(np.mean(test_labels == values[np.argmax(counts)]))


def class_probe(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    kind: str,
    config: ProbeConfig | None = None,
) -> float:
    """Test accuracy of a ``kind`` ('linear', 'mlp' or 'ccvae') classifier from codes to labels."""
    config = config or ProbeConfig()
    torch.manual_seed(config.seed)
    x_train, x_test = _standardise(train_codes, test_codes)
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    y_train = torch.from_numpy(train_labels.astype(np.int64))
    fit = _fit_linear if kind == "linear" else _fit
    model = fit(_model(x_train.shape[1], classes, kind, config), x_train, y_train, F.cross_entropy, config)
    with torch.no_grad():
        predicted = model(x_test).argmax(dim=1).numpy()
    return float(np.mean(predicted == test_labels))


def _hue_targets(hues: np.ndarray) -> Tensor:
    angle = 2 * np.pi * np.asarray(hues, dtype=np.float64)
    return torch.from_numpy(np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32))


def hue_probe(
    train_codes: np.ndarray,
    train_hues: np.ndarray,
    test_codes: np.ndarray,
    test_hues: np.ndarray,
    kind: str,
    config: ProbeConfig | None = None,
) -> dict[str, float]:
    """Regress (cos, sin) of the hue from codes: R^2 over both targets and the mean angular error."""
    config = config or ProbeConfig()
    torch.manual_seed(config.seed)
    x_train, x_test = _standardise(train_codes, test_codes)
    y_train, y_test = _hue_targets(train_hues), _hue_targets(test_hues)
    fit = _fit_linear if kind == "linear" else _fit
    model = fit(_model(x_train.shape[1], 2, kind, config), x_train, y_train, F.mse_loss, config)
    with torch.no_grad():
        predicted = model(x_test)
    residual = float((predicted - y_test).pow(2).sum())
    total = float((y_test - y_train.mean(dim=0)).pow(2).sum())
    angle_pred = torch.atan2(predicted[:, 1], predicted[:, 0])
    angle_true = torch.atan2(y_test[:, 1], y_test[:, 0])
    diff = torch.remainder(angle_pred - angle_true + math.pi, 2 * math.pi) - math.pi
    return {
        "r2": round(1.0 - residual / max(total, 1e-12), 4),
        "angular_error_deg_mean": round(float(diff.abs().mean()) * 180 / math.pi, 2),
    }


HUE_CHANCE = {"r2": 0.0, "angular_error_deg_mean": 90.0}


def leakage_report(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray], config: ProbeConfig | None = None
) -> dict[str, Any]:
    """Digit and hue read back from z1 and from z2, with chance levels.

    ``train`` and ``test`` hold arrays ``z1``, ``z2`` (the means), ``z1_sample``,
    ``z2_sample`` (one draw from each posterior), ``digit`` and ``hue``. The linear
    probe and the MLP read the means; ``ccvae_sampled`` is the Cycle-Consistent
    VAE's protocol on the samples.
    """
    chance = round(chance_accuracy(train["digit"], test["digit"]), 4)
    report: dict[str, Any] = {"train_codes": len(train["digit"]), "test_codes": len(test["digit"])}
    for code in ("z1", "z2"):
        sampled = f"{code}_sample"
        report[f"digit_from_{code}"] = {
            kind: round(class_probe(train[code], train["digit"], test[code], test["digit"], kind, config), 4)
            for kind in ("linear", "mlp")
        } | {
            "ccvae_sampled": round(
                class_probe(train[sampled], train["digit"], test[sampled], test["digit"], "ccvae", config), 4
            ),
            "chance": chance,
        }
        report[f"hue_from_{code}"] = {
            kind: hue_probe(train[code], train["hue"], test[code], test["hue"], kind, config)
            for kind in ("linear", "mlp")
        } | {
            "ccvae_sampled": hue_probe(train[sampled], train["hue"], test[sampled], test["hue"], "ccvae", config),
            "chance": HUE_CHANCE,
        }
    return report
