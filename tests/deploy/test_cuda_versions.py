"""The GPU image's guard: the base image's CUDA major version must be the one onnxruntime-gpu needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import onnxruntime
import pytest

from deploy.cuda_versions import BaseImage, ProviderBuild, base_image, elf_needed, pinned_version, problems

ROOT = Path(__file__).resolve().parents[2]
CUDA13 = ProviderBuild("1.31.1", "13.0", ("libcublasLt.so.13", "libcublas.so.13", "libcudart.so.13", "libc.so.6"))


def test_the_shipped_dockerfile_names_a_cuda_image_with_cudnn() -> None:
    image = base_image((ROOT / "Dockerfile").read_text())
    assert image.tag.startswith("nvidia/cuda:") and image.has_cudnn
    assert pinned_version((ROOT / "constraints.txt").read_text()) != ""


def test_agreeing_versions_pass() -> None:
    assert problems(BaseImage("nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04", 13, True), CUDA13) == []


def test_the_divergence_that_shipped_is_caught() -> None:
    """CUDA 12.8.1 base with a CUDA 13 build: the GPU image that served nothing."""
    image = base_image("ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04\n")
    found = problems(image, CUDA13)
    assert image.cuda_major == 12
    assert any("built for CUDA 13.0" in p and "CUDA 12" in p for p in found)
    assert any("libcudart.so.13" in p for p in found) and any("libcublas.so.13" in p for p in found)


def test_a_base_without_cudnn_is_caught() -> None:
    image = base_image("ARG CUDA_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04\n")
    assert not image.has_cudnn and any("cuDNN" in p for p in problems(image, CUDA13))


def test_unreadable_tags_are_errors_not_passes() -> None:
    with pytest.raises(ValueError, match="CUDA version"):
        base_image("ARG CUDA_IMAGE=nvidia/cuda:latest\n")
    with pytest.raises(ValueError, match="no 'ARG CUDA_IMAGE"):
        base_image("FROM python:3.11-slim\n")


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf is not installed")
def test_elf_reader_agrees_with_readelf() -> None:
    library = next((Path(onnxruntime.__file__).parent / "capi").glob("onnxruntime_pybind11_state*.so"))
    listed = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    expected = tuple(line.split("[")[1].rstrip("]") for line in listed.splitlines() if "(NEEDED)" in line)
    assert elf_needed(library.read_bytes()) == expected and "libc.so.6" in expected
