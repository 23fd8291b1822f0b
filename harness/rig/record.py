"""Record what a rig's CAN bus carries to a BLF or ASC log (python-can's writers), for replay as a route.

On a rig with a simulated CAN bus, `record_scenario` drives the scenario's plant through the rest-bus on a
python-can virtual bus, with the simulated STM32 polling it when the profile is request/response (OBD-II), and
writes every frame on that bus, stamped with scenario time (seconds from 0). The firmware's UART output goes
nowhere: recording is about the bus. On a rig with a real CAN interface, `record_bus` listens on
`can.Bus(**rig.can_settings())` for a given time and writes every frame with the interface's own stamps (a
replay takes stamps relative to the log's first frame).

What a recording does not hold: the unit's own sensors (on OBD-II: brake, acceleration, position), the
ground-truth labels of anything the plant injected (a replay's ground truth is its overlay), and, on the
simulated bus, any timing beyond the scenario stamps (no arbitration, no bit time).
"""
from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import can

from harness.core.clock import ScenarioClock
from harness.core.errors import DtgHilError
from harness.rig.restbus import RestBus
from harness.rig.rigfile import RigConfig
from harness.world.replay import LOG_SUFFIXES
from harness.world.scenario import Scenario

Progress = Callable[[float, float, int], None]  # (seconds done, seconds in all, frames written)


class RecordError(DtgHilError, RuntimeError):
    """Recording failed: a bad output name, or a part of the chain died or hung."""


@dataclass(frozen=True)
class RecordStats:
    path: Path
    frames: int
    duration_s: float
    wall_s: float
    profile: str
    first_stamp_s: float | None = None  # the first frame's stamp: a replay's time zero (harness.world.replay)
    frames_skipped: int = 0  # broadcasts the simulated rest-bus skipped because the host fell behind


class _Counter(can.Listener):
    def __init__(self) -> None:
        self.frames = 0
        self.first_stamp_s: float | None = None

    def on_message_received(self, msg: can.Message) -> None:
        if self.first_stamp_s is None:
            self.first_stamp_s = msg.timestamp
        self.frames += 1


class _NullUart:
    """Where the simulated STM32's link bytes go while recording: nowhere."""

    def write(self, data: bytes) -> int:
        return len(data)


