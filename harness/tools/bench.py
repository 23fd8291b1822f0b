"""Benchmarks of the simulated rig: how fast it runs and whether it loses anything.

`bench_link` drives a vehicle through the whole link: rest-bus → virtual CAN bus → simulated STM32 →
pty pair → pyserial → the codec's streaming decoder, on one `ScenarioClock`, and reports the wall time, the
time scale achieved, CAN frames per second (scenario and wall), the frames lost end to end, and how much of a
real bus and a real UART the same traffic would use.

Bus load. Bits per classic CAN data frame with `n` data bytes (SOF through the 3-bit interframe space):
47 + 8n for an 11-bit ID, 67 + 8n for a 29-bit ID. Bit stuffing (SOF through CRC: 34 + 8n bits, or 54 + 8n)
adds at most floor((34 + 8n - 1) / 4), resp. floor((54 + 8n - 1) / 4) bits (Davis, Burns, Bril, Lukkien,
"Controller Area Network (CAN) schedulability analysis: Refuted, revisited and revised", Real-Time Systems
35(3), 2007, eq. 2). The report gives the load without stuffing and with worst-case stuffing; a real bus lies
between. The bitrate is the profile's (`harness.wire.dbc`: 500 kbit/s obd2, 250 kbit/s j1939).

What it does not measure: real bus arbitration or latency (the virtual bus has neither), UART bit timing
(a pty has none), or the Android side.

`bench_soak` drives a long generated route with a few anomalies through the whole simulated chain
(`harness.run.chain.run_scenario`: rest-bus, firmware, UART, app with its three models, events) and reports what
the run lost, by the run's own accounting, and how the process's memory grew: a thread samples the resident
set size (VmRSS of /proc/self/status) and Python's allocated memory blocks (`sys.getallocatedblocks`; with
`tracemalloc=True` also the bytes Python has traced, at a cost in speed) once per scenario minute. Scenario time
is read from the run's progress: the app scores one window per scenario second, so the soak hands
`run_scenario` its models behind a thin wrapper that counts the fuel model's calls. The figures compared are
the samples at the end of the first hour and at the end of the last (of the first and last tenth of the drive
when it is shorter than two hours). Resident memory is what the kernel gives the process, allocator caches
included: a growth is a bound on a leak, not a measure of one.

Run the link benchmark with ``python -m harness.tools.bench``; every benchmark with ``dtg-hil bench ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import sys
import threading
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import can
import numpy as np

from firmware_sim.stm32 import Stm32Sim
from firmware_sim.uart import UART_BYTES_PER_S, PtyPair, UartCapture
from harness.core.clock import ScenarioClock
from harness.inference.features import WINDOW_S
from harness.rig.restbus import RestBus
from harness.wire.dbc import PROFILES, get_profile
from harness.wire.link import codec_names, get_codec
from harness.world.anomalies import random_schedule
from harness.world.cycles import generate_trip, load_cycle
from harness.world.vehicle import VEHICLES, get_vehicle, simulate

if TYPE_CHECKING:  # the soak's imports load onnxruntime: only `bench soak` pays for them, at run time
    from harness.judge.result import Accounting
    from harness.world.scenario import Scenario

__all__ = ["LinkBenchResult", "MemorySample", "SoakResult", "bench_link", "bench_soak", "can_frame_bits", "main",
           "soak_scenario"]

EXIT_OK, EXIT_FAILED = 0, 1


def can_frame_bits(dlc: int, extended: bool, stuffing: bool = False) -> int:
    """Bits a classic CAN data frame takes on the wire, interframe space included; `stuffing` adds the worst case.

    >>> can_frame_bits(8, extended=False), can_frame_bits(8, extended=False, stuffing=True)
    (111, 135)
    >>> can_frame_bits(8, extended=True), can_frame_bits(8, extended=True, stuffing=True)
    (131, 160)
    """
    if not 0 <= dlc <= 8:
        raise ValueError(f"a classic CAN frame has 0..8 data bytes, got {dlc}")
    stuffed_region = (54 if extended else 34) + 8 * dlc
    bits = (67 if extended else 47) + 8 * dlc
    return bits + ((stuffed_region - 1) // 4 if stuffing else 0)


@dataclass
class LinkBenchResult:
    """The figures of one `bench_link` run (scenario seconds are drive time, wall seconds are real time)."""

    profile: str
    codec: str
    drive_s: float
    time_scale_requested: float
    wall_s: float
    can_frames_on_bus: int  # frames the rest-bus sent plus the firmware's own requests
    can_frames_decoded: int  # CAN frames decoded from the UART byte stream on the pty
    frames_lost_end_to_end: int
    frames_unforwardable: int  # frames the codec cannot carry (29-bit on raw-can-v1): counted, not sent
    link_frames_lost: int | None  # lost per the dtg-link-v2 sequence numbers (None on raw-can-v1)
    rest_bus_frames_skipped: int  # frames the rest-bus skipped because it fell behind (never on the bus)
    requests_sent: int
    requests_unanswered: int
    answers_late: int
    samples_sent: int
    samples_decoded: int
    samples_late: int
    uart_bytes: int
    bus_bits_nominal: int
    bus_bits_worst_stuffing: int
    bitrate_bps: int

    @property
    def time_scale_achieved(self) -> float:
        return self.drive_s / self.wall_s

    @property
    def frames_per_scenario_s(self) -> float:
        return self.can_frames_on_bus / self.drive_s

    @property
    def frames_per_wall_s(self) -> float:
        return self.can_frames_on_bus / self.wall_s

    @property
    def bus_load(self) -> tuple[float, float]:
        """Fraction of the real bus's bitrate the traffic uses: (without stuffing, with worst-case stuffing)."""
        capacity = self.drive_s * self.bitrate_bps
        return self.bus_bits_nominal / capacity, self.bus_bits_worst_stuffing / capacity

    @property
    def uart_load(self) -> float:
        """Fraction of 921600 baud 8N1 the UART traffic uses, in scenario time."""
        return self.uart_bytes / self.drive_s / UART_BYTES_PER_S

    def report(self) -> str:
        nominal, stuffed = self.bus_load
        lines = [
            f"link bench: {self.profile} / {self.codec}, {self.drive_s / 60:.1f} min of drive "
            f"at {self.time_scale_requested:g}x requested",
            f"  wall time            {self.wall_s:.2f} s (achieved time scale {self.time_scale_achieved:.1f}x)",
            f"  CAN frames on bus    {self.can_frames_on_bus} ({self.frames_per_scenario_s:.1f}/s scenario, "
            f"{self.frames_per_wall_s:.0f}/s wall)",
            f"  decoded from UART    {self.can_frames_decoded} CAN frames, {self.samples_decoded} of "
            f"{self.samples_sent} samples sent",
            f"  lost end to end      {self.frames_lost_end_to_end}"
            f" (unforwardable {self.frames_unforwardable}, sequence gaps "
            f"{'n/a' if self.link_frames_lost is None else self.link_frames_lost})",
            f"  bus load             {100 * nominal:.2f} % of {self.bitrate_bps // 1000} kbit/s "
            f"({100 * stuffed:.2f} % with worst-case bit stuffing)",
            f"  UART load            {100 * self.uart_load:.2f} % of 921600 baud 8N1 "
            f"({self.uart_bytes / self.drive_s:.0f} B/s scenario)",
            f"  OBD requests         {self.requests_sent} sent, {self.requests_unanswered} unanswered "
            f"({self.answers_late} answered late)",
            f"  simulator lag        {self.samples_late} samples late, rest-bus skipped "
            f"{self.rest_bus_frames_skipped} frames",
        ]
        return "\n".join(lines)


