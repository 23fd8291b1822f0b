"""Run one scenario on a rig, end to end, and judge it.

On the simulated rig the whole chain runs in this process, on one scenario clock:

    plant trace ─► RestBus (python-can virtual bus) ─► Stm32Sim ─► pty ─► pyserial ─► AppSim (ONNX models)
        ─► EdgeAI logcat lines ─► EventCollector ─► metrics vs ground truth ─► Judgement

Every run keeps its artifacts in one folder: `events.log` (the logcat lines as the app wrote them),
`can.blf` (every frame on the bus, python-can's BLF writer, scenario-time stamps), `labels.json` (the ground
truth), `result.json` (metrics, verdict, loss accounting) and `run.png` (signals, anomaly score against its
threshold with alarms, fuel prediction against truth). On a rig with stand-ins or real parts (the loopback
rig: slcan, adb, UART tap, GNSS feed) the same chain runs through their drivers, and a run also keeps
`uart.bin` (the tap's bytes), `logcat.txt` (the phone's logcat, pulled over adb) and the tap's cross-check
against the CAN log in `result.json`.

What a simulated run does not show: real bus timing and arbitration, a real phone's scheduling, and real
sensor noise beyond the plant's; that is what the `hil` tests on a real rig are for.
"""
from __future__ import annotations

import contextlib
import gc
import json
import math
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import can
import numpy as np

from firmware_sim.app import AppSim
from firmware_sim.gnss_input import GnssInput
from firmware_sim.rules import RuleLimits
from firmware_sim.slcan import SlcanAdapter
from firmware_sim.stm32 import Stm32Sim
from firmware_sim.uart import PtyPair, TeeSink
from harness.clock import ScenarioClock
from harness.events import AppStatus, EventCollector, FuelResult
from harness.gnss import NmeaFeed, as_received_nmea, trace_position_source
from harness.phone import PhoneSession
from harness.models import ModelSet
from harness.metrics import Judgement, ScenarioMetrics, default_sources_for_type, end_to_end_latency, judge, \
    latency_stats, scenario_metrics
from harness.restbus import RestBus
from harness.rig import RigConfig
from harness.scenario import Scenario
from harness.signals import Trace
from harness.uart_tap import SentFrameLog, TapReport, UartTap
from harness.vehicle import get_vehicle

#: Wall seconds a run may take beyond its scenario time at the rig's time scale before it is called hung.
RUN_GRACE_WALL_S = 30.0
#: The UTC time at scenario second 0, for the GNSS feed's NMEA time and date fields.
GNSS_START_UTC = datetime(2026, 1, 15, 8, 0, 0, tzinfo=timezone.utc)


class RunError(RuntimeError):
    """The run itself failed (a part of the rig died or hung): neither a pass nor a model failure."""


@dataclass
class Accounting:
    """Where every frame, sample and window went, from the rest-bus to the harness."""

    can_frames_sent: int = 0
    obd_requests_answered: int = 0
    obd_requests_unanswered: int = 0
    firmware_frames_received: int = 0
    firmware_frames_forwarded: int = 0
    firmware_frames_unforwardable: int = 0
    link_frames_decoded: int = 0
    link_crc_errors: int = 0
    link_frames_lost: int = 0
    samples_sent: int = 0
    poll_ticks_missed: int = 0
    poll_cycles_late: int = 0
    samples_received: int = 0
    windows_scored: int = 0
    event_lines: int = 0
    event_problems: int = 0


@dataclass
class RunResult:
    scenario: Scenario
    rig: RigConfig
    artifacts: Path
    trace: Trace
    collector: EventCollector
    metrics: ScenarioMetrics
    judgement: Judgement
    accounting: Accounting
    wall_s: float
    model_types: tuple[str, ...] = field(default_factory=tuple)
    tap: TapReport | None = None  # the UART tap's cross-check against the CAN log, when the rig has a tap

    @property
    def speed(self) -> float:
        """Scenario seconds per wall second achieved."""
        return self.trace.duration_s / self.wall_s if self.wall_s > 0 else math.inf


