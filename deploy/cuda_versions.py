"""Guard for the GPU image: the CUDA base image and onnxruntime-gpu must agree on CUDA's major version.

onnxruntime-gpu's CUDA provider is linked against one CUDA major version
(``libcudart.so.N``, ``libcublas.so.N``) and one cuDNN major version. On a base
image of another CUDA major version the provider fails to load, ONNX Runtime
falls back to the CPU, and the service refuses every model. Nothing in the
build fails, so this check reads both sides and compares them:

- the base image: ``ARG CUDA_IMAGE=nvidia/cuda:<version>-cudnn-runtime-...`` in the Dockerfile;
- the package: the wheel of the version pinned in constraints.txt, its
  ``build_and_package_info.cuda_version`` and the shared libraries its CUDA
  provider needs (read from the ELF dynamic section, no GPU needed). cuDNN is
  loaded at run time, so the tag must name it.

Usage: ``python deploy/cuda_versions.py [--wheel-dir DIR]`` (downloads the wheel with pip
when DIR holds none); exits 1 and says what diverges.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "onnxruntime-gpu"
PROVIDER_LIB = "onnxruntime/capi/libonnxruntime_providers_cuda.so"
BUILD_INFO = "onnxruntime/capi/build_and_package_info.py"


@dataclass(frozen=True)
class BaseImage:
    """What the CUDA base image's tag promises."""

    tag: str
    cuda_major: int
    has_cudnn: bool


@dataclass(frozen=True)
class ProviderBuild:
    """What the onnxruntime-gpu wheel was built against."""

    version: str
    cuda_version: str
    needed: tuple[str, ...]

    def majors(self, library: str) -> set[int]:
        """Major versions of ``library`` (e.g. 'libcudart') among the provider's needed libraries."""
        found = (re.fullmatch(rf"{re.escape(library)}\.so\.(\d+)", name) for name in self.needed)
        return {int(m.group(1)) for m in found if m}


def base_image(dockerfile: str) -> BaseImage:
    """The default of ``ARG CUDA_IMAGE`` in the Dockerfile."""
    match = re.search(r"^ARG\s+CUDA_IMAGE=(\S+)", dockerfile, re.MULTILINE)
    if match is None:
        raise ValueError("the Dockerfile has no 'ARG CUDA_IMAGE=...' line")
    tag = match.group(1)
    version = re.search(r":(\d+)\.\d+(?:\.\d+)?-", tag)
    if version is None:
        raise ValueError(f"cannot read a CUDA version from the image tag {tag!r}")
    return BaseImage(tag=tag, cuda_major=int(version.group(1)), has_cudnn="cudnn" in tag.split(":", 1)[1])


def pinned_version(constraints: str, package: str = PACKAGE) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", constraints, re.MULTILINE | re.IGNORECASE)
    if match is None:
        raise ValueError(f"constraints.txt pins no {package}")
    return match.group(1)


def elf_needed(data: bytes) -> tuple[str, ...]:
    """DT_NEEDED entries of a 64-bit little-endian ELF shared object (what ``readelf -d`` lists)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")

    def u(offset: int, size: int) -> int:
        return int.from_bytes(data[offset : offset + size], "little")

    shoff, shentsize, shnum = u(0x28, 8), u(0x3A, 2), u(0x3C, 2)
    sections = [shoff + i * shentsize for i in range(shnum)]
    dynamic = next(s for s in sections if u(s + 4, 4) == 6)  # SHT_DYNAMIC
    strtab = sections[u(dynamic + 40, 4)]  # sh_link: the dynamic string table
    str_offset = u(strtab + 24, 8)
    start, size = u(dynamic + 24, 8), u(dynamic + 32, 8)
    needed = []
    for entry in range(start, start + size, 16):
        tag, value = u(entry, 8), u(entry + 8, 8)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            end = data.index(b"\0", str_offset + value)
            needed.append(data[str_offset + value : end].decode())
    return tuple(needed)


def provider_build(wheel: Path) -> ProviderBuild:
    with zipfile.ZipFile(wheel) as archive:
        info = archive.read(BUILD_INFO).decode()
        needed = elf_needed(archive.read(PROVIDER_LIB))
    fields = dict(re.findall(r"^(\w+)\s*=\s*'([^']*)'", info, re.MULTILINE))
    return ProviderBuild(version=fields["__version__"], cuda_version=fields["cuda_version"], needed=needed)


def problems(image: BaseImage, build: ProviderBuild) -> list[str]:
    """Every way the two disagree; empty when the provider can load on that base image."""
    found = []
    build_major = int(build.cuda_version.split(".")[0])
    if build_major != image.cuda_major:
        found.append(
            f"{PACKAGE} {build.version} is built for CUDA {build.cuda_version}, but the base image "
            f"{image.tag} has CUDA {image.cuda_major}"
        )
    for library in ("libcudart", "libcublas"):
        wrong = build.majors(library) - {image.cuda_major}
        if wrong:
            found.append(
                f"the CUDA provider needs {library}.so.{min(wrong)}; {image.tag} has {library}.so.{image.cuda_major}"
            )
    if not image.has_cudnn:  # loaded at run time (dlopen), so it is not among the needed libraries
        found.append(f"ONNX Runtime's CUDA provider loads cuDNN 9 at run time; {image.tag} has no cuDNN")
    return found


def fetch_wheel(version: str, wheel_dir: Path) -> Path:
    """The pinned wheel, downloaded once into ``wheel_dir`` (a CUDA build for Linux x86-64)."""
    pattern = f"onnxruntime_gpu-{version}-*.whl"
    if not list(wheel_dir.glob(pattern)):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--platform",
                "manylinux_2_28_x86_64",
                "--dest",
                str(wheel_dir),
                f"{PACKAGE}=={version}",
            ],
            check=True,
        )
    return sorted(wheel_dir.glob(pattern))[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel-dir",
        type=Path,
        default=Path("/var/tmp/twocode-docker-check/wheels"),
        help="where the onnxruntime-gpu wheel is kept between runs",
    )
    args = parser.parse_args(argv)
    image = base_image((ROOT / "Dockerfile").read_text())
    version = pinned_version((ROOT / "constraints.txt").read_text())
    args.wheel_dir.mkdir(parents=True, exist_ok=True)
    build = provider_build(fetch_wheel(version, args.wheel_dir))
    found = problems(image, build)
    print(
        f"GPU image: base {image.tag} (CUDA {image.cuda_major}); {PACKAGE} {build.version} built for CUDA "
        f"{build.cuda_version}; its CUDA provider needs {', '.join(build.needed)}"
    )
    for problem in found:
        print(f"CUDA versions diverge: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
