"""The same FastAPI app as a Ray Serve deployment: ``serve run deploy/serve.yaml``.

Each replica builds the app with ``create_app`` (``@serve.ingress`` with a
builder, evaluated inside the replica), so every route, status code, limit,
metric and API-key check is the plain service's; each replica holds its own
ONNX Runtime sessions and its own batcher: the app's (the default) or, with
``TWOCODE_BATCHING=serve``, Ray Serve's ``@serve.batch`` (``service.ray_batching``).
Settings come from the
replica's environment (``TWOCODE_*``, set through the config's
``runtime_env``). Replicas, CPUs and fractional GPUs per replica, autoscaling
bounds and ``max_ongoing_requests`` belong in the Serve config file, not here.

Needs the ``ray`` extra: ``pip install -e ".[serve,ray]"``.
"""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve

from service.app import create_app
from service.ray_batching import batcher_for
from service.settings import Settings


def build_app() -> FastAPI:
    """Runs in each replica: models load before the replica reports itself started."""
    settings = Settings(load_before_serving=True)
    return create_app(settings, batcher_for(settings))


@serve.deployment(name="twocode")
@serve.ingress(build_app)
class TwoCodeService:
    """One replica of the service; Ray restarts it when ``check_health`` raises."""

    async def check_health(self) -> None:
        state = self.app.state  # type: ignore[attr-defined]
        reason = state.registry.unready_reason(state.settings)
        if reason is not None:  # the same rule as /readyz
            raise RuntimeError(reason)


app = TwoCodeService.bind()  # type: ignore[attr-defined]  # serve.deployment adds bind
