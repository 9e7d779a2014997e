"""Label-free leakage terms: what the pairs alone say about which factor a code holds.

A pair (x, x+) shares only the specified factor. So, over many pairs,

- the cross-covariance Cov(mu1(x), mu1(x+)) is the *between-group* covariance of
  mu1: zero exactly when every group (every digit, every hue) has the same mean
  z1, which is when no linear probe reads the group from z1 better than chance;
- mu2(x) - mu2(x+) is what z2 holds that the pair does not share: zero exactly
  when z2 holds the shared factor alone.

No labels enter either term, so they work for any grouping (a digit, a hue, a
folder of a user's images).

A per-batch estimate of the between-group covariance sits at a noise floor of
about d^2/n (16 x 16 entries from 64 pairs), where a penalty only chases noise.
``PairMoments`` pools the estimate over steps (an exponential moving average,
bias-corrected), and ``between_group_penalty`` follows the gradient of the
pooled penalty through the current batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.adversary import grad_reverse


class PairMoments(nn.Module):
    """Pooled moments of a code over pairs: mean, total covariance, symmetric pair cross-covariance.

    Buffers, so they travel with the module (checkpoints, devices); updated
    without gradient by ``between_group_penalty``.
    """

    mean: Tensor
    cov: Tensor
    cross: Tensor
    weight: Tensor

    def __init__(self, dim: int, momentum: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("cov", torch.zeros(dim, dim))
        self.register_buffer("cross", torch.zeros(dim, dim))
        self.register_buffer("weight", torch.zeros(()))  # 1 - momentum^t: corrects the average's start

    @torch.no_grad()
    def update(self, mean: Tensor, cov: Tensor, cross: Tensor) -> None:
        m = self.momentum
        self.mean.mul_(m).add_(mean, alpha=1 - m)
        self.cov.mul_(m).add_(cov, alpha=1 - m)
        self.cross.mul_(m).add_(cross, alpha=1 - m)
        self.weight.mul_(m).add_(1 - m)

    def pooled(self) -> tuple[Tensor, Tensor, Tensor]:
        """Bias-corrected (mean, total covariance, pair cross-covariance)."""
        w = self.weight.clamp_min(1e-12)
        return self.mean / w, self.cov / w, self.cross / w


# Added to each dimension's variance before dividing by it: a dimension far below the prior's unit
# scale carries next to nothing, and dividing by its near-zero variance made the penalty's gradient
# explode and both codes collapse at the start of training (measured: KL1 0.97 nats at step 50
# against 6.4 without the term).
VARIANCE_FLOOR = 1e-2


def pair_cross_covariance(a: Tensor, b: Tensor, centre: Tensor) -> Tensor:
    """Symmetric cross-covariance of the pair halves a[i], b[i] (both n x d) about ``centre``."""
    da, db = a - centre, b - centre
    return (da.T @ db + db.T @ da) / (2 * a.shape[0])


def between_group_penalty(
    a: Tensor,
    b: Tensor,
    moments: PairMoments,
    floor: float = VARIANCE_FLOOR,
    whiten: bool = False,
    form: str = "frobenius",
) -> Tensor:
    """||R||_F^2 of the pooled between-group correlation R of a code, from pairs (a[i], b[i]) alone.

    R = W C W, with C the pooled pair cross-covariance and W the inverse square root of
    the pooled covariance: of its diagonal (per dimension), or of the whole matrix
    (``whiten``: what a linear probe sees, small directions included), ``floor`` added
    to the variances either way. The value is the pooled penalty; its gradient is the
    pooled penalty's direction, 2 <R_pooled, dR_batch>, carried by this batch (a
    per-batch penalty would follow its own noise). ``form="trace"`` penalises tr(R)
    instead (see below).
    """
    both = torch.cat([a, b])
    batch_mean = both.mean(dim=0).detach()
    centred = (both - batch_mean).detach()
    cross = pair_cross_covariance(a, b, batch_mean)
    moments.update(batch_mean, centred.T @ centred / len(both), cross.detach())
    _, cov, pooled_cross = moments.pooled()
    eye = torch.eye(cov.shape[0], device=cov.device, dtype=cov.dtype)
    if whiten:
        values, vectors = torch.linalg.eigh(cov + floor * eye)
        w = vectors @ torch.diag(values.clamp_min(floor).rsqrt()) @ vectors.T
    else:
        w = torch.diag(torch.rsqrt(torch.diagonal(cov) + floor))
    pooled_r = w @ pooled_cross @ w
    batch_r = w @ cross @ w
    if form == "trace":
        # tr(R): the share of the code's variance that group means explain, summed over directions. Linear
        # in R, so many small shares (what a linear probe adds up) weigh as much as one large one, where
        # the squared norm makes a 5 % share count 0.25 %; its gradient needs no pooling (unbiased per batch).
        batch_trace = torch.diagonal(batch_r).sum()
        return batch_trace - batch_trace.detach() + torch.diagonal(pooled_r).sum()
    surrogate = 2.0 * (pooled_r * batch_r).sum()
    return surrogate - surrogate.detach() + pooled_r.pow(2).sum()


def pair_consistency(a: Tensor, b: Tensor, floor: float = VARIANCE_FLOOR) -> Tensor:
    """What a code holds that a pair does not share: sum over dims of (a - b)^2 / Var, per pair.

    Divided by the batch variance of each dimension (held fixed, plus a floor), so a
    code cannot satisfy it by shrinking; zero exactly when both halves of every
    pair have the same code.
    """
    scale = torch.cat([a, b]).var(dim=0).detach() + floor
    return ((a - b).pow(2) / scale).sum(dim=1).mean()


class PairCritic(nn.Module):
    """Tells a pair's two z1 codes (mu1(x), mu1(x+)) from two codes of unrelated images.

    Only the shared factor can make a pair's z1 codes recognisably alike, so a
    critic that does better than chance has found the specified factor in z1,
    by any function of it, not only a linear one (the between-group penalty's
    blind spot: an MLP on the means read 73-84 % of digits where a linear probe
    read 21 %). Codes are standardised per dimension first (BatchNorm without
    affine parameters), so a factor hidden in a direction of tiny variance is
    as visible to the critic as to a probe that standardises its inputs. The
    critic is symmetric in the two codes.
    """

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.standardise = nn.BatchNorm1d(dim, affine=False)
        self.net = nn.Sequential(
            nn.Linear(2 * dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Logits that (a[i], b[i]) is a pair, one per row."""
        both = self.standardise(torch.cat([a, b]))
        sa, sb = both[: len(a)], both[len(a) :]
        out: Tensor = self.net(torch.cat([sa, sb], dim=1)) + self.net(torch.cat([sb, sa], dim=1))
        return out.squeeze(1)


