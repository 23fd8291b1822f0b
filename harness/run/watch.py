"""Watching a run while it goes: on virtual time, the scheduler steps every stage until the drive ends and an instant
that does not settle is a stalled stage; on a paced rig, the stages run in their threads and the watchdog looks at
them every WATCH_PERIOD_S of wall time, ending the run with a RunError that names the cause (a part that failed or
died, an app that stopped logging, a run past its time)."""
from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from firmware_sim.phone.app import AppSim
from firmware_sim.stm32 import Stm32Sim
from harness.core.clock import ScenarioClock, VirtualClock
from harness.judge.result import RunError
from harness.rig.android.errors import AdbError
from harness.rig.device_faults import FaultInjector, UartLine
from harness.rig.phone import PhoneSession
from harness.rig.rigfile import RigConfig
from harness.run.scheduler import Scheduler, SchedulerError, Stage
from harness.wire.events import EventCollector
from harness.wire.link import CRC_VARIANTS, codec_names, get_codec
from harness.wire.virtual_bus import recv_now

#: Wall seconds a run may take beyond its scenario time at the rig's time scale before it is called hung.
RUN_GRACE_WALL_S = 30.0


#: How often (wall seconds) the run's watchdog looks at its parts while the scenario runs.
WATCH_PERIOD_S = 0.1


#: How often (wall seconds) the watchdog asks a phone over adb whether the app still runs.
PHONE_CHECK_PERIOD_S = 1.0


#: A silence must also last this many wall seconds: at 100x a thread stall of a second is 100 s of scenario.
SILENCE_MIN_WALL_S = 5.0


#: Wall seconds the end of a paced run waits, at most, for the app and the UART tap to read and handle every byte
#: the firmware wrote (a slow last window included), and for a phone's event lines to stop coming.
DRAIN_TIMEOUT_S = RUN_GRACE_WALL_S


def _wait_quiet(counter, timeout_s: float, settle_s: float = 0.1) -> None:
    """Wait until `counter()` has not changed for `settle_s`, bounded by `timeout_s` (an app on a phone: its event
    lines, whose total is not known ahead)."""
    deadline = time.monotonic() + timeout_s
    last = counter()
    while time.monotonic() < deadline:
        time.sleep(settle_s)
        now = counter()
        if now == last:
            return
        last = now