def check_out_path(out: Path) -> Path:
    if out.suffix.lower() not in LOG_SUFFIXES:
        raise RecordError(f"cannot write '{out}': unknown log format '{out.suffix}'; expected one of: "
                          f"{', '.join(LOG_SUFFIXES)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


class _ClockFromStart:
    """A scenario clock that reads 0 when `start()` is called, not when made: the parts that share it are built
    first (at 100x, the 25 ms it takes to build the simulated STM32 would be 2.5 s of a recording lost)."""

    def __init__(self, time_scale: float) -> None:
        self._clock = ScenarioClock(time_scale)

    def start(self) -> None:
        self._clock = ScenarioClock(self._clock.time_scale)

    @property
    def time_scale(self) -> float:
        return self._clock.time_scale

    def now_s(self) -> float:
        return self._clock.now_s()

    def wall_s_until(self, t_s: float) -> float:
        return self._clock.wall_s_until(t_s)

    def scenario_span_s(self, wall_span_s: float) -> float:
        return self._clock.scenario_span_s(wall_span_s)

    def sleep_until(self, t_s: float, cancel=None) -> bool:
        return self._clock.sleep_until(t_s, cancel)


def _wait(done: Callable[[], bool], clock_s: Callable[[], float], total_s: float, counter: _Counter,
          progress: Progress | None, budget_wall_s: float, every_wall_s: float = 2.0) -> None:
    deadline = time.monotonic() + budget_wall_s
    next_report = time.monotonic() + every_wall_s
    while not done():
        if time.monotonic() > deadline:
            raise RecordError(f"recording did not finish {total_s:.0f} s of scenario within {budget_wall_s:.0f} s "
                              "of wall time")
        time.sleep(0.05)
        if progress is not None and time.monotonic() >= next_report:
            progress(min(clock_s(), total_s), total_s, counter.frames)
            next_report += every_wall_s


def _drain(counter: _Counter, sent: int, quiet_wall_s: float = 1.0) -> None:
    """Wait until the logger has seen `sent` frames, or has seen none for `quiet_wall_s`."""
    last, last_change = counter.frames, time.monotonic()
    while counter.frames < sent and time.monotonic() - last_change < quiet_wall_s:
        time.sleep(0.02)
        if counter.frames != last:
            last, last_change = counter.frames, time.monotonic()


def record_scenario(scenario: Scenario, rig: RigConfig, out: Path, duration_s: float | None = None,
                    progress: Progress | None = None, time_scale: float | None = None) -> RecordStats:
    """Drive `scenario` on a simulated bus of `rig.profile` and write every frame to `out` (.blf or .asc)."""
    from firmware_sim.stm32 import Stm32Sim  # the unit's poller: only a simulated rig needs it

    out = check_out_path(Path(out))
    trace = scenario.run_plant()
    end_s = trace.duration_s if duration_s is None else min(float(duration_s), trace.duration_s)
    scale = rig.wall_clock_scale if time_scale is None else time_scale  # recording stays on the wall clock
    # Letters only: python-can's BLF writer reads a channel number out of any digits in the channel name.
    channel = "dtg-rec-" + uuid.uuid4().hex[:12].translate(str.maketrans("0123456789", "ghijklmnop"))
    counter = _Counter()
    started = time.monotonic()
    with can.Bus(interface="virtual", channel=channel, preserve_timestamps=True) as ecu_bus, \
            can.Bus(interface="virtual", channel=channel, preserve_timestamps=True) as unit_bus, \
            can.Bus(interface="virtual", channel=channel, preserve_timestamps=True) as monitor_bus:
        notifier = can.Notifier(monitor_bus, [can.Logger(str(out)), counter], timeout=0.05)
        clock = _ClockFromStart(scale)
        rest_bus = RestBus(ecu_bus, trace, rig.profile, clock, end_s=end_s, answer_at_request_stamp=True)
        firmware = Stm32Sim(unit_bus, _NullUart(), clock, profile=rig.profile, codec=rig.codec, end_s=end_s,
                            catch_up_polls=True)
        parts = (rest_bus, firmware)
        try:
            clock.start()
            for part in parts:
                part.start()
            # OBD-II: done when the unit's last poll cycle is (the ECU answers until stopped); J1939: when the
            # broadcaster has sent everything due before end_s.
            done = (lambda: firmware.wait(0)) if rig.profile == "obd2" else (lambda: rest_bus.wait(0))
            _wait(done, clock.now_s, end_s, counter, progress, end_s / scale + 30.0)
            rest_bus.stop()
            firmware.stop()
            # The logger may lag the bus (a J1939 bus at 100x is ~20,000 frames per wall second): let it catch up.
            sent = rest_bus.stats.frames_sent + firmware.stats.requests_sent
            _drain(counter, sent)
        finally:
            for part in reversed(parts):
                part.stop()
            notifier.stop()  # stops the logger too: the file is finished and closed
    for name, part in (("rest-bus", rest_bus), ("STM32 simulator", firmware)):
        if part.error is not None:
            raise RecordError(f"the {name} failed: {part.error!r}") from part.error
    return RecordStats(out, counter.frames, end_s, time.monotonic() - started, rig.profile, counter.first_stamp_s,
                       rest_bus.stats.frames_skipped)


def record_bus(rig: RigConfig, out: Path, duration_s: float, progress: Progress | None = None) -> RecordStats:
    """Listen on the rig's CAN interface for `duration_s` wall seconds and write every frame to `out`."""
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise RecordError(f"recording a real bus needs a duration in seconds > 0; got {duration_s!r}")
    out = check_out_path(Path(out))
    counter = _Counter()
    started = time.monotonic()
    try:
        bus = can.Bus(**rig.can_settings())
    except (can.CanError, ValueError, ImportError, OSError) as exc:
        raise RecordError(f"cannot open the CAN interface of rig '{rig.name}' ({rig.can_settings()}): {exc}") from exc
    with bus:
        notifier = can.Notifier(bus, [can.Logger(str(out)), counter], timeout=0.1)
        try:
            _wait(lambda: time.monotonic() - started >= duration_s, lambda: time.monotonic() - started,
                  duration_s, counter, progress, duration_s + 30.0)
        finally:
            notifier.stop()
    return RecordStats(out, counter.frames, duration_s, time.monotonic() - started, rig.profile,
                       counter.first_stamp_s)
