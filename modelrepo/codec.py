"""The ONNX interface of a model folder, in one place: tensor names and a small codec.

``encoder.onnx`` takes ``image`` (float32 [N, C, H, W] in [0, 1]) and gives
``z1``, ``z2`` (the posterior means) and ``z1_logvar``, ``z2_logvar``;
``decoder.onnx`` takes ``z1``, ``z2`` and gives ``image``. The exporter writes
these names, and everything that runs a model (the service, ``evaluate``, the
figures, the benchmarks, the tests) goes through ``OnnxCodec`` rather than
restating them. ONNX Runtime is imported only when a codec is made, so the
rest of ``modelrepo`` stays light for the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelrepo.manifest import DECODER_FILE, ENCODER_FILE

IMAGE = "image"
Z1, Z2, Z1_LOGVAR, Z2_LOGVAR = "z1", "z2", "z1_logvar", "z2_logvar"
ENCODER_INPUTS = (IMAGE,)
ENCODER_OUTPUTS = (Z1, Z2, Z1_LOGVAR, Z2_LOGVAR)
DECODER_INPUTS = (Z1, Z2)
DECODER_OUTPUTS = (IMAGE,)
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Posterior:
    """The encoder's two Gaussians for a batch of images."""

    z1: np.ndarray
    z2: np.ndarray
    z1_logvar: np.ndarray
    z2_logvar: np.ndarray


class OnnxCodec:
    """Encode, decode and the full posterior from a model folder's two ONNX files (one session each)."""

    def __init__(self, folder: Path, providers: Sequence[str] = (CPU,), options: Any = None) -> None:
        import onnxruntime as ort

        self.folder = folder
        self.encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=list(providers))
        self.decoder = ort.InferenceSession(str(folder / DECODER_FILE), options, providers=list(providers))

    @property
    def provider(self) -> str:
        """The execution provider the encoder actually runs on (ONNX Runtime may fall back)."""
        return str(self.encoder.get_providers()[0])

    def posterior(self, images: np.ndarray) -> Posterior:
        outputs = self.encoder.run(list(ENCODER_OUTPUTS), {IMAGE: np.asarray(images, dtype=np.float32)})
        return Posterior(*(np.asarray(o) for o in outputs))

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The codes (the posterior means)."""
        z1, z2 = self.encoder.run([Z1, Z2], {IMAGE: np.asarray(images, dtype=np.float32)})
        return np.asarray(z1), np.asarray(z2)

    def decode(self, z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
        feed = {Z1: np.asarray(z1, dtype=np.float32), Z2: np.asarray(z2, dtype=np.float32)}
        (image,) = self.decoder.run(list(DECODER_OUTPUTS), feed)
        return np.asarray(image)

    def swap(self, z1_images: np.ndarray, z2_images: np.ndarray) -> np.ndarray:
        """G(z1(a), z2(b)) for pairs (a, b), both sides encoded in one run, as /swap does."""
        n = len(z1_images)
        z1, z2 = self.encode(np.concatenate([z1_images, z2_images]))
        return self.decode(z1[:n], z2[n:])
