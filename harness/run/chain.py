"""Run one scenario on a rig, end to end, and judge it.

On the simulated rig the whole chain runs in this process, in one thread, on virtual time (`harness.run.scheduler`):

    plant trace ─► RestBus (python-can virtual bus) ─► Stm32Sim ─► pty ─► pyserial ─► AppSim (ONNX models)
        ─► EdgeAI logcat lines ─► EventCollector ─► metrics vs ground truth ─► Judgement

Each stage does its work due at an instant, the scheduler settles the instant, then moves scenario time on: a run's
outputs are a pure function of scenario, seed, models and rig file (wall time, CPU time and the app's host-CPU
inference figures excepted), and it runs as fast as the CPU allows unless the rig's finite `time_scale` paces it.
The watchdog judges scenario time there (a dead app at the instant it dies, silence in scenario seconds, an instant
that does not settle). Rigs with stand-ins behind real drivers run each part in its own thread on the wall-clock
`ScenarioClock` instead, under a watchdog on wall time.

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
import dataclasses
import gc
import math
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import can
import serial

from firmware_sim.gnss_input import GnssInput
from firmware_sim.host_firmware import FirmwareFault
from firmware_sim.phone.app import AppOptions, AppSim
from firmware_sim.phone.rules import RuleLimits
from firmware_sim.slcan import SlcanAdapter
from firmware_sim.stm32 import Stm32Sim
from firmware_sim.uart import PtyPair
from firmware_sim.uart_sinks import TeeSink
from harness.core.clock import ScenarioClock, VirtualClock
from harness.core.stats import percentiles
from harness.core.worker import WorkerError
from harness.inference.features import WINDOW_S
from harness.inference.models import ModelSet
from harness.judge.metrics import (
    Criterion,
    Judgement,
    ScenarioMetrics,
    default_sources_for_type,
    end_to_end_latency,
    judge,
    scenario_metrics,
    stale_data_criterion,
)
from harness.judge.metrics.behaviour import behaviour_labels
from harness.judge.metrics.evidence import (
    DEFAULT_BEHAVIOUR_ACCURACY_MIN,
    DEFAULT_COVERAGE_MIN,
    DEFAULT_FUEL_MAE_LPH_MAX,
    DEFAULT_FUEL_R2_MIN,
    DEFAULT_RESULT_LATE_S_MAX,
    FUEL_R2_MIN_WINDOWS,
    behaviour_accuracy_criterion,
    coverage_criterion,
    model_identity_criterion,
    tap_criterion,
    timing_criterion,
)
from harness.judge.metrics.expect import criterion
from harness.judge.result import (
    LossError,
    RunError,
    RunInterrupted,
    RunResult,
    check_data_loss,
    fuel_truth,
    rig_lag_error,
)
from harness.rig.bus_fault_injector import BusFaultInjector
from harness.rig.device_faults import DeviceFault, FaultInjector, UartLine, check_model_files
from harness.rig.gnss_feed import NmeaFeed, trace_position_source
from harness.rig.lab import LabError, LabRig, place_loss
from harness.rig.lab_wiring import LabWiring, close_quietly
from harness.rig.phone import PhoneSession
from harness.rig.restbus import RestBus
from harness.rig.rigfile import RigConfig, time_scale_problem
from harness.rig.sensor_stimulus import SensorStimulus
from harness.rig.uart_tap import SentFrameLog, UartTap
from harness.run.accounting import chain_accounting
from harness.run.artifacts import write_artifacts, write_error_result, write_started_result
from harness.run.bench_stage import (
    BenchBus,
    BenchUnit,
    FaultUnavailableError,
    bench_fault_actions,
    bench_faults,
    bench_tap_report,
    prepare_bench,
)
from harness.run.host_stage import host_firmware, unit_fault, write_fault_result
from harness.run.watch import RunProgress, Watch, run_stepped, run_threaded, signals_interrupt
from harness.wire.events import EventCollector, ParseProblem
from harness.wire.link import get_codec
from harness.wire.nmea import as_received_nmea
from harness.wire.signals import Trace
from harness.wire.virtual_bus import SimBlfWriter, SimBus
from harness.world.bus_faults import SILENCING_TYPES
from harness.world.scenario import Scenario
from harness.world.vehicle import get_vehicle

#: Scenario seconds without an EdgeAI line after which a run ends as silent (`run_scenario(max_silence_s=...)`).
DEFAULT_MAX_SILENCE_S = 120.0
#: The UTC time at scenario second 0, for the GNSS feed's NMEA time and date fields.
GNSS_START_UTC = datetime(2026, 1, 15, 8, 0, 0, tzinfo=timezone.utc)


class _BusLog(can.Listener):
    """Writes every frame to the CAN log and remembers when each scenario second's last frame arrived (in an
    array by second, NaN for none: 8 bytes a second however long the drive)."""

    def __init__(self, writer: can.Listener, last_second: int):
        self.writer = writer
        self._last_second = last_second
        self._last_wall = array("d")

    def on_message_received(self, msg: can.Message) -> None:
        self.writer.on_message_received(msg)
        second = int(math.floor(msg.timestamp + 1e-9))
        if 0 <= second <= self._last_second:
            if second >= len(self._last_wall):
                self._last_wall.extend([math.nan] * (second + 1 - len(self._last_wall)))
            self._last_wall[second] = time.monotonic()

    @property
    def last_wall_by_second(self) -> dict[int, float]:
        """Scenario second -> wall time (time.monotonic) its last frame arrived, for the seconds with frames."""
        return {second: wall_s for second, wall_s in enumerate(self._last_wall) if not math.isnan(wall_s)}

    def stop(self) -> None:
        self.writer.stop()


def _local_sensors(trace: Trace):
    """The unit's own sensors (brake, accelerometer, GNSS) read the plant; the position at the resolution its
    GNSS receiver's NMEA sentences carry (on a rig with a GNSS feed, `GnssInput` reads the sentences instead)."""
    def read(t_s: float) -> dict:
        return as_received_nmea(trace.reading_at(t_s))
    return read


