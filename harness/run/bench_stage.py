"""The STM32 stage of a rig with ``stm32: {kind: real}``: a board on a bench, which the harness flashes (once a
session), resets before each run, and otherwise reaches only through the bench's wiring: the rig's CAN interface, the
UART tap, the GNSS port (`harness.rig.bench` runs the bench's commands).

- `BenchBus` is the harness's side of the rig's CAN interface: one thread reads every frame off it (the unit's OBD-II
  requests among them), hands it to the rest-bus and to the CAN log; what the rest-bus sends is logged too. Frames are
  stamped with the scenario clock, as on the simulated wire.
- `BenchUnit` takes the simulated STM32's place in the chain: it counts what the unit sent from the UART tap's
  records (its status records: requests sent and unanswered, frames received; its samples; the frames it forwarded).
- The run is judged over a *window* of the unit's own reports: from its first status record to its last one whose
  poll cycle started a second or more before the end of the drive. The unit boots at its reset, moments before the
  scenario clock starts, and keeps running after the drive (a board is not stopped): the frames, samples and rest-bus
  answers of the window are the ones both sides account for, in the tap's cross-check and in the loss table.
- The unit's clock is its own: its tick starts at the reset, `clock_offset_s` before scenario second 0 (recorded in
  result.json); its samples and the app's results carry its time.

Device faults map to the bench's actions: `firmware_restart` resets the board, `power_cycle` switches its power off for
the fault's duration, `uart_disconnect` opens the relay on its UART's TX line; a rig file without the command skips
the fault, naming what it lacks (`BenchConfig.lacks`).

What it does not do: decode the unit's CAN traffic beyond logging it, keep the board quiet between runs, or count a
unit without status records (raw-can-v1) beyond its forwarded frames: there the window is the drive itself.
"""
from __future__ import annotations

import bisect
import dataclasses
import queue
import threading
import time
from collections.abc import Callable

import can

from firmware_sim.firmware_stats import FirmwareStats
from harness.core.worker import Worker, WorkerError
from harness.judge.result import RunError
from harness.rig.bench import Bench, BenchError
from harness.rig.rigfile import RigConfig
from harness.rig.uart_tap import TappedRecord, cross_check
from harness.wire.link import CanFrame, Received, SampleRecord, StatusRecord

__all__ = ["BenchBus", "BenchUnit", "BenchUnitError", "FaultUnavailableError", "bench_fault_actions", "bench_faults",
           "bench_tap_report", "prepare_bench"]

#: The rest-bus's OBD-II request ID: a raw-can-v1 unit forwards its own requests, which count as requests sent.
_OBD_REQUEST_ID = 0x7DF
#: Wall seconds the run waits past the drive's end for the unit's last status record of the drive.
END_SETTLE_S = 1.5


class FaultUnavailableError(RunError):
    """The run asks for a device fault the rig has no means for (e.g. uart_disconnect without a relay command): the
    item skips, naming what the rig lacks."""


class BenchUnitError(WorkerError):
    """The real unit's stage could not go on (its reset failed)."""


class BenchBus:
    """The rig's CAN interface (`bus`, python-can), read by one thread: `recv()` gives the rest-bus what arrived, every
    frame in either direction goes to the listeners with the scenario time (`listen`)."""

    def __init__(self, bus: can.BusABC) -> None:
        self._bus = bus
        self._frames: queue.SimpleQueue = queue.SimpleQueue()
        self._listeners: list[can.Listener] = []
        self._now_s: Callable[[], float] = time.monotonic
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent_t_s: list[float] = []  # the scenario time of each frame the harness sent, in order
        self.error: BaseException | None = None
        self.channel_info = f"{getattr(bus, 'channel_info', bus)} (a real unit on it)"

    def listen(self, now_s: Callable[[], float], listeners: list[can.Listener]) -> None:
        """Start reading: frames stamped with `now_s()`, handed to `listeners` (the CAN log, the tap's sent log)."""
        self._now_s, self._listeners = now_s, listeners
        self._thread = threading.Thread(target=self._read, name="bench-bus", daemon=True)
        self._thread.start()

    def _log(self, msg: can.Message) -> can.Message:
        stamped = can.Message(timestamp=self._now_s(), arbitration_id=msg.arbitration_id,
                              is_extended_id=msg.is_extended_id, is_remote_frame=msg.is_remote_frame,
                              is_error_frame=msg.is_error_frame, dlc=msg.dlc, data=bytes(msg.data))
        with self._lock:
            for listener in self._listeners:
                listener.on_message_received(stamped)
        return stamped

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._bus.recv(timeout=0.05)
            except (can.CanError, OSError) as error:  # the adapter is gone: the rest-bus's next recv() says so
                self.error = error
                return
            if msg is not None:
                self._frames.put(self._log(msg))

    def recv(self, timeout: float | None = None) -> can.Message | None:
        if self.error is not None and not self._stop.is_set():
            raise can.CanOperationError(f"the rig's CAN interface {self.channel_info} failed: {self.error}")
        try:
            return self._frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self._bus.send(msg, timeout)
        self.sent_t_s.append(self._log(msg).timestamp)

    def sent_between(self, start_s: float, end_s: float) -> int:
        """Frames the harness sent in the scenario-time window (start_s, end_s]."""
        return bisect.bisect_right(self.sent_t_s, end_s) - bisect.bisect_right(self.sent_t_s, start_s)

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self._bus.shutdown()


