"""Sampling the process's memory during a soak, against the run's scenario time.

`MemorySampler` samples, in a thread, every `period_s` of wall time: the resident set size (VmRSS, via
`harness.tools.proc`), Python's allocated memory blocks (`sys.getallocatedblocks`) and, when tracemalloc is
tracing, the bytes it has traced; each with the run's progress at that moment. `Progress` is that progress:
the models as `run_scenario` gets them, counting the fuel model's calls (the app scores one window per scenario
second), from which `MemorySampler.samples` gives each sample its scenario time. Resident memory is what the
kernel gives the process, allocator caches included: a growth is a bound on a leak, not a measure of one.
"""
from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from harness.tools.proc import status_bytes

__all__ = ["MemorySample", "MemorySampler", "Progress"]


@dataclass(frozen=True)
class MemorySample:
    """One reading of the process's memory, at wall time `wall_s` (time.monotonic) and scenario time `t_s`."""

    wall_s: float
    t_s: float
    rss_bytes: int
    python_blocks: int  # sys.getallocatedblocks(): memory blocks Python's allocator has handed out
    traced_bytes: int | None  # tracemalloc's current total, when tracing


class Progress:
    """The models, as `run_scenario` gets them, counting the fuel model's calls: one per window, one window per
    scenario second once the first window is full. Everything else goes to the real `ModelSet`."""

    def __init__(self, models: object) -> None:
        self._models = models
        self.windows = 0
        self.first_wall_s: float | None = None
        self.last_wall_s: float | None = None

    def fuel(self, window: np.ndarray) -> float:
        now = time.monotonic()
        if self.first_wall_s is None:
            self.first_wall_s = now
        self.windows += 1
        self.last_wall_s = now
        return self._models.fuel(window)

    def __getattr__(self, name: str) -> object:
        return getattr(self._models, name)


class MemorySampler:
    """Samples memory every `period_s` of wall time in a thread, with the run's progress at that moment."""

    def __init__(self, period_s: float, progress: Progress) -> None:
        self.period_s = period_s
        self.progress = progress
        self.raw: list[tuple[float, int, int, int | None, int, float | None]] = []
        self._stop_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-soak-memory", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_requested.set()
        self._thread.join(timeout_s)

    def _sample(self) -> None:
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
        rss = status_bytes("VmRSS") or 0  # 0 where /proc is not available
        self.raw.append((time.monotonic(), rss, sys.getallocatedblocks(), traced, self.progress.windows,
                         self.progress.last_wall_s))

    def _run(self) -> None:
        next_s = time.monotonic()
        while not self._stop_requested.is_set():
            self._sample()
            next_s += self.period_s
            self._stop_requested.wait(max(0.0, next_s - time.monotonic()))

    def samples(self, first_window_t_s: float, time_scale: float, duration_s: float) -> list[MemorySample]:
        """The samples taken while the scenario ran, each with its scenario time: from the windows scored by
        then (the first at `first_window_t_s`), plus the wall time since the latest one at `time_scale`."""
        first_wall_s, end_wall_s = self.progress.first_wall_s, self.progress.last_wall_s
        if first_wall_s is None or end_wall_s is None:
            return []
        out = []
        for wall_s, rss, blocks, traced, windows, last_wall_s in self.raw:
            if windows:
                t_s = first_window_t_s + (windows - 1) + (wall_s - last_wall_s) * time_scale
            else:
                t_s = first_window_t_s - (first_wall_s - wall_s) * time_scale
            if 0.0 <= t_s and wall_s <= end_wall_s:  # not the metrics, plot and files after the last window
                out.append(MemorySample(wall_s, min(t_s, duration_s), rss, blocks, traced))
        return out
