"""Prometheus text exposition (format 0.0.4): counters and histograms with labels, no client library.

Thread-safe: batch requests score in a worker thread while single rows score on the event loop.
"""
from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if v != int(v) else str(int(v))


class Counter:
    def __init__(self, name: str, help_: str, labels: tuple[str, ...] = (), kind: str = "counter") -> None:
        self.name, self.help, self.labels, self.kind = name, help_, labels, kind
        self.values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *label_values: str, by: float = 1.0) -> None:
        with self._lock:
            self.values[label_values] = self.values.get(label_values, 0.0) + by

    def set(self, *label_values: str, value: float) -> None:
        with self._lock:
            self.values[label_values] = value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        with self._lock:
            items = sorted(self.values.items())
        for lv, v in items:
            yield f"{self.name}{_labels(self.labels, lv)} {_num(v)}"


def Gauge(name: str, help_: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, help_, labels, kind="gauge")


class Histogram:
    def __init__(
        self, name: str, help_: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}  # per-bucket counts (+Inf last), then sum
        self._lock = threading.Lock()

    def observe(self, value: float, *label_values: str) -> None:
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            s = self.series.get(label_values)
            if s is None:
                s = self.series[label_values] = [0.0] * (len(self.buckets) + 2)
            s[i] += 1
            s[-1] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        with self._lock:
            items = sorted((k, list(v)) for k, v in self.series.items())
        for lv, s in items:
            cum = 0.0
            for b, c in zip((*self.buckets, math.inf), s[:-1], strict=True):
                cum += c
                le = 'le="' + ("+Inf" if math.isinf(b) else repr(b)) + '"'
                yield f"{self.name}_bucket{_labels(self.labels, lv, le)} {_num(cum)}"
            yield f"{self.name}_sum{_labels(self.labels, lv)} {_num(s[-1])}"
            yield f"{self.name}_count{_labels(self.labels, lv)} {_num(cum)}"


def render(metrics: Iterable[Counter | Histogram]) -> str:
    return "\n".join(line for m in metrics for line in m.render()) + "\n"
