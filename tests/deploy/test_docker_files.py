"""No Docker engine runs here, so the Dockerfile and compose file are checked statically."""

from __future__ import annotations

import re
from pathlib import Path

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
def test_healthcheck_uses_an_existing_route(stage: str) -> None:
    from service.app import create_app

    check = next(line for line in STAGES[stage] if line.startswith("HEALTHCHECK"))
    route = re.search(r"/(\w+)\\?\"", check) or re.search(r"/(healthz)", check)
    assert route is not None
    paths = create_app(Settings()).openapi()["paths"]
    assert "get" in paths[f"/{route.group(1)}"]


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


def _compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse docker-compose.yml")
    data: dict = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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
    assert (ROOT / "models").is_dir()
