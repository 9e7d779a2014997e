from __future__ import annotations

import math
from dataclasses import fields

import pytest
import torch

from trainer.networks import Gaussian, NetworkConfig, TwoCodeVAE
from trainer.objective import (
    LossTerms,
    ObjectiveConfig,
    beta_schedule,
    kl_weights,
    mi_bound_loss,
    objective,
    reconstruction_nll,
)

TINY = NetworkConfig(channels=3, image_size=8, z1_dim=3, z2_dim=2, width=4, hidden=8)


def _batch(seed: int = 0) -> tuple[TwoCodeVAE, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = TwoCodeVAE(TINY)
    return model, torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)


def _grad_norms(model: TwoCodeVAE, loss: torch.Tensor) -> dict[str, float]:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    parts = {
        "trunk": model.encoder.trunk,
        "head1": model.encoder.head1,
        "head2": model.encoder.head2,
        "decoder": model.decoder,
    }
    return {
        name: sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)
        for name, module in parts.items()
    }


def test_every_term_is_finite_and_named() -> None:
    model, x, p = _batch()
    terms = objective(model, x, p, ObjectiveConfig(), step=0, generator=torch.Generator().manual_seed(0))
    values = terms.as_floats()
    assert set(values) == {
        "total",
        "rec",
        "swap",
        "kl1",
        "kl2",
        "mi1",
        "mi2",
        "adv",
        "between1",
        "pair2",
        "critic1",
        "hsic1",
    }
    assert all(math.isfinite(v) for v in values.values())
    assert values["mi1"] > 0 and values["mi2"] > 0


def test_total_is_the_weighted_sum_of_terms() -> None:
    model, x, p = _batch()
    cfg = ObjectiveConfig(l_self=0.5, l_swap=2.0, b1=3.0, b2=0.25, l_mi1=1.5, l_mi2=0.5, b1_start=-1, b2_start=-1)
    t = objective(model, x, p, cfg, step=10, generator=torch.Generator().manual_seed(1)).as_floats()
    expected = 0.5 * t["rec"] + 2.0 * t["swap"] + 3.0 * t["kl1"] + 0.25 * t["kl2"] + 1.5 * t["mi1"] + 0.5 * t["mi2"]
    assert t["total"] == pytest.approx(expected, rel=1e-5)


def test_kl1_reaches_head1_and_trunk_only() -> None:
    model, x, p = _batch()
    terms = objective(model, x, p, ObjectiveConfig(), step=0)
    grads = _grad_norms(model, terms.kl1)
    assert grads["head1"] > 0 and grads["trunk"] > 0
    assert grads["head2"] == 0 and grads["decoder"] == 0


def test_swap_reaches_both_heads_and_the_decoder() -> None:
    model, x, p = _batch()
    grads = _grad_norms(model, objective(model, x, p, ObjectiveConfig(), step=0).swap)
    assert all(v > 0 for v in grads.values())


def test_mi_terms_with_decoder_updates_leave_the_encoder_alone() -> None:
    model, x, p = _batch()
    cfg = ObjectiveConfig(mi_updates="decoder")
    terms = objective(model, x, p, cfg, step=0, generator=torch.Generator().manual_seed(0))
    grads = _grad_norms(model, terms.mi1 + terms.mi2)
    assert grads["decoder"] > 0
    assert grads["trunk"] == 0 and grads["head1"] == 0 and grads["head2"] == 0


def test_mi_terms_with_both_updates_reach_the_encoder() -> None:
    model, x, p = _batch()
    cfg = ObjectiveConfig(mi_updates="both")
    terms = objective(model, x, p, cfg, step=0, generator=torch.Generator().manual_seed(0))
    grads = _grad_norms(model, terms.mi1 + terms.mi2)
    assert grads["decoder"] > 0 and grads["head1"] > 0 and grads["head2"] > 0


def test_mi_terms_are_off_before_their_start_step() -> None:
    model, x, p = _batch()
    cfg = ObjectiveConfig(mi_start_step=100)
    before = objective(model, x, p, cfg, step=99)
    after = objective(model, x, p, cfg, step=100)
    assert float(before.mi1) == 0 and float(before.mi2) == 0
    assert float(after.mi1) > 0


def test_bernoulli_and_gaussian_likelihoods_prefer_the_target() -> None:
    target = torch.tensor([[[[0.0, 1.0]]]])
    good, bad = torch.tensor([[[[-8.0, 8.0]]]]), torch.tensor([[[[8.0, -8.0]]]])
    for likelihood in ("bernoulli", "gaussian"):
        assert reconstruction_nll(good, target, likelihood, 0.1) < reconstruction_nll(bad, target, likelihood, 0.1)


def test_mi_bound_loss_is_zero_at_the_target_with_fixed_variance() -> None:
    z = torch.randn(5, 3)
    assert float(mi_bound_loss(Gaussian(z, torch.zeros_like(z)), z, "fixed", None).sum()) == 0.0
    learned = mi_bound_loss(Gaussian(z + 1, torch.zeros_like(z)), z, "learned", None)
    assert torch.allclose(learned, torch.full((5,), 1.5))


def test_beta_schedule_moves_linearly_from_start_to_final() -> None:
    assert beta_schedule(1.0, 21.0, 100, 0) == 1.0
    assert beta_schedule(1.0, 21.0, 100, 50) == 11.0
    assert beta_schedule(1.0, 21.0, 100, 500) == 21.0
    assert beta_schedule(-1.0, 20.0, 100, 0) == 20.0  # no start value: no schedule
    assert beta_schedule(1.0, 20.0, 0, 0) == 20.0


def test_kl_weights_follow_the_default_schedule() -> None:
    cfg = ObjectiveConfig()
    assert kl_weights(cfg, 0) == (1.0, 1.0)
    assert kl_weights(cfg, cfg.kl_schedule_steps) == pytest.approx((cfg.b1, cfg.b2))
    assert kl_weights(ObjectiveConfig(b1_start=-1, b2_start=-1), 0) == (cfg.b1, cfg.b2)


def test_negative_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="b1"):
        ObjectiveConfig(b1=-1.0)


def test_loss_terms_as_floats_detaches() -> None:
    t = torch.ones((), requires_grad=True) * 2
    terms = LossTerms(*(t for _ in fields(LossTerms)))
    assert terms.as_floats()["total"] == 2.0
