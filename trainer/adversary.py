"""The optional leakage adversary of method.md: a probe on z1 that the encoder learns to fool.

An MLP predicts the specified factor's class from z1's mean; a gradient
reversal layer sits between z1 and the MLP, so one backward pass trains the
MLP to predict (descending its cross-entropy) and the encoder to hide the
factor from z1 (ascending it). Off by default (``l_adv = 0``); the ablation
measures what it buys.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _GradReverse(torch.autograd.Function):
    """Identity forward; the gradient times -1 backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return -grad


def grad_reverse(x: Tensor) -> Tensor:
    out: Tensor = _GradReverse.apply(x)
    return out


class LeakageAdversary(nn.Module):
    """z1 -> logits of the specified factor's classes (digits, or hue bins)."""

    def __init__(self, z1_dim: int, classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z1_dim, hidden), nn.SiLU(), nn.Linear(hidden, classes))

    def forward(self, z1: Tensor) -> Tensor:
        out: Tensor = self.net(z1)
        return out


def adversary_loss(adversary: LeakageAdversary, z1_mean: Tensor, classes: Tensor) -> Tensor:
    """Cross-entropy of the adversary behind a gradient reversal: it learns, the encoder unlearns."""
    return F.cross_entropy(adversary(grad_reverse(z1_mean)), classes)
