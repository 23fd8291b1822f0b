"""The UART tap: what the STM32 really sent to the phone, decoded, counted and checked against the CAN bus.

On a bench a passive tap on the STM32 → Android TX line is wired to a USB-serial port (``/dev/ttyUSB0``); on the
simulated rig a `firmware_sim.uart_sinks.TeeSink` gives the tap its own pty carrying the same bytes as the app's.
`UartTap` reads that port in a background thread (it is a `firmware_sim.uart.UartCapture` with more): it
decodes the link with the rig's codec (`harness.wire.link`), records the raw bytes to a file among the run's
artifacts (``uart.bin``), stamps each decoded record with the time the tap read it, and keeps the counts: bytes
and records by kind (`stats`) and the decoder's own `DecoderStats` (frames decoded, CRC errors, bytes skipped
while resynchronising, and on dtg-link-v2 frames lost and sequence gaps).

`SentFrameLog` is the other side: a python-can listener that logs every frame on the bus with the time it saw
it. `cross_check(sent, tapped, ...)` (pure) pairs the two: frames forwarded, frames sent but never seen on the
UART, frames seen but never sent, frames the codec cannot carry, the link's CRC errors and loss, and the
forwarding latency (tap reception minus CAN send; on dtg-link-v2 also the firmware's own stamp minus send).
`TapReport` says it in one string.

Time bases: the sent log, the tap and `cross_check` must use one clock. On the simulated rig that is the
scenario clock (`ScenarioClock.now_s`; the firmware stamps dtg-link-v2 frames with it too, so its stamps
compare directly, and `time_scale` turns scenario latencies into wall ms); on a bench it is `time.monotonic`,
and the firmware's stamps count from its own start (`firmware_clock_offset_s=None` leaves them out).

What it does not do: it cannot tell which of several identical frames (same ID and data) went missing, so it
matches them in order and names the last ones missing, and a latency is taken against the earliest unmatched
copy; it does not see UART framing or parity errors (pyserial delivers bytes only); a listener's stamp is when
the harness read the frame off its own bus, which trails the wire by the interface's and Python's latency.
"""
from __future__ import annotations

import io
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import can
import serial

from firmware_sim.uart import UART_BAUD, UartCapture, UartError
from harness.core.stats import Percentiles, percentiles
from harness.wire.link import CanFrame, DecoderStats, LinkCodec, Received, SampleRecord, StatusRecord, get_codec

__all__ = [
    "SentFrame",
    "SentFrameLog",
    "TapReport",
    "TappedRecord",
    "UartTap",
    "UartTapError",
    "cross_check",
]

_MAX_STD_ID = 0x7FF
#: How many missing or unexpected frames a report lists.
REPORT_LIST_MAX = 8


class UartTapError(UartError):
    """The tap could not open its port or recording, was misused, or its reader failed; says which port."""


@dataclass(frozen=True)
class SentFrame:
    """One frame on the CAN bus as the harness logged it: when (the log's clock, seconds), ID, data, format."""

    t_s: float
    can_id: int
    data: bytes
    is_extended: bool = False

    @classmethod
    def of(cls, item: SentFrame | tuple) -> SentFrame:
        """A `SentFrame` from itself or a tuple ``(t_s, can_id, data[, is_extended])``; a 3-tuple is extended
        when its ID does not fit 11 bits."""
        if isinstance(item, SentFrame):
            return item
        if len(item) == 4:
            t_s, can_id, data, extended = item
        else:
            t_s, can_id, data = item
            extended = can_id > _MAX_STD_ID
        return cls(float(t_s), int(can_id), bytes(data), bool(extended))


@dataclass(frozen=True)
class TappedRecord:
    """One record the tap decoded, and when it read the chunk that completed it (the tap's clock, seconds)."""

    rx_s: float
    received: Received

    @classmethod
    def of(cls, item: TappedRecord | tuple) -> TappedRecord:
        """A `TappedRecord` from itself or a tuple ``(rx_s, Received or record)``."""
        if isinstance(item, TappedRecord):
            return item
        rx_s, what = item
        return cls(float(rx_s), what if isinstance(what, Received) else Received(what))


class SentFrameLog(can.Listener):
    """Logs every data frame it is given (through a `can.Notifier` on a bus of its own) as a `SentFrame`, stamped
    with `now_s()` when it arrives; the message's own timestamp is not used, as its base differs by interface.
    Error and remote frames are counted in `frames_ignored` (no codec carries them)."""

    def __init__(self, now_s: Callable[[], float] = time.monotonic) -> None:
        self._now_s = now_s
        self._frames: list[SentFrame] = []
        self._lock = threading.Lock()
        self.frames_ignored = 0

    def on_message_received(self, msg: can.Message) -> None:
        t_s = self._now_s()
        if msg.is_error_frame or msg.is_remote_frame:
            self.frames_ignored += 1
            return
        frame = SentFrame(t_s, msg.arbitration_id, bytes(msg.data), bool(msg.is_extended_id))
        with self._lock:
            self._frames.append(frame)

    @property
    def frames(self) -> list[SentFrame]:
        with self._lock:
            return list(self._frames)