def pair_critic_loss(critic: PairCritic, a: Tensor, b: Tensor) -> Tensor:
    """The critic's cross-entropy on true pairs (a[i], b[i]) against mismatched ones (a[i], b[i+1]),
    behind a gradient reversal: one backward pass trains the critic to tell them apart and the
    encoder to make them alike. Mismatches are a rotation of the batch (no random numbers drawn), so
    about one in ten is in fact a same-group pair, which only caps how sure the critic can be.
    """
    ra, rb = grad_reverse(a), grad_reverse(b)
    true = critic(ra, rb)
    false = critic(ra, torch.roll(rb, shifts=1, dims=0))
    ones, zeros = torch.ones_like(true), torch.zeros_like(false)
    return 0.5 * (
        nn.functional.binary_cross_entropy_with_logits(true, ones)
        + nn.functional.binary_cross_entropy_with_logits(false, zeros)
    )


# Bandwidths of the kernel, as multiples of the median squared distance between codes: one scale
# sees only what moves codes by about their typical spread; a digit held in one dimension of
# sixteen moves them far less, and the narrow scale sees it.
HSIC_SCALES = (0.25, 1.0, 4.0)


def _gaussian_gram(sq: Tensor, median_sq: Tensor) -> Tensor:
    """Mean over HSIC_SCALES of exp(-sq / (s * median_sq)), for squared distances ``sq``."""
    return torch.stack([torch.exp(-sq / (s * median_sq)) for s in HSIC_SCALES]).mean(dim=0)


def unbiased_hsic(k: Tensor, l: Tensor) -> Tensor:  # noqa: E741 (the usual names of the two Gram matrices)
    """The unbiased HSIC estimator of two n x n Gram matrices (n >= 4): zero in expectation
    for independent samples, where the usual biased estimator sits at a positive floor of
    order 1/n that a penalty would chase."""
    n = k.shape[0]
    eye = torch.eye(n, dtype=k.dtype, device=k.device)
    kt, lt = k * (1 - eye), l * (1 - eye)
    ones_k, ones_l = kt.sum(dim=1), lt.sum(dim=1)
    value = (kt * lt).sum() + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2)) - 2.0 * (ones_k @ ones_l) / (n - 2)
    return value / (n * (n - 3))


def pair_hsic(a: Tensor, b: Tensor, floor: float = VARIANCE_FLOOR) -> Tensor:
    """Kernel dependence between the halves of pairs (a[i], b[i]): normalised HSIC, in [0, 1].

    Two images of a pair share only the specified factor, so any dependence between
    their z1 codes, linear or not, is that factor in z1. Where the pooled
    between-group penalty sees only group *means* (a linear probe's view), a
    Gaussian kernel sees any function of the codes (an MLP probe's view), and,
    unlike the pair critic, there is nothing to evade: the statistic is computed
    afresh from each batch. Codes are standardised per dimension by the batch's
    variance plus ``floor`` (held fixed, so shrinking a code does not lower it),
    the bandwidths follow the median distance (held fixed, likewise), and the
    value is divided by the halves' own HSIC (held fixed) so that 1 means the
    halves are as dependent as a code is on itself.
    """
    n = a.shape[0]
    if n < 4:
        raise ValueError(f"pair_hsic needs at least 4 pairs, got {n}")
    both = torch.cat([a, b])
    standardised = both * (both.var(dim=0).detach() + floor).rsqrt()
    sq = torch.cdist(standardised, standardised).pow(2)  # both halves at once; their blocks below
    with torch.no_grad():
        positive = sq[sq > 0]
        median_sq = positive.median().clamp_min(1e-12) if positive.numel() else sq.new_ones(())
    ka, kb = _gaussian_gram(sq[:n, :n], median_sq), _gaussian_gram(sq[n:, n:], median_sq)
    with torch.no_grad():
        norm = (unbiased_hsic(ka, ka).clamp_min(1e-12) * unbiased_hsic(kb, kb).clamp_min(1e-12)).sqrt()
    return unbiased_hsic(ka, kb) / norm
