"""Schemathesis's command line against the live service: every check, every route, over real HTTP.

Run twice: open (the document declares no security) and with API keys (the
document declares both schemes; requests carry a key, and schemathesis checks
that missing or wrong keys get 401). The configuration file beside this test
says which refusals a schema cannot rule out (not an image, a code of the
wrong length); nothing is excluded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import tiny_model
from tests.serving import serve

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_ROUTE = 30


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = tmp_path_factory.mktemp("fuzz")
    return tiny_model("models", root / "models")


def _schemathesis(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_ROUTE),
        "--seed",
        "0",
        "--no-color",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def _assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "Selected: 10/10" in output and "Tested: 10" in output, output[-3000:]


def test_every_route_conforms_open(repo: Path) -> None:
    with serve(repo, "tiny-a", max_queue_delay_ms="1") as running:
        _assert_clean(_schemathesis(running.url))


def test_every_route_conforms_with_api_keys(repo: Path) -> None:
    with serve(repo, "tiny-a", max_queue_delay_ms="1", api_keys="fuzz-key") as running:
        _assert_clean(_schemathesis(running.url, "--header", "X-API-Key: fuzz-key"))
