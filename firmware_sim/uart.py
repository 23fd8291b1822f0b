"""The simulated UART: a pseudo-terminal pair standing in for the STM32 → Android serial line, and a capture.

On a rig the STM32's UART reaches the harness through a USB-serial tap that pyserial opens by its device
path (``/dev/ttyUSB0``). In simulation `PtyPair` provides the same thing: the simulated firmware writes to
the *device end* (the pty master, `PtyPair.device`), and the harness opens the *port end* (the pty slave,
`PtyPair.port`) with pyserial exactly as it would open the tap, so the harness's serial code path is the
real one. The opposite wiring also works (firmware writing to a pyserial `Serial` on the port, a reader on
the master): `open_serial()` and `read_device()` are there for it.

`UartCapture` is the harness's reader: a background thread that reads a pyserial port, feeds the link
codec's streaming decoder, and keeps the decoded records and the decoder's statistics.

Byte sinks that wrap others, for rigs and tests: `TeeSink` writes each batch to several sinks (the app's pty
and a UART tap's pty see the same bytes, as on a real line with a tap on it); `CorruptingSink` flips bits in
a controlled, seeded way and keeps count, so a test can check that every receiver counts the damage exactly.

What this module does not model: baud rate and bit timing (a pty moves bytes as fast as the kernel
does, whatever baud rate is configured), framing/parity errors, modem lines (RTS/DTR/CTS ioctls fail
on ptys; nothing here touches them) and flow control. A pty buffers a few kilobytes; a writer whose
reader stalls blocks, and `PtyDeviceWriter.write` turns that into `serial.SerialTimeoutException` after
its `write_timeout_s`, as a pyserial port with a write timeout would.
"""
from __future__ import annotations

import errno
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, replace

import serial

from harness.core.worker import Worker, WorkerError
from harness.wire.link import CanFrame, DecoderStats, LinkDecoder, Received, SampleRecord, StatusRecord

UART_BAUD = 921600
#: 8N1: a start bit, 8 data bits, a stop bit per byte.
UART_BITS_PER_BYTE = 10
UART_BYTES_PER_S = UART_BAUD // UART_BITS_PER_BYTE

__all__ = [
    "UART_BAUD",
    "UART_BITS_PER_BYTE",
    "UART_BYTES_PER_S",
    "CaptureStats",
    "PtyBacklogWriter",
    "PtyDeviceWriter",
    "PtyPair",
    "UartCapture",
    "UartError",
]


class UartError(WorkerError):
    """The simulated UART was misused (used after close) or its reader failed; says which port."""


class PtyDeviceWriter:
    """The device end of a pty pair as a byte sink with a bounded `write` (like a pyserial port with a
    write timeout): what the simulated firmware writes to."""

    def __init__(self, master_fd: int, port: str, write_timeout_s: float = 1.0) -> None:
        self._fd = master_fd
        self._port = port
        self.write_timeout_s = write_timeout_s
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of `data`; `serial.SerialTimeoutException` if the reader stalls past the timeout."""
        if self._closed:
            raise UartError(f"pty device end of {self._port} is closed")
        view = memoryview(data)
        deadline = time.monotonic() + self.write_timeout_s
        written = 0
        while written < len(view):
            try:
                written += os.write(self._fd, view[written:])
                continue
            except BlockingIOError:
                pass
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise serial.SerialTimeoutException(
                    f"write to pty {self._port} timed out after {self.write_timeout_s} s: "
                    f"{written} of {len(view)} bytes written (is anyone reading the port?)"
                )
            select.select([], [self._fd], [], remaining_s)
        return written

    def flush(self) -> None:
        """Nothing to flush: `write` returns once the bytes are in the kernel's pty buffer."""

    def close(self) -> None:
        self._closed = True


