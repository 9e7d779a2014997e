"""The label-free leakage terms (trainer/leakage.py) on tiny data."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.trainer.helpers import tiny_config
from trainer.leakage import (
    PairCritic,
    PairMoments,
    between_group_penalty,
    pair_consistency,
    pair_critic_loss,
    pair_hsic,
)
from trainer.networks import NetworkConfig, TwoCodeVAE
from trainer.objective import ObjectiveConfig, objective
from trainer.train import start_or_resume

# Eight pairs whose halves are uncorrelated in every dimension: four mutually orthogonal, zero-mean
# columns of a Hadamard matrix, two for each half. No group signal, exactly.
_H2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
_H8 = torch.kron(torch.kron(_H2, _H2), _H2)
A, B = _H8[:, 1:3].contiguous(), _H8[:, 3:5].contiguous()


def test_between_group_penalty_is_zero_without_group_signal_and_positive_when_codes_copy_the_group() -> None:
    assert float(between_group_penalty(A, B, PairMoments(2))) == pytest.approx(0.0, abs=1e-12)
    copied = float(between_group_penalty(A, A.clone(), PairMoments(2)))
    assert copied == pytest.approx(2.0, rel=0.03)  # R = I (up to the variance floor): fully shared


def test_pooling_lowers_the_noise_floor_that_one_batch_sits_at() -> None:
    """Independent halves: per-batch estimates stay near d^2/n; the pooled one falls well below."""
    generator = torch.Generator().manual_seed(0)
    moments, single = PairMoments(8, momentum=0.99), []
    for _ in range(400):
        a, b = torch.randn(32, 8, generator=generator), torch.randn(32, 8, generator=generator)
        pooled = float(between_group_penalty(a, b, moments))
        single.append(float(between_group_penalty(a, b, PairMoments(8, momentum=0.0))))
    assert sum(single) / len(single) > 1.0  # about d^2 / n = 2
    assert pooled < 0.2 * sum(single) / len(single)


def test_the_gradient_follows_the_pooled_estimate_not_the_batch() -> None:
    moments = PairMoments(2, momentum=0.9)
    for _ in range(50):  # a long history of fully shared codes
        between_group_penalty(A, A.clone(), moments)
    a = B.clone().requires_grad_(True)
    value = between_group_penalty(a, A.clone(), moments)  # this batch alone shows no sharing
    value.backward()
    assert float(value) > 1.0 and a.grad is not None and float(a.grad.abs().sum()) > 0


def test_pair_consistency_is_zero_for_equal_codes_and_positive_otherwise() -> None:
    assert float(pair_consistency(A, A.clone())) == 0.0
    assert float(pair_consistency(A, B)) > 0.5
    shrunk = float(pair_consistency(0.5 * A, 0.5 * B))
    assert shrunk == pytest.approx(float(pair_consistency(A, B)), rel=0.05)  # no escape by shrinking the code


TINY = NetworkConfig(channels=3, image_size=8, z1_dim=3, z2_dim=2, width=4, hidden=8)


@pytest.mark.parametrize(
    ("term", "code"), [("l_between1", "head1"), ("l_pair2", "head2"), ("l_critic1", "head1"), ("l_hsic1", "head1")]
)
def test_gradients_reach_the_encoder_of_their_code_and_not_the_decoder(term: str, code: str) -> None:
    torch.manual_seed(0)
    model = TwoCodeVAE(TINY)
    x, partner = torch.rand(6, 3, 8, 8), torch.rand(6, 3, 8, 8)
    only = ObjectiveConfig(l_self=0, l_swap=0, b1=0, b2=0, b1_start=-1, b2_start=-1, l_mi1=0, l_mi2=0)
    config = replace(only, **{term: 1.0})
    critic = PairCritic(TINY.z1_dim)
    terms = objective(model, x, partner, config, step=0, moments=PairMoments(TINY.z1_dim), critic=critic)
    terms.total.backward()
    grads = {
        name: sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)
        for name, module in {
            "trunk": model.encoder.trunk,
            "head1": model.encoder.head1,
            "head2": model.encoder.head2,
            "decoder": model.decoder,
        }.items()
    }
    assert grads[code] > 0 and grads["trunk"] > 0 and grads["decoder"] == 0
    other = "head2" if code == "head1" else "head1"
    assert grads[other] == 0


def test_a_resumed_run_with_the_terms_on_continues_identically(tiny_mnist: Path, tmp_path: Path) -> None:
    """The pooled moments are part of the checkpoint: stop at 5 steps, resume to 12, same as 12 straight."""

    def config(steps: int) -> object:
        base = tiny_config(tiny_mnist, max_steps=steps, log_every=1)
        return replace(base, objective=replace(base.objective, l_between1=5.0, l_pair2=1.0, l_critic1=1.0, l_hsic1=1.0))

    straight = start_or_resume(config(12), tmp_path / "a", resume=False)
    straight.run(show_progress=False)
    start_or_resume(config(5), tmp_path / "b", resume=False).run(show_progress=False)
    resumed = start_or_resume(config(12), tmp_path / "b", resume=True)
    resumed.run(show_progress=False)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    rows = [list(csv.DictReader((tmp_path / r / "log.csv").open())) for r in ("a", "b")]
    assert [r["between1"] for r in rows[0]] == [r["between1"] for r in rows[1]]
    assert [r["critic1"] for r in rows[0]] == [r["critic1"] for r in rows[1]]  # the critic is checkpointed
    assert [r["hsic1"] for r in rows[0]] == [r["hsic1"] for r in rows[1]]
    assert all(float(r["between1"]) > 0 and float(r["pair2"]) > 0 and float(r["critic1"]) > 0 for r in rows[0])
    assert any(float(r["hsic1"]) != 0 for r in rows[0])


def test_whitening_finds_group_signal_hidden_in_a_small_direction() -> None:
    """A tiny-variance dimension the pairs share: the floor hides it from the per-dimension form,
    the whitened form (what a linear probe sees) does not."""
    generator = torch.Generator().manual_seed(0)
    shared = 0.003 * torch.randn(256, generator=generator)  # group signal at a very small scale
    a = torch.stack([torch.randn(256, generator=generator), shared], dim=1)
    b = torch.stack([torch.randn(256, generator=generator), shared], dim=1)
    per_dimension = float(between_group_penalty(a, b, PairMoments(2), floor=1e-2))
    whitened = float(between_group_penalty(a, b, PairMoments(2), floor=1e-8, whiten=True))
    assert per_dimension < 0.01 and whitened > 0.9


def test_the_trace_form_adds_up_small_shares_the_squared_norm_hides() -> None:
    """Eight directions each with 10 % of their variance shared by pairs: tr(R) 0.8, ||R||^2 0.08."""
    generator = torch.Generator().manual_seed(1)
    n, d = 4096, 8
    group = torch.randn(n, d, generator=generator) * (0.1**0.5)
    a = group + torch.randn(n, d, generator=generator) * (0.9**0.5)
    b = group + torch.randn(n, d, generator=generator) * (0.9**0.5)
    trace = float(between_group_penalty(a, b, PairMoments(d), floor=1e-8, whiten=True, form="trace"))
    squared = float(between_group_penalty(a, b, PairMoments(d), floor=1e-8, whiten=True))
    assert 0.65 < trace < 0.95 and squared < 0.15
    assert float(between_group_penalty(A, B, PairMoments(2), form="trace")) == pytest.approx(0.0, abs=1e-6)


def _harmonic_pairs(n: int, generator: torch.Generator, shared: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs from 8 groups at angles k * 45 degrees, the group in two tiny dimensions: a holds the
    angle's first harmonic, b its second. Over the 8 groups the two harmonics are uncorrelated,
    so no linear statistic of the pair sees the group; a function of both codes does."""
    theta = torch.randint(0, 8, (n,), generator=generator).float() * (torch.pi / 4)
    a_group = torch.stack([theta.cos(), theta.sin()], dim=1)
    b_group = torch.stack([(2 * theta).cos(), (2 * theta).sin()], dim=1)
    if not shared:  # b's group drawn independently of a's
        b_group = b_group[torch.randperm(n, generator=generator)]
    a = torch.cat([torch.randn(n, 3, generator=generator), 1e-3 * a_group], dim=1)
    b = torch.cat([torch.randn(n, 3, generator=generator), 1e-3 * b_group], dim=1)
    return a, b


