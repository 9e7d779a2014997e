"""download-mnist against a local copy served on loopback: no internet, the real checks."""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.trainer.helpers import run_cli
from trainer.data.download import FILES, content_sha256

SHARED = Path(os.environ.get("TWOCODE_MNIST_DIR", Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"))


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 over a folder the test fills."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()


def test_downloads_the_real_files_and_checks_their_content(mirror: tuple[str, Path], tmp_path: Path) -> None:
    if not all((SHARED / name).is_file() for name in FILES):
        pytest.skip(f"real MNIST not found in {SHARED} (set TWOCODE_MNIST_DIR): the download test NOT run")
    url, root = mirror
    for name in FILES:  # recompressed, as mirrors do: the gzip bytes differ, the content may not
        (root / name).write_bytes(gzip.compress(gzip.decompress((SHARED / name).read_bytes()), compresslevel=1))
    out = tmp_path / "data" / "mnist"
    done = run_cli("download-mnist", "--out", str(out), "--mirror", "http://127.0.0.1:9/nothing/", "--mirror", url)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert all(content_sha256(out / name) == sha for name, sha in FILES.items())
    again = run_cli("download-mnist", "--out", str(out), "--mirror", "http://127.0.0.1:9/nothing/")
    assert again.returncode == 0 and again.stdout.count("present, SHA-256 checked") == 4  # no second download


def test_a_wrong_file_is_refused_and_never_left_under_its_name(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    for name in FILES:
        (root / name).write_bytes(gzip.compress(b"not MNIST at all"))
    out = tmp_path / "mnist"
    done = run_cli("download-mnist", "--out", str(out), "--mirror", url)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "SHA-256" in done.stderr and "train-images-idx3-ubyte.gz" in done.stderr
    assert list(out.iterdir()) == []  # neither the bad file nor a temporary one stays


def test_no_mirror_answering_is_one_line(tmp_path: Path) -> None:
    done = run_cli("download-mnist", "--out", str(tmp_path / "m"), "--mirror", "http://127.0.0.1:9/")
    assert done.returncode == 2 and "could not download" in done.stderr and "Traceback" not in done.stderr
    shutil.rmtree(tmp_path / "m")
