"""Swap metrics of method.md's "What works means", on the real MNIST test split.

For random test pairs (A, B) the swap is G(z1(A), z2(B)). A digit model must
show B's digit in A's colour; a colour model must show A's digit in B's
colour. The judges (trainer/evaluators.py) never saw the VAE. Every figure
comes from the exported ONNX files, i.e. from what the service serves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelrepo import load_manifest
from modelrepo.card import write_card
from modelrepo.codec import OnnxCodec
from trainer.data.colormnist import ColorMNIST
from trainer.data.mnist import read_mnist
from trainer.evaluators import (
    DigitClassifier,
    estimate_hue,
    hue_error_degrees,
    load_digit_classifier,
    predict_digits,
)
from trainer.probes import leakage_report

TEST_HUE_SEED = 20200  # colours of the test split: fixed, and different from any training seed
HUE_TOLERANCE_DEG = 20.0
EncodeFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
DecodeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _batched_encode(encode: EncodeFn, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    parts = [encode(images[i : i + batch]) for i in range(0, len(images), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _batched_decode(decode: DecodeFn, z1: np.ndarray, z2: np.ndarray, batch: int = 500) -> np.ndarray:
    return np.concatenate([decode(z1[i : i + batch], z2[i : i + batch]) for i in range(0, len(z1), batch)])


def _rate(hits: np.ndarray) -> dict[str, Any]:
    """A proportion with its 95 % Wilson interval."""
    n = max(len(hits), 1)
    p = float(np.mean(hits)) if len(hits) else 0.0
    z = 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"value": round(p, 4), "ci95": [round(centre - half, 4), round(centre + half, 4)], "n": int(len(hits))}


def swap_metrics(
    encode: EncodeFn,
    decode: DecodeFn,
    test: ColorMNIST,
    specified: str,
    classifier: DigitClassifier,
    pairs: int,
    seed: int,
) -> dict[str, Any]:
    """Specified accuracy, complementary preservation and reconstruction on ``pairs`` random test pairs."""
    rng = np.random.default_rng(seed)
    n = len(test)
    a = rng.integers(0, n, size=pairs)
    b = (a + 1 + rng.integers(0, n - 1, size=pairs)) % n  # B != A
    images = test.render(np.arange(n), test.hues).numpy()
    z1, z2 = _batched_encode(encode, images)
    swaps = _batched_decode(decode, z1[a], z2[b])
    digit_out = predict_digits(classifier, torch.from_numpy(swaps))
    hue_out = estimate_hue(swaps)
    digit_a, digit_b = test.labels[a], test.labels[b]
    hue_err_a, hue_err_b = hue_error_degrees(hue_out, test.hues[a]), hue_error_degrees(hue_out, test.hues[b])
    differ = digit_a != digit_b
    far_hues = hue_error_degrees(test.hues[a], test.hues[b]) >= 60.0
    strong = differ & far_hues  # both factors differ strongly: a swap cannot pass by coincidence
    recon = _batched_decode(decode, z1, z2)
    mse = float(np.mean((recon - images) ** 2))
    result: dict[str, Any] = {
        "pairs": pairs,
        "reconstruction": {"mse": round(mse, 6), "psnr_db": round(10 * math.log10(1.0 / max(mse, 1e-12)), 2)},
        "digit_of_z1_image": _rate((digit_out == digit_a)[differ]),
        "digit_of_z2_image": _rate((digit_out == digit_b)[differ]),
        "hue_error_deg_to_z1_image": {"median": round(float(np.median(hue_err_a)), 2)},
        "hue_error_deg_to_z2_image": {"median": round(float(np.median(hue_err_b)), 2)},
        "hue_within_20deg_of_z1_image": _rate(hue_err_a[far_hues] <= HUE_TOLERANCE_DEG),
        "hue_within_20deg_of_z2_image": _rate(hue_err_b[far_hues] <= HUE_TOLERANCE_DEG),
    }
    if specified == "digit":
        result["specified_accuracy"] = _rate(digit_out == digit_b)
        result["complementary_preservation"] = _rate(hue_err_a <= HUE_TOLERANCE_DEG)
        result["complementary_hue_error_deg_median"] = round(float(np.median(hue_err_a)), 2)
        result["strong_pairs"] = {
            "specified_accuracy": _rate((digit_out == digit_b)[strong]),
            "complementary_preservation": _rate((hue_err_a <= HUE_TOLERANCE_DEG)[strong]),
        }
    else:
        result["specified_hue_error_deg_median"] = round(float(np.median(hue_err_b)), 2)
        result["specified_accuracy"] = _rate(hue_err_b <= HUE_TOLERANCE_DEG)
        result["complementary_preservation"] = _rate(digit_out == digit_a)
        result["strong_pairs"] = {
            "specified_accuracy": _rate((hue_err_b <= HUE_TOLERANCE_DEG)[strong]),
            "complementary_preservation": _rate((digit_out == digit_a)[strong]),
        }
    return result


PROBE_TRAIN_SEED = TEST_HUE_SEED + 1  # hues of the probes' training images


def probe_codes(posterior: PosteriorFn, data: ColorMNIST, count: int, seed: int) -> dict[str, np.ndarray]:
    """Codes (means and one seeded draw from each posterior), digits and hues of ``count`` items of ``data``."""
    n = len(data)
    rng = np.random.default_rng(seed)
    idx = np.arange(n) if count >= n else np.sort(rng.choice(n, size=count, replace=False))
    images = data.render(idx, data.hues[idx]).numpy()
    parts = [posterior(images[i : i + 500]) for i in range(0, len(images), 500)]
    mu1, mu2, lv1, lv2 = (np.concatenate([p[k] for p in parts]) for k in range(4))
    return {
        "z1": mu1,
        "z2": mu2,
        "z1_sample": (mu1 + np.exp(0.5 * lv1) * rng.standard_normal(mu1.shape)).astype(np.float32),
        "z2_sample": (mu2 + np.exp(0.5 * lv2) * rng.standard_normal(mu2.shape)).astype(np.float32),
        "digit": data.labels[idx],
        "hue": data.hues[idx],
    }


def leakage_probes(
    posterior: PosteriorFn, data_dir: Path, test: ColorMNIST, train_items: int, seed: int
) -> dict[str, Any]:
    """Probes trained on codes of ``train_items`` training-split images, scored on the whole test split.

    The training images get their own hues (seed PROBE_TRAIN_SEED), so the probes never see a
    test image or a test colour.
    """
    train = ColorMNIST(read_mnist(data_dir, "train"), seed=PROBE_TRAIN_SEED, specified="digit")
    report = leakage_report(
        probe_codes(posterior, train, train_items, seed), probe_codes(posterior, test, len(test), seed)
    )
    report["split"] = f"probes fit on {train_items} MNIST training images, scored on the test split"
    return report


def judge_ceilings(test: ColorMNIST, classifier: DigitClassifier) -> dict[str, float]:
    """How well the judges do on real test images: the best any model could score."""
    images = test.render(np.arange(len(test)), test.hues)
    acc = float((predict_digits(classifier, images) == test.labels).mean())
    hue_err = hue_error_degrees(estimate_hue(images.numpy()), test.hues)
    return {
        "classifier_accuracy_real": round(acc, 4),
        "hue_estimator_median_error_deg_real": round(float(np.median(hue_err)), 3),
    }


def onnx_codec(folder: Path) -> tuple[EncodeFn, DecodeFn, PosteriorFn]:
    """Encode, decode and the full posterior from the exported files (modelrepo's codec)."""
    codec = OnnxCodec(folder)

    def posterior(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p = codec.posterior(images)
        return p.z1, p.z2, p.z1_logvar, p.z2_logvar

    return codec.encode, codec.decode, posterior


def evaluate_model(
    folder: Path,
    data_dir: Path,
    pairs: int,
    classifier_path: Path,
    seed: int,
    write_manifest: bool,
    probe_items: int = 10000,
    prune_below: float = 0.0,
) -> dict[str, Any]:
    """Evaluate a model folder from its ONNX files (or a run folder from its checkpoint).

    ``probe_items`` training images fit the leakage probes (0 skips them). With
    ``write_manifest`` the figures are stored in the model's manifest. A run folder can be
    evaluated as ``export --prune-below`` would export it (``prune_below``; trainer/prune.py).
    """
    pruned = None
    if (folder / "checkpoint.pt").is_file():
        from trainer.prune import prune_trained
        from trainer.train import load_model

        model, config, _ = load_model(folder)
        specified = config.data.specified
        if prune_below > 0:
            pruned = prune_trained(model, config, str(data_dir), prune_below).as_dict()
        encode, decode = torch_codec(model)
        posterior = torch_posterior(model)
        source = "checkpoint"
    else:
        if prune_below > 0:
            raise ValueError("prune_below applies to a run folder; an exported model is pruned by export --prune-below")
        manifest = load_manifest(folder)
        specified = manifest.specified_factors[0]
        encode, decode, posterior = onnx_codec(folder)
        source = "onnx"
    test = ColorMNIST(read_mnist(data_dir, "test"), seed=TEST_HUE_SEED, specified="digit")
    classifier = load_digit_classifier(classifier_path)
    report: dict[str, Any] = {
        "split": f"MNIST test (10,000), Color MNIST hues seeded with {TEST_HUE_SEED}",
        "source": source,
        "seed": seed,
        "specified": specified,
        **swap_metrics(encode, decode, test, specified, classifier, pairs, seed),
        "judges": judge_ceilings(test, classifier),
        **({"pruned": pruned} if pruned else {}),
        "evaluated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    report["code_information_nats"] = code_information(posterior, test)
    if probe_items:
        report["probes"] = leakage_probes(posterior, data_dir, test, probe_items, seed)
        report["probes"]["code_kl_nats"] = report["code_information_nats"]  # a probe misleads on a collapsed code
    if write_manifest:
        if source != "onnx":
            raise ValueError("--write-manifest needs an exported model folder, not a run folder")
        manifest.evaluation = report
        manifest.save(folder)
        write_card(folder, manifest)  # the card says what the manifest now says
    return report


def torch_codec(model: torch.nn.Module) -> tuple[EncodeFn, DecodeFn]:
    """The same metrics straight from a PyTorch model (for tuning runs before export)."""

    @torch.no_grad()
    def encode(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = model.encode(torch.from_numpy(images))  # type: ignore[operator]
        return out.z1.mode().numpy(), out.z2.mode().numpy()

    @torch.no_grad()
    def decode(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
        return np.asarray(model.decode(torch.from_numpy(z1), torch.from_numpy(z2)).numpy())  # type: ignore[operator]

    return encode, decode


PosteriorFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _kl(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    return 0.5 * (mean**2 + np.exp(logvar) - 1.0 - logvar).sum(axis=1)


def code_information(posterior: PosteriorFn, test: ColorMNIST) -> dict[str, float]:
    """Mean KL(q(z|x) || N(0, I)) of each code on the test split: how much it can carry at all.

    Probe figures mislead on a collapsed code (method.md), so reports carry this beside them.
    """
    kl1, kl2 = [], []
    for start in range(0, len(test), 500):
        idx = np.arange(start, min(start + 500, len(test)))
        mu1, mu2, lv1, lv2 = posterior(test.render(idx, test.hues[idx]).numpy())
        kl1.append(_kl(mu1, lv1))
        kl2.append(_kl(mu2, lv2))
    return {"z1": round(float(np.concatenate(kl1).mean()), 3), "z2": round(float(np.concatenate(kl2).mean()), 3)}


def torch_posterior(model: torch.nn.Module) -> PosteriorFn:
    @torch.no_grad()
    def posterior(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        out = model.encode(torch.from_numpy(images))  # type: ignore[operator]
        return out.z1.mean.numpy(), out.z2.mean.numpy(), out.z1.logvar.numpy(), out.z2.logvar.numpy()

    return posterior
