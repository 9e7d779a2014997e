"""Static checks of the Dockerfile and compose file, fast and in every test run.

The image itself is built and run for real by `make docker-check` (deploy/docker-check.sh);
these tests catch the faults that a build would not show, or would show only slowly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from service.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _stages() -> dict[str, list[str]]:
    """Instructions of each stage, keyed by stage name."""
    stages: dict[str, list[str]] = {}
    current = ""
    logical = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


STAGES = _stages()


def test_both_runtime_targets_exist() -> None:
    assert {"build-cpu", "cpu", "build-gpu", "gpu"} <= set(STAGES)


def test_every_copied_path_exists() -> None:
    for stage, lines in STAGES.items():
        for line in lines:
            if line.startswith("COPY") and "--from=" not in line:
                sources = [p for p in line.split()[1:-1] if not p.startswith("--")]
                for source in sources:
                    assert (ROOT / source).exists(), f"{stage}: COPY source {source} missing"


@pytest.mark.parametrize("stage", ["cpu", "gpu"])
def test_runtime_runs_the_real_entry_point_as_non_root(stage: str) -> None:
    lines = STAGES[stage]
    assert any(line == 'CMD ["python", "-m", "service"]' for line in lines)
    assert (ROOT / "service" / "__main__.py").is_file()
    users = [line.split()[1] for line in lines if line.startswith("USER")]
    assert users and users[-1] not in ("root", "0")


@pytest.mark.parametrize("stage", ["cpu", "gpu"])
def test_healthcheck_asks_readiness_not_liveness(stage: str) -> None:
    """/healthz is 200 while nothing serves; only /readyz makes a broken container unhealthy."""
    from service.app import create_app

    check = next(line for line in STAGES[stage] if line.startswith("HEALTHCHECK"))
    assert "/readyz" in check and "/healthz" not in check
    assert "get" in create_app(Settings()).openapi()["paths"]["/readyz"]


def test_no_syntax_directive_that_pulls_a_frontend_image() -> None:
    """`# syntax=` makes BuildKit pull a frontend image before FROM: fails with no registry, needs none."""
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE, re.IGNORECASE | re.MULTILINE)


@pytest.mark.parametrize("stage", ["cpu", "gpu", "ray-gpu"])
def test_the_service_user_has_a_home_of_its_own(stage: str) -> None:
    """ONNX Runtime writes under $HOME; a home owned by root made it warn at every start."""
    useradd = next(line for line in STAGES[stage] if "useradd" in line)
    assert "--create-home" in useradd and "--home-dir /home/app" in useradd


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: the last matching pattern wins."""
    from fnmatch import fnmatch

    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        if fnmatch(path, body) or fnmatch(path.split("/")[0], body) or fnmatch(path.rsplit("/", 1)[-1], body):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_dockerfile_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for heavy in (".git/HEAD", ".venv/bin/python", ".venv-serve/bin/python", "runs/x/ckpt.pt", "bench/x.py"):
        assert _ignored(heavy, patterns), heavy
    assert _ignored("service/__pycache__/app.cpython-311.pyc", patterns)
    for lines_ in STAGES.values():
        for line in lines_:
            if line.startswith("COPY") and "--from=" not in line:
                for source in (p for p in line.split()[1:-1] if not p.startswith("--")):
                    assert not _ignored(source, patterns), f"{source} is copied but .dockerignore drops it"


def test_compose_waits_longer_than_the_drain() -> None:
    """Docker's default 10 s stop timeout would SIGKILL the service's 20 s drain."""
    drain = Settings().drain_timeout_s
    for name, service in _compose()["services"].items():
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > drain, name
        assert service["environment"]["TWOCODE_DRAIN_TIMEOUT_S"].endswith(f":-{drain:g}}}"), name


@pytest.mark.parametrize("stage", ["build-cpu", "cpu", "build-gpu", "gpu"])
def test_images_install_no_torch_and_no_compiler(stage: str) -> None:
    text = " ".join(STAGES[stage]).lower()
    assert "torch" not in text and "[train" not in text and "[dev" not in text
    for compiler in ("build-essential", "gcc", "g++", "clang"):
        assert compiler not in text


def test_gpu_image_installs_onnxruntime_gpu_alone() -> None:
    text = " ".join(STAGES["build-gpu"])
    assert ".[serve-gpu]" in text and "! /opt/venv/bin/pip show onnxruntime" in text
    assert "nvidia/cuda" in DOCKERFILE and "cudnn" in DOCKERFILE
    assert ".[serve]" in " ".join(STAGES["build-cpu"])


def test_env_names_and_port_match_the_settings() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    used = set(re.findall(r"\bTWOCODE_[A-Z_]+", DOCKERFILE))
    assert used <= fields, used - fields
    assert "EXPOSE 8000" in DOCKERFILE and "TWOCODE_PORT=8000" in DOCKERFILE


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse docker-compose.yml")
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_selects_cpu_and_gpu_by_profile() -> None:
    services = _compose()["services"]
    assert services["api"]["profiles"] == ["cpu"] and services["api"]["build"]["target"] == "cpu"
    assert services["api-gpu"]["profiles"] == ["gpu"] and services["api-gpu"]["build"]["target"] == "gpu"
    devices = services["api-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert "deploy" not in services["api"]


def test_compose_mounts_models_and_uses_real_setting_names() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for name, service in _compose()["services"].items():
        assert any(v.endswith(":/srv/models:ro") for v in service["volumes"]), name
        assert set(service["environment"]) <= fields, set(service["environment"]) - fields
        assert service["ports"][0].endswith(":8000")
        assert service["ports"][0].startswith("${TWOCODE_HOST_ADDRESS:-0.0.0.0}:")
    assert (ROOT / "models").is_dir()
