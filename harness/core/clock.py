"""The scenario clocks: `ScenarioClock` (scenario seconds on the wall clock, at a fixed time scale) for paced rigs,
and `VirtualClock` (scenario seconds that move only when a scheduler moves them) for the simulated rig.

Every simulated part of a rig (rest-bus, firmware, app) reads scenario time from one shared
`ScenarioClock`, so a drive can be replayed faster than real time: with `time_scale=100` one wall
second is 100 scenario seconds and a 30-minute drive takes 18 s. A real rig runs at `time_scale=1`.

The clock starts when it is constructed, at scenario time `start_s`. It holds no mutable state
after construction (the wall reference is `time.monotonic`), so any number of threads may call it.

What `ScenarioClock` does not model:
- "as fast as possible": time always flows with the wall clock, so two threads never disagree about "now".
  A non-finite or non-positive `time_scale` is refused. That is `VirtualClock`'s job (below).
- pausing, stepping or changing the scale of a running clock;
- wake-up precision: `sleep_until` is as late as the operating system's scheduler makes it. At a high
  scale one millisecond of wall jitter is `time_scale` milliseconds of scenario time, so periodic
  senders must batch by scenario time instead of sleeping once per message.

>>> clock = ScenarioClock(time_scale=1000.0)
>>> clock.sleep_until(0.5)
True
>>> clock.now_s() >= 0.5
True

`VirtualClock` is the simulated rig's: discrete-event virtual time. Its time stands still until its owner (one
`harness.run.scheduler.Scheduler`, which has run every simulated stage's work due at the current instant) moves it
on, so a run's outputs do not depend on how fast or how busy the host is. Nothing sleeps on it: `sleep_until`
is refused (a stage says when it next has work instead). Its `time_scale` is the pacing the scheduler applies
(math.inf: none, as fast as the CPU allows; a finite value: the scheduler waits on the wall clock so that scenario
time does not run ahead of wall time × scale, for demos; results are the same either way).

>>> virtual = VirtualClock()
>>> virtual.advance_to(2.5)
>>> virtual.now_s()
2.5
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


class VirtualClock:
    """Scenario time that moves only by `advance_to` (forward only); see the module docstring."""

    def __init__(self, time_scale: float = math.inf, *, start_s: float = 0.0) -> None:
        if not (time_scale > 0.0):  # also refuses NaN; math.inf means unpaced
            raise ValueError(f"time_scale must be > 0 (math.inf: as fast as possible), got {time_scale!r}")
        self._time_scale = float(time_scale)
        self._now_s = float(start_s)

    @property
    def time_scale(self) -> float:
        """The pacing asked for (math.inf: none); not a property of the time itself."""
        return self._time_scale

    @property
    def paced(self) -> bool:
        return math.isfinite(self._time_scale)

    def now_s(self) -> float:
        return self._now_s

    def advance_to(self, t_s: float) -> None:
        """Move scenario time to `t_s`; never backwards (a ValueError: a stage asked for a time already past)."""
        if not t_s >= self._now_s:
            raise ValueError(f"virtual time cannot go back from {self._now_s!r} s to {t_s!r} s")
        self._now_s = float(t_s)

    def wall_s_until(self, t_s: float) -> float:
        """0: no one waits on the wall clock for virtual time (threads that would must not run on this clock)."""
        return 0.0

    def scenario_span_s(self, wall_span_s: float) -> float:
        """inf: on virtual time a stage runs at every instant it asks for, so no wall duration stands for a delay
        (a sender's batch may hold a frame back by any amount and it still goes out at its own instant)."""
        return math.inf

    def sleep_until(self, t_s: float, cancel: threading.Event | None = None) -> bool:
        raise RuntimeError("a VirtualClock is moved by its scheduler: a stage says when it next has work "
                           "(next_due_s) instead of sleeping on it")

    def __repr__(self) -> str:
        return f"VirtualClock(time_scale={self._time_scale:g}, now_s={self._now_s:.3f})"
