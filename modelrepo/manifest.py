"""The manifest of one model folder: what the model is and how to feed it.

A model folder holds ``encoder.onnx``, ``decoder.onnx`` and ``manifest.json``.
The trainer writes the manifest at export; the service reads it at load and
refuses the model when an ONNX file's SHA-256 differs from the one recorded,
so a half-copied or tampered file is never served.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelrepo.preprocess import Preprocessing

MANIFEST_NAME = "manifest.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
FORMAT_VERSION = 1
# How far an ONNX file's outputs may stray from the network it was exported from (checked at
# export) and, by the same bound, one execution provider's outputs from another's (the GPU check).
PARITY_RTOL, PARITY_ATOL = 1e-3, 1e-5


class ManifestError(ValueError):
    """A model folder whose manifest is missing, malformed or does not match its files."""


class ImageShape(BaseModel):
    """The model's input and output image shape, channels first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: int = Field(ge=1, le=4)
    height: int = Field(ge=4)
    width: int = Field(ge=4)


class FileEntry(BaseModel):
    """One ONNX file of the model and the hash it must have."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class LatentDirections(BaseModel):
    """Principal directions of one code over training images: the axes people can move along."""

    model_config = ConfigDict(extra="forbid")

    mean: list[float]
    directions: list[list[float]] = Field(description="unit vectors, largest variance first")
    std: list[float] = Field(description="standard deviation of the codes along each direction")


class Example(BaseModel):
    """A sample image shipped in the model folder, with its known factors."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(pattern=r"^examples/[A-Za-z0-9._-]+\.png$")
    factors: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    """Everything a client or the service needs to know about one model."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: str
    description: str = ""
    specified_factors: list[str] = Field(min_length=1)
    image: ImageShape
    z1_dim: int = Field(ge=1)
    z2_dim: int = Field(ge=1)
    preprocessing: Preprocessing
    training_data: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, FileEntry]
    latent_directions: dict[str, LatentDirections] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)
    created: str = ""

    def save(self, folder: Path) -> Path:
        """Write ``manifest.json`` into ``folder`` (atomically) and return its path."""
        path = folder / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        tmp.replace(path)
        return path


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large models need little memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder: Path) -> Manifest:
    """Read and validate ``folder/manifest.json``; raise ManifestError with the reason."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest.json in the model folder")
    try:
        raw = json.loads(path.read_text())
        manifest = Manifest.model_validate(raw)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ManifestError(f"{path}: invalid manifest: {exc}") from exc
    for required in (ENCODER_FILE, DECODER_FILE):
        if required not in manifest.files:
            raise ManifestError(f"{path}: manifest lists no {required}")
    return manifest


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Check every ONNX file against the manifest's SHA-256; raise ManifestError on a mismatch."""
    for name, entry in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ManifestError(f"{path}: file listed in the manifest is missing")
        actual = file_sha256(path)
        if actual != entry.sha256:
            raise ManifestError(
                f"{path}: SHA-256 {actual[:12]}... does not match the manifest's "
                f"{entry.sha256[:12]}...; re-export the model or restore the file"
            )
