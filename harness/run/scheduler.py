"""The simulated rig's discrete-event scheduler: every stage on one virtual clock, in one thread.

Each simulated stage (device faults, rest-bus, bus fault injector, STM32, UART, app, bus log) is a `Stage`: a
`step(now_s)` that does all its work due at scenario time `now_s` without blocking (reading what is already on
its bus or its pty, never waiting for more) and says whether it did anything, and a `next_due_s()` that says when
it next has work of its own (a poll tick, a J1939 frame, a delayed frame, a fault), math.inf when only input
wakes it. `Scheduler.run` steps the stages in their fixed order, round after round (a `late` stage only once the
others are quiet: the UART and the CAN log move an instant's bytes and frames in one batch), until a whole round
does nothing (the instant is settled: every frame sent at `now_s` has been read, every byte written to the pty has been
decoded); only then does it move the `VirtualClock` to the earliest `next_due_s` after `now_s`. Time never waits
for the wall clock (unless the clock asks for pacing: `VirtualClock.time_scale` finite), and a run's outputs are a
pure function of its inputs: the host's load, its speed and pytest-xdist change only how long it takes.

The transports stay real (python-can virtual bus objects, the pty read through pyserial); virtual time decides
*when* each stage looks at them, not *how* bytes and frames move.

What it does not model: any latency inside an instant (an ECU answers, a firmware forwards and an app decodes at
the same scenario time: a poll cycle's nine requests and answers all fall on its tick), CPU time of the unit (the
app's inference takes no scenario time), and a stage that blocks inside `step` forever (every blocking call a stage
makes is bounded: a read of bytes known to be in the pty times out); a stage that keeps doing work at one
instant is caught after `max_rounds` rounds, and an instant that takes more than `stall_wall_s` of wall time ends
the run (`SchedulerError`).

>>> from harness.core.clock import VirtualClock
>>> clock, seen = VirtualClock(), []
>>> ticks = iter([1.0, 2.5, math.inf])
>>> due = [0.0]
>>> def step(now_s):
...     if now_s < due[0]:
...         return False
...     seen.append(now_s)
...     due[0] = next(ticks)
...     return True
>>> Scheduler(clock, [Stage("ticker", step, lambda: due[0])]).run(done=lambda: due[0] == math.inf)
>>> seen
[0.0, 1.0, 2.5]
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.core.clock import VirtualClock
from harness.core.errors import DtgHilError


class SchedulerError(DtgHilError, RuntimeError):
    """The simulated stages cannot go on: a stage failed, livelocked or stalled, or a check found a problem."""


@dataclass(frozen=True)
class Stage:
    """One simulated part on virtual time: `step(now_s) -> did anything`, `next_due_s() -> scenario time`."""

    name: str
    step: Callable[[float], bool]
    next_due_s: Callable[[], float]
    #: A late stage is stepped only once the others have settled (a round of them did nothing): the UART and the
    #: CAN log take an instant's bytes and frames in one batch instead of one per round.
    late: bool = False


class Scheduler:
    """Runs `stages` on `clock` (see the module docstring). `cpu_s_by_stage`, when `profile` is set, sums each
    stage's thread CPU time (`time.thread_time`), for `dtg-hil bench sim`."""

    def __init__(self, clock: VirtualClock, stages: Sequence[Stage], *, max_rounds: int = 100_000,
                 stall_wall_s: float = 60.0, profile: bool = False) -> None:
        if not isinstance(clock, VirtualClock):
            raise TypeError(f"a Scheduler moves a VirtualClock, got {type(clock).__name__}")
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        self.clock = clock
        self.stages = tuple(stages)
        self.max_rounds = max_rounds
        self.stall_wall_s = stall_wall_s
        self.profile = profile
        self.cpu_s_by_stage: dict[str, float] = {name: 0.0 for name in names}
        self.instants = 0
        self.rounds = 0

    def settle(self) -> None:
        """Step every stage at the current instant until a whole round does nothing."""
        now_s = self.clock.now_s()
        started_wall_s = time.monotonic()
        early = [stage for stage in self.stages if not stage.late]
        late = [stage for stage in self.stages if stage.late]
        for _ in range(self.max_rounds):
            self.rounds += 1
            busy = False
            for stage in early:
                busy |= self._step(stage, now_s)
            if not busy:
                for stage in late:
                    busy |= self._step(stage, now_s)
                if not busy:
                    return
            if time.monotonic() - started_wall_s > self.stall_wall_s:
                raise SchedulerError(f"the instant t={now_s:.3f} s did not settle within {self.stall_wall_s:g} s "
                                     f"of wall time: a stage is stalled or far too slow")
        raise SchedulerError(f"the instant t={now_s:.3f} s did not settle after {self.max_rounds} rounds: a stage "
                             f"keeps doing work without time moving on (a livelock)")

    def _step(self, stage: Stage, now_s: float) -> bool:
        started = time.thread_time() if self.profile else 0.0
        try:
            return stage.step(now_s)
        except SchedulerError:
            raise
        except Exception as error:
            raise SchedulerError(f"the {stage.name} failed at t={now_s:.3f} s: {error!r}") from error
        finally:
            if self.profile:
                self.cpu_s_by_stage[stage.name] += time.thread_time() - started

    def next_due_s(self) -> float:
        """The earliest time after now at which a stage has work of its own (math.inf: none)."""
        now_s = self.clock.now_s()
        # A due time at or before now that the settled round left undone waits for the next instant.
        return min((due for due in (stage.next_due_s() for stage in self.stages) if due > now_s), default=math.inf)

    def run(self, done: Callable[[], bool], check: Callable[[float], str | None] | None = None) -> None:
        """Settle each instant, then `check(now_s)` (a problem: `SchedulerError`) and `done()`; move time on to
        the next due instant until `done()` is true. Nothing due while not done is a stall (`SchedulerError`)."""
        wall0 = time.monotonic()
        start_s = self.clock.now_s()
        while True:
            self.instants += 1
            self.settle()
            now_s = self.clock.now_s()
            problem = check(now_s) if check is not None else None
            if problem is not None:
                raise SchedulerError(problem)
            if done():
                return
            next_s = self.next_due_s()
            if next_s == math.inf:
                raise SchedulerError(f"at t={now_s:.3f} s no stage has anything due and the run is not done: the "
                                     f"stages wait for each other ({', '.join(s.name for s in self.stages)})")
            if self.clock.paced:  # demos: scenario time does not run ahead of wall time x scale
                ahead_s = wall0 + (next_s - start_s) / self.clock.time_scale - time.monotonic()
                if ahead_s > 0:
                    time.sleep(ahead_s)
            self.clock.advance_to(next_s)
