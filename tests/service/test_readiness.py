"""/readyz tells the truth: 503 with a reason whenever the service would not serve what it was asked to."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import runtime
from service.app import create_app
from service.settings import Settings


def settled_readyz(repo: Path, **settings: Any) -> tuple[int, dict[str, Any]]:
    """Start the app, wait until loading has finished (whatever its outcome), and read /readyz."""
    app = create_app(Settings(model_repository=repo, device="cpu", **settings))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").json()["status"] == "loading":
            assert time.monotonic() < deadline, "models never finished loading"
            time.sleep(0.02)
        r = client.get("/readyz")
        return r.status_code, r.json()


def corrupt(folder: Path) -> None:
    data = bytearray((folder / "decoder.onnx").read_bytes())
    data[100] ^= 0xFF
    (folder / "decoder.onnx").write_bytes(bytes(data))


def test_ready_when_the_default_model_serves(repo: Path) -> None:
    status, body = settled_readyz(repo, default_model="tiny-a")
    assert status == 200 and body["status"] == "ready" and body["reason"] is None


def test_503_when_the_repository_holds_no_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    status, body = settled_readyz(tmp_path / "empty", default_model="tiny-a")
    assert status == 503 and body["status"] == "unavailable"
    assert "no model is serving" in body["reason"] and body["models"] == []


def test_503_when_every_model_is_refused_names_each_reason(repo: Path) -> None:
    corrupt(repo / "tiny-a")
    corrupt(repo / "tiny-b")
    status, body = settled_readyz(repo, default_model="tiny-a")
    assert status == 503 and "no model is serving" in body["reason"]
    assert "tiny-a:" in body["reason"] and "tiny-b:" in body["reason"] and "SHA-256" in body["reason"]


def test_503_when_the_default_model_is_refused_while_another_serves(repo: Path) -> None:
    corrupt(repo / "tiny-a")
    status, body = settled_readyz(repo, default_model="tiny-a")
    assert status == 503 and body["models"] == ["tiny-b"]
    assert "default model 'tiny-a' is not serving" in body["reason"] and "SHA-256" in body["reason"]


def test_503_when_the_default_model_does_not_exist(repo: Path) -> None:
    shutil.rmtree(repo / "tiny-a")
    status, body = settled_readyz(repo, default_model="tiny-a")
    assert status == 503 and "no folder 'tiny-a'" in body["reason"]


def test_503_when_cuda_was_asked_but_onnx_runtime_fell_back_to_the_cpu(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU image's real failure: the CUDA provider is offered, but its libraries are missing."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is present; this reproduces its absence")
    offered = [runtime.CUDA, runtime.CPU]
    monkeypatch.setattr(ort, "get_available_providers", lambda: offered)  # the module service.runtime uses
    app = create_app(Settings(model_repository=repo, default_model="tiny-a", device="cuda"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while (body := client.get("/readyz").json())["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        r = client.get("/readyz")
    assert r.status_code == 503 and "fell back to CPUExecutionProvider" in body["reason"]


def test_device_cuda_counts_a_model_on_the_cpu_as_unready(repo: Path) -> None:
    """The last rule on its own: a model that did load, but on the CPU, while device=cuda."""
    registry = runtime.Registry(ready=True)
    on_cpu = SimpleNamespace(provider=runtime.CPU)  # a codec whose sessions run on the CPU
    registry.models["tiny-a"] = runtime.LoadedModel("tiny-a", repo / "tiny-a", None, on_cpu)
    reason = registry.unready_reason(Settings(model_repository=repo, default_model="tiny-a", device="cuda"))
    assert reason is not None and "device=cuda" in reason and "tiny-a" in reason
    assert registry.unready_reason(Settings(model_repository=repo, default_model="tiny-a", device="cpu")) is None