class _BusLog(can.Listener):
    """Writes every frame to the CAN log and remembers when each scenario second's last frame arrived."""

    def __init__(self, writer: can.Listener):
        self.writer = writer
        self.last_wall_by_second: dict[int, float] = {}

    def on_message_received(self, msg: can.Message) -> None:
        self.writer.on_message_received(msg)
        self.last_wall_by_second[int(math.floor(msg.timestamp + 1e-9))] = time.monotonic()

    def stop(self) -> None:
        self.writer.stop()


def fuel_truth(trace: Trace, window_s: int = 60):
    """The true mean fuel rate over the window that ends at sample `t_s` (what the fuel model estimates)."""
    per_second = trace.resample().aux["fuel_rate"]

    def at(t_s: float) -> float:
        end = int(round(t_s)) + 1
        return float(np.mean(per_second[max(end - window_s, 0):end]))

    return at


def _local_sensors(trace: Trace):
    """The unit's own sensors (brake, accelerometer, GNSS) read the plant; the position at the resolution its
    GNSS receiver's NMEA sentences carry (on a rig with a GNSS feed, `GnssInput` reads the sentences instead)."""
    def read(t_s: float) -> dict:
        return as_received_nmea(trace.reading_at(t_s))
    return read


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


def run_scenario(scenario: Scenario, rig: RigConfig, models: ModelSet, artifacts: Path,
                 model_types: tuple[str, ...] = ()) -> RunResult:
    """Drive `scenario` through the rig's chain and judge it against its `expect:` section.

    The STM32 must be simulated (a real STM32 needs a bench runner this version does not have); the CAN
    interface, the UART tap, the Android device and the GNSS feed may each be simulated in-process, a
    stand-in behind its real driver (`rig.standins`: the loopback rig), or, except the STM32, real hardware.
    """
    if rig.stm32_kind != "simulated":
        raise RunError(f"rig '{rig.name}' has a real STM32: this version drives a simulated STM32 only "
                       "(docs/rig.md, 'Bring-up of a real bench')")
    reason = rig.unsupported(scenario)
    if reason:
        raise RunError(reason)
    artifacts.mkdir(parents=True, exist_ok=True)
    trace = scenario.run_plant()
    duration_s = trace.duration_s
    vehicle = get_vehicle(scenario.vehicle)
    # Letters only: python-can's BLF writer reads a channel number out of any digits in the channel name.
    channel = "dtg-sim-" + uuid.uuid4().hex[:12].translate(str.maketrans("0123456789", "ghijklmnop"))
    collector = EventCollector()
    lock = threading.Lock()
    parts: list = []  # (name, worker) in start order; stopped in reverse
    stack = contextlib.ExitStack()
    log_file = stack.enter_context((artifacts / "events.log").open("w", encoding="utf-8"))

    def logcat(line: str) -> None:  # EdgeAI lines, from the simulated app or from adb logcat
        with lock:
            log_file.write(line + "\n")
            collector.feed_line(line)

    frozen = gc.isenabled()
    switch_interval = sys.getswitchinterval()
    started = time.monotonic()
    app = phone = tap = None
    try:
        # The CAN wire: a python-can virtual bus; the firmware and a bus monitor sit on it, the harness's rest-bus
        # too, or behind the rig's CAN interface (the slcan stand-in bridges its pty to the wire).
        firmware_bus = stack.enter_context(can.Bus(interface="virtual", channel=channel, preserve_timestamps=True))
        monitor_bus = stack.enter_context(can.Bus(interface="virtual", channel=channel, preserve_timestamps=True))
        simulated_can = rig.can.get("interface") == "virtual"
        if simulated_can:
            harness_bus = stack.enter_context(can.Bus(interface="virtual", channel=channel,
                                                      preserve_timestamps=True))
        else:
            settings = rig.can_settings()
            if "slcan" in rig.standins:
                adapter = SlcanAdapter(channel).start()
                stack.callback(adapter.stop)
                settings.update(channel=adapter.port, sleep_after_open=0)
            harness_bus = stack.enter_context(can.Bus(**settings))
        # The UART: the app's port, and the tap's when the rig has one (it sees the same bytes).
        app_pty = stack.enter_context(PtyPair())
        if rig.android_kind != "simulated":
            # Installing, pushing and starting take wall seconds: all before the scenario clock starts.
            phone = stack.enter_context(PhoneSession(rig, app_pty.port, vehicle.redline_rpm, logcat, artifacts))
            phone.start_app()
        gc.collect()
        gc.freeze()  # a full collection mid-run stalls every thread; at 100x that is seconds of scenario time

        clock = ScenarioClock(rig.time_scale)
        bus_log = _BusLog(can.BLFWriter(artifacts / "can.blf"))
        # Every frame is kept for the tap's cross-check only (on a long soak that is ~11 MiB per scenario hour).
        sent_log = SentFrameLog(clock.now_s) if rig.uart_tap else None
        notifier = can.Notifier(monitor_bus, [bus_log] + ([sent_log] if sent_log else []), timeout=0.05)
        stack.callback(notifier.stop)  # stops its listeners too: the BLF file is finished and closed
        sink = app_pty.device
        if rig.uart_tap:
            tap_port = rig.uart_tap
            if "uart_tap" in rig.standins:
                tap_pty = stack.enter_context(PtyPair(write_timeout_s=0.5))
                sink = TeeSink(app_pty.device, tap_pty.device, names=("app", "tap"))
                tap_port = tap_pty.port
            tap = UartTap(tap_port, rig.codec, baudrate=rig.uart_baudrate, first_seq=0,
                          record_path=artifacts / "uart.bin", now_s=clock.now_s)
            parts.append(("UART tap", tap))

        local_sensors = _local_sensors(trace)
        if "gnss" in rig.standins:
            gnss_pty = stack.enter_context(PtyPair())
            gnss_in = GnssInput(gnss_pty.port, other=local_sensors, baudrate=rig.gnss_baudrate,
                                now_s=clock.now_s, start_utc=GNSS_START_UTC)
            feed = NmeaFeed(gnss_pty.device, trace_position_source(trace), clock, start_utc=GNSS_START_UTC,
                            baudrate=rig.gnss_baudrate, end_s=duration_s)
            parts += [("GNSS input", gnss_in), ("GNSS feed", feed)]
            local_sensors = gnss_in

        if rig.android_kind == "simulated":
            serial_port = app_pty.open_serial(timeout_s=0.02)
            stack.callback(serial_port.close)
            app = AppSim(serial_port, models, log=logcat, codec=rig.codec, profile=rig.profile,
                         limits=RuleLimits.for_redline(vehicle.redline_rpm))
            parts.append(("app simulator", app))

        rest_bus = RestBus(harness_bus, trace, rig.profile, clock, end_s=duration_s,
                           answer_at_request_stamp=simulated_can)
        firmware = Stm32Sim(firmware_bus, sink, clock, profile=rig.profile, codec=rig.codec,
                            local_sensors=local_sensors, end_s=duration_s, max_value_age_s=1.5,
                            catch_up_polls=True)
        parts += [("rest-bus", rest_bus), ("STM32 simulator", firmware)]

        # The simulated ECU, firmware and app are threads of one interpreter: a shorter switch interval keeps an
        # OBD answer (500 ms of scenario time is 5 ms of wall time at 100x) from waiting on another thread's slice.
        sys.setswitchinterval(min(switch_interval, 0.5e-3))
        for _, part in parts:
            part.start()
        budget_s = duration_s / rig.time_scale + RUN_GRACE_WALL_S
        if not firmware.wait(budget_s):
            raise RunError(f"the STM32 simulator did not finish {duration_s:.0f} s of scenario within "
                           f"{budget_s:.0f} s of wall time (time scale {rig.time_scale:g})")
        rest_bus.stop()
        firmware.stop()
        if app is not None:
            _wait_quiet(lambda: app.bytes_read, timeout_s=10.0)
        if tap is not None:
            _wait_quiet(lambda: tap.stats.bytes_read, timeout_s=10.0)
        if phone is not None:
            _wait_quiet(lambda: len(collector.received), timeout_s=RUN_GRACE_WALL_S, settle_s=1.0)
            phone.check_alive()
        for _, part in reversed(parts):
            part.stop()
    finally:
        wall_s = time.monotonic() - started
        for _, part in reversed(parts):
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - the first failure is the one reported below
                pass
        sys.setswitchinterval(switch_interval)
        gc.unfreeze()
        if not frozen:
            gc.disable()
        stack.close()
    for name, part in parts:
        if part.error is not None:
            raise RunError(f"the {name} failed: {part.error!r}") from part.error

    events = collector.events
    sent_seconds = sorted(bus_log.last_wall_by_second)
    model_results = [r for r in collector.received if r.event.kind in ("anomaly", "fuel", "behaviour")]
    e2e = end_to_end_latency(sent_seconds, [bus_log.last_wall_by_second[s] for s in sent_seconds],
                             [r.event.t_s for r in model_results], [r.received_wall_s for r in model_results])
    types = model_types or tuple(dict.fromkeys(e.type for e in trace.events))
    metrics = scenario_metrics(events, trace.events, max_delay_s=scenario.expect.max_delay_s,
                               sources_for_type=default_sources_for_type(types), fuel_true_lph=fuel_truth(trace),
                               end_to_end=latency_stats(e2e.latencies_ms) if e2e.latencies_ms else None)
    judgement = judge(scenario.expect, metrics)
    fw = firmware.stats
    if app is not None:
        link = {k: v for k, v in vars(app.link_stats).items() if isinstance(v, int)}
        samples, windows = app.stats.samples_received, app.stats.windows_scored
    else:  # the app on a phone reports its counters in its status lines
        status = next((e for e in reversed(events) if isinstance(e, AppStatus)), None)
        link = dict(status.link) if status else {}
        samples, windows = (status.samples_received, status.windows_scored) if status else (0, 0)
    accounting = Accounting(
        can_frames_sent=rest_bus.stats.frames_sent + fw.requests_sent,
        obd_requests_answered=fw.requests_answered, obd_requests_unanswered=fw.requests_unanswered,
        firmware_frames_received=fw.frames_received, firmware_frames_forwarded=fw.frames_forwarded,
        firmware_frames_unforwardable=fw.frames_unforwardable, link_frames_decoded=link.get("frames_decoded", 0),
        link_crc_errors=link.get("crc_errors", 0), link_frames_lost=link.get("frames_lost") or 0,
        samples_sent=fw.samples_sent, poll_ticks_missed=fw.poll_ticks_missed, poll_cycles_late=fw.poll_cycles_late,
        samples_received=samples, windows_scored=windows, event_lines=len(events),
        event_problems=len(collector.problems),
    )
    tap_report = tap.report(sent_log.frames, time_scale=rig.time_scale) if tap is not None else None
    result = RunResult(scenario, rig, artifacts, trace, collector, metrics, judgement, accounting, wall_s, types,
                       tap_report)
    _write_artifacts(result)
    return result