class BenchUnit(Worker):
    """The board in the chain: counts what it sent from the UART tap (`on_tapped`), over the run's window."""

    error_type = BenchUnitError

    def __init__(self, bench: Bench, clock, end_s: float, clock_offset_s: float, *, has_status: bool) -> None:
        super().__init__("bench-unit")
        self.bench = bench
        self._clock = clock
        self._end_s = end_s
        self.clock_offset_s = clock_offset_s
        self._has_status = has_status
        self._lock = threading.Lock()
        self._statuses: list[tuple[float, StatusRecord]] = []  # (received at, record), restarts folded in
        self._base = StatusRecord(0)  # counters of the boots before the last restart
        self._samples: list[tuple[float, float]] = []  # (received at, the unit's t_s)
        self._frames: list[tuple[float, bool]] = []  # (received at, is its own OBD-II request)
        self.encode_cpu_s = 0.0
        self.restarts = 0

    def on_tapped(self, received: list[Received]) -> None:
        """The UART tap's callback: each record the unit sent, with the time it arrived."""
        now_s = self._clock.now_s()
        with self._lock:
            for item in received:
                record = item.record
                if isinstance(record, CanFrame):
                    self._frames.append((now_s, record.can_id == _OBD_REQUEST_ID and not record.is_extended))
                elif isinstance(record, SampleRecord):
                    self._samples.append((now_s, record.t_ms / 1000 - self.clock_offset_s))
                elif isinstance(record, StatusRecord):
                    self._add_status(now_s, record)

    def _add_status(self, now_s: float, record: StatusRecord) -> None:
        fields = ("requests_sent", "requests_unanswered", "can_frames_received", "can_frames_dropped")
        if self._statuses:
            last = self._statuses[-1][1]
            if any(getattr(record, f) + getattr(self._base, f) < getattr(last, f) for f in fields):
                self._base = StatusRecord(0, *(getattr(last, f) for f in fields))  # the unit restarted
        self._statuses.append((now_s, StatusRecord(record.t_ms, *(getattr(record, f) + getattr(self._base, f)
                                                                  for f in fields))))

    def window(self) -> tuple[float, float]:
        """(start, end] in scenario time of the tap's receptions the run is judged on (see the module docstring)."""
        with self._lock:
            statuses = list(self._statuses)
        if not self._has_status or not statuses:
            return -1e9, self._end_s + END_SETTLE_S
        inside = [rx for rx, s in statuses if s.t_ms / 1000 - self.clock_offset_s <= self._end_s - 1.0]
        return statuses[0][0], (inside[-1] if inside else statuses[0][0])

    @property
    def stats(self) -> FirmwareStats:
        start, end = self.window()
        with self._lock:
            frames = [own for rx, own in self._frames if start < rx <= end]
            samples = [t for rx, t in self._samples if start < rx <= end]
            statuses = [s for rx, s in self._statuses if rx in (start, end)]
        # bytes_written 0: the end of the run waits for no byte count (a board writes on after the drive); the window
        # ends seconds before the end, so the app has read it all by then.
        stats = FirmwareStats(frames_forwarded=len(frames), samples_sent=len(samples), restarts=self.restarts)
        if self._has_status and len(statuses) >= 1:
            first, last = statuses[0], statuses[-1]
            stats.requests_sent = last.requests_sent - first.requests_sent
            stats.requests_unanswered = last.requests_unanswered - first.requests_unanswered
            stats.requests_answered = stats.requests_sent - stats.requests_unanswered
            stats.frames_received = last.can_frames_received - first.can_frames_received
            stats.frames_unforwardable = last.can_frames_dropped - first.can_frames_dropped
            stats.status_sent = sum(1 for rx, _ in self._statuses if start < rx <= end)
        else:  # raw-can-v1: its own requests, forwarded; the rest is what it received
            stats.requests_sent = sum(frames)
            stats.requests_answered = stats.requests_sent
            stats.frames_received = len(frames) - stats.requests_sent
        return stats

    @property
    def sample_times_s(self) -> list[float]:
        with self._lock:
            return [t for _, t in self._samples]

    def samples_sent_until(self, t_s: float) -> int:
        return sum(1 for t in self.sample_times_s if t <= t_s + 1e-3)

    def restart(self, down_s: float = 2.0, at_s: float | None = None) -> None:
        """firmware_restart on a bench: the reset command (`bench_fault_actions` calls it at the fault's time)."""
        self.bench.reset()
        self.restarts += 1

    def _work(self) -> None:
        self._stop_requested.wait()

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the drive is over and the unit's last status record of it can have arrived."""
        remaining = self._end_s + END_SETTLE_S - self._clock.now_s()
        if remaining > 0:
            time.sleep(min(remaining, timeout_s if timeout_s is not None else remaining))
        return self._clock.now_s() >= self._end_s + END_SETTLE_S