class _RecordingPort:
    """The tap's port as `UartCapture` reads it: every chunk also goes to the recording and is stamped."""

    def __init__(self, port: serial.Serial, recording: io.BufferedWriter | None, now_s: Callable[[], float]) -> None:
        self._port = port
        self._recording = recording
        self._now_s = now_s
        self.port = port.port
        self.last_read_s = now_s()
        self.bytes_recorded = 0

    @property
    def in_waiting(self) -> int:
        return self._port.in_waiting

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(size)
        if data:
            self.last_read_s = self._now_s()
            if self._recording is not None:
                self._recording.write(data)
                self.bytes_recorded += len(data)
        return data


class UartTap(UartCapture):
    """Reads the tapped UART line in a background thread, decodes it with `codec`, records the raw bytes.

    `port` is a pyserial `Serial` (the caller keeps owning it) or a device path, opened here at `baudrate` 8N1
    with an exclusive lock (a second reader would steal bytes) and closed by `stop()`. `record_path`, if given,
    receives every byte read (overwritten; its folder must exist); `stop()` closes it. `first_seq` (dtg-link-v2)
    is the sequence number the firmware starts at, so frames lost before the first one received are counted
    too. `now_s` stamps receptions (`tapped`); use the sent log's clock. Port and recording are opened at
    construction, so a wrong path fails before the run.

    Counts: `stats` (bytes read, CAN frames, samples, status records) and `decoder_stats` (the decoder's own).
    After `stop()` the decoder has been finished. Use as a context manager, or `start()` and `stop()`.
    """

    error_type = UartTapError

    def __init__(
        self,
        port: serial.Serial | str,
        codec: str = "dtg-link-v2",
        *,
        baudrate: int = UART_BAUD,
        first_seq: int | None = None,
        record_path: Path | str | None = None,
        now_s: Callable[[], float] = time.monotonic,
        read_timeout_s: float = 0.05,
        keep_records: bool = True,
        on_received: Callable[[list[Received]], None] | None = None,
    ) -> None:
        self._codec: LinkCodec = get_codec(codec)
        if first_seq is not None and self._codec.capabilities.has_sequence:
            decoder = self._codec.decoder(first_seq)  # type: ignore[call-arg]
        else:
            decoder = self._codec.decoder()
        recording = None
        self._record_path = None if record_path is None else Path(record_path)
        if self._record_path is not None:
            if not self._record_path.parent.is_dir():
                raise UartTapError(f"UART tap recording {self._record_path}: folder {self._record_path.parent} "
                                   "does not exist")
            recording = self._record_path.open("wb")
        self._owns_port = isinstance(port, str)
        if isinstance(port, str):
            try:
                port = serial.Serial(port, baudrate, bytesize=8, parity="N", stopbits=1, timeout=read_timeout_s,
                                     exclusive=True)
            except (serial.SerialException, OSError, ValueError) as error:
                if recording is not None:
                    recording.close()
                raise UartTapError(f"cannot open UART tap {port} at {baudrate} baud 8N1: {error}") from error
        self._serial = port
        self._reader = _RecordingPort(port, recording, now_s)
        self._recording = recording
        self._keep_tapped = keep_records
        self._tapped: list[TappedRecord] = []
        self._tapped_lock = threading.Lock()
        self._user_on_received = on_received
        super().__init__(self._reader, decoder, keep_records=keep_records,  # type: ignore[arg-type]
                         on_received=self._stamp)
        self._thread_name = f"uart-tap-{port.port}"

    # -- public API ---------------------------------------------------------------------------------

    @property
    def codec(self) -> LinkCodec:
        return self._codec

    @property
    def record_path(self) -> Path | None:
        return self._record_path

    @property
    def bytes_recorded(self) -> int:
        return self._reader.bytes_recorded

    @property
    def tapped(self) -> list[TappedRecord]:
        """Every decoded record with its reception time, in order (empty when `keep_records` is false)."""
        with self._tapped_lock:
            return list(self._tapped)

    def report(self, sent_frames: Iterable[SentFrame | tuple], *, firmware_clock_offset_s: float | None = 0.0,
               time_scale: float = 1.0) -> TapReport:
        """`cross_check` of `sent_frames` against what this tap decoded, with its decoder's counts."""
        return cross_check(sent_frames, self.tapped, decoder_stats=self.decoder_stats, codec=self._codec.name,
                           firmware_clock_offset_s=firmware_clock_offset_s, time_scale=time_scale)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, finish the decoder, and close the recording and a port the tap opened (started or not)."""
        try:
            super().stop(timeout_s)
        finally:
            if self._recording is not None and not self._recording.closed:
                self._recording.close()
            if self._owns_port:
                self._serial.close()

    def __repr__(self) -> str:
        return f"<UartTap {self._describe()} {self._codec.name} state={self._state} {self.stats}>"

    # -- worker -------------------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"UART tap on {self._reader.port}"

    def _stamp(self, received: list[Received]) -> None:
        if self._keep_tapped:
            rx_s = self._reader.last_read_s
            with self._tapped_lock:
                self._tapped.extend(TappedRecord(rx_s, item) for item in received)
        if self._user_on_received is not None:
            self._user_on_received(received)


# ------------------------------------------------------------------------------------------ cross-check


@dataclass(frozen=True)
class TapReport:
    """What reached the UART of what was sent on CAN (see `cross_check`). Latencies are in ms.

    `missing`: sent frames the tap never decoded. `unexpected`: CAN frames the tap decoded that nobody sent (a
    corruption the CRC missed, or a firmware inventing frames). `unforwardable`: sent frames the codec cannot
    carry (29-bit IDs on raw-can-v1), which a correct firmware does not forward.
    """

    codec: str | None
    frames_sent: int
    frames_forwarded: int
    missing: tuple[SentFrame, ...]
    unexpected: tuple[TappedRecord, ...]
    unforwardable: tuple[SentFrame, ...]
    samples: int
    statuses: int
    decoder_stats: DecoderStats | None
    latency: Percentiles  # ms
    firmware_latency: Percentiles | None  # ms

    @property
    def crc_errors(self) -> int:
        return self.decoder_stats.crc_errors if self.decoder_stats is not None else 0

    @property
    def frames_lost(self) -> int | None:
        """Sequence numbers missing on the link (dtg-link-v2), None when the codec has none or stats were not given."""
        return self.decoder_stats.frames_lost if self.decoder_stats is not None else None

    def problems(self) -> list[str]:
        """One line per thing that went wrong; empty when every sent frame arrived intact and nothing else did."""
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} of {self.frames_sent} CAN frames sent never reached the UART")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} CAN frames on the UART were never sent on CAN")
        stats = self.decoder_stats
        if stats is not None:
            if stats.crc_errors:
                out.append(f"{stats.crc_errors} CRC errors on the link")
            if stats.frames_lost:
                out.append(f"{stats.frames_lost} link frames lost ({stats.sequence_gaps} sequence gaps)")
            if stats.malformed_frames:
                out.append(f"{stats.malformed_frames} malformed frames (CRC-valid, impossible content)")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()

    def __str__(self) -> str:
        lines = [f"UART tap cross-check ({self.codec or 'codec not given'}): "
                 f"{'OK' if self.ok else 'FAILED: ' + '; '.join(self.problems())}",
                 f"  CAN frames sent {self.frames_sent}: forwarded {self.frames_forwarded}, missing "
                 f"{len(self.missing)}, unforwardable {len(self.unforwardable)}; unexpected on the UART "
                 f"{len(self.unexpected)}; samples {self.samples}, status records {self.statuses}"]
        stats = self.decoder_stats
        if stats is not None:
            text = (f"  link: {stats.frames_decoded} frames decoded, {stats.crc_errors} CRC errors, "
                    f"{stats.bytes_skipped} bytes skipped, {stats.malformed_frames} malformed, "
                    f"{stats.unknown_records} unknown records")
            if stats.frames_lost is not None:
                text += (f", {stats.frames_lost} lost in {stats.sequence_gaps} gaps, {stats.sequence_resets} "
                         f"resets, {stats.duplicate_frames} duplicates")
            lines.append(text)
        lines.append(f"  latency, tap reception - CAN send: {_describe_latency(self.latency)}")
        if self.firmware_latency is not None:
            lines.append(f"  latency, firmware stamp - CAN send: {_describe_latency(self.firmware_latency)}")
        for title, frames in (("missing", self.missing), ("unforwardable", self.unforwardable)):
            shown = [_describe_frame(f.t_s, f.can_id, f.is_extended, f.data) for f in frames[:REPORT_LIST_MAX]]
            if shown:
                lines.append(f"  {title} ({_first_of(len(frames))}): {'; '.join(shown)}")
        shown = []
        for tapped in self.unexpected[:REPORT_LIST_MAX]:
            frame: CanFrame = tapped.received.record  # type: ignore[assignment]  # cross_check puts only these here
            shown.append(_describe_frame(tapped.rx_s, frame.can_id, frame.is_extended, frame.data, tapped.received.seq))
        if shown:
            lines.append(f"  unexpected on the UART ({_first_of(len(self.unexpected))}): {'; '.join(shown)}")
        return "\n".join(lines)


def _first_of(count: int) -> str:
    return f"{count}, the first {REPORT_LIST_MAX}" if count > REPORT_LIST_MAX else str(count)


def _describe_latency(stats: Percentiles) -> str:
    if not stats.n:
        return "no frames"
    return f"p50 {stats.p50:.2f} ms, p99 {stats.p99:.2f} ms (n={stats.n})"


def _describe_frame(t_s: float, can_id: int, extended: bool, data: bytes, seq: int | None = None) -> str:
    ident = f"0x{can_id:08X}" if extended else f"0x{can_id:03X}"
    text = f"t={t_s:.3f} s id {ident} [{data.hex(' ')}]"
    return text + (f" seq {seq}" if seq is not None else "")


def cross_check(
    sent_frames: Iterable[SentFrame | tuple],
    tapped_records: Iterable[TappedRecord | tuple],
    *,
    decoder_stats: DecoderStats | None = None,
    codec: str | None = None,
    max_id_bits: int | None = None,
    firmware_clock_offset_s: float | None = 0.0,
    time_scale: float = 1.0,
) -> TapReport:
    """Compare the frames sent on CAN with the records a UART tap decoded. Pure.

    `sent_frames`: `SentFrame`s or ``(t_s, can_id, data[, is_extended])`` in bus order (a `SentFrameLog`).
    `tapped_records`: `TappedRecord`s or ``(rx_s, Received)`` in decoding order (`UartTap.tapped`), on the same
    clock. Each decoded CAN frame is matched to the earliest unmatched sent frame with the same ID, format and
    data, so repeated identical frames pair up in order. Sent extended frames are `unforwardable` when the
    codec (or `max_id_bits`) carries 11-bit IDs only. `decoder_stats` supplies the CRC errors and loss (the
    records cannot).

    Latency per forwarded frame: reception minus send; with a timestamping codec also the record's own stamp
    (seconds since the firmware's start, plus `firmware_clock_offset_s`; None: not comparable, left out) minus
    send. Both are divided by `time_scale` (stamps in scenario seconds at that scale give wall ms).
    """
    if not time_scale > 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
    if max_id_bits is None:
        max_id_bits = get_codec(codec).capabilities.max_id_bits if codec is not None else 29
    sent = [SentFrame.of(item) for item in sent_frames]
    queues: dict[tuple[int, bool, bytes], deque[int]] = {}
    # per sent frame: True forwarded, False missing (so far), None unforwardable (neither)
    matched: list[bool | None] = [None if f.is_extended and max_id_bits < 29 else False for f in sent]
    for index, frame in enumerate(sent):
        if matched[index] is False:
            queues.setdefault((frame.can_id, frame.is_extended, frame.data), deque()).append(index)
    latencies_ms, firmware_ms, unexpected = [], [], []
    samples = statuses = 0
    ms_per_s = 1000.0 / time_scale
    for item in tapped_records:
        tapped = TappedRecord.of(item)
        record = tapped.received.record
        if isinstance(record, SampleRecord):
            samples += 1
            continue
        if isinstance(record, StatusRecord):
            statuses += 1
            continue
        queue = queues.get((record.can_id, record.is_extended, record.data))
        if not queue:
            unexpected.append(tapped)
            continue
        index = queue.popleft()
        matched[index] = True
        latencies_ms.append((tapped.rx_s - sent[index].t_s) * ms_per_s)
        if record.timestamp_s is not None and firmware_clock_offset_s is not None:
            firmware_ms.append((record.timestamp_s + firmware_clock_offset_s - sent[index].t_s) * ms_per_s)
    return TapReport(
        codec=codec,
        frames_sent=len(sent),
        frames_forwarded=sum(1 for hit in matched if hit),
        missing=tuple(frame for frame, hit in zip(sent, matched, strict=False) if hit is False),
        unexpected=tuple(unexpected),
        unforwardable=tuple(frame for frame, hit in zip(sent, matched, strict=False) if hit is None),
        samples=samples,
        statuses=statuses,
        decoder_stats=replace(decoder_stats) if decoder_stats is not None else None,
        latency=percentiles(latencies_ms),
        firmware_latency=percentiles(firmware_ms) if firmware_ms else None,
    )