class PtyBacklogWriter:
    """The device end of a pty pair as a byte sink that never blocks, for virtual time (`harness.run.scheduler`):
    `write` keeps the bytes in a backlog, and `push()` hands the kernel's pty buffer what it takes, again after the
    reader has read. On virtual time the writer and the reader take turns in one thread, so a write that blocked
    until the reader read would wait for itself. `bytes_pushed` (in the kernel) minus what the reader has read is
    what is in flight."""

    def __init__(self, master_fd: int, port: str) -> None:
        self._fd = master_fd
        self._port = port
        self._backlog = bytearray()
        self.bytes_written = 0  # taken by write()
        self.bytes_pushed = 0  # handed to the kernel
        self._closed = False

    @property
    def backlog_bytes(self) -> int:
        return len(self._backlog)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise UartError(f"pty device end of {self._port} is closed")
        self._backlog += data  # pushed by the reader's side (the scheduler's UART stage): one batch an instant
        self.bytes_written += len(data)
        return len(data)

    def push(self) -> int:
        """Hand the kernel as much of the backlog as it takes now; returns how many bytes it took."""
        pushed = 0
        while self._backlog:
            try:
                n = os.write(self._fd, self._backlog)
            except BlockingIOError:
                break
            del self._backlog[:n]
            pushed += n
        self.bytes_pushed += pushed
        return pushed

    def flush(self) -> None:
        """Nothing to flush here: the backlog moves on with `push()`, when the reader has made room."""

    def close(self) -> None:
        self._closed = True