def _write_artifacts(result: RunResult) -> None:
    from harness.plot import render_run

    labels = [asdict(e) for e in result.trace.events]
    (result.artifacts / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    summary = {
        "scenario": result.scenario.name,
        "scenario_sha256": result.scenario.sha256,
        "rig": result.rig.name,
        "passed": result.judgement.passed,
        "verdict": result.judgement.message,
        "criteria": [asdict(c) for c in result.judgement.criteria],
        "accounting": asdict(result.accounting),
        "scenario_s": result.trace.duration_s,
        "wall_s": round(result.wall_s, 3),
        "speed_x": round(result.speed, 1),
    }
    if result.tap is not None:
        tap = result.tap
        summary["uart_tap"] = {
            "frames_sent": tap.frames_sent, "frames_forwarded": tap.frames_forwarded, "missing": len(tap.missing),
            "unexpected": len(tap.unexpected), "crc_errors": tap.crc_errors, "frames_lost": tap.frames_lost,
            "latency_ms": asdict(tap.latency), "report": str(tap),
        }
    (result.artifacts / "result.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    fuel = [(e.t_s, e.fuel_rate_lph) for e in result.collector.events if isinstance(e, FuelResult)]
    render_run(result.trace, result.collector.events, result.artifacts / "run.png",
               f"{result.scenario.name} on {result.rig.name}: {'PASS' if result.judgement.passed else 'FAIL'}",
               fuel_truth(result.trace) if fuel else None)
