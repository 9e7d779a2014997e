from __future__ import annotations

import torch

from trainer.adversary import LeakageAdversary, adversary_loss, grad_reverse
from trainer.networks import NetworkConfig, TwoCodeVAE
from trainer.objective import ObjectiveConfig, objective


def test_gradient_reversal_is_identity_forward_and_negates_backward() -> None:
    x = torch.randn(5, requires_grad=True)
    y = grad_reverse(x)
    assert torch.equal(y, x)
    (y * torch.arange(5.0)).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, -torch.arange(5.0))


def test_adversary_learns_while_its_input_is_pushed_the_other_way() -> None:
    torch.manual_seed(0)
    adversary = LeakageAdversary(z1_dim=4, classes=3)
    z1 = torch.randn(8, 4, requires_grad=True)
    classes = torch.randint(0, 3, (8,))
    loss = adversary_loss(adversary, z1, classes)
    loss.backward()
    assert z1.grad is not None
    # Without the reversal, z1's gradient would be exactly the opposite.
    z1_plain = z1.detach().clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(adversary(z1_plain), classes).backward()
    assert z1_plain.grad is not None
    assert torch.allclose(z1.grad, -z1_plain.grad)


def test_objective_adds_the_adversary_term_only_when_weighted() -> None:
    torch.manual_seed(0)
    model = TwoCodeVAE(NetworkConfig(image_size=8, z1_dim=3, z2_dim=2, width=4, hidden=8))
    adversary = LeakageAdversary(3, 10)
    x, partner = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    classes = torch.randint(0, 10, (8,))
    off = objective(model, x, partner, ObjectiveConfig(), 0, None, adversary, classes)
    assert float(off.adv) == 0.0
    on = objective(model, x, partner, ObjectiveConfig(l_adv=2.0), 0, None, adversary, classes)
    assert float(on.adv.detach()) > 0.5  # about log(10) for an untrained adversary
    on.total.backward()
    assert all(p.grad is not None for p in adversary.parameters())
    assert model.encoder.head1.weight.grad is not None