class PtyPair:
    """An ``os.openpty()`` pair in raw mode: `device` (master, the firmware's side) and `port` (the slave's
    path, the harness's side). Close it (or use it as a context manager) to release both ends."""

    def __init__(self, write_timeout_s: float = 1.0) -> None:
        self._master_fd, self._slave_fd = os.openpty()
        # Raw mode (no echo, no CR/LF translation, no line buffering) so every byte passes unchanged. The pty
        # has one termios; setting it through the master applies before anyone opens the slave.
        tty.setraw(self._master_fd)
        tty.setraw(self._slave_fd)
        os.set_blocking(self._master_fd, False)
        self.port: str = os.ttyname(self._slave_fd)
        self.device = PtyDeviceWriter(self._master_fd, self.port, write_timeout_s)
        self._serials: list[serial.Serial] = []
        self._closed = False

    def backlog_writer(self) -> PtyBacklogWriter:
        """A non-blocking writer on the device end (virtual time: the firmware and the app take turns)."""
        self._check_open()
        return PtyBacklogWriter(self._master_fd, self.port)

    def open_serial(self, timeout_s: float = 0.05, write_timeout_s: float | None = 1.0) -> serial.Serial:
        """A pyserial port on the slave at 921600 8N1, as the harness opens a real UART tap."""
        self._check_open()
        port = serial.Serial(
            self.port, UART_BAUD, bytesize=8, parity="N", stopbits=1, timeout=timeout_s, write_timeout=write_timeout_s
        )
        self._serials.append(port)
        return port

    def read_device(self, max_bytes: int = 65536, timeout_s: float = 0.05) -> bytes:
        """Bytes written to the port end, read from the device end; b"" when none came within `timeout_s`."""
        self._check_open()
        readable, _, _ = select.select([self._master_fd], [], [], timeout_s)
        if not readable:
            return b""
        try:
            return os.read(self._master_fd, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as error:  # EIO: the slave side hung up
            if error.errno == errno.EIO:
                return b""
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise UartError(f"pty pair {self.port} is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.device.close()
        for port in self._serials:
            port.close()
        for fd in (self._master_fd, self._slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PtyPair port={self.port} {'closed' if self._closed else 'open'}>"


@dataclass
class CaptureStats:
    """What a capture has read and decoded (records by kind; the decoder's own counters are separate)."""

    bytes_read: int = 0
    bytes_handled: int = 0  # bytes read whose records the `on_received` callback has finished with
    can_frames: int = 0
    samples: int = 0
    statuses: int = 0


class UartCapture(Worker):
    """Reads `port` in a background thread and decodes it with `decoder`.

    `records` keeps every decoded `Received` when `keep_records` is true (set it false for long benchmarks:
    the counts in `stats` are kept either way). `on_received`, if given, is called in the reader thread with
    each batch of decoded records. `stop()` drains the port: bytes already in it are read and handled before the
    thread ends; then the decoder is `finish()`-ed.
    """

    error_type = UartError

    def __init__(
        self,
        port: serial.Serial,
        decoder: LinkDecoder,
        *,
        keep_records: bool = True,
        on_received: Callable[[list[Received]], None] | None = None,
    ) -> None:
        super().__init__(f"uart-capture-{port.port}")
        self._port = port
        self._decoder = decoder
        self._keep_records = keep_records
        self._on_received = on_received
        self._records: list[Received] = []
        self._stats = CaptureStats()
        self._lock = threading.Lock()
        self.last_status: StatusRecord | None = None
        # On virtual time: thread CPU seconds reading the port and decoding (`dtg-hil bench sim`)
        self.read_cpu_s = self.decode_cpu_s = 0.0

    @property
    def stats(self) -> CaptureStats:
        with self._lock:
            return replace(self._stats)

    @property
    def decoder_stats(self) -> DecoderStats:
        with self._lock:
            return replace(self._decoder.stats)

    @property
    def records(self) -> list[Received]:
        with self._lock:
            return list(self._records)

    def can_frames(self) -> list[CanFrame]:
        return [r.record for r in self.records if isinstance(r.record, CanFrame)]

    def samples(self) -> list[SampleRecord]:
        return [r.record for r in self.records if isinstance(r.record, SampleRecord)]

    def wait_for_bytes(self, total_bytes: int, timeout_s: float) -> bool:
        """Block until `total_bytes` have been read in all (e.g. the firmware's `bytes_written`); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.stats.bytes_read < total_bytes:
            if self._error is not None or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def _finish(self) -> None:
        self._accept(self._decoder.finish(), 0)

    def read_owed(self, n_bytes: int) -> None:
        """On virtual time (`start_stepped`): read and decode exactly `n_bytes` the writer has handed the kernel
        (they arrive within microseconds); a `UartError` naming the port if they do not within the port's timeout."""
        if not self.running:
            raise UartError(f"UART capture on {self._port.port} is not running: nothing reads the port")
        started = time.thread_time()
        chunk = self._port.read(n_bytes)
        self.read_cpu_s += time.thread_time() - started
        if len(chunk) < n_bytes:
            raise UartError(f"UART capture on {self._port.port}: {n_bytes} bytes were written to the pty but only "
                            f"{len(chunk)} arrived within the port's read timeout")
        started = time.thread_time()
        with self._lock:
            received = self._decoder.feed(chunk)
        self.decode_cpu_s += time.thread_time() - started
        self._accept(received, len(chunk))

    def _accept(self, received: list[Received], n_bytes: int) -> None:
        with self._lock:
            self._stats.bytes_read += n_bytes
            for item in received:
                record = item.record
                if isinstance(record, CanFrame):
                    self._stats.can_frames += 1
                elif isinstance(record, SampleRecord):
                    self._stats.samples += 1
                else:
                    self._stats.statuses += 1
                    self.last_status = record
            if self._keep_records:
                self._records.extend(received)
        if self._on_received is not None and received:
            self._on_received(received)
        with self._lock:
            self._stats.bytes_handled += n_bytes

    def _work(self) -> None:
        while not self._stop_requested.is_set():
            self._read_some()
        # Asked to stop: what is already in the port was sent before, and is read and handled too (a reader slow on
        # its last batch must not lose the bytes that queued behind it).
        while self._port.in_waiting:
            self._read_some()

    def _read_some(self) -> None:
        chunk = self._port.read(max(1, self._port.in_waiting))
        if chunk:
            with self._lock:
                received = self._decoder.feed(chunk)
            self._accept(received, len(chunk))


# ------------------------------------------------------------------------------ sinks: tee and corruption


