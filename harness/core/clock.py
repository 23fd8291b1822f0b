"""The scenario clock: scenario seconds on the wall clock, at a fixed time scale.

Every simulated part of a rig (rest-bus, firmware, app) reads scenario time from one shared
`ScenarioClock`, so a drive can be replayed faster than real time: with `time_scale=100` one wall
second is 100 scenario seconds and a 30-minute drive takes 18 s. A real rig runs at `time_scale=1`.

The clock starts when it is constructed, at scenario time `start_s`. It holds no mutable state
after construction (the wall reference is `time.monotonic`), so any number of threads may call it.

What it does not model:
- "as fast as possible" (event-driven virtual time): time always flows with the wall clock, so two
  threads never disagree about "now". A non-finite or non-positive `time_scale` is refused.
- pausing, stepping or changing the scale of a running clock;
- wake-up precision: `sleep_until` is as late as the operating system's scheduler makes it. At a high
  scale one millisecond of wall jitter is `time_scale` milliseconds of scenario time, so periodic
  senders must batch by scenario time instead of sleeping once per message.

>>> clock = ScenarioClock(time_scale=1000.0)
>>> clock.sleep_until(0.5)
True
>>> clock.now_s() >= 0.5
True
"""
from __future__ import annotations

import math
import threading
import time


class ScenarioClock:
    """Maps scenario seconds to wall seconds: scenario = start_s + (wall - wall at creation) * time_scale."""

    def __init__(self, time_scale: float = 1.0, *, start_s: float = 0.0) -> None:
        if not (math.isfinite(time_scale) and time_scale > 0.0):
            raise ValueError(
                f"time_scale must be a finite number > 0 (1 = real time, 100 = 100x faster), got {time_scale!r}"
            )
        self._time_scale = float(time_scale)
        self._start_s = float(start_s)
        self._wall0 = time.monotonic()

    @property
    def time_scale(self) -> float:
        return self._time_scale

    def now_s(self) -> float:
        """Current scenario time in seconds."""
        return self._start_s + (time.monotonic() - self._wall0) * self._time_scale

    def wall_s_until(self, t_s: float) -> float:
        """Wall seconds from now until scenario time `t_s` (0 if it has passed)."""
        return max(0.0, (t_s - self.now_s()) / self._time_scale)

    def scenario_span_s(self, wall_span_s: float) -> float:
        """The scenario duration that a wall-clock duration stands for."""
        return wall_span_s * self._time_scale

    def sleep_until(self, t_s: float, cancel: threading.Event | None = None) -> bool:
        """Block until scenario time `t_s`; True when reached, False if `cancel` was set first."""
        while True:
            remaining_wall_s = self.wall_s_until(t_s)
            if remaining_wall_s <= 0.0:
                return True
            if cancel is None:
                time.sleep(remaining_wall_s)
            elif cancel.wait(remaining_wall_s):
                return False

    def __repr__(self) -> str:
        return f"ScenarioClock(time_scale={self._time_scale:g}, now_s={self.now_s():.3f})"
