"""The probes must score chance on codes without information and 100 % on codes that copy the label."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.probes import ProbeConfig, chance_accuracy, class_probe, hue_probe, leakage_report

FAST = ProbeConfig(epochs=30, mlp_hidden=32)


def _labels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=n)


@pytest.mark.parametrize("kind", ["linear", "mlp", "ccvae"])
def test_probe_on_noise_scores_chance(kind: str) -> None:
    rng = np.random.default_rng(0)
    train_y, test_y = _labels(2000, 1), _labels(2000, 2)
    accuracy = class_probe(rng.normal(size=(2000, 8)), train_y, rng.normal(size=(2000, 8)), test_y, kind, FAST)
    assert abs(accuracy - 0.1) < 0.04  # 10 classes, uniform: chance is 10 %


@pytest.mark.parametrize("kind", ["linear", "mlp", "ccvae"])
def test_probe_on_a_copy_of_the_label_scores_everything(kind: str) -> None:
    train_y, test_y = _labels(1000, 1), _labels(500, 2)
    one_hot = np.eye(10)
    accuracy = class_probe(one_hot[train_y], train_y, one_hot[test_y], test_y, kind, FAST)
    assert accuracy == 1.0


def test_hue_probe_reads_a_hue_written_as_cos_sin_and_not_from_noise() -> None:
    rng = np.random.default_rng(0)
    train_h, test_h = rng.random(1500), rng.random(500)

    def code(h: np.ndarray) -> np.ndarray:
        return np.stack([np.cos(2 * np.pi * h), np.sin(2 * np.pi * h)], axis=1)

    copied = hue_probe(code(train_h), train_h, code(test_h), test_h, "linear", FAST)
    assert copied["r2"] > 0.98 and copied["angular_error_deg_mean"] < 5
    noise = hue_probe(rng.normal(size=(1500, 6)), train_h, rng.normal(size=(500, 6)), test_h, "mlp", FAST)
    assert noise["r2"] < 0.05 and noise["angular_error_deg_mean"] > 75


def test_chance_is_the_most_common_training_class() -> None:
    assert chance_accuracy(np.array([3, 3, 1]), np.array([3, 1, 1, 1])) == 0.25


def test_leakage_report_separates_the_two_codes() -> None:
    """z2 copies the digit, z1 copies the hue: each probe must see only what its code holds."""
    rng = np.random.default_rng(0)

    def codes(n: int, seed: int) -> dict[str, np.ndarray]:
        r = np.random.default_rng(seed)
        digit, hue = r.integers(0, 10, size=n), r.random(n)
        z1 = np.stack([np.cos(2 * np.pi * hue), np.sin(2 * np.pi * hue), r.normal(size=n)], axis=1)
        z2 = np.eye(10)[digit] + 0.01 * rng.normal(size=(n, 10))
        # The samples: the means plus posterior noise, wide on z1's third dimension.
        noise = np.array([0.01, 0.01, 3.0])
        return {
            "z1": z1,
            "z2": z2,
            "z1_sample": z1 + noise * r.normal(size=z1.shape),
            "z2_sample": z2 + 0.01 * r.normal(size=z2.shape),
            "digit": digit,
            "hue": hue,
        }

    report = leakage_report(codes(1500, 1), codes(600, 2), FAST)
    assert report["digit_from_z2"]["linear"] > 0.99
    assert report["digit_from_z1"]["mlp"] < report["digit_from_z1"]["chance"] + 0.06
    assert report["hue_from_z1"]["linear"]["r2"] > 0.95
    assert report["hue_from_z2"]["mlp"]["r2"] < 0.05
    assert report["digit_from_z2"]["ccvae_sampled"] > 0.99
    assert report["digit_from_z1"]["ccvae_sampled"] < report["digit_from_z1"]["chance"] + 0.06
    assert report["hue_from_z1"]["ccvae_sampled"]["r2"] > 0.9


def test_the_linear_probe_agrees_with_scikit_learns_logistic_regression() -> None:
    """Overlapping Gaussian classes: our L-BFGS probe and scikit-learn's must score the same test codes alike."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    centres = rng.normal(scale=1.2, size=(10, 6))

    def draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        labels = _labels(n, seed)
        return centres[labels] + np.random.default_rng(seed + 10).normal(size=(n, 6)), labels

    (x_train, y_train), (x_test, y_test) = draw(3000, 1), draw(2000, 2)
    ours = class_probe(x_train, y_train, x_test, y_test, "linear", ProbeConfig())
    scaler = StandardScaler().fit(x_train)
    reference = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), y_train)
    theirs = float(reference.score(scaler.transform(x_test), y_test))
    assert 0.3 < theirs < 0.9  # a task with room on both sides, not a trivial one
    assert abs(ours - theirs) < 0.01, (ours, theirs)