def run_scenario(scenario: Scenario, rig: RigConfig, models: ModelSet, artifacts: Path,
                 model_types: tuple[str, ...] = (), *, faults: Sequence[DeviceFault] = (),
                 max_silence_s: float = DEFAULT_MAX_SILENCE_S, app_options: AppOptions | None = None,
                 cpu_profile: dict | None = None, progress: Callable[[RunProgress], None] | None = None,
                 progress_every_s: float = 10.0) -> RunResult:
    """Drive `scenario` through the rig's chain and judge it against its `expect:` section.

    The STM32 must be simulated (a real STM32 needs a bench runner this version does not have); the CAN
    interface, the UART tap, the Android device and the GNSS feed may each be simulated in-process, a
    stand-in behind its real driver (`rig.standins`: the loopback rig), or, except the STM32, real hardware.

    `faults` schedules device and link faults (`harness.rig.device_faults`). On virtual time
    (`RigConfig.on_virtual_time`) the run ends with a `RunError` at the instant its app dies, once `max_silence_s` of
    scenario time passed without an EdgeAI line, or when an instant does not settle (a stage livelocked or stalled:
    `STALL_WALL_S`). On a paced rig a watchdog ends a run that cannot go on with a `RunError` naming the cause, within
    a bounded wall time (`harness.run.watch`): a part that failed or died (the app's process among them) within about
    `WATCH_PERIOD_S` (on a phone, `PHONE_CHECK_PERIOD_S` plus adb's answer); no EdgeAI line for `max_silence_s` of
    scenario time (and at least `SILENCE_MIN_WALL_S` of wall time); and any run past its scenario time plus
    `RUN_GRACE_WALL_S`. The artifacts of a failed run stay: events.log,
    can.blf and a result.json whose verdict is "error: ...", whatever ended it: a `RunError`, any other exception
    (raised as a `RunError` "the harness failed"), SIGINT or SIGTERM (`RunInterrupted`); a process killed outright
    leaves the result.json written as the run started (`UNFINISHED`). Model files whose hash changed since the models
    were opened are refused before anything starts.

    `cpu_profile`, a dict, receives the run's CPU seconds by stage and part (`dtg-hil bench sim` prints them).

    `progress`, when given, is called while the scenario runs, at most every `progress_every_s` of wall time, with
    how far it has got (`harness.run.watch.RunProgress`: scenario time, speed, events and alarms so far).

    `app_options` starts the simulated app (in-process or on the simulated phone) with debug lines or as one of
    its broken variants (`firmware_sim.phone.app.AppOptions`; the contract suite, `harness.judge.contract`, uses both).
    """
    reason = rig.unsupported(scenario)
    if reason:
        raise RunError(reason)
    reason = time_scale_problem(rig)
    if reason:
        raise RunError(f"rig '{rig.name}': time_scale {reason}")
    manifest = getattr(models, "manifest", None)
    if manifest is not None:
        try:
            check_model_files(manifest)
        except ValueError as error:
            raise RunError(f"the run was refused: {error}") from None
    faults = tuple(faults)
    cannot = sorted({f.kind for f in faults} - set(_injectable_faults(rig)))
    if cannot:
        lacks = bench_faults(rig)[1] if rig.stm32_kind == "real" else {}
        raise FaultUnavailableError(f"rig '{rig.name}' cannot inject {', '.join(cannot)}"
                                    + "".join(f" ({lacks[k]})" for k in cannot if k in lacks)
                                    + f": it can inject {', '.join(_injectable_faults(rig)) or 'none'}")
    if not (math.isfinite(max_silence_s) and max_silence_s > 0):
        raise RunError(f"max_silence_s must be a finite number > 0, got {max_silence_s!r}")
    artifacts.mkdir(parents=True, exist_ok=True)
    watch = Watch(time.monotonic(), started_cpu_s=time.process_time(), progress=progress,
                  progress_every_s=progress_every_s)
    write_started_result(scenario, rig, artifacts, watch)  # the verdict a killed process leaves: ERROR
    try:
        with signals_interrupt():
            return _run_chain(scenario, rig, models, artifacts, model_types, faults, max_silence_s, watch,
                              app_options, cpu_profile)
    except LossError:  # it comes after the full result.json
        raise
    except (RunError, FirmwareFault, WorkerError) as caught:
        fault = unit_fault(caught)  # the unit's own firmware failed (stm32 kind host): a FAIL of the unit
        if fault is not None:
            write_fault_result(scenario, rig, artifacts, fault, watch)
            raise fault from None
        # A part that failed as the run ended is re-raised by its stop(): an ERROR of the run too, not a verdict.
        error = caught if isinstance(caught, RunError) else RunError(f"a part of the run failed: {caught}")
        lost = place_loss(rig) if isinstance(rig, LabRig) else None  # a lab bench gone: say which part, rig-side
        failure = RunError(f"{error}; rig-side: {lost}") if lost and lost not in str(error) else error
        write_error_result(scenario, rig, artifacts, failure, watch)
        if failure is caught:
            raise
        raise failure from caught
    except KeyboardInterrupt as interrupt:
        where = f" at t={watch.clock.now_s():.0f} s of scenario time" if watch.clock is not None else ""
        stopped = RunInterrupted(f"the run was stopped by {interrupt.args[0] if interrupt.args else 'SIGINT'}{where}; "
                                 f"not a verdict on the unit\n  artifacts: {artifacts}")
        write_error_result(scenario, rig, artifacts, stopped, watch)
        raise stopped from None
    except Exception as failure:  # noqa: BLE001 - any failure of the harness is the run's ERROR, with its result
        error = RunError(f"the harness failed: {type(failure).__name__}: {failure}\n  artifacts: {artifacts}")
        write_error_result(scenario, rig, artifacts, error, watch)
        raise error from failure