class _BusMonitor:
    """Counts every frame on the bus and its bits, in a thread, keeping nothing else (a bus analyser)."""

    def __init__(self, bus: can.BusABC) -> None:
        self.bus = bus
        self.frames = self.bits_nominal = self.bits_worst_stuffing = 0
        self._stop_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-bus-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_requested.set()
        self._thread.join(timeout_s)

    def _count(self, message: can.Message) -> None:
        self.frames += 1
        self.bits_nominal += can_frame_bits(message.dlc, message.is_extended_id)
        self.bits_worst_stuffing += can_frame_bits(message.dlc, message.is_extended_id, stuffing=True)

    def _run(self) -> None:
        while not self._stop_requested.is_set():
            message = self.bus.recv(timeout=0.02)
            if message is not None:
                self._count(message)
        while (message := self.bus.recv(timeout=0.0)) is not None:  # what was still queued at stop
            self._count(message)


def bench_link(
    minutes: float = 30.0,
    time_scale: float = 100.0,
    profile: str = "obd2",
    codec: str = "dtg-link-v2",
    *,
    cycle: str = "udds",
    vehicle: str = "passenger_car",
    seed: int = 0,
    echo: bool = True,
) -> LinkBenchResult:
    """Drive `minutes` of `cycle` (repeated as needed) through rest-bus → CAN → firmware → pty → decoder.

    Prints the report when `echo` is true, and returns the figures either way.
    """
    get_profile(profile)  # fail fast, listing the choices
    codec_obj = get_codec(codec)
    if not (math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"minutes must be a finite number > 0, got {minutes!r}")
    drive_s = minutes * 60.0
    speed_profile = load_cycle(cycle)
    speed_profile = speed_profile.repeated(max(1, math.ceil(drive_s / speed_profile.duration_s)))
    trace = simulate(speed_profile, get_vehicle(vehicle), seed=seed)

    # At 100x a full garbage collection of the setup's objects (~0.1 s) would stall every simulated part for
    # 10 s of drive; freeze them out of the collector for the run.
    gc.collect()
    gc.freeze()
    channel = f"bench-link-{uuid.uuid4()}"
    ecu_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    firmware_bus = can.Bus(interface="virtual", channel=channel)
    monitor = _BusMonitor(can.Bus(interface="virtual", channel=channel))
    try:
        with PtyPair() as pty:
            decoder = codec_obj.decoder(first_seq=0) if codec_obj.capabilities.has_sequence else codec_obj.decoder()
            capture = UartCapture(pty.open_serial(), decoder, keep_records=False).start()
            monitor.start()
            clock = ScenarioClock(time_scale)
            started = time.perf_counter()
            firmware = Stm32Sim(firmware_bus, pty.device, clock, profile=profile, codec=codec, end_s=drive_s,
                                local_sensors=trace.reading_at).start()
            rest_bus = RestBus(ecu_bus, trace, profile, clock, end_s=drive_s).start()
            budget_wall_s = drive_s / time_scale + 60.0
            try:
                if not rest_bus.wait(budget_wall_s):
                    raise TimeoutError(f"rest-bus did not finish {drive_s:.0f} s of drive in {budget_wall_s:.0f} s")
                firmware.wait(10.0)
            finally:
                rest_bus.stop()
                firmware.stop()
            written = firmware.stats.bytes_written
            if not capture.wait_for_bytes(written, 60.0):
                print(f"warning: the reader got {capture.stats.bytes_read} of {written} bytes", file=sys.stderr)
            capture.stop()
            monitor.stop()
            wall_s = time.perf_counter() - started
    finally:
        monitor.bus.shutdown()
        ecu_bus.shutdown()
        firmware_bus.shutdown()
        gc.unfreeze()

    fw, rb, got, link = firmware.stats, rest_bus.stats, capture.stats, capture.decoder_stats
    on_bus = monitor.frames
    if on_bus != rb.frames_sent + fw.requests_sent:  # the monitor and the senders must agree
        print(f"warning: the bus monitor saw {on_bus} frames, the senders sent "
              f"{rb.frames_sent + fw.requests_sent}", file=sys.stderr)
    result = LinkBenchResult(
        profile=profile,
        codec=codec,
        drive_s=drive_s,
        time_scale_requested=time_scale,
        wall_s=wall_s,
        can_frames_on_bus=on_bus,
        can_frames_decoded=got.can_frames,
        frames_lost_end_to_end=on_bus - got.can_frames,
        frames_unforwardable=fw.frames_unforwardable,
        link_frames_lost=link.frames_lost,
        rest_bus_frames_skipped=rb.frames_skipped,
        requests_sent=fw.requests_sent,
        requests_unanswered=fw.requests_unanswered,
        answers_late=fw.answers_late,
        samples_sent=fw.samples_sent,
        samples_decoded=got.samples,
        samples_late=fw.samples_late,
        uart_bytes=fw.bytes_written,
        bus_bits_nominal=monitor.bits_nominal,
        bus_bits_worst_stuffing=monitor.bits_worst_stuffing,
        bitrate_bps=get_profile(profile).bitrate_bps,
    )
    if echo:
        print(result.report(), flush=True)
    return result