def _held_out_critic_loss(shared: bool) -> float:
    """The critic's loss on fresh pairs after it trained alone, on a new batch each step as in
    training; ln 2 = 0.69 is chance."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    critic = PairCritic(5, hidden=64)
    optimizer = torch.optim.Adam(critic.parameters(), lr=5e-3)
    for _ in range(600):
        optimizer.zero_grad()
        pair_critic_loss(critic, *_harmonic_pairs(256, generator, shared)).backward()
        optimizer.step()
    critic.eval()
    with torch.no_grad():
        return float(pair_critic_loss(critic, *_harmonic_pairs(1024, generator, shared)))


def test_the_critic_finds_a_group_no_linear_pair_statistic_sees() -> None:
    generator = torch.Generator().manual_seed(1)
    a, b = _harmonic_pairs(4096, generator)
    linear = float(between_group_penalty(a, b, PairMoments(5, momentum=0.0), 1e-9, whiten=True, form="trace"))
    assert abs(linear) < 0.2  # against about 2 when both tiny dimensions are shared linearly
    assert float(between_group_penalty(a, a.clone(), PairMoments(5, momentum=0.0), 1e-9, True, "trace")) > 1.5
    # One mismatched pair in eight is in fact a same-group pair, so the best possible loss is about 0.2.
    assert _held_out_critic_loss(shared=True) < 0.45


def test_the_critic_finds_nothing_where_pairs_share_nothing() -> None:
    assert _held_out_critic_loss(shared=False) > 0.6


def test_the_encoder_gets_the_critic_gradient_reversed() -> None:
    """Gradient reversal: the critic descends its loss, the codes ascend it."""
    a = torch.randn(16, 3, requires_grad=True)
    b = (a.detach() + 0.1 * torch.randn(16, 3)).requires_grad_(True)
    critic = PairCritic(3, hidden=8)
    loss = pair_critic_loss(critic, a, b)
    loss.backward()
    reversed_grad = a.grad.clone()  # type: ignore[union-attr]
    a.grad = None
    from trainer.adversary import grad_reverse

    plain = pair_critic_loss(critic, grad_reverse(a), grad_reverse(b))  # reversing twice: the plain gradient
    plain.backward()
    torch.testing.assert_close(reversed_grad, -a.grad)  # type: ignore[operator]


def test_the_critic_learns_at_its_own_rate(tiny_mnist: Path, tmp_path: Path) -> None:
    base = tiny_config(tiny_mnist, max_steps=1)
    config = replace(
        base,
        objective=replace(base.objective, l_critic1=1.0),
        optim=replace(base.optim, critic_lr_scale=5.0),
    )
    trainer = start_or_resume(config, tmp_path / "run", resume=False)
    rates = [group["lr"] for group in trainer.optimizer.param_groups]
    assert rates == [config.optim.lr, 5 * config.optim.lr]
    critic = trainer.objective_module.critic
    assert critic is not None and trainer.optimizer.param_groups[1]["params"] == list(critic.parameters())


def _mean_hsic(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    return sum(float(pair_hsic(a, b, floor=1e-9)) for a, b in pairs) / len(pairs)


def test_pair_hsic_is_one_for_copied_codes_and_zero_on_average_for_unrelated_ones() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(64, 8, generator=generator)
    assert float(pair_hsic(a, a.clone())) == pytest.approx(1.0, abs=1e-5)
    unrelated = [(torch.randn(64, 8, generator=generator), torch.randn(64, 8, generator=generator)) for _ in range(60)]
    assert abs(_mean_hsic(unrelated)) < 0.01  # the unbiased estimator: no floor for a penalty to chase


def test_pair_hsic_sees_a_group_no_linear_pair_statistic_sees_from_batches_of_training_size() -> None:
    """The harmonic toy (the between-group penalty reads ~0 there, see the critic's test above):
    batches of 64 pairs, as in training."""
    generator = torch.Generator().manual_seed(2)
    shared = _mean_hsic([_harmonic_pairs(64, generator) for _ in range(60)])
    unshared = _mean_hsic([_harmonic_pairs(64, generator, shared=False) for _ in range(60)])
    assert shared > 0.04 and abs(unshared) < 0.01


def test_pair_hsic_cannot_be_lowered_by_shrinking_the_code() -> None:
    generator = torch.Generator().manual_seed(3)
    a, b = _harmonic_pairs(64, generator)
    torch.testing.assert_close(
        pair_hsic(0.01 * a, 0.01 * b, floor=0.0), pair_hsic(a, b, floor=0.0), rtol=1e-3, atol=1e-5
    )


def test_pair_hsic_refuses_batches_too_small_for_its_estimator() -> None:
    with pytest.raises(ValueError, match="at least 4 pairs"):
        pair_hsic(torch.randn(3, 2), torch.randn(3, 2))