def wait_drained(handled, written, timeout_s: float = DRAIN_TIMEOUT_S, poll_s: float = 0.01,
                 alive=lambda: True) -> bool:
    """Wait until `handled()` (bytes a reader has read and finished with) reaches `written()` (bytes put on the line
    for it), bounded by `timeout_s` and by the reader being `alive()`; True when it did. A reader slow on its last
    window is waited for, not cut off.

    >>> wait_drained(lambda: 10, lambda: 10), wait_drained(lambda: 9, lambda: 10, timeout_s=0.05)
    (True, False)
    """
    deadline = time.monotonic() + timeout_s
    while handled() < written():
        if time.monotonic() >= deadline or not alive():
            return False
        time.sleep(poll_s)
    return True


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """In the block, SIGTERM interrupts the run as SIGINT does (a KeyboardInterrupt naming the signal), so that the
    run writes its ERROR result and keeps its artifacts; a second SIGTERM ends the process at once. Only the main
    thread can take signals: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
@dataclass(frozen=True)
class RunProgress:
    """How far a running scenario has got, for a progress line (`Watch.tick`)."""

    t_s: float  # scenario time so far
    duration_s: float  # the scenario's length
    wall_s: float  # wall time since the run started
    events: int  # EdgeAI events received so far
    alarms: int  # of them: anomaly alarms and rule events

    @property
    def speed(self) -> float:
        """Scenario seconds per wall second so far."""
        return self.t_s / self.wall_s if self.wall_s > 0 else 0.0

    def line(self, name: str) -> str:
        """>>> RunProgress(300.0, 1800.0, 2.0, 40, 1).line("udds-leak")
        'udds-leak: t=300/1800 s (17 %), 150x, 40 events, 1 alarms'
        """
        share = 100.0 * self.t_s / self.duration_s if self.duration_s > 0 else 100.0
        return (f"{name}: t={self.t_s:.0f}/{self.duration_s:.0f} s ({share:.0f} %), {self.speed:.0f}x, "
                f"{self.events} events, {self.alarms} alarms")


@dataclass
class Watch:
    """What the watchdog and a failed run's result need: the run's parts as they come up, and its progress."""

    started_wall_s: float
    started_cpu_s: float = 0.0
    clock: ScenarioClock | VirtualClock | None = None
    last_line_wall_s: float | None = None
    last_line_t_s: float = 0.0  # on virtual time: the scenario time of the last EdgeAI line
    arrival_t_s: list = field(default_factory=list)  # the scenario time each event reached the harness
    firmware: Stm32Sim | None = None
    app: AppSim | None = None
    line: UartLine | None = None
    injector: FaultInjector | None = None
    collector: EventCollector | None = None
    #: Called with the run's progress at most every `progress_every_s` of wall time (and once per scenario second).
    progress: Callable[[RunProgress], None] | None = None
    progress_every_s: float = 10.0
    _next_progress_wall_s: float = 0.0
    _last_progress_t_s: int = -1

    def tick(self, t_s: float, duration_s: float) -> None:
        """Report progress to `progress` when it is due; cheap when it is not (called at every instant)."""
        if self.progress is None or int(t_s) <= self._last_progress_t_s:
            return
        now = time.monotonic()
        if now < self._next_progress_wall_s:
            return
        if not self._next_progress_wall_s:  # the first line comes one period after the start
            self._next_progress_wall_s = self.started_wall_s + self.progress_every_s
            if now < self._next_progress_wall_s:
                return
        self._next_progress_wall_s = now + self.progress_every_s
        self._last_progress_t_s = int(t_s)
        events = alarms = 0
        if self.collector is not None:
            events = self.collector.stats().events
            alarms = sum(e.alarm for e in self.collector.of_kind("anomaly")) + len(self.collector.of_kind("event"))
        self.progress(RunProgress(min(t_s, duration_s), duration_s, now - self.started_wall_s, events, alarms))

    def scenario_s(self, wall_s: float) -> float | None:
        """The scenario time at monotonic wall time `wall_s`; never before the clock's start (the clock and
        time.monotonic() are read a moment apart, which at 100x is tenths of a scenario second)."""
        if self.clock is None:
            return None
        if isinstance(self.clock, VirtualClock):
            return self.last_line_t_s
        return max(0.0, self.clock.now_s() - (time.monotonic() - wall_s) * self.clock.time_scale)


def _check_run(watch: Watch, parts: list, phone: PhoneSession | None, max_silence_s: float,
               check_phone: bool) -> str | None:
    """The watchdog's look at a running run: why it cannot go on, or None."""
    clock = watch.clock
    now_wall = time.monotonic()
    t_s = clock.now_s()
    for name, part in parts:
        if part.error is not None:
            return f"the {name} failed at t={t_s:.0f} s: {part.error!r}"
    last_line = "no EdgeAI line yet" if watch.collector is None or not watch.collector.stats().events else (
        f"last EdgeAI line at t={watch.scenario_s(watch.last_line_wall_s):.0f} s")
    app = watch.app
    if app is not None and not app.running:
        return (f"the app simulator's process (pid {app.pid}) died at t={t_s:.0f} s of scenario time: it no longer "
                f"reads the UART or logs ({last_line})")
    if phone is not None and check_phone:
        try:
            phone.check_alive()
        except AdbError as error:
            return f"the app on the phone died at t={t_s:.0f} s of scenario time ({last_line}): {error}"
    silent_wall_s = now_wall - watch.last_line_wall_s
    if silent_wall_s * clock.time_scale > max_silence_s and silent_wall_s >= SILENCE_MIN_WALL_S:
        since_s = watch.scenario_s(watch.last_line_wall_s)
        return (f"no EdgeAI lines since t={since_s:.0f} s: {t_s - since_s:.0f} s of scenario time without one "
                f"(limit {max_silence_s:g} s); the app's process is alive; " + silence_cause(watch))
    return None


