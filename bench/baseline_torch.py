"""The service a user would otherwise write: FastAPI + PyTorch eager, one request at a time.

Same routes and answers as ours for what the bench drives (``/encode`` and
``/swap``, multipart in, JSON or PNG out), the same trained weights (read
from the shipped ONNX files' initializers into the PyTorch networks, and
checked against ONNX Runtime at start), the same preprocessing rule. No
batching across requests, no ONNX. Inference runs in FastAPI's thread pool,
as a plain ``def`` route would.

    BENCH_MODEL=models/colormnist-digit uvicorn bench.baseline_torch:app
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import Response
from PIL import Image

from modelrepo import load_manifest, to_model_input
from trainer.config import TrainConfig
from trainer.networks import TwoCodeVAE


def load_weights(folder: Path, weights: Path) -> TwoCodeVAE:
    """The PyTorch networks of ``folder``'s model, refused unless they compute what its ONNX files do.

    ``bench/weights/NAME.pt`` is the state dict of what ``models/NAME`` was exported from, written by
    ``python -m trainer export ... --state-dict-out bench/weights/NAME.pt`` (the ONNX files fold some
    weights into constants, so they cannot be read back).
    """
    import onnxruntime as ort

    manifest = load_manifest(folder)
    model = TwoCodeVAE(TrainConfig.from_dict(_sections(manifest.config)).network)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    shape = (4, manifest.image.channels, manifest.image.height, manifest.image.width)
    probe = np.random.default_rng(0).random(shape, dtype=np.float32)
    session = ort.InferenceSession(str(folder / "encoder.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["z2"], {"image": probe})
    with torch.inference_mode():
        got = model.encode(torch.from_numpy(probe)).z2.mean.numpy()
    if not np.allclose(got, expected, atol=1e-4):
        raise RuntimeError(
            f"{weights} is not the model in {folder}: codes differ by {np.abs(got - expected).max():.3g}"
        )
    return model


def _sections(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k in ("network", "objective", "data", "optim")}


FOLDER = Path(os.environ.get("BENCH_MODEL", "models/colormnist-digit"))
MODEL = load_weights(FOLDER, Path(os.environ.get("BENCH_WEIGHTS", f"bench/weights/{FOLDER.name}.pt")))
RULE = load_manifest(FOLDER).preprocessing
torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
app = FastAPI(title="PyTorch eager baseline")


def _tensor(upload: UploadFile) -> torch.Tensor:
    with Image.open(io.BytesIO(upload.file.read())) as image:
        return torch.from_numpy(to_model_input(image, RULE))


@app.post("/encode")
def encode(image: Annotated[list[UploadFile], File()]) -> dict[str, object]:
    batch = torch.stack([_tensor(u) for u in image])
    with torch.inference_mode():
        out = MODEL.encode(batch)
    return {"model": FOLDER.name, "z1": out.z1.mean.tolist(), "z2": out.z2.mean.tolist()}


@app.post("/swap")
def swap(z1_image: Annotated[UploadFile, File()], z2_image: Annotated[UploadFile, File()]) -> Response:
    with torch.inference_mode():
        picture = MODEL.swap(_tensor(z1_image)[None], _tensor(z2_image)[None])[0]
    arr = (picture.numpy().transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")


@app.get("/readyz")
def ready() -> dict[str, str]:
    return {"status": "ready"}
