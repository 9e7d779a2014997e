"""Pruning code dimensions that carry next to no information (trainer/prune.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from modelrepo import load_manifest
from modelrepo.codec import OnnxCodec
from tests.trainer.helpers import tiny_config
from trainer.export import export_run
from trainer.networks import NetworkConfig, TwoCodeVAE
from trainer.prune import channel_information, dimension_information, prune_uninformative, zero_dimensions
from trainer.train import start_or_resume

TINY = NetworkConfig(channels=3, image_size=8, z1_dim=3, z2_dim=2, width=4, hidden=8)


def test_channel_information_is_a_gaussian_channels() -> None:
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(20000, 2, generator=generator) * torch.tensor([math.sqrt(3.0), 0.0])
    info = channel_information(mean, torch.zeros(20000, 2))
    assert float(info[0]) == pytest.approx(0.5 * math.log(4.0), rel=0.03)  # signal 3, noise 1
    assert float(info[1]) == 0.0  # a mean that never moves carries nothing


def test_pruning_puts_exactly_the_weak_dimensions_at_the_prior_and_leaves_the_rest() -> None:
    torch.manual_seed(0)
    model = TwoCodeVAE(TINY).eval()
    with torch.no_grad():  # dimension 1 of z1: a mean that barely moves, a posterior at the prior
        model.encoder.head1.weight[1].mul_(1e-3)
        model.encoder.head1.weight[TINY.z1_dim + 1].zero_()
        model.encoder.head1.bias[TINY.z1_dim + 1].zero_()
    images = torch.rand(256, 3, 8, 8)
    before = model.encode(images)
    info1, _ = dimension_information(model, images)
    below = float(info1[1]) * 2
    assert below < float(info1[[0, 2]].min())  # the weak dimension is weaker than every other one
    pruned = prune_uninformative(model, images, below)
    after = model.encode(images)
    assert pruned.z1 == [1] and pruned.z2 == []
    assert torch.equal(after.z1.mean[:, 1], torch.zeros(256)) and torch.equal(after.z1.logvar[:, 1], torch.zeros(256))
    torch.testing.assert_close(after.z1.mean[:, [0, 2]], before.z1.mean[:, [0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(after.z2.mean, before.z2.mean, rtol=0, atol=0)


def test_zero_threshold_prunes_nothing_and_a_negative_one_is_refused() -> None:
    model = TwoCodeVAE(TINY)
    assert prune_uninformative(model, torch.rand(16, 3, 8, 8), 0.0).z1 == []
    with pytest.raises(ValueError, match="below_nats"):
        prune_uninformative(model, torch.rand(16, 3, 8, 8), -1.0)


def test_zeroed_rows_cover_mean_and_log_variance() -> None:
    head = torch.nn.Linear(4, 6)
    zero_dimensions(head, [2], code_dim=3)
    out = head(torch.rand(5, 4))
    assert torch.equal(out[:, 2], torch.zeros(5)) and torch.equal(out[:, 5], torch.zeros(5))


def test_export_prunes_records_it_and_the_onnx_encoder_answers_the_prior(tiny_mnist: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    start_or_resume(tiny_config(tiny_mnist, max_steps=3), run, resume=False).run(show_progress=False)
    weights = tmp_path / "weights.pt"
    folder = export_run(  # a threshold no dimension reaches: every one is pruned
        run, name="pruned", models_dir=tmp_path / "models", prune_below=1e9, state_dict_out=weights
    )
    record = load_manifest(folder).config["export"]["pruned"]
    config = load_manifest(folder)
    assert record["z1"] == list(range(config.z1_dim)) and record["z2"] == list(range(config.z2_dim))
    assert len(record["z1_information_nats"]) == config.z1_dim
    posterior = OnnxCodec(folder).posterior(np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32))
    assert not posterior.z1.any() and not posterior.z2.any() and not posterior.z1_logvar.any()
    saved = torch.load(weights, weights_only=True)  # the weights of what was exported: pruned too
    assert not saved["encoder.head1.weight"].any() and not saved["encoder.head2.bias"].any()
