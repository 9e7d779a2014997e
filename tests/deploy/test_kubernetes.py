"""No Kubernetes here: the plain Deployment's probes and grace period are checked against the app."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from service.app import create_app
from service.runtime import Registry
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))


def _container() -> dict[str, Any]:
    deployment = next(d for d in DOCUMENTS if d["kind"] == "Deployment")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_readiness_asks_readyz_and_liveness_healthz() -> None:
    container = _container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    paths = create_app(Settings()).openapi()["paths"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "get" in paths[container[probe]["httpGet"]["path"]], probe


def test_grace_period_outlasts_the_drain_and_the_image_runs_as_its_user() -> None:
    deployment = next(d for d in DOCUMENTS if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > Settings().drain_timeout_s
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    assert "USER 10001" in (ROOT / "Dockerfile").read_text()
    env = {e["name"] for e in _container()["env"]}
    assert env <= {f"TWOCODE_{name.upper()}" for name in Settings.model_fields}


def test_ray_health_check_follows_the_readiness_rule(tmp_path: Path) -> None:
    """Ray restarts a replica whose check_health raises: it must raise exactly when /readyz is 503."""
    ray_serve = pytest.importorskip("service.ray_serve", reason="the ray extra is not installed")
    check = ray_serve.TwoCodeService.func_or_class.check_health
    registry = Registry(ready=True)
    replica = SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(registry=registry, settings=Settings(model_repository=tmp_path)))
    )
    with pytest.raises(RuntimeError, match="no model is serving"):
        import asyncio

        asyncio.run(check(replica))
