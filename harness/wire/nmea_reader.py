"""NMEA on a serial line, read: `NmeaReader`, a thread that reads a serial port and parses what arrives.

`NmeaReader` runs `harness.wire.nmea_parser.NmeaStream` (the strict parser) over a pyserial port in a `Worker`
thread, keeps or hands on each fix, and counts what it rejects; the simulated unit's GNSS input
(`firmware_sim.gnss_input.GnssInput`) is one. `open_serial` opens a GNSS port the way a u-blox module's UART is
set (8N1), for the reader and for the feed that writes the other end (`harness.rig.gnss_feed.NmeaFeed`);
`GnssError` is what either thread raises.

What it does not model: the line's baud rate (a pty delivers bytes as fast as the kernel does), flow control,
and framing or parity errors on the wire (pyserial hands over bytes, not errors).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

import serial

from harness.core.worker import Worker, WorkerError
from harness.wire.nmea_parser import NmeaError, NmeaFix, NmeaStream, NmeaStreamStats

__all__ = ["DEFAULT_BAUDRATE", "GnssError", "NmeaReader", "open_serial"]

#: A u-blox module's factory-default serial baud rate.
DEFAULT_BAUDRATE = 9600


class GnssError(WorkerError):
    """The GNSS feed or reader was misused (used after stop) or its thread failed; says which port."""


def open_serial(port: str, baudrate: int, timeout_s: float, write_timeout_s: float | None) -> serial.Serial:
    """`port` opened at `baudrate` 8N1, reads waiting at most `timeout_s`, writes `write_timeout_s` (None: forever)."""
    return serial.Serial(port, baudrate, bytesize=8, parity="N", stopbits=1, timeout=timeout_s,
                         write_timeout=write_timeout_s)


class NmeaReader(Worker):
    """Reads NMEA lines from a serial port in a background thread and parses them (the harness's side).

    `port` is a pyserial `Serial` (the caller keeps owning it) or a device path opened at `baudrate`.
    `fixes` keeps every parsed sentence when `keep_fixes` is true; `on_fix`, if given, is called in the reader
    thread with each. `stats` counts lines by outcome (`NmeaStreamStats`); `last_error` is the last rejection.
    """

    error_type = GnssError

    def __init__(
        self,
        port: serial.Serial | str,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        keep_fixes: bool = True,
        on_fix: Callable[[NmeaFix], None] | None = None,
        read_timeout_s: float = 0.05,
    ) -> None:
        self._port_name = port if isinstance(port, str) else str(port.port)
        super().__init__(f"nmea-reader-{self._port_name}")
        self._owns_port = isinstance(port, str)
        self._port_arg = port
        self._baudrate = baudrate
        self._read_timeout_s = read_timeout_s
        self._keep_fixes = keep_fixes
        self._on_fix = on_fix
        self._stream = NmeaStream()
        self._fixes: list[NmeaFix] = []
        self._lock = threading.Lock()

    @property
    def fixes(self) -> list[NmeaFix]:
        with self._lock:
            return list(self._fixes)

    @property
    def stats(self) -> NmeaStreamStats:
        with self._lock:
            return replace(self._stream.stats)

    @property
    def last_error(self) -> NmeaError | None:
        with self._lock:
            return self._stream.last_error

    def wait_for_lines(self, lines: int, timeout_s: float) -> bool:
        """Block until `lines` lines (parsed or rejected) have been read in all; False on timeout or failure."""
        deadline = time.monotonic() + timeout_s
        while self.stats.lines < lines:
            if self._done.is_set() or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def _describe(self) -> str:
        return f"NMEA reader on {self._port_name}"

    def _work(self) -> None:
        if isinstance(self._port_arg, str):
            port = open_serial(self._port_arg, self._baudrate, self._read_timeout_s, None)
        else:
            port = self._port_arg
        try:
            while not self._stop_requested.is_set():
                chunk = port.read(max(1, port.in_waiting))
                if chunk:
                    self._accept(chunk)
        finally:
            if self._owns_port:
                port.close()

    def _accept(self, chunk: bytes) -> None:
        with self._lock:
            fixes = self._stream.feed(chunk)
            if self._keep_fixes:
                self._fixes.extend(fixes)
        if self._on_fix is not None:
            for fix in fixes:
                self._on_fix(fix)
