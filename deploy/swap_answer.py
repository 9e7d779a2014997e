"""Is a /swap answer right? Compare the PNG a deployed service returned with the same swap run here.

``python deploy/swap_answer.py ANSWER.png Z1.png Z2.png --model models/colormnist-digit``
runs the swap in this process with the service's own code (preprocessing rule,
ONNX Runtime on the CPU, PNG encoding) and exits 1 unless the answer has the
same size and every pixel within ``--tolerance`` grey levels. A service that
answered with either input, a blank image or another model's swap fails.
Needs the serving environment only (no torch).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from modelrepo import load_manifest
from modelrepo.codec import OnnxCodec
from service.images import to_input, to_png
from service.settings import Settings


def expected_swap(model_dir: Path, z1_png: bytes, z2_png: bytes) -> bytes:
    """The swap as the service computes it: its preprocessing rule, the model's codec, its PNG encoding."""
    rule, limit = load_manifest(model_dir).preprocessing, Settings().max_image_pixels
    codec = OnnxCodec(model_dir)
    out = codec.swap(to_input(z1_png, rule, limit, "z1")[None], to_input(z2_png, rule, limit, "z2")[None])
    return to_png(out[0])


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("answer", type=Path, help="the PNG the service returned")
    parser.add_argument("z1_image", type=Path)
    parser.add_argument("z2_image", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="the model folder the service used")
    parser.add_argument("--tolerance", type=int, default=1, help="largest allowed difference per channel")
    args = parser.parse_args(argv)
    answer = args.answer.read_bytes()
    if not answer.startswith(b"\x89PNG\r\n\x1a\n"):
        print(f"{args.answer}: not a PNG ({answer[:60]!r})", file=sys.stderr)
        return 1
    got = pixels(answer)
    want = pixels(expected_swap(args.model, args.z1_image.read_bytes(), args.z2_image.read_bytes()))
    if got.shape != want.shape:
        print(f"swap answer is {got.shape}, expected {want.shape}", file=sys.stderr)
        return 1
    diff = int(np.abs(got - want).max())
    inputs_differ = min(int(np.abs(pixels(p.read_bytes()) - want).max()) for p in (args.z1_image, args.z2_image))
    print(
        f"swap answer: {got.shape[1]}x{got.shape[0]}, largest difference from the local swap {diff} "
        f"(tolerance {args.tolerance}; the inputs differ from it by >= {inputs_differ})"
    )
    return 0 if diff <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