def _injectable_faults(rig: RigConfig) -> tuple[str, ...]:
    """The device faults a run on `rig` can inject: a simulated STM32's and its UART's; a host build's UART only (it is
    not restarted); a real one's as its bench's commands allow; the app's on the simulated app or the adb stand-in."""
    kinds = list(bench_faults(rig)[0]) if rig.stm32_kind == "real" else \
        ["firmware_restart", "uart_disconnect"] if rig.stm32_kind != "host" else ["uart_disconnect"]
    if rig.android_kind == "simulated" or "adb" in rig.standins:
        kinds += ["app_killed", "logging_stopped"]
    return tuple(kinds)


def _run_chain(scenario: Scenario, rig: RigConfig, models: ModelSet, artifacts: Path, model_types: tuple[str, ...],
               faults: tuple[DeviceFault, ...], max_silence_s: float, watch: Watch,
               app_options: AppOptions | None = None, cpu_profile: dict | None = None) -> RunResult:
    started_cpu_s = time.process_time()
    trace = scenario.run_plant()
    if cpu_profile is not None:
        cpu_profile["plant"] = time.process_time() - started_cpu_s
    duration_s = trace.duration_s
    vehicle = get_vehicle(scenario.vehicle)
    # Letters only: python-can's BLF writer reads a channel number out of any digits in the channel name.
    channel = "dtg-sim-" + uuid.uuid4().hex[:12].translate(str.maketrans("0123456789", "ghijklmnop"))
    collector = watch.collector = EventCollector()
    lock = threading.Lock()
    parts: list = []  # (name, worker) in start order; stopped in reverse
    stack = contextlib.ExitStack()
    log_file = stack.enter_context((artifacts / "events.log").open("w", encoding="utf-8"))
    logger_stopped = threading.Event()  # the fault logging_stopped on the simulated app: the logger takes nothing

    arrivals = watch.arrival_t_s  # the scenario time each event reached the harness (result timing)

    def logcat(line: str) -> None:  # EdgeAI lines, from the simulated app or from adb logcat
        if logger_stopped.is_set():
            return
        with lock:
            log_file.write(line + "\n")
            got = collector.feed_line(line)
            watch.last_line_wall_s = time.monotonic()
            if watch.clock is not None:
                watch.last_line_t_s = watch.clock.now_s()
            if got is not None and not isinstance(got, ParseProblem):
                arrivals.append(watch.last_line_t_s)

    frozen = gc.isenabled()
    switch_interval = sys.getswitchinterval()
    started = time.monotonic()
    app = phone = tap = feed = None
    real = rig.stm32_kind == "real"
    try:
        if real:  # flashed once a session and reset, before its UART's ports open (they drop what came before)
            bench, firmware_record = prepare_bench(rig)
            reset_wall_s = time.monotonic()
        # The CAN wire: a python-can virtual bus; the firmware and a bus monitor sit on it, the harness's rest-bus
        # too, or behind the rig's CAN interface (the slcan stand-in bridges its pty to the wire).
        firmware_bus = stack.enter_context(SimBus(channel=channel, preserve_timestamps=True))
        monitor_bus = stack.enter_context(SimBus(channel=channel, preserve_timestamps=True))
        simulated_can = rig.can.get("interface") == "virtual"
        if simulated_can:
            harness_bus = stack.enter_context(SimBus(channel=channel, preserve_timestamps=True))
        else:
            settings = rig.can_settings()
            if "slcan" in rig.standins:
                adapter = SlcanAdapter(channel).start()
                stack.callback(adapter.stop)
                settings.update(channel=adapter.port, sleep_after_open=0)
            harness_bus = BenchBus(can.Bus(**settings)) if real else can.Bus(**settings)
            stack.callback(close_quietly if isinstance(rig, LabRig) else lambda close: close(), harness_bus.shutdown)
        lab = None
        if isinstance(rig, LabRig):  # the STM32 plugs into the bench's unit-side lines (harness.rig.lab_wiring)
            try:
                lab = stack.enter_context(LabWiring(rig, channel,
                                                    lambda ch: SimBus(channel=ch, preserve_timestamps=True)))
            except LabError as error:
                raise RunError(f"{error} (rig-side)") from None
            parts += lab.parts()
        # The UART: the app's port, and the tap's when the rig has one (it sees the same bytes).
        app_pty = stack.enter_context(PtyPair())
        if rig.android_kind != "simulated":
            # Installing, pushing and starting take wall seconds: all before the scenario clock starts.
            phone = stack.enter_context(PhoneSession(rig, rig.android_port or app_pty.port if lab is None else None,
                                                     vehicle.redline_rpm, logcat, artifacts,
                                                     app_options=app_options))
            phone.start_app()
        gc.collect()
        gc.freeze()  # a full collection mid-run stalls every thread; at 100x that is seconds of scenario time

        virtual = rig.on_virtual_time
        clock = VirtualClock(rig.time_scale) if virtual else ScenarioClock(rig.wall_clock_scale)
        watch.clock, watch.last_line_wall_s = clock, time.monotonic()  # silence counts from t=0
        if lab is not None:
            lab.bridge.now_s = clock.now_s
        if real:
            unit = BenchUnit(bench, clock, duration_s, time.monotonic() - reset_wall_s,
                             has_status="status" in get_codec(rig.codec).capabilities.record_types)
        bus_log = _BusLog(SimBlfWriter(artifacts / "can.blf"), last_second=int(duration_s) + 60)
        # Every frame is kept for the tap's cross-check only (on a long soak that is ~11 MiB per scenario hour).
        sent_log = SentFrameLog(clock.now_s) if rig.uart_tap else None
        if virtual:
            stack.callback(bus_log.stop)  # the BLF file is finished and closed
        elif real:
            harness_bus.listen(clock.now_s, [bus_log] + ([sent_log] if sent_log else []))
            stack.callback(bus_log.stop)
        else:
            notifier = can.Notifier(monitor_bus, [bus_log] + ([sent_log] if sent_log else []), timeout=0.05)
            stack.callback(notifier.stop)  # stops its listeners too: the BLF file is finished and closed
        # On virtual time the firmware's writes never block: the app reads in the same thread, between them.
        sink = app_pty.backlog_writer() if virtual else app_pty.device if lab is None else lab.uart
        hops = [(sink, "app")]  # on virtual time: (writer, reader) of each pty the UART stage moves bytes through
        if rig.uart_tap:
            tap_port = rig.uart_tap
            if "uart_tap" in rig.standins:
                tap_pty = stack.enter_context(PtyPair(write_timeout_s=0.5))
                tap_sink = tap_pty.backlog_writer() if virtual else tap_pty.device
                sink = TeeSink(sink, tap_sink, names=("app", "tap"))
                hops.append((tap_sink, "tap"))
                tap_port = tap_pty.port
            elif lab is not None:
                tap_port = lab.tap_port
            tap = UartTap(tap_port, rig.codec, baudrate=rig.uart_baudrate, first_seq=None if real else 0,
                          record_path=artifacts / "uart.bin", now_s=clock.now_s,
                          **({"read_timeout_s": 10.0} if virtual else {"on_received": unit.on_tapped} if real else {}))
            parts.append(("UART tap", tap))
        line = watch.line = UartLine(sink)  # the cable from the firmware's UART: the fault uart_disconnect pulls it

        local_sensors = _local_sensors(trace)
        if "gnss" in rig.standins or lab is not None:
            gnss_pty = stack.enter_context(PtyPair()) if lab is None else None
            gnss_in = GnssInput(gnss_pty.port if lab is None else lab.gnss_unit_port, other=local_sensors,
                                baudrate=rig.gnss_baudrate, now_s=clock.now_s, start_utc=GNSS_START_UTC)
            feed = NmeaFeed(gnss_pty.device if lab is None else lab.gnss_feed_port, trace_position_source(trace),
                            clock, start_utc=GNSS_START_UTC,
                            baudrate=rig.gnss_baudrate, end_s=duration_s)
            parts += [("GNSS input", gnss_in), ("GNSS feed", feed)]
            local_sensors = gnss_in
        elif real and rig.gnss_kind == "nmea":  # the unit's GNSS port: its own receiver reads the sentences
            feed = NmeaFeed(rig.gnss_port, trace_position_source(trace), clock, start_utc=GNSS_START_UTC,
                            baudrate=rig.gnss_baudrate, end_s=duration_s)
            parts.append(("GNSS feed", feed))
        if real and rig.stm32_sensors:  # the bench's stimulator of the unit's own sensors
            parts.append(("sensor stimulus", SensorStimulus(rig.stm32_sensors, trace, clock, end_s=duration_s)))

        if rig.android_kind == "simulated":
            # On virtual time the app reads bytes known to be in the pty: the timeout only bounds a kernel fault.
            serial_port = serial.Serial(rig.android_port, rig.uart_baudrate, timeout=0.02) if real else \
                app_pty.open_serial(timeout_s=10.0 if virtual else 0.02)
            stack.callback(serial_port.close)
            app = AppSim(serial_port, models, log=logcat, codec=rig.codec, profile=rig.profile,
                         limits=RuleLimits.for_redline(vehicle.redline_rpm), options=app_options)
            parts.append(("app simulator", app))
            watch.app = app

        # Bus faults act between the rest-bus and the wire: the rest-bus sends through the injector.
        bus_injector = BusFaultInjector(harness_bus, scenario.bus_faults, clock, profile=rig.profile,
                                        seed=scenario.seed, end_s=duration_s) if scenario.bus_faults else None
        if bus_injector is not None:
            parts.append(("bus fault injector", bus_injector))
        rest_bus = RestBus(bus_injector or harness_bus, trace, rig.profile, clock, end_s=duration_s,
                           answer_at_request_stamp=simulated_can)
        if real:  # the board: what it sent is counted off the UART tap (harness.run.bench_stage)
            firmware = watch.firmware = unit
        elif rig.stm32_kind == "host":  # the unit's own C firmware as its own process (harness.run.host_stage)
            firmware = watch.firmware = host_firmware(rig, firmware_bus, line, clock, trace, duration_s, artifacts,
                                                      GNSS_START_UTC)
        else:
            firmware = watch.firmware = Stm32Sim(firmware_bus, line, clock, profile=rig.profile, codec=rig.codec,
                                                 local_sensors=local_sensors, end_s=duration_s, max_value_age_s=1.5,
                                                 catch_up_polls=True)
        parts += [("rest-bus", rest_bus), ("STM32 simulator", firmware)]
        if faults:
            watch.injector = _device_fault_injector(faults, clock, rig, firmware, line, app, phone, logger_stopped)
            parts.append(("device fault injector", watch.injector))

        if virtual:
            readers = {"app": app, "tap": tap}
            run_stepped(clock, parts, firmware, rest_bus, bus_injector, app,
                         [(writer, readers[name]) for writer, name in hops if readers[name] is not None], monitor_bus,
                         [bus_log] + ([sent_log] if sent_log else []), watch,
                         max_silence_s, duration_s, profile=cpu_profile)
        else:
            run_threaded(clock, parts, firmware, rest_bus, bus_injector, app, tap, phone, collector, watch,
                          max_silence_s, duration_s, rig, switch_interval)
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

    started_metrics_cpu_s = time.process_time()
    tap_report = bench_tap_report(tap, sent_log.frames, firmware) if real else \
        tap.report(sent_log.frames, time_scale=rig.wall_clock_scale) if tap is not None else None
    metrics, judgement, types = _judge(scenario, rig, trace, collector, bus_log, model_types)
    # On a paced rig the simulated STM32 is the harness's: a sample it failed to send in time is the rig's loss
    # (counted rig-side), not a second the unit could report; and its first poll may come a second or two after 0.
    unsampled = _unsampled_seconds(firmware.sample_times_s, trace.duration_s) \
        if rig.stm32_kind == "simulated" and not rig.on_virtual_time else ()
    judgement = Judgement(judgement.criteria + _evidence(scenario, rig, trace, collector.events, watch.arrival_t_s,
                                                         models, tap_report, faults, metrics, unsampled))
    if cpu_profile is not None:
        cpu_profile["metrics"] = time.process_time() - started_metrics_cpu_s
    accounting = chain_accounting(rig, firmware, app, rest_bus, bus_injector, feed, line, collector, simulated_can)
    if real:  # the rest-bus's answers over the window the unit's own counters cover
        accounting.restbus_frames_sent = harness_bus.sent_between(*firmware.window())
        accounting.can_frames_sent = accounting.restbus_frames_sent + firmware.stats.requests_sent
    result = RunResult(scenario, rig, artifacts, trace, collector, metrics, judgement, accounting, wall_s, types,
                       tap_report, bus_faults=bus_injector.stats if bus_injector is not None else None,
                       faults=tuple(watch.injector.fired) if watch.injector is not None else (),
                       firmware=dict(firmware_record, clock_offset_s=round(firmware.clock_offset_s, 3),
                                     bench_actions=bench.actions) if real else None)
    rig_lag = rig_lag_error(result)
    if rig_lag is not None:
        result.error = str(rig_lag)
    started_artifacts_cpu_s = time.process_time()
    write_artifacts(result)
    result.cpu_s = time.process_time() - watch.started_cpu_s
    if cpu_profile is not None:
        cpu_profile["artifacts"] = time.process_time() - started_artifacts_cpu_s
        cpu_profile["run"] = result.cpu_s
    if rig_lag is not None:
        raise rig_lag  # before the unit's losses: with the rig behind, those may be the rig's too
    check_data_loss(result)
    return result