def cmd_bench_plant(args: argparse.Namespace) -> int:
    """Time the plant over generated trips with anomalies; prints hours of driving per second of CPU."""
    trip_s = 1800.0
    trips = int(np.ceil(args.hours * 3600.0 / trip_s))
    rng = np.random.default_rng(args.seed)
    profiles = [generate_trip(args.seed + i, trip_s) for i in range(trips)]
    schedules = [random_schedule(rng, p.duration_s, 3) for p in profiles]
    started = time.perf_counter()
    driven_s = 0.0
    for i, (profile, schedule) in enumerate(zip(profiles, schedules, strict=False)):
        trace = simulate(profile, get_vehicle(list(VEHICLES)[i % len(VEHICLES)]), schedule, args.seed + i)
        driven_s += trace.duration_s
    elapsed = time.perf_counter() - started
    anomalies = sum(len(s) for s in schedules)
    print(f"plant: {driven_s / 3600:.2f} h of driving ({trips} trips, {anomalies} anomalies, 10 Hz) in "
          f"{elapsed:.2f} s = {driven_s / elapsed:.0f}x real time")
    return 0


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the link benchmark (for `dtg-hil bench link` and `python -m harness.tools.bench`)."""
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of drive (default: 30)")
    parser.add_argument("--time-scale", type=float, default=100.0,
                        help="scenario seconds per wall second (default: 100)")
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES),
                        help="vehicle profile; repeat for several (default: all)")
    parser.add_argument("--codec", choices=codec_names(), default="dtg-link-v2",
                        help="UART codec (default: dtg-link-v2)")
    parser.add_argument("--cycle", default="udds", help="drive cycle, repeated to fill the minutes (default: udds)")
    parser.add_argument("--vehicle", choices=list(VEHICLES), default="passenger_car",
                        help="vehicle preset (default: passenger_car)")


def cmd_bench_link(args: argparse.Namespace) -> int:
    """Run the link benchmark for each profile asked; exit 1 if any frame was lost end to end."""
    lost = 0
    for profile in args.profile or sorted(PROFILES):
        result = bench_link(args.minutes, args.time_scale, profile, args.codec, cycle=args.cycle,
                            vehicle=args.vehicle)
        lost += result.frames_lost_end_to_end
    return EXIT_FAILED if lost else EXIT_OK


# ------------------------------------------------------------------------------------------------ soak

#: Anomalies of the soak drive, spread over it (behavioural, vehicle, position and sensor faults).
SOAK_ANOMALIES = (
    {"type": "overheating"},
    {"type": "harsh_braking"},
    {"type": "gps_jump"},
    {"type": "stuck_value", "signal": "coolant_temp"},
    {"type": "fuel_leak"},
    {"type": "spike_noise", "signal": "engine_rpm"},
)
#: The soak fails when resident memory grows by this much or more from the first segment's end to the last's.
SOAK_MAX_GROWTH = 0.10
#: The soak compares whole hours from a drive of this many hours on; shorter drives compare tenths.
SOAK_HOURS_FOR_HOURLY = 2.0


def soak_scenario(hours: float, seed: int = 0) -> Scenario:
    """A generated route of `hours` (urban, rural and highway) with the `SOAK_ANOMALIES` spread evenly over it."""
    from harness.world.scenario import parse_scenario

    duration_s = hours * 3600.0
    slot_s = duration_s / (len(SOAK_ANOMALIES) + 1)
    anomalies = []
    for i, kind in enumerate(SOAK_ANOMALIES):
        anomalies.append({**kind, "at_s": round(slot_s * (i + 0.75), 1), "onset_s": round(min(30.0, 0.1 * slot_s), 1),
                          "sustain_s": round(min(300.0, 0.3 * slot_s), 1),
                          "recovery_s": round(min(30.0, 0.1 * slot_s), 1), "severity": 0.8})
    data = {"name": f"soak-{hours:g}h", "description": f"{hours:g} h generated drive for the soak benchmark",
            "vehicle": "passenger_car", "seed": seed, "route": {"generated": {"duration_s": duration_s}},
            "anomalies": anomalies,
            # The soak reports and judges its losses itself, beside its memory figures: no DataLossError.
            "expect": {"data_loss_max_pct": 100}}
    return parse_scenario(data, {}, "", name=data["name"])


@dataclass(frozen=True)
class MemorySample:
    """One reading of the process's memory, at wall time `wall_s` (time.monotonic) and scenario time `t_s`."""

    wall_s: float
    t_s: float
    rss_bytes: int
    python_blocks: int  # sys.getallocatedblocks(): memory blocks Python's allocator has handed out
    traced_bytes: int | None  # tracemalloc's current total, when tracing


