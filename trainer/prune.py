"""Prune code dimensions that carry next to no information about the image.

A VAE leaves some dimensions of each code almost at the prior: the posterior's
variance stays near 1 while its mean moves by a few hundredths from image to
image. The decoder cannot rely on such a dimension (its samples are nearly pure
noise), yet its mean is what ``/encode`` returns, and those small movements can
still follow the factor the code should not hold: on the shipped digit model the
six such dimensions of z1 alone let a linear probe read the digit 31 % of the
time (chance 11 %) and an MLP 46 %.

Each dimension's information is estimated as a Gaussian channel's,
0.5 * ln(1 + Var_x[mu(x)] / E_x[sigma^2(x)]) nats (the "active units" measure
of VAE practice, in nats). A dimension below the threshold is pruned in the
encoder's last affine layer: its mean and log-variance rows become zero, so the
code's mean is exactly the prior's 0 and its posterior exactly the prior. No
label enters; the exported ONNX files stay self-contained; the evaluation of the
exported model measures what pruning cost (swap accuracy, reconstruction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainer.config import TrainConfig
from trainer.networks import TwoCodeVAE

PRUNING_IMAGES = 5000  # training images each dimension's information is measured on


@dataclass(frozen=True)
class Pruned:
    """Which dimensions of each code were pruned, and every dimension's information (nats)."""

    below_nats: float
    z1: list[int]
    z2: list[int]
    z1_information: list[float]
    z2_information: list[float]

    def as_dict(self) -> dict[str, object]:
        return {
            "below_nats": self.below_nats,
            "z1": self.z1,
            "z2": self.z2,
            "z1_information_nats": [round(v, 4) for v in self.z1_information],
            "z2_information_nats": [round(v, 4) for v in self.z2_information],
        }


def channel_information(mean: Tensor, logvar: Tensor) -> Tensor:
    """Per dimension, 0.5 * ln(1 + Var[mean] / E[exp(logvar)]) over the rows (images)."""
    signal = mean.var(dim=0, unbiased=True)
    noise = logvar.exp().mean(dim=0).clamp_min(1e-12)
    return 0.5 * torch.log1p(signal / noise)


@torch.no_grad()
def dimension_information(model: TwoCodeVAE, images: Tensor, batch: int = 500) -> tuple[Tensor, Tensor]:
    """Each dimension's information in z1 and in z2, over ``images``."""
    model.eval()
    parts = [model.encode(images[i : i + batch]) for i in range(0, len(images), batch)]
    z1 = channel_information(torch.cat([p.z1.mean for p in parts]), torch.cat([p.z1.logvar for p in parts]))
    z2 = channel_information(torch.cat([p.z2.mean for p in parts]), torch.cat([p.z2.logvar for p in parts]))
    return z1, z2


@torch.no_grad()
def zero_dimensions(head: torch.nn.Linear, dims: list[int], code_dim: int) -> None:
    """Make dimensions ``dims`` of a head (mean rows, then log-variance rows) output exactly 0."""
    for d in dims:
        for row in (d, code_dim + d):
            head.weight[row].zero_()
            if head.bias is not None:
                head.bias[row].zero_()


def prune_uninformative(model: TwoCodeVAE, images: Tensor, below_nats: float) -> Pruned:
    """Prune, in place, every dimension of either code that carries less than ``below_nats``."""
    if below_nats < 0:
        raise ValueError(f"below_nats must be >= 0, got {below_nats}")
    info1, info2 = dimension_information(model, images)
    z1 = [int(d) for d in torch.nonzero(info1 < below_nats).flatten()]
    z2 = [int(d) for d in torch.nonzero(info2 < below_nats).flatten()]
    zero_dimensions(model.encoder.head1, z1, model.config.z1_dim)
    zero_dimensions(model.encoder.head2, z2, model.config.z2_dim)
    return Pruned(below_nats, z1, z2, info1.tolist(), info2.tolist())


def prune_trained(model: TwoCodeVAE, config: TrainConfig, data_dir: str | None, below_nats: float) -> Pruned:
    """Prune a trained model measured on its own training images (never on the images it is evaluated on)."""
    from trainer.data import training_pairs

    images = training_pairs(config, data_dir).sample_images(PRUNING_IMAGES)
    return prune_uninformative(model, images, below_nats)