def _judge(scenario: Scenario, rig: RigConfig, trace: Trace, collector: EventCollector, bus_log: _BusLog,
           model_types: tuple[str, ...]) -> tuple[ScenarioMetrics, Judgement, tuple[str, ...]]:
    """The run's metrics against the trace's ground truth, and its verdict against the scenario's `expect:`."""
    events = collector.events
    last_wall = bus_log.last_wall_by_second  # built from the log's array on each read: once here
    sent_seconds = sorted(last_wall)
    model_results = [r for r in collector.received if r.event.kind in ("anomaly", "fuel", "behaviour")]
    e2e = end_to_end_latency(sent_seconds, [last_wall[s] for s in sent_seconds],
                             [r.event.t_s for r in model_results], [r.received_wall_s for r in model_results])
    types = model_types or tuple(dict.fromkeys(e.type for e in trace.events))
    style, no_style = behaviour_labels(rig.codec, trace, rig.injectable_signals)
    metrics = scenario_metrics(events, trace.events, max_delay_s=scenario.expect.max_delay_s,
                               sources_for_type=default_sources_for_type(types), fuel_true_lph=fuel_truth(trace),
                               end_to_end=percentiles(e2e.latencies_ms) if e2e.latencies_ms else None,
                               style_by_second=style, behaviour_not_judged=no_style)
    if rig.app_on_host:
        # The app ran on this host: its inference figures are thread CPU time here, not a phone's latency.
        metrics = dataclasses.replace(metrics, latency_label="simulated app's thread CPU time on the host")
    judgement = judge(scenario.expect, metrics)
    if scenario.expect.stale_data_flagged is not None:
        silenced = [(f.at_s, f.end_s) for f in scenario.bus_faults if f.type in SILENCING_TYPES]
        judgement = Judgement(judgement.criteria + (stale_data_criterion(
            scenario.expect.stale_data_flagged, events, silenced, max_delay_s=scenario.expect.max_delay_s),))
    return metrics, judgement, types


