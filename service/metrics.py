"""Prometheus metrics with prometheus_client, correct with one worker or several.

With several uvicorn workers each process counts its own requests; a scrape
reaches one worker at a time, so per-process counters would read 6 on one
scrape and 4 on the next for the same ten requests. In multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set, as ``python -m service`` does for
``TWOCODE_WORKERS`` > 1) every worker writes its values to files in that
folder and /metrics sums them across workers. With one worker the registry is
the process's own, with the process metrics (CPU, memory, open files) beside.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

__all__ = ["CONTENT_TYPE", "Metrics", "multiprocess_dir"]

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: the exposition stays what it was before this library


def multiprocess_dir() -> str | None:
    """The folder shared by the workers, when this process is one of several."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class Metrics:
    """Every metric the service exposes, in a registry of its own (several apps may live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        if not self.multiprocess:
            ProcessCollector(registry=self.registry)
        on = self.registry
        self.requests = Counter(
            "twocode_requests", "HTTP requests by route, method and status", ("route", "method", "status"), registry=on
        )
        self.latency = Histogram(
            "twocode_request_duration_seconds", "HTTP request latency", ("route",), buckets=LATENCY_BUCKETS, registry=on
        )
        self.batch_size = Histogram(
            "twocode_batch_size", "rows per ONNX Runtime run", ("model", "network"), buckets=BATCH_BUCKETS, registry=on
        )
        self.queue_time = Histogram(
            "twocode_queue_seconds",
            "time rows waited before their batch ran",
            ("model", "network"),
            buckets=LATENCY_BUCKETS,
            registry=on,
        )
        self.inference_time = Histogram(
            "twocode_inference_seconds",
            "ONNX Runtime run time per batch",
            ("model", "network"),
            buckets=LATENCY_BUCKETS,
            registry=on,
        )
        self.rejected = Counter(
            "twocode_rejected", "requests refused because a bound was reached", ("reason",), registry=on
        )
        # Across workers: requests in flight add up; every worker loads the same models.
        self.in_flight = Gauge(
            "twocode_requests_in_flight", "inference requests being served", multiprocess_mode="livesum", registry=on
        )
        self.models_loaded = Gauge(
            "twocode_models_loaded", "models loaded and serving", multiprocess_mode="livemax", registry=on
        )
        self.model_info = Gauge(
            "twocode_model_info",
            "loaded models (value 1; 0 once replaced or removed)",
            ("model", "version", "provider"),
            multiprocess_mode="livemax",
            registry=on,
        )
        self._models: set[tuple[str, str, str]] = set()

    def set_models(self, loaded: Iterable[tuple[str, str, str]]) -> None:
        """Gauges follow what is loaded: a replaced version drops to 0 (and out of this process's registry)."""
        current = set(loaded)
        for stale in self._models - current:
            self.model_info.labels(*stale).set(0)
            if not self.multiprocess:
                self.model_info.remove(*stale)
        for labels in current:
            self.model_info.labels(*labels).set(1)
        self._models = current
        self.models_loaded.set(len(current))

    def in_flight_now(self) -> float:
        """This process's inference requests in flight (for tests and the drain)."""
        return float(self.in_flight._value.get())  # prometheus_client exposes no getter

    def render(self) -> bytes:
        """The exposition text: this process's values, or the sum over every worker in multiprocess mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def mark_dead(pid: int) -> None:
    """Drop a finished worker's live gauges (its counters stay: they counted real requests)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
