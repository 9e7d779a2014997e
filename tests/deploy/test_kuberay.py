"""No Kubernetes here: the RayService manifest and the Serve config are checked statically."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((ROOT / "deploy" / "kuberay-rayservice.yaml").read_text())


def _serve_config() -> dict[str, object]:
    config: dict[str, object] = yaml.safe_load(MANIFEST["spec"]["serveConfigV2"])
    return config


def test_manifest_is_a_rayservice_whose_app_imports() -> None:
    assert MANIFEST["apiVersion"] == "ray.io/v1" and MANIFEST["kind"] == "RayService"
    pytest.importorskip("ray.serve", reason="the ray extra is not installed")
    for application in _serve_config()["applications"]:  # type: ignore[attr-defined]
        module, attribute = application["import_path"].split(":")
        assert hasattr(importlib.import_module(module), attribute)


def test_serve_configs_validate_against_rays_schema() -> None:
    schema = pytest.importorskip("ray.serve.schema", reason="the ray extra is not installed")
    schema.ServeDeploySchema.model_validate(yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text()))
    schema.ServeDeploySchema.model_validate(_serve_config())


def test_replicas_and_workers_ask_for_gpus() -> None:
    deployment = _serve_config()["applications"][0]["deployments"][0]  # type: ignore[index]
    assert 0 < deployment["ray_actor_options"]["num_gpus"] < 1  # fractional: replicas share a card
    workers = MANIFEST["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    limits = [c["resources"]["limits"] for w in workers for c in w["template"]["spec"]["containers"]]
    assert all(int(limit["nvidia.com/gpu"]) >= 1 for limit in limits)


def test_every_image_is_a_stage_of_our_dockerfile() -> None:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    cluster = MANIFEST["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert images == {"twocode:ray-gpu"}
    assert "ray-gpu" in stages
    installed_ray = importlib.util.find_spec("ray")
    if installed_ray is not None:
        import ray

        assert cluster["rayVersion"] == ray.__version__  # the image's Ray is the pinned one
