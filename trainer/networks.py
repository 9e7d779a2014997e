"""The two-code VAE: a convolutional encoder with two Gaussian heads and a decoder.

z1 holds the complementary factors (everything but what the user specified),
z2 the specified ones. The encoder shares one trunk between the two heads; the
decoder reads the concatenation [z1, z2]. Normalisation is per image
(GroupNorm), never per batch, so train and eval mode compute the same
function, which keeps export parity and the MI terms (which re-encode
synthesised images) free of batch effects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

LOGVAR_MIN, LOGVAR_MAX = -20.0, 10.0


@dataclass
class NetworkConfig:
    """Shape of the encoder and decoder."""

    channels: int = 3  # image channels (3 for Color MNIST and faces)
    image_size: int = 32  # square input side; a power of two, at least 8
    z1_dim: int = 16  # complementary code
    z2_dim: int = 16  # specified code
    width: int = 16  # channels of the first conv layer; doubled at each downsampling
    max_width: int = 256  # cap on conv channels, so 64x64 and larger stay small
    hidden: int = 128  # fully connected layer between the trunk and the heads
    norm: bool = True  # GroupNorm after each conv: per-image, so train and eval still agree

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {self.image_size}")
        for name in ("channels", "z1_dim", "z2_dim", "width", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @property
    def levels(self) -> int:
        """Stride-2 stages between the image and the 4x4 feature map."""
        return int(math.log2(self.image_size // 4))

    def level_widths(self) -> list[int]:
        return [min(self.width * 2**i, self.max_width) for i in range(self.levels)]


def _norm(config: NetworkConfig, channels: int) -> nn.Module:
    """GroupNorm with groups of 4 channels, or nothing. Batch statistics are never used, so
    re-encoding synthesised images in the MI terms cannot see other images of the batch."""
    return nn.GroupNorm(max(1, channels // 4), channels) if config.norm else nn.Identity()


@dataclass
class Gaussian:
    """A diagonal Gaussian q(z|x); ``mode()`` is the deterministic code served at inference."""

    mean: Tensor
    logvar: Tensor

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * noise

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) per item, in nats, summed over dimensions."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=1)


@dataclass
class EncoderOutput:
    """Both posteriors of one batch: z1 (complementary) and z2 (specified)."""

    z1: Gaussian
    z2: Gaussian


class Encoder(nn.Module):
    """x -> (q(z1|x), q(z2|x)) through a shared conv trunk."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = config.channels
        for out_ch in config.level_widths():
            layers += [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1), _norm(config, out_ch), nn.SiLU()]
            in_ch = out_ch
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(in_ch * 16, config.hidden), nn.SiLU())
        self.head1 = nn.Linear(config.hidden, 2 * config.z1_dim)
        self.head2 = nn.Linear(config.hidden, 2 * config.z2_dim)

    def forward(self, x: Tensor) -> EncoderOutput:
        h = self.trunk(x)
        mu1, lv1 = self.head1(h).chunk(2, dim=1)
        mu2, lv2 = self.head2(h).chunk(2, dim=1)
        return EncoderOutput(
            z1=Gaussian(mu1, lv1.clamp(LOGVAR_MIN, LOGVAR_MAX)),
            z2=Gaussian(mu2, lv2.clamp(LOGVAR_MIN, LOGVAR_MAX)),
        )


class Decoder(nn.Module):
    """(z1, z2) -> image logits; ``sigmoid`` of them is the image in [0, 1]."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        widths = config.level_widths()[::-1]
        self.top = widths[0]
        self.fc = nn.Sequential(
            nn.Linear(config.z1_dim + config.z2_dim, config.hidden),
            nn.SiLU(),
            nn.Linear(config.hidden, self.top * 16),
            nn.SiLU(),
        )
        layers: list[nn.Module] = []
        for in_ch, out_ch in zip(widths, widths[1:], strict=False):
            layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1), _norm(config, out_ch), nn.SiLU()]
        layers.append(nn.ConvTranspose2d(widths[-1], config.channels, 4, stride=2, padding=1))
        self.up = nn.Sequential(*layers)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        h = self.fc(torch.cat([z1, z2], dim=1))
        return self.up(h.view(-1, self.top, 4, 4))


class TwoCodeVAE(nn.Module):
    """Encoder and decoder together; the objective lives in trainer/objective.py."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, x: Tensor) -> EncoderOutput:
        return self.encoder(x)

    def decode_logits(self, z1: Tensor, z2: Tensor) -> Tensor:
        return self.decoder(z1, z2)

    def decode(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Image in [0, 1] from both codes."""
        return torch.sigmoid(self.decoder(z1, z2))

    @torch.no_grad()
    def swap(self, z1_images: Tensor, z2_images: Tensor) -> Tensor:
        """G(z1(A), z2(B)) with the posterior means: what the service's /swap returns."""
        a, b = self.encode(z1_images), self.encode(z2_images)
        return self.decode(a.z1.mode(), b.z2.mode())
