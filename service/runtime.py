"""ONNX Runtime sessions for every model in the repository, and the batchers in front of them.

A model folder that fails any check (manifest, hash, session creation,
warm-up) is refused alone with a log line saying why; the others serve.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from modelrepo import Manifest, ManifestError, load_manifest, verify_files
from modelrepo.codec import IMAGE, Z1, Z2, OnnxCodec
from service.batching import Batcher, BatcherFactory, BatchSpec, DynamicBatcher
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service.runtime")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class StartupError(RuntimeError):
    """The service cannot start as configured (e.g. device=cuda without a usable CUDA provider)."""


def choose_providers(device: str) -> list[str]:
    """Providers to ask ONNX Runtime for, from the ``device`` setting."""
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if CUDA not in available:
            raise StartupError(
                f"device=cuda but this onnxruntime offers only {available}; install onnxruntime-gpu "
                "(and not onnxruntime beside it) or set TWOCODE_DEVICE=cpu"
            )
        return [CUDA, CPU]
    return [CUDA, CPU] if CUDA in available else [CPU]


def _options(settings: Settings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@dataclass
class LoadedModel:
    """One served model: its manifest, its ONNX codec (two sessions) and their batchers."""

    name: str
    folder: Path
    manifest: Manifest
    codec: OnnxCodec
    batchers: dict[str, Batcher] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        return self.codec.provider

    def run_encoder(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batcher's run for the encoder: every output of the posterior, by tensor name.

        A shallow dict: ``dataclasses.asdict`` deep-copies each array (8 us a run, for nothing)."""
        return vars(self.codec.posterior(inputs[IMAGE])).copy()

    def run_decoder(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {IMAGE: self.codec.decode(inputs[Z1], inputs[Z2])}

    async def encode(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return await self.batchers["encoder"].submit({IMAGE: images})

    async def decode(self, z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
        return (await self.batchers["decoder"].submit({Z1: z1, Z2: z2}))[IMAGE]

    async def swap(self, z1_images: np.ndarray, z2_images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(G(z1(a), z2(b)), z1(a), z2(b)) for pairs (a, b); both sides are encoded in one batch."""
        codes = await self.encode(np.concatenate([z1_images, z2_images]))
        n = len(z1_images)
        z1, z2 = codes["z1"][:n], codes["z2"][n:]
        return await self.decode(z1, z2), z1, z2

    def warm_up(self) -> None:
        """Run both networks once at batch sizes 1 and 2, and check the outputs' shapes and range."""
        shape = self.manifest.image
        for n in (1, 2):
            image = np.random.default_rng(n).random((n, shape.channels, shape.height, shape.width), dtype=np.float32)
            codes = self.run_encoder({IMAGE: image})
            if codes["z1"].shape != (n, self.manifest.z1_dim) or codes["z2"].shape != (n, self.manifest.z2_dim):
                raise ManifestError(
                    f"{self.folder}: encoder gives z1 {codes['z1'].shape}, z2 {codes['z2'].shape}; the manifest "
                    f"says {self.manifest.z1_dim}, {self.manifest.z2_dim}"
                )
            out = self.run_decoder(codes)[IMAGE]
            if out.shape != image.shape or not np.isfinite(out).all():
                raise ManifestError(f"{self.folder}: decoder gives {out.shape}, expected {image.shape}")

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": m.name,
            "version": m.version,
            "description": m.description,
            "specified_factors": m.specified_factors,
            "input_shape": [m.image.channels, m.image.height, m.image.width],
            "z1_dim": m.z1_dim,
            "z2_dim": m.z2_dim,
            "preprocessing": m.preprocessing.model_dump(mode="json"),
            "training_data": m.training_data,
            "evaluation": m.evaluation,
            "latent_directions": {k: v.model_dump() for k, v in m.latent_directions.items()},
            "examples": [{"url": f"/models/{m.name}/{e.file}", "factors": e.factors} for e in m.examples],
            "provider": self.provider,
        }


def load_model(folder: Path, settings: Settings, providers: list[str]) -> LoadedModel:
    """Check and open one model folder; raises ManifestError (or an ORT error) when it must be refused."""
    manifest = load_manifest(folder)
    if manifest.name != folder.name:
        raise ManifestError(f"{folder}: manifest names the model {manifest.name!r}; the folder must have that name")
    verify_files(folder, manifest)
    codec = OnnxCodec(folder, providers, _options(settings))
    if settings.device == "cuda" and codec.provider != CUDA:
        raise StartupError(f"{folder}: device=cuda but ONNX Runtime fell back to {codec.provider} (is a GPU visible?)")
    model = LoadedModel(manifest.name, folder, manifest, codec)
    model.warm_up()
    return model


@dataclass
class Registry:
    """All models the service knows: those serving, and those refused with the reason."""

    models: dict[str, LoadedModel] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    retiring: set[asyncio.Task[None]] = field(default_factory=set)

    def names(self) -> list[str]:
        return sorted(self.models)

    def unready_reason(self, settings: Settings) -> str | None:
        """Why the service must not take traffic now, or None when it may.

        A process that serves nothing, serves without its default model, or was
        asked for the GPU and runs on the CPU is broken in a way a restart or a
        rollback may fix; saying "ready" would hide it from every orchestrator.
        """
        if not self.ready:
            return "models are still loading"
        if not self.models:
            refused = "; ".join(f"{name}: {why}" for name, why in sorted(self.refused.items()))
            return f"no model is serving ({refused or 'the model repository holds no model folder'})"
        default = settings.default_model
        if default not in self.models:
            why = self.refused.get(default, f"no folder {default!r} in the model repository")
            return f"the default model {default!r} is not serving: {why}"
        if settings.device == "cuda":
            off_gpu = sorted(m.name for m in self.models.values() if m.provider != CUDA)
            if off_gpu:
                return f"device=cuda but {', '.join(off_gpu)} run(s) on the CPU"
        return None


def discover(repository: Path) -> list[Path]:
    """Model folders: sub-folders of the repository holding a manifest, hidden ones skipped."""
    if not repository.is_dir():
        raise StartupError(f"model repository {repository} does not exist; set TWOCODE_MODEL_REPOSITORY")
    return sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


LOAD_ERRORS = (StartupError, ManifestError, OSError, ValueError, RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail)


def try_load(folder: Path, settings: Settings, providers: list[str]) -> LoadedModel | str:
    """The loaded model, or the reason it is refused (logged)."""
    try:
        model = load_model(folder, settings, providers)
    except LOAD_ERRORS as exc:
        log.error("model %s refused: %s", folder.name, exc)
        return str(exc)
    log.info("model %s v%s loaded on %s", model.name, model.manifest.version, model.provider)
    return model


def inline_rows(model: LoadedModel, settings: Settings) -> int:
    """How many rows of this model a run may take on the event loop: none on a GPU (its runs are
    launched, not computed, by the CPU), else as many images as ``inline_run_pixels`` allows."""
    if model.provider != "CPUExecutionProvider" or settings.inline_run_pixels == 0:
        return 0
    shape = model.manifest.image
    return settings.inline_run_pixels // (shape.height * shape.width)


def start_batchers(
    model: LoadedModel, settings: Settings, metrics: Metrics, factory: BatcherFactory = DynamicBatcher
) -> None:
    """Create and start one batcher per network of the model (needs the running event loop)."""
    for network, run in (("encoder", model.run_encoder), ("decoder", model.run_decoder)):
        spec = BatchSpec(
            model=model.name,
            network=network,
            max_batch=settings.max_batch_size,
            max_delay_s=settings.max_queue_delay_ms / 1000.0,
            max_queue=settings.max_queue_size,
            inline_rows=inline_rows(model, settings),
        )
        batcher = factory(run, spec, metrics)
        batcher.start()
        model.batchers[network] = batcher


def _unchanged(current: LoadedModel, folder: Path) -> bool:
    """Same version and same ONNX hashes as the one serving (a manifest we cannot read counts as changed)."""
    try:
        manifest = load_manifest(folder)
    except ManifestError:
        return False
    return manifest.version == current.manifest.version and manifest.files == current.manifest.files


async def retire(model: LoadedModel) -> None:
    """Stop a replaced model's batchers once the requests that still hold it have finished.

    No new request can reach it (the registry already names its successor); a request that
    looked it up just before the swap may still submit, so each batcher is awaited idle
    after the others, then stopped.
    """
    for batcher in model.batchers.values():
        await batcher.idle()
    for batcher in model.batchers.values():
        await batcher.idle()
        await batcher.stop()


async def sync(
    registry: Registry, settings: Settings, metrics: Metrics, factory: BatcherFactory = DynamicBatcher
) -> dict[str, Any]:
    """Make the registry serve what the model repository holds: the one path for start-up, reload and SIGHUP.

    New and changed folders load (off the event loop) and warm up before they serve; a broken new
    version is refused and the old one keeps serving; removed folders stop serving. A replaced
    model finishes the requests that hold it before its batchers stop. Gauges follow what is loaded.
    """
    providers = choose_providers(settings.device)
    folders = {f.name: f for f in discover(settings.model_repository)}
    report: dict[str, Any] = {"loaded": [], "unchanged": [], "refused": {}, "removed": []}
    retiring: list[LoadedModel] = []
    for name, folder in folders.items():
        current = registry.models.get(name)
        if current is not None and _unchanged(current, folder):
            report["unchanged"].append(name)
            continue
        result = await asyncio.to_thread(try_load, folder, settings, providers)
        if isinstance(result, str):
            registry.refused[name] = result + (" (the previous version keeps serving)" if current else "")
            report["refused"][name] = registry.refused[name]
            continue
        start_batchers(result, settings, metrics, factory)
        registry.models[result.name] = result  # one assignment: a request sees the old or the new, never neither
        registry.refused.pop(name, None)
        report["loaded"].append(name)
        if current is not None:
            retiring.append(current)
    for name in sorted(set(registry.models) - set(folders)):
        retiring.append(registry.models.pop(name))
        report["removed"].append(name)
    for name in set(registry.refused) - set(folders):  # a refused folder that is gone is no longer refused
        registry.refused.pop(name)
    for old in retiring:
        task = asyncio.create_task(retire(old))
        registry.retiring.add(task)
        task.add_done_callback(registry.retiring.discard)
    metrics.set_models((m.name, m.manifest.version, m.provider) for m in registry.models.values())
    return report