def prepare_bench(rig: RigConfig) -> tuple[Bench, dict]:
    """Before a run on a real STM32: the bench for `rig`, the image flashed (once a session) and the unit reset.
    Returns the bench and what result.json records of its firmware (the image's sha256, how it was flashed)."""
    if not rig.uart_tap:
        raise RunError(f"rig '{rig.name}': a real STM32 needs stm32.uart_tap: the harness counts what the unit sends "
                       f"through it")
    if rig.android_kind == "simulated" and not rig.android_port:
        raise RunError(f"rig '{rig.name}': the simulated app needs android.port with a real STM32: the serial port it "
                       f"reads the unit's UART on")
    bench = Bench(rig.bench, rig.name)
    try:
        flashed = bench.flash()
        bench.reset()
    except BenchError as error:
        raise RunError(f"{error} (rig-side: not a verdict on the unit)") from None
    record = flashed.to_json() if flashed is not None else {"image": None, "sha256": None, "flashed_with": None}
    return bench, record


def bench_faults(rig: RigConfig) -> tuple[tuple[str, ...], dict[str, str]]:
    """The device faults of the unit a real bench can inject, and for the others why not (what the rig lacks)."""
    can, cannot = [], {}
    for kind in ("firmware_restart", "power_cycle", "uart_disconnect"):
        lacks = rig.bench.lacks(kind) if rig.bench is not None else f"{kind} needs a bench section"
        if lacks is None:
            can.append(kind)
        else:
            cannot[kind] = lacks
    return tuple(can), cannot


def bench_fault_actions(unit: BenchUnit) -> tuple[dict, dict]:
    """(start, end) actions of the bench's device faults, for `harness.rig.device_faults.FaultInjector`."""
    bench = unit.bench
    start = {"firmware_restart": lambda fault: unit.restart(),
             "power_cycle": lambda fault: bench.power("off"),
             "uart_disconnect": lambda fault: bench.uart_relay("off")}
    end = {"power_cycle": lambda fault: (bench.power("on"), setattr(unit, "restarts", unit.restarts + 1)),
           "uart_disconnect": lambda fault: bench.uart_relay("on")}
    return start, end


def bench_tap_report(tap, sent_frames, unit: BenchUnit, time_scale: float = 1.0):
    """The tap's cross-check against the CAN log over the unit's window (`BenchUnit.window`): a frame sent in the
    window and forwarded within `END_SETTLE_S` after it counts, one sent before it or after it is no problem of it."""
    start, end = unit.window()
    sent = [f for f in sent_frames if start - END_SETTLE_S < f.t_s <= end]
    tapped = [TappedRecord.of(r) for r in tap.tapped]
    report = cross_check(sent, [r for r in tapped if start - END_SETTLE_S < r.rx_s <= end + END_SETTLE_S],
                         decoder_stats=tap.decoder_stats, codec=tap.codec.name, firmware_clock_offset_s=None,
                         time_scale=time_scale)
    in_window = sum(1 for f in sent if f.t_s > start)
    missing = tuple(f for f in report.missing if f.t_s > start)
    unforwardable = tuple(f for f in report.unforwardable if f.t_s > start)
    return dataclasses.replace(report, frames_sent=in_window, missing=missing, unforwardable=unforwardable,
                               frames_forwarded=in_window - len(missing) - len(unforwardable),
                               unexpected=tuple(r for r in report.unexpected if start < r.rx_s <= end))
