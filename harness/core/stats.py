"""Percentile summaries: one for detection delays (s) and latencies (ms) alike.

A delay is judged by its median and p90, a latency by its median and p99; `percentiles` computes all three, so
both are one summary and one function. Interpolation is numpy's default (linear between order statistics).
What this module does not do: choose which percentile a criterion judges (`harness.judge`), or units.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0–100) with numpy's default linear interpolation; None for no values."""
    data = np.asarray(list(values), dtype=float)
    return float(np.percentile(data, q)) if len(data) else None


@dataclass(frozen=True)
class Percentiles:
    """How many values there were, and their median, p90 and p99 (None for no values), in the values' unit."""

    n: int
    p50: float | None
    p90: float | None
    p99: float | None

    def named(self, suffix: str, *qs: int) -> dict[str, int | float | None]:
        """The count and the percentiles `qs`, keyed as result.json names them.

        >>> percentiles([10, 20, 30, 40]).named("_ms", 50, 99)
        {'n': 4, 'p50_ms': 25.0, 'p99_ms': 39.699999999999996}
        """
        return {"n": self.n, **{f"p{q}{suffix}": getattr(self, f"p{q}") for q in qs}}


def percentiles(values: Iterable[float]) -> Percentiles:
    """The count, median, p90 and p99 of `values` (delays in s, latencies in ms, ...); None percentiles for none.

    >>> percentiles([1, 2, 3, 4])
    Percentiles(n=4, p50=2.5, p90=3.7, p99=3.9699999999999998)
    """
    data = list(values)
    return Percentiles(len(data), percentile(data, 50), percentile(data, 90), percentile(data, 99))
