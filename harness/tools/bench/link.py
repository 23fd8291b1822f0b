"""`dtg-hil bench link`: the whole simulated link, how fast it runs and whether it loses anything.

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

Run it with ``dtg-hil bench link`` or ``python -m harness.tools.bench`` (`main`).
"""
from __future__ import annotations

import argparse
import gc
import math
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import can

from firmware_sim.stm32 import Stm32Sim
from firmware_sim.uart import UART_BYTES_PER_S, PtyPair, UartCapture
from harness.core.clock import ScenarioClock
from harness.rig.restbus import RestBus
from harness.tools.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from harness.wire.dbc import PROFILES, get_profile
from harness.wire.link import codec_names, get_codec
from harness.world.cycles import load_cycle
from harness.world.vehicle import VEHICLES, get_vehicle, simulate

__all__ = ["LinkBenchResult", "add_link_arguments", "bench_link", "can_frame_bits", "cmd_bench_link", "main"]


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


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.tools.bench``: the link benchmark alone, with `add_link_arguments`' options."""
    parser = argparse.ArgumentParser(prog="python -m harness.tools.bench",
                                     description="Benchmark the simulated UART link.")
    add_link_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return cmd_bench_link(args)
    except ValueError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