def silence_cause(watch: Watch) -> str:
    """Why the app went silent, from the counters the harness can read: the app's own decoder and samples (the
    simulated app) and the firmware's output. A decoder rejecting frames by CRC is named with the link's CRC."""
    app, firmware = watch.app, watch.firmware
    sent = ""
    if firmware is not None:
        fw = firmware.stats
        sent = f"the firmware forwarded {fw.frames_forwarded} CAN frames and sent {fw.samples_sent} samples; "
    if app is None:
        return sent + "the app's counters cannot be read here (its status lines are the only report)"
    link, codec = app.link_stats, getattr(app, "codec", "")
    counters = (f"the app's decoder: {link.frames_decoded} frames decoded, {link.crc_errors} CRC errors, "
                f"{link.bytes_skipped} bytes skipped; {app.stats.samples_received} samples received, "
                f"{app.stats.windows_scored} windows scored")
    if link.crc_errors > max(2, link.frames_decoded):
        crc = CRC_VARIANTS[get_codec(codec).crc_variant].title if codec in codec_names() else "its CRC"
        return (f"{sent}{counters}: the app rejects the firmware's frames by their CRC ({codec} carries {crc}): "
                f"a CRC or byte-order mismatch between firmware and app, or a corrupted link")
    if app.stats.samples_received == 0:
        return f"{sent}{counters}: the app rebuilds no samples from what it decodes"
    return f"{sent}{counters}: the app receives data, the device stopped logging"


def run_threaded(clock, parts, firmware, rest_bus, bus_injector, app, tap, phone, collector, watch: Watch,
                  max_silence_s: float, duration_s: float, rig: RigConfig, switch_interval: float) -> None:
    """Paced rigs: every part in its own thread on the wall-clock `ScenarioClock`, under the watchdog."""
    # The simulated ECU, firmware and app are threads of one interpreter: a shorter switch interval keeps an
    # OBD answer (500 ms of scenario time is 5 ms of wall time at 100x) from waiting on another thread's slice.
    sys.setswitchinterval(min(switch_interval, 0.5e-3))
    for _, part in parts:
        part.start()
    budget_s = duration_s / clock.time_scale + RUN_GRACE_WALL_S
    deadline_s = time.monotonic() + budget_s
    next_phone_check_s = time.monotonic() + PHONE_CHECK_PERIOD_S
    while not firmware.wait(WATCH_PERIOD_S):  # the watchdog: every wait below is bounded too
        check_phone = time.monotonic() >= next_phone_check_s
        problem = _check_run(watch, parts, phone, max_silence_s, check_phone)
        if check_phone:
            next_phone_check_s = time.monotonic() + PHONE_CHECK_PERIOD_S
        if problem is not None:
            raise RunError(problem)
        watch.tick(clock.now_s(), duration_s)
        if time.monotonic() >= deadline_s:
            raise RunError(f"the STM32 simulator did not finish {duration_s:.0f} s of scenario within "
                           f"{budget_s:.0f} s of wall time (time scale {clock.time_scale:g})")
    rest_bus.stop()
    if bus_injector is not None:
        bus_injector.stop()  # sends the frames it still delays, while the firmware still reads
    firmware.stop()

    def written() -> int:  # every byte the firmware put on the line (the cable pulled: none of those)
        return firmware.stats.bytes_written - (watch.line.bytes_dropped if watch.line is not None else 0)

    # The app and the tap have read and handled all of it (each reader's stop() then drains its port too).
    if app is not None:
        wait_drained(lambda: app.bytes_handled, written, alive=lambda: app.running)
    if tap is not None:
        wait_drained(lambda: tap.stats.bytes_handled, written, alive=lambda: tap.running)
    if phone is not None:
        _wait_quiet(lambda: collector.stats().events, timeout_s=DRAIN_TIMEOUT_S, settle_s=1.0)
        try:
            phone.check_alive()
        except AdbError as error:
            raise RunError(f"the app on the phone died before the end of the run: {error}") from error


#: Wall seconds one instant of virtual time may take to settle before the run is called stalled.
STALL_WALL_S = 60.0


