"""Percentile summaries of delays and latencies."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0–100) with numpy's default linear interpolation; None for no values."""
    data = np.asarray(list(values), dtype=float)
    return float(np.percentile(data, q)) if len(data) else None


@dataclass(frozen=True)
class DelayStats:
    n: int
    p50_s: float | None
    p90_s: float | None


def delay_stats(delays_s: Iterable[float]) -> DelayStats:
    """Median and p90 of detection delays; None percentiles when nothing was detected."""
    data = list(delays_s)
    return DelayStats(len(data), percentile(data, 50), percentile(data, 90))


@dataclass(frozen=True)
class LatencyStats:
    n: int
    p50_ms: float | None
    p99_ms: float | None


def latency_stats(values_ms: Iterable[float]) -> LatencyStats:
    """p50 and p99 of latencies in ms (linear interpolation); None percentiles for no values."""
    data = list(values_ms)
    return LatencyStats(len(data), percentile(data, 50), percentile(data, 99))
