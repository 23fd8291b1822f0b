"""Watching a run while it goes: on virtual time, the scheduler steps every stage until the drive ends and an instant
that does not settle is a stalled stage; on a paced rig, the stages run in their threads and the watchdog looks at
them every WATCH_PERIOD_S of wall time, ending the run with a RunError that names the cause (a part that failed or
died, an app that stopped logging, a run past its time)."""
from __future__ import annotations

import math
import sys
import time
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
from harness.wire.virtual_bus import has_frames

#: Wall seconds a run may take beyond its scenario time at the rig's time scale before it is called hung.
RUN_GRACE_WALL_S = 30.0


#: How often (wall seconds) the run's watchdog looks at its parts while the scenario runs.
WATCH_PERIOD_S = 0.1


#: How often (wall seconds) the watchdog asks a phone over adb whether the app still runs.
PHONE_CHECK_PERIOD_S = 1.0


#: A silence must also last this many wall seconds: at 100x a thread stall of a second is 100 s of scenario.
SILENCE_MIN_WALL_S = 5.0


def _wait_quiet(counter, timeout_s: float, settle_s: float = 0.1) -> None:
    """Wait until `counter()` stops changing (the app has read what was sent), bounded by `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = counter()
    while time.monotonic() < deadline:
        time.sleep(settle_s)
        now = counter()
        if now == last:
            return
        last = now


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
        if time.monotonic() >= deadline_s:
            raise RunError(f"the STM32 simulator did not finish {duration_s:.0f} s of scenario within "
                           f"{budget_s:.0f} s of wall time (time scale {clock.time_scale:g})")
    rest_bus.stop()
    if bus_injector is not None:
        bus_injector.stop()  # sends the frames it still delays, while the firmware still reads
    firmware.stop()
    if app is not None:
        _wait_quiet(lambda: app.bytes_read, timeout_s=10.0)
    if tap is not None:
        _wait_quiet(lambda: tap.stats.bytes_read, timeout_s=10.0)
    if phone is not None:
        _wait_quiet(lambda: collector.stats().events, timeout_s=RUN_GRACE_WALL_S, settle_s=1.0)
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
        if not has_frames(monitor_bus):
            return False
        message = monitor_bus.recv(timeout=0.0)
        did = message is not None
        while message is not None:
            for listener in listeners:
                listener.on_message_received(message)
            message = monitor_bus.recv(timeout=0.0) if has_frames(monitor_bus) else None
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
    scheduler = Scheduler(clock, stages, stall_wall_s=STALL_WALL_S, profile=profile is not None)

    def check(now_s: float) -> str | None:
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