def run_stepped(clock: VirtualClock, parts, firmware, rest_bus, bus_injector, app, hops, monitor_bus, listeners,
                 watch: Watch, max_silence_s: float, duration_s: float, profile: dict | None = None) -> None:
    """The simulated rig on virtual time: one scheduler steps every part in this thread (`harness.run.scheduler`);
    then the end of the run as on a paced rig (rest-bus, injector, firmware stopped in that order, the app reads
    what is left). `profile`, when given, receives the CPU seconds of each stage."""
    def log_step(now_s: float) -> bool:  # the CAN log: every frame the monitor sees, in bus order
        message = recv_now(monitor_bus)
        did = message is not None
        while message is not None:
            for listener in listeners:
                listener.on_message_received(message)
            message = recv_now(monitor_bus)
        return did

    read = [0] * len(hops)  # bytes of each pty its reader has read

    def uart_step(now_s: float) -> bool:  # each pty: hand the kernel the firmware's bytes, its reader reads them
        did = False
        for i, (writer, reader) in enumerate(hops):
            while reader.running:  # a dead app reads nothing (the check below ends the run)
                writer.push()
                owed = writer.bytes_pushed - read[i]
                if owed <= 0:
                    break
                reader.read_owed(owed)
                read[i] += owed
                did = True
        return did

    never = lambda: math.inf  # noqa: E731 - stages woken only by input
    by_name = dict(parts)
    # In an instant: faults first (a cable pulled at t loses what is written at t), then the vehicle's frames, the
    # unit, the UART and the log; round after round until nothing moves.
    stages = [Stage(name, by_name[name].step, by_name[name].next_due_s)
              for name in ("device fault injector", "rest-bus", "bus fault injector") if name in by_name]
    # The CAN log before the UART: a frame is logged (its wall time noted) before the app's event about it, so the
    # end-to-end figure (wall time, the host's processing) stays causal.
    stages += [Stage("STM32 simulator", firmware.step, firmware.next_due_s),
               Stage("CAN log", log_step, never, late=True), Stage("UART", uart_step, never, late=True)]
    for _, part in parts:
        part.start_stepped()
    if profile is not None and isinstance(firmware, Stm32Sim):
        firmware.meter_encoding = True  # `dtg-hil bench sim`: the link encoder's own CPU time
    scheduler = Scheduler(clock, stages, stall_wall_s=STALL_WALL_S, profile=profile is not None)

    def check(now_s: float) -> str | None:
        watch.tick(now_s, duration_s)
        if app is not None and not app.running:
            last = "no EdgeAI line yet" if not watch.collector.stats().events else \
                f"last EdgeAI line at t={watch.last_line_t_s:.0f} s"
            return (f"the app simulator's process (pid {app.pid}) died at t={now_s:.0f} s of scenario time: it no "
                    f"longer reads the UART or logs ({last})")
        if now_s - watch.last_line_t_s > max_silence_s:
            return (f"no EdgeAI lines since t={watch.last_line_t_s:.0f} s: {now_s - watch.last_line_t_s:.0f} s of "
                    f"scenario time without one (limit {max_silence_s:g} s); the app's process is alive; "
                    + silence_cause(watch))
        return None

    try:
        scheduler.run(done=lambda: firmware.wait(0), check=check)
        rest_bus.stop()
        if bus_injector is not None:
            bus_injector.stop()  # sends the frames it still delays, while the firmware still reads
        scheduler.settle()
        firmware.stop()  # forwards what is still on the bus, a last status record
        scheduler.settle()
        if app is not None:
            app.stop()  # the last status line
        scheduler.settle()
    except SchedulerError as error:
        raise RunError(str(error)) from error
    finally:
        if profile is not None:
            profile.update(scheduler.cpu_s_by_stage)
            profile["instants"], profile["rounds"] = scheduler.instants, scheduler.rounds
            profile["link encode"] = firmware.encode_cpu_s
            if app is not None:
                profile["link decode"], profile["UART read"] = app.decode_cpu_s, app.read_cpu_s
                profile["app features"] = app.features_cpu_s
