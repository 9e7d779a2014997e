"""The objective of method.md, as pure functions of tensors plus one assembler.

    L = l_self * L_rec + b1 * KL1 + b2 * KL2 + l_swap * L_swap + l1 * L_mi1 + l2 * L_mi2
        [+ l_adv * L_adv, the optional leakage adversary]
        [+ l_between1 * L_between1 + l_pair2 * L_pair2 + l_critic1 * L_critic1 + l_hsic1 * L_hsic1,
           the label-free leakage terms (trainer/leakage.py)]

Every term is computed by its own function, per image (summed over pixels or
dimensions) and averaged over the batch, and returned by name so the training
log and the ablation can show each one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from trainer.adversary import LeakageAdversary, adversary_loss
from trainer.leakage import (
    PairCritic,
    PairMoments,
    between_group_penalty,
    pair_consistency,
    pair_critic_loss,
    pair_hsic,
)
from trainer.networks import EncoderOutput, Gaussian, TwoCodeVAE

Likelihood = Literal["bernoulli", "gaussian"]


@dataclass
class ObjectiveConfig:
    """Weights and switches of every term; defaults measured in docs/tuning.md."""

    likelihood: Likelihood = "bernoulli"  # -log p(x|z): BCE, or MSE / (2 sigma^2)
    gaussian_sigma: float = 0.1  # pixel noise scale of the Gaussian likelihood
    l_self: float = 1.0  # self-reconstruction x <- (z1(x), z2(x))
    l_swap: float = 2.0  # swap reconstruction x <- (z1(x), z2(x+)): outweighs self-rec, so z2 drops what x+ lacks
    b1: float = 20.0  # KL weight on z1: a tight bottleneck so z1 drops what z2 provides
    b2: float = 0.1  # KL weight on z2: cheap, so the shared factor settles there
    b1_start: float = 1.0  # b1 and b2 move linearly from their start values (-1: no schedule)
    b2_start: float = 1.0  # to b1 and b2 over kl_schedule_steps, so z1 learns before it is squeezed
    kl_schedule_steps: int = 2800  # three epochs of Color MNIST at batch 64
    l_mi1: float = 1.0  # MI bound on z1 in synthesis: ||mu1(G(z1, z2)) - z1||^2
    l_mi2: float = 1.0  # MI bound on z2 in synthesis: ||mu2(G(z1, z2)) - z2||^2
    mi_start_step: int = 0  # MI terms are off before this step
    mi_updates: Literal["decoder", "both"] = "decoder"  # networks the MI gradients reach
    mi_variance: Literal["fixed", "learned"] = "fixed"  # r(z|x~): unit variance or predicted
    mi_z2_source: Literal["batch", "prior"] = "batch"  # z2 of synthesis: a batch code, or N(0, I)
    mi_scale_free: bool = True  # divide L_mi2 per dim by the batch variance of the z2 targets
    l_adv: float = 0.0  # optional leakage adversary on z1 (trainer/adversary.py); 0 = off
    l_between1: float = 0.0  # pooled between-group correlation of mu1 over pairs (trainer/leakage.py); 0 = off
    between_momentum: float = 0.99  # how long the pooled estimate remembers (about 1 / (1 - m) steps)
    l_pair2: float = 0.0  # z2 holds only what pairs share: variance-scaled ||mu2(x) - mu2(x+)||^2; 0 = off
    leakage_start_step: int = 0  # the two terms above are off before this step (let the codes form first)
    leakage_floor: float = 1e-2  # added to the variances the two terms divide by (too small early: collapse)
    between_whiten: bool = False  # whiten mu1 by its full pooled covariance (what a linear probe sees)
    between_form: Literal["frobenius", "trace"] = "frobenius"  # squared norm of R, or its trace (linear)
    l_critic1: float = 0.0  # pair critic on z1 behind gradient reversal (any function of z1); 0 = off
    l_hsic1: float = 0.0  # kernel dependence (normalised HSIC) between a pair's z1 means; 0 = off

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, float) and value < 0 and not name.endswith("_start"):
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.gaussian_sigma <= 0:
            raise ValueError("gaussian_sigma must be > 0")


@dataclass
class LossTerms:
    """Each term of the objective for one batch (scalars), and the weighted total."""

    total: Tensor
    rec: Tensor
    swap: Tensor
    kl1: Tensor
    kl2: Tensor
    mi1: Tensor
    mi2: Tensor
    adv: Tensor
    between1: Tensor
    pair2: Tensor
    critic1: Tensor
    hsic1: Tensor

    def as_floats(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name).detach()) for f in fields(self)}


def reconstruction_nll(logits: Tensor, target: Tensor, likelihood: Likelihood, sigma: float) -> Tensor:
    """-log p(x | z) per image, summed over pixels: Bernoulli (BCE) or Gaussian (MSE).

    The Gaussian form drops the constant log-normaliser, so it is
    ``sum((x - sigmoid(logits))^2) / (2 sigma^2)``.
    """
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - target).pow(2) / (2.0 * sigma**2)
    return per_pixel.flatten(1).sum(dim=1)


def kl_divergence(posterior: Gaussian) -> Tensor:
    """KL(q(z|x) || N(0, I)) per image."""
    return posterior.kl()


def mi_bound_loss(
    predicted: Gaussian, target: Tensor, variance: Literal["fixed", "learned"], scale: Tensor | None
) -> Tensor:
    """Negative Barber-Agakov bound (up to constants) per image: -log r(z | x~).

    With a fixed unit variance it is ``||mu - z||^2`` (halved); with the
    encoder's predicted variance it is the full Gaussian negative log-likelihood.
    ``scale`` (per dimension) divides the squared error, making the term
    independent of the code's scale when that scale is left free.
    """
    sq = (predicted.mean - target).pow(2)
    if scale is not None:
        sq = sq / scale
    if variance == "learned":
        return 0.5 * (predicted.logvar + sq * torch.exp(-predicted.logvar)).sum(dim=1)
    return 0.5 * sq.sum(dim=1)


def beta_schedule(start: float, final: float, steps: int, step: int) -> float:
    """Linear move from ``start`` to ``final`` over ``steps``; a negative start means no schedule."""
    if steps <= 0 or start < 0:
        return final
    return start + (final - start) * min(1.0, step / steps)


def kl_weights(config: ObjectiveConfig, step: int) -> tuple[float, float]:
    """(b1, b2) at ``step``."""
    return (
        beta_schedule(config.b1_start, config.b1, config.kl_schedule_steps, step),
        beta_schedule(config.b2_start, config.b2, config.kl_schedule_steps, step),
    )


def _encode_for_mi(model: TwoCodeVAE, images: Tensor, updates: str) -> EncoderOutput:
    """Encode synthesised images; with ``updates='decoder'`` the encoder's weights get no gradient.

    Gradients still flow through the encoder into the images and so into the
    decoder. Freezing the encoder here stops it learning to read codes from
    invisible traces in synthesised images (the trap method.md reports).
    """
    if updates == "both":
        return model.encoder(images)
    frozen = {name: p.detach() for name, p in model.encoder.named_parameters()}
    out: EncoderOutput = functional_call(model.encoder, frozen, (images,))
    return out


def synthesis_mi_terms(
    model: TwoCodeVAE,
    codes: EncoderOutput,
    config: ObjectiveConfig,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """L_mi1 and L_mi2: synthesise x~ = G(z1 ~ N(0, I), z2) and ask the encoder to recover both."""
    batch = codes.z1.mean.shape[0]
    z1 = torch.randn(codes.z1.mean.shape, generator=generator, device=codes.z1.mean.device)
    if config.mi_z2_source == "batch":
        z2 = codes.z2.mean.detach().roll(1, dims=0)  # another image's code: the aggregate posterior
    else:
        z2 = torch.randn(codes.z2.mean.shape, generator=generator, device=codes.z2.mean.device)
    synthesised = model.decode(z1, z2)
    again = _encode_for_mi(model, synthesised, config.mi_updates)
    scale = None
    if config.mi_scale_free and batch > 1:
        scale = z2.var(dim=0, keepdim=True).clamp_min(1e-6)
    mi1 = mi_bound_loss(again.z1, z1, config.mi_variance, None).mean()
    mi2 = mi_bound_loss(again.z2, z2, config.mi_variance, scale).mean()
    return mi1, mi2


def objective(
    model: TwoCodeVAE,
    x: Tensor,
    partner: Tensor,
    config: ObjectiveConfig,
    step: int,
    generator: torch.Generator | None = None,
    adversary: LeakageAdversary | None = None,
    classes: Tensor | None = None,
    moments: PairMoments | None = None,
    critic: PairCritic | None = None,
) -> LossTerms:
    """All terms for a batch of pairs (x[i], partner[i]) that share the specified factor.

    Both halves of each pair are anchors: x is redrawn from (z1(x), z2(x)) and
    from (z1(x), z2(partner)), and the partner symmetrically. ``classes`` (the
    specified factor's class of x then of partner) feeds the adversary, when
    there is one and ``l_adv > 0``; ``moments`` pools the between-group estimate
    over steps when ``l_between1 > 0``; ``critic`` is the pair critic on z1 when
    ``l_critic1 > 0``.
    """
    images = torch.cat([x, partner])
    codes = model.encode(images)
    z1, z2 = codes.z1.sample(generator), codes.z2.sample(generator)
    half = x.shape[0]
    z2_swapped = torch.cat([z2[half:], z2[:half]])
    # One decoder call for self and swap reconstructions: twice the batch, one kernel launch.
    logits = model.decode_logits(torch.cat([z1, z1]), torch.cat([z2, z2_swapped]))
    nll = reconstruction_nll(logits, torch.cat([images, images]), config.likelihood, config.gaussian_sigma)
    rec, swap = nll[: 2 * half].mean(), nll[2 * half :].mean()
    kl1, kl2 = kl_divergence(codes.z1).mean(), kl_divergence(codes.z2).mean()
    zero = torch.zeros((), device=x.device)
    mi1, mi2 = zero, zero
    mi_on = step >= config.mi_start_step and (config.l_mi1 > 0 or config.l_mi2 > 0)
    if mi_on:
        mi1, mi2 = synthesis_mi_terms(model, codes, config, generator)
    adv = zero
    if config.l_adv > 0 and adversary is not None and classes is not None:
        adv = adversary_loss(adversary, codes.z1.mean, classes)
    between1 = pair2 = zero
    leakage_on = step >= config.leakage_start_step
    if leakage_on and config.l_between1 > 0 and moments is not None:
        between1 = between_group_penalty(
            codes.z1.mean[:half],
            codes.z1.mean[half:],
            moments,
            config.leakage_floor,
            config.between_whiten,
            config.between_form,
        )
    if leakage_on and config.l_pair2 > 0:
        pair2 = pair_consistency(codes.z2.mean[:half], codes.z2.mean[half:], config.leakage_floor)
    critic1 = hsic1 = zero
    if leakage_on and config.l_critic1 > 0 and critic is not None:
        critic1 = pair_critic_loss(critic, codes.z1.mean[:half], codes.z1.mean[half:])
    if leakage_on and config.l_hsic1 > 0:
        hsic1 = pair_hsic(codes.z1.mean[:half], codes.z1.mean[half:], config.leakage_floor)
    b1, b2 = kl_weights(config, step)
    total = (
        config.l_self * rec
        + config.l_swap * swap
        + b1 * kl1
        + b2 * kl2
        + config.l_mi1 * mi1
        + config.l_mi2 * mi2
        + config.l_adv * adv
        + config.l_between1 * between1
        + config.l_pair2 * pair2
        + config.l_critic1 * critic1
        + config.l_hsic1 * hsic1
    )
    return LossTerms(
        total=total,
        rec=rec,
        swap=swap,
        kl1=kl1,
        kl2=kl2,
        mi1=mi1,
        mi2=mi2,
        adv=adv,
        between1=between1,
        pair2=pair2,
        critic1=critic1,
        hsic1=hsic1,
    )
