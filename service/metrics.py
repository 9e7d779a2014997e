"""A small Prometheus registry: counters, gauges and histograms in the text exposition format.

Written here rather than pulled in as a dependency to keep the serving image
light; it covers exactly what /metrics exposes. Thread-safe, since batches
finish on executor threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

LabelValues = tuple[str, ...]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(label_names)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, label_names)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, *labels: str, value: float) -> None:
        with self._lock:
            self._values[labels] = value


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, label_names: Sequence[str] = (), buckets: Iterable[float] = LATENCY_BUCKETS
    ) -> None:
        super().__init__(name, help_text, label_names)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._sums[labels] = self._sums.get(labels, 0.0) + value

    def count(self, *labels: str) -> int:
        counts = self._counts.get(labels)
        return counts[-1] if counts else 0

    def total(self, *labels: str) -> float:
        return self._sums.get(labels, 0.0)

    def render(self) -> list[str]:
        lines: list[str] = []
        with self._lock:
            items = sorted((k, list(v), self._sums[k]) for k, v in self._counts.items())
        for key, counts, total in items:
            for bound, c in zip((*self.buckets, math.inf), counts, strict=True):
                le = 'le="' + _num(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {c}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {counts[-1]}")
        return lines


class Metrics:
    """Every metric the service exposes."""

    def __init__(self) -> None:
        self.requests = Counter(
            "twocode_requests_total", "HTTP requests by route, method and status", ("route", "method", "status")
        )
        self.latency = Histogram("twocode_request_duration_seconds", "HTTP request latency", ("route",))
        self.batch_size = Histogram(
            "twocode_batch_size", "rows per ONNX Runtime run", ("model", "network"), BATCH_BUCKETS
        )
        self.queue_time = Histogram(
            "twocode_queue_seconds", "time rows waited before their batch ran", ("model", "network")
        )
        self.inference_time = Histogram(
            "twocode_inference_seconds", "ONNX Runtime run time per batch", ("model", "network")
        )
        self.rejected = Counter("twocode_rejected_total", "requests refused because a bound was reached", ("reason",))
        self.in_flight = Gauge("twocode_requests_in_flight", "inference requests being served")
        self.models_loaded = Gauge("twocode_models_loaded", "models loaded and serving")
        self.model_info = Gauge("twocode_model_info", "loaded models (value 1)", ("model", "version", "provider"))

    def all(self) -> list[_Metric]:
        return [
            self.requests,
            self.latency,
            self.batch_size,
            self.queue_time,
            self.inference_time,
            self.rejected,
            self.in_flight,
            self.models_loaded,
            self.model_info,
        ]

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.all():
            lines += metric.header() + metric.render()
        return "\n".join(lines) + "\n"