def _rss_bytes() -> int:
    """The resident set size of this process (VmRSS), in bytes; 0 where /proc is not available."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Progress:
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


class _MemorySampler:
    """Samples memory every `period_s` of wall time in a thread, with the run's progress at that moment."""

    def __init__(self, period_s: float, progress: _Progress) -> None:
        self.period_s = period_s
        self.progress = progress
        self.raw: list[tuple[float, int, int, int | None, int, float | None]] = []
        self._stop_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-soak-memory", daemon=True)

    def start(self) -> _MemorySampler:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_requested.set()
        self._thread.join(timeout_s)

    def _sample(self) -> None:
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
        self.raw.append((time.monotonic(), _rss_bytes(), sys.getallocatedblocks(), traced, self.progress.windows,
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


@dataclass
class SoakResult:
    """The figures of one soak: the run's loss accounting, its speed, and memory at the ends of two segments."""

    hours: float
    time_scale_requested: float
    drive_s: float
    wall_s: float
    speed: float
    accounting: Accounting
    samples: list[MemorySample]
    segment_s: float  # length of the compared segments: an hour, or a tenth of a short drive
    sample_period_s: float  # scenario seconds between memory samples
    artifacts: Path
    verdict: str
    tracing: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def segment_name(self) -> str:
        return "hour" if self.segment_s == 3600.0 else "tenth"

    def _at(self, t_s: float) -> MemorySample | None:
        """The first sample at or after scenario time `t_s` (the last one if none is)."""
        later = [s for s in self.samples if s.t_s >= t_s - 1e-9]
        return later[0] if later else (self.samples[-1] if self.samples else None)

    @property
    def first_segment_end(self) -> MemorySample | None:
        return self._at(self.segment_s)

    @property
    def last_segment_end(self) -> MemorySample | None:
        return self.samples[-1] if self.samples else None

    @property
    def rss_growth(self) -> float:
        """Growth of resident memory from the end of the first segment to the end of the last, as a fraction."""
        first, last = self.first_segment_end, self.last_segment_end
        if first is None or last is None or not first.rss_bytes:
            return math.nan
        return (last.rss_bytes - first.rss_bytes) / first.rss_bytes

    @property
    def peak_rss_bytes(self) -> int:
        return max((s.rss_bytes for s in self.samples), default=0)

    @property
    def losses(self) -> dict[str, int]:
        """Every count of lost or damaged data, by where it was lost; all must be 0."""
        a = self.accounting
        requests_sent = a.obd_requests_answered + a.obd_requests_unanswered
        return {
            "CAN frames sent but not received by the firmware": a.can_frames_sent - requests_sent
            - a.firmware_frames_received,
            "frames the firmware received but did not forward": a.firmware_frames_received + requests_sent
            - a.firmware_frames_forwarded - a.firmware_frames_unforwardable,
            "link frames lost (sequence gaps)": a.link_frames_lost,
            "link frames with a CRC error": a.link_crc_errors,
            "samples sent but not received by the app": a.samples_sent - a.samples_received,
            "EdgeAI lines the harness could not parse": a.event_problems,
        }

    @property
    def frames_lost(self) -> int:
        return sum(abs(v) for v in self.losses.values())

    @property
    def passed(self) -> bool:
        return self.frames_lost == 0 and self.rss_growth < SOAK_MAX_GROWTH

    def report(self) -> str:
        a = self.accounting
        mib = 1024 * 1024
        first, last = self.first_segment_end, self.last_segment_end
        requests_sent = a.obd_requests_answered + a.obd_requests_unanswered
        status_records = a.link_frames_decoded - a.firmware_frames_forwarded - a.samples_received
        lines = [
            f"soak: {self.hours:g} h generated drive with {len(SOAK_ANOMALIES)} anomalies at "
            f"{self.time_scale_requested:g}x requested; artifacts in {self.artifacts}",
            f"  speed                {self.drive_s / 3600:.2f} h of drive in {self.wall_s:.1f} s wall = "
            f"{self.speed:.1f}x real time (setup and drain included)",
            f"  CAN                  {a.can_frames_sent} frames on the bus ({requests_sent} OBD requests), "
            f"{a.firmware_frames_received} received by the firmware, {a.firmware_frames_forwarded} forwarded "
            f"({a.firmware_frames_unforwardable} unforwardable)",
            f"  link                 {a.link_frames_decoded} frames decoded by the app ({a.firmware_frames_forwarded}"
            f" CAN + {a.samples_received} samples + {status_records} status), {a.link_frames_lost} lost by "
            f"sequence, {a.link_crc_errors} CRC errors",
            f"  samples              {a.samples_sent} sent, {a.samples_received} received; {a.windows_scored} "
            f"windows scored, {a.event_lines} EdgeAI lines, {a.event_problems} unparsable",
            f"  simulator lag        {a.obd_requests_unanswered} OBD requests unanswered in time, "
            f"{a.poll_cycles_late} poll cycles run late, {a.poll_ticks_missed} ticks missed",
            f"  frames lost          {self.frames_lost}"
            + ("" if not self.frames_lost else " (" + ", ".join(f"{k}: {v}" for k, v in self.losses.items() if v)
                                                + ")"),
        ]
        if first is not None and last is not None:
            lines += [
                f"  memory (RSS)         end of first {self.segment_name} {first.rss_bytes / mib:.1f} MiB "
                f"(t={first.t_s:.0f} s), end of last {self.segment_name} {last.rss_bytes / mib:.1f} MiB "
                f"(t={last.t_s:.0f} s): growth {100 * self.rss_growth:+.2f} % (limit {100 * SOAK_MAX_GROWTH:.0f} %); "
                f"peak {self.peak_rss_bytes / mib:.1f} MiB",
                f"  Python heap          {first.python_blocks} -> {last.python_blocks} allocated blocks "
                f"({100 * (last.python_blocks - first.python_blocks) / max(1, first.python_blocks):+.2f} %)"
                + (f"; traced {first.traced_bytes / mib:.1f} -> {last.traced_bytes / mib:.1f} MiB"
                   if first.traced_bytes is not None and last.traced_bytes is not None else ""),
                f"  memory samples       {len(self.samples)}, one every {self.sample_period_s:g} s of scenario "
                f"time; segments of {self.segment_s:g} s",
            ]
        else:
            lines.append("  memory               no samples (the run scored no window)")
        lines += [f"  note                 {note}" for note in self.notes]
        lines.append(f"  verdict              {'PASS' if self.passed else 'FAIL'}: {self.verdict}")
        return "\n".join(lines)


def bench_soak(
    hours: float = 4.0,
    time_scale: float = 100.0,
    *,
    manifest: str | Path = "models/manifest.json",
    out: str | Path | None = None,
    seed: int = 0,
    tracing: bool = False,
    echo: bool = True,
) -> SoakResult:
    """Drive `hours` of a generated route through the simulated chain at `time_scale`; account for every frame
    and sample the memory. Prints the report when `echo` is true, and returns the figures either way."""
    from harness.inference.models import ModelSet
    from harness.rig.rigfile import BUILTIN_SIM_RIG
    from harness.run.chain import run_scenario

    if not (math.isfinite(hours) and hours > 0):
        raise ValueError(f"hours must be a finite number > 0, got {hours!r}")
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"time scale must be a finite number > 0, got {time_scale!r}")
    if hours * 3600.0 < 120.0:
        raise ValueError(f"a soak drives a generated route of at least 120 s (0.0334 h); got {hours:g} h")
    scenario = soak_scenario(hours, seed)
    # once a scenario minute; shorter drives (compared by tenths) at least six times per tenth
    sample_period_s = 60.0 if hours >= SOAK_HOURS_FOR_HOURLY else min(60.0, hours * 3600.0 / 60.0)
    rig = dataclasses.replace(BUILTIN_SIM_RIG, time_scale=time_scale)
    artifacts = Path(out) if out is not None else Path("reports") / time.strftime("%Y%m%d-%H%M%S") / "soak"
    if echo:
        print(f"soak: {hours:g} h at {time_scale:g}x (about {hours * 3600 / time_scale:.0f} s of wall time after "
              f"the plant), artifacts in {artifacts}", flush=True)
    if tracing:
        tracemalloc.start()
    try:
        with ModelSet.open(manifest) as models:
            progress = _Progress(models)
            sampler = _MemorySampler(sample_period_s / time_scale, progress).start()
            try:
                result = run_scenario(scenario, rig, progress, artifacts)
            finally:
                sampler.stop()
    finally:
        if tracing:
            tracemalloc.stop()
    drive_s = result.trace.duration_s
    # the first window is full when the app holds WINDOW_S samples (t = 1 ... WINDOW_S s): the first fuel call's time
    samples = sampler.samples(float(WINDOW_S), time_scale, drive_s)
    segment_s = 3600.0 if hours >= SOAK_HOURS_FOR_HOURLY else drive_s / 10.0
    soak = SoakResult(hours, time_scale, drive_s, result.wall_s, result.speed, result.accounting, samples, segment_s,
                      sample_period_s, artifacts, "", tracing)
    if progress.windows != result.accounting.windows_scored:
        soak.notes.append(f"the wrapper counted {progress.windows} fuel calls, the app "
                          f"{result.accounting.windows_scored} windows: memory samples' scenario times are approximate")
    problems = []
    if soak.frames_lost:
        problems.append(f"{soak.frames_lost} frames lost")
    if not soak.rss_growth < SOAK_MAX_GROWTH:
        problems.append(f"memory grew {100 * soak.rss_growth:.2f} % (limit {100 * SOAK_MAX_GROWTH:.0f} %)")
    soak.verdict = "; ".join(problems) or (f"no frame lost, memory grew {100 * soak.rss_growth:+.2f} % "
                                           f"(< {100 * SOAK_MAX_GROWTH:.0f} %)")
    if echo:
        print(soak.report(), flush=True)
    return soak


#: The soak's default requested time scale.
SOAK_TIME_SCALE = 105.0


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dtg-hil bench soak`."""
    parser.add_argument("--hours", type=float, default=4.0, help="hours of drive (default: 4)")
    # Requested a little above 100x: the speed printed counts setup and drain too, so a run asked for exactly
    # 100x shows just under it.
    parser.add_argument("--time-scale", type=float, default=SOAK_TIME_SCALE,
                        help=f"scenario seconds per wall second requested (default: {SOAK_TIME_SCALE:g})")
    parser.add_argument("--seed", type=int, default=0, help="route seed (default: 0)")
    parser.add_argument("--manifest", default="models/manifest.json",
                        help="models manifest (default: models/manifest.json)")
    parser.add_argument("--out", metavar="DIR", help="folder for the run's artifacts (default: reports/<time>/soak)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python's allocations (exact Python heap figures; slows the run)")


def cmd_bench_soak(args: argparse.Namespace) -> int:
    """Run the soak; exit 1 if a frame was lost or memory grew by 10 % or more, 2 on bad input."""
    from harness.inference.models import ManifestError
    from harness.judge.result import RunError

    try:
        result = bench_soak(args.hours, args.time_scale, manifest=args.manifest, out=args.out, seed=args.seed,
                            tracing=args.tracemalloc)
    except (ValueError, ManifestError) as error:
        print(error, file=sys.stderr)
        return 2
    except RunError as error:
        print(f"soak: the run failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if result.passed else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.tools.bench", description="Benchmark the simulated UART link.")
    add_link_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return cmd_bench_link(args)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