def _unsampled_seconds(sample_times_s, duration_s: float) -> list[tuple[float, float]]:
    """The whole seconds of the drive without a sample record, as (second, second) intervals; before the first
    sample, the window's length more (the app's first window ends WINDOW_S - 1 s after its first sample)."""
    sent = {round(t) for t in sample_times_s}
    first = min(sent) if sent else int(duration_s)
    return [(float(s), float(s)) for s in range(int(duration_s)) if s not in sent or s < first + WINDOW_S - 1]


def _evidence(scenario: Scenario, rig: RigConfig, trace: Trace, events: list, arrival_t_s, models: ModelSet,
              tap_report, faults: tuple[DeviceFault, ...], metrics: ScenarioMetrics,
              unsampled: list[tuple[float, float]] | tuple = ()) -> tuple[Criterion, ...]:
    """The criteria every run is judged on whatever its `expect:` asks (`harness.judge.metrics.evidence`): coverage
    of the drive with model results, each result's timing (on virtual time, where arrival times are exact), fuel and
    behaviour accuracy against the ground truth, the models as installed, and the UART tap's cross-check."""
    expect = scenario.expect
    # A fault's outage, and the seconds the link needs to come back, are no seconds the unit could report.
    outages = [(f.at_s, f.at_s + (f.duration_s or 0.0) + 5.0) for f in faults]
    outages += [(f.at_s, f.at_s + f.duration_s + 5.0) for f in scenario.bus_faults]
    out = [coverage_criterion(events, WINDOW_S - 1, trace.duration_s,
                              _or(expect.coverage_min, DEFAULT_COVERAGE_MIN), outages + list(unsampled))]
    late_max = _or(expect.result_late_s_max, DEFAULT_RESULT_LATE_S_MAX)
    untimed = ("the rig is paced by the wall clock: arrival times carry its transport's delays" if not
               rig.on_virtual_time else f"{rig.codec} carries no time: `t` is a sample count"
               if not get_codec(rig.codec).capabilities.has_timestamp else
               "the scenario's faults hold the unit's data back on purpose (a firmware catching up stamps late)"
               if faults or scenario.bus_faults else None)
    out.append(timing_criterion(events, arrival_t_s, late_max) if untimed is None else
               Criterion("result_late_s", None, late_max, "<=", "not applicable", untimed))
    fuel = metrics.fuel
    if fuel is not None and fuel.n and expect.fuel_mae_lph_max is None:
        out.append(criterion("fuel_mae_lph", fuel.mae_lph, DEFAULT_FUEL_MAE_LPH_MAX, "<=", note=f"n={fuel.n}; default"))
    if fuel is not None and fuel.r2 is not None and fuel.n >= FUEL_R2_MIN_WINDOWS and expect.fuel_r2_min is None:
        out.append(criterion("fuel_r2", fuel.r2, DEFAULT_FUEL_R2_MIN, ">=", note=f"n={fuel.n}; default"))
    # Behaviour accuracy against the style driven, where the run has behaviour labels (`behaviour_labels`).
    out.append(behaviour_accuracy_criterion(metrics.behaviour,
                                            _or(expect.behaviour_accuracy_min, DEFAULT_BEHAVIOUR_ACCURACY_MIN),
                                            metrics.behaviour_not_judged))
    manifest = getattr(models, "manifest", None)
    if manifest is not None:
        out.append(model_identity_criterion(events, {n: e.sha256 for n, e in manifest.models.items()},
                                            manifest.version, models.threshold))
    if tap_report is not None:
        out.append(tap_criterion(tap_report.problems(), not faults,
                                 "device faults cut or restart the link on purpose"))
    return tuple(out)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _device_fault_injector(faults: tuple[DeviceFault, ...], clock, rig: RigConfig, firmware: Stm32Sim,
                           line: UartLine, app: AppSim | None, phone: PhoneSession | None,
                           logger_stopped: threading.Event) -> FaultInjector:
    """The device and link faults of the run, each wired to the part that carries it out."""
    for fault in faults if rig.stm32_kind != "real" else ():  # on the firmware ahead: it falls on its tick
        if fault.kind == "firmware_restart":
            firmware.restart(fault.lasts_s, at_s=fault.at_s)
    start = {"firmware_restart": lambda fault: None,  # the firmware carries it out at its tick
             "uart_disconnect": lambda fault: line.disconnect()}
    end = {"uart_disconnect": lambda fault: line.connect()}
    if rig.stm32_kind == "real":  # the bench's commands (harness.run.bench_stage)
        start, end = bench_fault_actions(firmware)
    if app is not None:
        start.update(app_killed=lambda fault: app.kill(), logging_stopped=lambda fault: logger_stopped.set())
    elif phone is not None and phone.simulated is not None:
        start.update(app_killed=lambda fault: phone.simulated.kill_app(phone.package),
                     logging_stopped=lambda fault: phone.simulated.stop_logging())
    return FaultInjector(faults, clock, start, end, rig_name=f"rig '{rig.name}'")
