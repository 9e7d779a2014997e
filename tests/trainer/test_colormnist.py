from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.data.colormnist import ColorMNIST, hsv_to_rgb
from trainer.data.mnist import read_mnist
from trainer.evaluators import estimate_hue, hue_error_degrees


def test_hsv_to_rgb_primary_colours() -> None:
    rgb = hsv_to_rgb(np.array([0.0, 1 / 3, 2 / 3, 1 / 6]))
    np.testing.assert_allclose(rgb, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], atol=1e-9)


def test_render_is_grey_times_colour_padded_to_32(tiny_mnist: Path) -> None:
    split = read_mnist(tiny_mnist, "train")
    ds = ColorMNIST(split, seed=3, specified="digit")
    img = ds.render(np.array([5]), np.array([0.0]))  # pure red
    assert img.shape == (1, 3, 32, 32)
    grey = torch.from_numpy(split.images[5]).float() / 255
    torch.testing.assert_close(img[0, 0, 2:30, 2:30], grey)
    assert img[0, 1:].abs().max() == 0 and img[0, :, :2].abs().max() == 0


def test_same_seed_gives_same_colours_and_batches(tiny_mnist: Path) -> None:
    split = read_mnist(tiny_mnist, "train")
    a, b = ColorMNIST(split, 7, "digit"), ColorMNIST(split, 7, "digit")
    np.testing.assert_array_equal(a.hues, b.hues)
    batch_a, batch_b = next(a.batches(2, 16)), next(b.batches(2, 16))
    torch.testing.assert_close(batch_a.x, batch_b.x)
    torch.testing.assert_close(batch_a.partner, batch_b.partner)
    assert not np.array_equal(ColorMNIST(split, 8, "digit").hues, a.hues)


def test_skip_resumes_the_same_epoch_order(tiny_mnist: Path) -> None:
    ds = ColorMNIST(read_mnist(tiny_mnist, "train"), 1, "digit")
    full = list(ds.batches(0, 16))
    resumed = list(ds.batches(0, 16, skip=3))
    assert len(resumed) == len(full) - 3
    torch.testing.assert_close(resumed[0].x, full[3].x)


def test_digit_partners_share_digit_and_differ_in_image_and_colour(tiny_mnist: Path) -> None:
    ds = ColorMNIST(read_mnist(tiny_mnist, "train"), 0, "digit")
    for batch in ds.batches(0, 50):
        assert torch.equal(batch.digit, batch.partner_digit)
        assert (batch.hue != batch.partner_hue).all()
        assert all(not torch.equal(x, p) for x, p in zip(batch.x, batch.partner, strict=True))


def test_colour_partners_share_hue_and_differ_in_digit(tiny_mnist: Path) -> None:
    ds = ColorMNIST(read_mnist(tiny_mnist, "train"), 0, "colour")
    for batch in ds.batches(0, 50):
        torch.testing.assert_close(batch.hue, batch.partner_hue)
        assert (batch.digit != batch.partner_digit).all()
        err = hue_error_degrees(estimate_hue(batch.partner.numpy()), batch.hue.numpy())
        assert err.max() < 1.0  # the partner is really painted with the anchor's colour


def test_unknown_specified_factor_is_rejected(tiny_mnist: Path) -> None:
    with pytest.raises(ValueError, match="digit' or 'colour"):
        ColorMNIST(read_mnist(tiny_mnist, "train"), 0, "size")


def test_examples_take_the_image_the_chooser_picks_among_each_digits_candidates(tiny_mnist: Path) -> None:
    data = ColorMNIST(read_mnist(tiny_mnist, "test"), seed=0, specified="digit")
    first = data.examples(3)
    last = data.examples(3, lambda images, digit: len(images) - 1)  # always the last candidate
    for a, b in zip(first, last, strict=True):
        assert a.factors["digit"] == b.factors["digit"]
        candidates = data._by_class[a.factors["digit"]][:50]
        assert a.factors["index"] == candidates[0] and b.factors["index"] == candidates[-1]


def test_shipped_style_examples_are_digits_the_judge_reads_clearly(real_mnist: Path) -> None:
    """The exporter's choice on real MNIST: every example the judge's pick with a wide margin."""
    from trainer.evaluators import load_digit_classifier
    from trainer.export import JUDGE, clearest_digit

    root = Path(__file__).resolve().parents[2]
    pick = clearest_digit(root / JUDGE)
    assert pick is not None
    judge = load_digit_classifier(root / JUDGE)
    data = ColorMNIST(read_mnist(real_mnist, "test"), seed=0, specified="digit")
    for example in data.examples(8, pick):
        with torch.no_grad():
            probabilities = torch.softmax(judge(example.image[None]), dim=1)[0]
        assert float(probabilities[example.factors["digit"]]) > 0.99
