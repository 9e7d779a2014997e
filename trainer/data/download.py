"""Download MNIST's four canonical IDX files and check them, as torchvision's ``download=True`` does.

``python -m trainer download-mnist --out data/mnist`` fetches each gzip file from
the first mirror that answers, checks the SHA-256 of its *decompressed* content
(mirrors recompress, so the gzip bytes differ while the data must not), and
writes it atomically. Files already present and correct are kept; a file that
fails its check is never left behind under its real name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from trainer.data.mnist import DataError

# SHA-256 of the decompressed files: the published MNIST.
FILES = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# The mirrors torchvision uses, in its order.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def content_sha256(gz_path: Path) -> str:
    """SHA-256 of a gzip file's decompressed content (raises DataError if it is not gzip)."""
    digest = hashlib.sha256()
    try:
        with gzip.open(gz_path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError) as exc:
        raise DataError(f"{gz_path.name}: not a complete gzip file ({exc})") from exc
    return digest.hexdigest()


def _fetch(url: str, target: Path, timeout_s: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout_s) as response, target.open("wb") as out:
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)


def download_mnist(
    out: Path,
    mirrors: Sequence[str] = MIRRORS,
    timeout_s: float = 60.0,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """The four files in ``out``, each checked; raises DataError naming what failed on every mirror."""
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for name, expected in FILES.items():
        target = out / name
        if target.is_file() and content_sha256(target) == expected:
            say(f"{name}: present, SHA-256 checked")
            done.append(target)
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            handle, tmp_name = tempfile.mkstemp(dir=out, prefix=f".{name}.")
            os.close(handle)
            tmp = Path(tmp_name)
            try:
                _fetch(url, tmp, timeout_s)
                got = content_sha256(tmp)
                if got != expected:
                    failures.append(f"{url}: SHA-256 {got[:12]}... is not MNIST's {expected[:12]}...")
                    continue
                tmp.replace(target)  # atomic: a half-written or wrong file never has the real name
                say(f"{name}: downloaded from {mirror}, SHA-256 checked")
                done.append(target)
                break
            except (urllib.error.URLError, OSError, DataError) as exc:
                failures.append(f"{url}: {exc}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise DataError(f"could not download {name}: " + "; ".join(failures))
    return done
