"""Counters, gauges and timers, served flat at ``/metrics/snapshot`` as Mesos does.

A timer named ``allocator/cycle`` with unit ``ms`` shows up as ``allocator/cycle_ms``
(the latest value) plus ``allocator/cycle_ms/count``, ``/min``, ``/max``, ``/p50``,
``/p90``, ``/p95``, ``/p99``, ``/p999`` and ``/p9999`` over its recent samples.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

import structlog

log = structlog.get_logger("libprocess.metrics")


class Counter:
    """A number that only grows. ``inc`` is one comparison and an add: cheap on hot paths."""

    __slots__ = ("name", "value")

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        if amount < 0:
            raise ValueError(
                f"counter {self.name} only counts up, got inc({amount}); use a Gauge for "
                "a value that can go down"
            )
        self.value += amount

    def snapshot(self) -> dict[str, float]:
        return {self.name: self.value}


class Gauge:
    """A value that goes up and down: set directly, or read from a callable on snapshot.

    A callable that raises leaves the gauge out of that snapshot (as Mesos leaves out
    a gauge whose future failed) rather than failing the whole snapshot.
    """

    __slots__ = ("name", "read", "value")

    def __init__(self, name: str, read: Callable[[], float] | None = None) -> None:
        self.name = name
        self.read = read
        self.value: float = 0

    def set(self, value: float) -> None:
        self.value = value

    def snapshot(self) -> dict[str, float]:
        return {self.name: self.read() if self.read is not None else self.value}


PERCENTILES = (
    ("p50", 0.5),
    ("p90", 0.9),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
    ("p9999", 0.9999),
)


class Timer:
    """Durations, with percentiles over the most recent ``capacity`` samples."""

    __slots__ = ("_samples", "count", "name", "unit")

    def __init__(self, name: str, unit: str = "ms", capacity: int = 1000) -> None:
        if unit not in ("ms", "secs", "us"):
            raise ValueError(f"timer unit must be 'ms', 'secs' or 'us', got {unit!r}")
        if capacity < 1:
            raise ValueError(f"timer capacity must be at least 1 sample, got {capacity}")
        self.name = f"{name}_{unit}"
        self.unit = unit
        self.count = 0
        self._samples: deque[float] = deque(maxlen=capacity)

    def record(self, seconds: float) -> None:
        """Add a duration given in seconds; it is stored in the timer's unit.

        A negative, NaN or infinite duration is a bug in the caller (it would poison
        every percentile), so it raises and is not recorded.
        """
        if not 0.0 <= seconds < math.inf:
            raise ValueError(
                f"timer {self.name} records a duration in seconds (finite, not negative), "
                f"got {seconds!r}"
            )
        scale = 1000.0 if self.unit == "ms" else 1e6 if self.unit == "us" else 1.0
        self._samples.append(seconds * scale)
        self.count += 1

    def percentile(self, fraction: float) -> float:
        """The ``fraction`` (0 to 1) percentile of the recent samples, in the timer's unit."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(
                f"a percentile is a fraction between 0 and 1 (0.99 for p99), got {fraction!r}"
            )
        ordered = sorted(self._samples)
        if not ordered:
            raise ValueError(f"timer {self.name} has no samples yet")
        return _percentile(ordered, fraction)

    def snapshot(self) -> dict[str, float]:
        samples = list(self._samples)
        if not samples:
            return {f"{self.name}/count": self.count}
        ordered = sorted(samples)
        out = {
            self.name: samples[-1],
            f"{self.name}/count": self.count,
            f"{self.name}/min": ordered[0],
            f"{self.name}/max": ordered[-1],
        }
        for label, fraction in PERCENTILES:
            out[f"{self.name}/{label}"] = _percentile(ordered, fraction)
        return out


def _percentile(ordered: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (as Mesos's TimeSeries statistics)."""
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


Metric = Counter | Gauge | Timer


class Metrics:
    """A runtime's metrics registry. Names are unique; adding one twice is a bug."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, Metric] = {}

    def counter(self, name: str) -> Counter:
        return self._add(Counter(name))

    def gauge(self, name: str, read: Callable[[], float] | None = None) -> Gauge:
        return self._add(Gauge(name, read))

    def timer(self, name: str, unit: str = "ms", capacity: int = 1000) -> Timer:
        return self._add(Timer(name, unit, capacity))

    def _add(self, metric: Metric):
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(
                    f"a metric named {metric.name!r} already exists; pick another name, "
                    "or remove() the old one first"
                )
            self._metrics[metric.name] = metric
        return metric

    def remove(self, name: str) -> None:
        with self._lock:
            self._metrics.pop(name, None)

    def get(self, name: str) -> Metric | None:
        return self._metrics.get(name)

    def snapshot(self) -> dict[str, float]:
        """Every metric, flat. A metric that fails to read is logged and left out."""
        with self._lock:
            metrics = list(self._metrics.values())
        out: dict[str, float] = {}
        for metric in metrics:
            try:
                out.update(metric.snapshot())
            except Exception:
                log.exception("metric_read_failed", metric=metric.name)
        return out
