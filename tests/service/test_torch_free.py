"""The service never imports torch or the trainer (make test also runs these tests where neither is installed)."""

from __future__ import annotations

import subprocess
import sys

from tests.serving import ROOT

PROBE = """
import sys
from service.app import create_app
from service.__main__ import build_parser
from service.settings import Settings
app = create_app(Settings(model_repository="models"))
app.openapi()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "trainer", "torchvision"))
print(loaded)
sys.exit(1 if loaded else 0)
"""


def test_importing_and_building_the_service_loads_no_torch_and_no_trainer() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
