"""The bench's peers (bench/peers) serve the same answers as our service, from their own environment.

A peer row in ``make bench`` means something only if the peer does the same
work: each peer is started the way the bench starts it, and its ``/swap`` PNG
and ``/encode`` codes must equal our service's for the same uploads.
"""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bench import servers
from bench.workloads import Workload, workloads
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not servers.PEERS_PYTHON.exists(),
    reason=f"{servers.PEERS_PYTHON} is missing (`make bench-venv`): the peer servers were NOT tested",
)


def _post(port: int, load: Workload) -> tuple[str, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{load.path}", data=load.body, headers={"Content-Type": load.content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.headers["Content-Type"]), bytes(response.read())


@pytest.fixture(scope="module")
def ours() -> dict[str, bytes]:
    """Our service's answers to the bench's swap and 16-image encode."""
    settings = Settings(model_repository=ROOT / "models", default_model="colormnist-digit", device="cpu")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        answers: dict[str, bytes] = {}
        for name in ("swap", "encode16"):
            load = workloads()[name]
            reply = client.post(load.path, content=load.body, headers={"Content-Type": load.content_type})
            answers[name] = reply.content
        return answers


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.mark.parametrize("name", ["litserve", "bentoml"])
def test_a_peer_answers_what_our_service_answers(name: str, ours: dict[str, bytes]) -> None:
    peer: servers.Peer = getattr(servers, name)()
    loads = workloads()
    with servers.start(peer.command, peer.env, cores=None, ready_path=peer.ready_path) as running:
        ctype, swapped = _post(running.port, loads["swap"])
        assert ctype.startswith("image/png")
        assert np.array_equal(_pixels(swapped), _pixels(ours["swap"])), f"{name}: another swap than ours"
        _, encoded = _post(running.port, loads["encode16"])
    theirs, expected = json.loads(encoded), json.loads(ours["encode16"])
    for code in ("z1", "z2"):
        assert len(theirs[code]) == 16
        np.testing.assert_allclose(theirs[code], expected[code], rtol=1e-5, atol=1e-6)
