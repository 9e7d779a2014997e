"""Atomic checkpoints: a run killed at any moment leaves the last good one intact.

The file is written to a temporary name in the same folder, flushed to disk,
then renamed over the old one; a rename within a folder is atomic on POSIX.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "checkpoint.pt"


class OutputError(OSError):
    """The run folder cannot be written."""


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` and prove it is writable before any work is done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from exc


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file, fsync, then rename over ``path``."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"{path}: cannot write the checkpoint ({exc.strerror or exc}); free space or choose another --out, "
            "then --resume: the previous checkpoint is intact"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state
