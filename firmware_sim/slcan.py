"""A simulated serial-line CAN adapter (Lawicel / CANable "slcan" ASCII protocol) on a pty, for the loopback rig.

On a rig the harness may reach the vehicle bus through a USB slcan adapter (a CANable, a Lawicel CANUSB) that
python-can drives with its own ``slcan`` interface over a serial port. `SlcanAdapter` stands in for that
adapter so that python-can's REAL ``slcan`` driver carries the traffic in CI: it serves the adapter's ASCII
protocol on the device end of a pty pair (`firmware_sim.uart.PtyPair`) and bridges it to a python-can
``virtual`` bus channel. The host opens `SlcanAdapter.port` as it would open ``/dev/ttyACM0``::

    with SlcanAdapter("vehicle") as adapter:
        host = can.Bus(interface="slcan", channel=adapter.port, bitrate=500000, sleep_after_open=0)
        host.send(can.Message(arbitration_id=0x7DF, is_extended_id=False, data=[2, 1, 0x0C]))
        ...
        host.shutdown()

``sleep_after_open=0`` is the one keyword the pty needs: python-can sleeps 2 s after opening the port by default
(for adapters that reset when the port opens). Leave ``rtscts`` at its default (False): pyserial then tries to
set RTS and DTR once when it opens the port, the ioctls fail on a pty with ENOTTY and pyserial ignores exactly
that error, and python-can never touches the modem lines afterwards. ``tty_baudrate`` is irrelevant (a pty
ignores it). Nothing in python-can needs patching.

Protocol (one command per line, each ending in CR; the adapter answers CR for OK, BEL (0x07) for an error):

- ``S0``..``S9`` set a standard bitrate (the table python-can uses: S7 is 750 kbit/s as on a CANable, where a
  Lawicel CANUSB has 800 kbit/s; S9 is 83.3 kbit/s); ``sxxyy`` sets SJA1000 BTR0/BTR1 registers (8 MHz clock),
  decoded to a bitrate with `can.BitTiming.from_registers`. Both only while the channel is closed.
- ``O`` opens the channel, ``L`` opens it listen-only (it receives, and refuses to transmit), ``C`` closes it.
  Opening an open channel is refused (BEL), as on a Lawicel adapter; note that python-can sends ``O`` twice when
  it is given a bitrate (once inside ``set_bitrate``, once more after it), so every python-can session starts
  with one refused command in `SlcanStats.refused_commands`. Closing a closed channel is answered OK (python-can
  sends ``C`` before anything else). An empty line is answered OK and does nothing (python-can sends one for
  "no CAN FD data bitrate").
- ``tiiildd..``, ``Tiiiiiiiildd..`` (data frames, 11/29-bit IDs, DLC 0-8, exactly DLC data bytes in hex),
  ``riiil``, ``Riiiiiiiil`` (remote frames): put on the virtual bus, answered ``z`` + CR (11-bit) or
  ``Z`` + CR (29-bit) as a Lawicel adapter in auto-poll mode does. Refused while the channel is closed or
  listen-only.
- ``F`` reads the status flags as ``Fxx`` (open channel only): bit 3 (data overrun) is set when frames from the
  bus were dropped because the host did not read them (see `host_buffer_bytes`); reading clears the flags.
- ``V`` answers ``Vhhss`` (hardware, software version as two decimal digits each, as python-can's
  ``get_version`` parses them), ``v`` answers ``v`` + the software version as 4 decimal digits,
  ``N`` answers ``N`` + the 4-character serial number.
- ``Z0`` / ``Z1`` turn receive timestamps off/on (closed channel only): with them on, each frame sent to the
  host carries 4 hex digits of milliseconds, 0000-EA5F, wrapping every 60 s, as Lawicel adapters append them.
- Anything else (including the Lawicel commands this stand-in does not model: ``P``, ``A``, ``X``, ``W``,
  ``M``, ``m``, ``U``, ``Q`` and the CAN FD commands ``d``, ``D``, ``b``, ``B``, ``Y``) and any syntax error
  is a malformed line: BEL, counted in `SlcanStats.malformed_lines`. A line longer than `MAX_LINE_CHARS`
  without a CR is dropped as one malformed line.

Frames on the virtual bus (sent by any other bus on the channel) go to the host as ``t``/``T``/``r``/``R``
lines while the channel is open (normal or listen-only); while it is closed they are dropped and counted, as
a real adapter's controller is off the bus then.

What it does NOT model: bus arbitration, bit timing and bus load (the virtual bus has none: a frame arrives
as soon as Python moves it, whatever bitrate the host set; the bitrate is only recorded); error frames, error
counters, bus-off and the status flags other than overrun; acceptance filters (``M``/``m``); the real
adapter's USB latency and its small receive FIFO (a frame reaches the host within about one
`poll_interval_s`; up to `host_buffer_bytes` of frames queue for a host that does not read before frames
are dropped); transmit confirmation from the bus (``z``/``Z`` comes back as soon as the frame is on the
virtual bus); CAN FD; the serial baud rate (a pty moves bytes as fast as the kernel does).
"""
from __future__ import annotations

import errno
import os
import re
import select
import threading
import time
from dataclasses import dataclass, replace

import can

from firmware_sim.uart import PtyPair
from harness.core.errors import DtgHilError
from harness.core.worker import Worker, WorkerError

__all__ = [
    "MAX_LINE_CHARS",
    "SLCAN_BITRATES",
    "SlcanAdapter",
    "SlcanError",
    "SlcanStats",
    "format_frame",
]

OK = b"\r"
BEL = b"\a"
#: The longest command is a 29-bit data frame with 8 bytes: "T" + 8 + 1 + 16 = 26 characters.
MAX_LINE_CHARS = 64
#: Bitrate commands and their bitrates, as python-can's slcan driver maps them (`slcanBus._BITRATES`).
SLCAN_BITRATES: dict[str, int] = {
    "S0": 10_000,
    "S1": 20_000,
    "S2": 50_000,
    "S3": 100_000,
    "S4": 125_000,
    "S5": 250_000,
    "S6": 500_000,
    "S7": 750_000,
    "S8": 1_000_000,
    "S9": 83_300,
}
#: SJA1000 clock that "sxxyy" BTR values refer to (python-can checks its BitTiming against the same 8 MHz).
BTR_CLOCK_HZ = 8_000_000
#: Status flag (F command) bit 3: data overrun.
STATUS_DATA_OVERRUN = 0x08
#: Lawicel timestamps count milliseconds modulo 60 000 (0x0000-0xEA5F).
TIMESTAMP_WRAP_MS = 60_000

_FRAME_FORMS = {
    # command: (ID hex digits, largest ID, remote, OK answer)
    "t": (3, 0x7FF, False, b"z\r"),
    "T": (8, 0x1FFFFFFF, False, b"Z\r"),
    "r": (3, 0x7FF, True, b"z\r"),
    "R": (8, 0x1FFFFFFF, True, b"Z\r"),
}
_HEX = re.compile(r"[0-9A-Fa-f]*", re.ASCII)


class SlcanError(WorkerError):
    """The slcan adapter was misused (used after stop) or its worker failed; says which port and channel."""


@dataclass
class SlcanStats:
    """What the adapter has done since it was created.

    `malformed_lines` counts lines that are no command this adapter knows or have a syntax error,
    `refused_commands` well-formed commands not allowed in the channel's state (a frame while closed or
    listen-only, a bitrate change or ``O`` while open, ``F`` while closed), `bus_send_errors` frames the virtual
    bus refused; each of these was answered BEL. Frames from the bus that did not reach the host are counted by
    reason: channel closed, host buffer full (the host did not read), or not representable in slcan (CAN FD,
    error frames).
    """

    lines_from_host: int = 0
    frames_from_host: int = 0
    frames_to_host: int = 0
    malformed_lines: int = 0
    refused_commands: int = 0
    bus_send_errors: int = 0
    frames_dropped_closed: int = 0
    frames_dropped_overflow: int = 0
    frames_dropped_unsupported: int = 0

    @property
    def errors(self) -> int:
        """Every line answered BEL."""
        return self.malformed_lines + self.refused_commands + self.bus_send_errors


class _Rejected(DtgHilError):
    """A host line answered BEL; `kind` says which counter it goes to."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _malformed(reason: str) -> _Rejected:
    return _Rejected("malformed_lines", reason)


def _refused(reason: str) -> _Rejected:
    return _Rejected("refused_commands", reason)


def format_frame(message: can.Message) -> str | None:
    """The slcan line (without CR or timestamp) that carries `message` to the host; None if slcan cannot
    carry it (CAN FD, error frames, a DLC above 8).

    >>> format_frame(can.Message(arbitration_id=0x7E8, is_extended_id=False, data=[3, 0x41, 0x0D, 0x57]))
    't7E8403410D57'
    >>> format_frame(can.Message(arbitration_id=0x18FEF100, is_remote_frame=True, dlc=8))
    'R18FEF1008'
    """
    if message.is_fd or message.is_error_frame or not 0 <= message.dlc <= 8:
        return None
    if message.is_extended_id:
        head = f"{'R' if message.is_remote_frame else 'T'}{message.arbitration_id:08X}{message.dlc:d}"
    else:
        head = f"{'r' if message.is_remote_frame else 't'}{message.arbitration_id:03X}{message.dlc:d}"
    if message.is_remote_frame:
        return head
    return head + bytes(message.data[: message.dlc]).hex().upper()


def _parse_frame(line: str) -> can.Message:
    """A t/T/r/R line as a python-can message; `_Rejected` (malformed) naming what is wrong."""
    command = line[0]
    id_digits, max_id, remote, _ = _FRAME_FORMS[command]
    form = f"{command}{'i' * id_digits}l{'' if remote else 'dd..'} (ID {id_digits} hex digits <= 0x{max_id:X}, " \
           f"l = DLC 0-8{'' if remote else ', then exactly DLC data bytes in hex'})"
    id_text, dlc_text, data_text = line[1:1 + id_digits], line[1 + id_digits:2 + id_digits], line[2 + id_digits:]
    if len(id_text) != id_digits or not _HEX.fullmatch(id_text):
        raise _malformed(f"bad identifier {id_text!r}; expected {form}")
    arbitration_id = int(id_text, 16)
    if arbitration_id > max_id:
        raise _malformed(f"identifier 0x{arbitration_id:X} out of range; expected {form}")
    if len(dlc_text) != 1 or dlc_text not in "012345678":
        raise _malformed(f"bad DLC {dlc_text!r}; expected {form}")
    dlc = int(dlc_text)
    if remote:
        if data_text:
            raise _malformed(f"a remote frame carries no data, got {data_text!r}; expected {form}")
        data = b""
    else:
        if len(data_text) != 2 * dlc or not _HEX.fullmatch(data_text):
            raise _malformed(f"data {data_text!r} is not {dlc} bytes in hex; expected {form}")
        data = bytes.fromhex(data_text)
    return can.Message(
        arbitration_id=arbitration_id,
        is_extended_id=command in "TR",
        is_remote_frame=remote,
        dlc=dlc,
        data=data,
    )


class _AdapterPty(PtyPair):
    """The pty pair, with the non-blocking access to its device end that the adapter's single loop needs (a
    blocking write would stall the adapter's reading of the host while the host is not reading)."""

    def fileno(self) -> int:
        return self._master_fd

    def write_some(self, data: bytes | bytearray) -> int:
        """Write what fits in the pty's buffer now; the number of bytes written."""
        try:
            return os.write(self._master_fd, data)
        except BlockingIOError:
            return 0

    def read_some(self, max_bytes: int = 4096) -> bytes:
        try:
            return os.read(self._master_fd, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as error:  # EIO: no one holds the port end (not the case while the pair is open)
            if error.errno == errno.EIO:
                return b""
            raise


class SlcanAdapter(Worker):
    """A simulated slcan adapter: the slcan protocol on `port` (a pty), bridged to virtual bus `channel`.

    The pty and the virtual bus exist from construction (so `port` can be handed out before `start()`); the
    adapter answers from `start()` until `stop()`, which releases both. A stopped adapter refuses use: `port`
    and `start()` raise `SlcanError`, and a host still holding the port gets I/O errors. The adapter holds
    its own virtual bus on `channel`: every other bus on that channel sees what the host sends, and the host
    sees what they send (never its own frames: the virtual bus does not echo to the sender).

    Tuning: `poll_interval_s` (wall seconds) bounds how long a frame from the bus waits before it goes to the
    host and how long `stop()` takes; `host_buffer_bytes` is how much the adapter queues for a host that is
    not reading before it drops frames (counted, and flagged as overrun in ``F``).
    """

    error_type = SlcanError

    def __init__(
        self,
        channel: str,
        *,
        serial_number: str = "SIM0",
        hardware_version: int = 10,
        software_version: int = 13,
        host_buffer_bytes: int = 64 * 1024,
        poll_interval_s: float = 0.001,
    ) -> None:
        if not (len(serial_number) == 4 and serial_number.isascii() and serial_number.isalnum()):
            raise ValueError(f"serial_number must be 4 ASCII letters or digits (Lawicel 'Nxxxx'), "
                             f"got {serial_number!r}")
        for name, version in (("hardware_version", hardware_version), ("software_version", software_version)):
            if not 0 <= version <= 99:
                raise ValueError(f"{name} must be 0-99 (two decimal digits in the 'V' answer), got {version!r}")
        self._pty = _AdapterPty()
        super().__init__(f"slcan-{self._pty.port}")
        self._channel = channel
        self._bus: can.BusABC = can.Bus(interface="virtual", channel=channel)
        self._serial_number = serial_number
        self._hardware_version = hardware_version
        self._software_version = software_version
        self._host_buffer_bytes = host_buffer_bytes
        self._poll_interval_s = poll_interval_s
        self._lock = threading.Lock()
        self._stats = SlcanStats()
        self._released = False
        # Channel state; written by the worker thread only, read through the properties under the lock.
        self._is_open = False
        self._listen_only = False
        self._timestamps = False
        self._bitrate: int | None = None
        self._bitrate_command: str | None = None
        self._status_flags = 0
        self._last_error: str | None = None
        self._opened_at = time.monotonic()
        # Bytes for the host not yet taken by the pty, and the host's partial line.
        self._to_host = bytearray()
        self._line = bytearray()
        self._discarding_long_line = False

    # -- public API ---------------------------------------------------------------------------------

    @property
    def port(self) -> str:
        """The pty path to give the host (``can.Bus(interface="slcan", channel=adapter.port, ...)``)."""
        if self._released:
            raise SlcanError(f"{self._describe()} is stopped; its port is gone, create a new SlcanAdapter")
        return self._pty.port

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def bitrate(self) -> int | None:
        """The bitrate the host last set (``S`` or ``s``), in bit/s; None until it sets one."""
        with self._lock:
            return self._bitrate

    @property
    def bitrate_command(self) -> str | None:
        """The host's last accepted bitrate command as sent, e.g. ``"S6"`` or ``"s001C"``."""
        with self._lock:
            return self._bitrate_command

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._is_open

    @property
    def listen_only(self) -> bool:
        with self._lock:
            return self._listen_only

    @property
    def timestamps(self) -> bool:
        with self._lock:
            return self._timestamps

    @property
    def last_error(self) -> str | None:
        """The last line answered BEL and why, e.g. ``"'t12' from host: bad DLC ''; expected ..."``."""
        with self._lock:
            return self._last_error

    @property
    def stats(self) -> SlcanStats:
        """A snapshot of the counters (safe to read while running)."""
        with self._lock:
            return replace(self._stats)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop answering and release the pty and the virtual bus (also when the adapter never started)."""
        try:
            super().stop(timeout_s)
        finally:
            self._release()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"<SlcanAdapter {self._describe()} state={self._state} channel={state} bitrate={self._bitrate}>"

    # -- worker -------------------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"slcan adapter on {self._pty.port} (virtual channel {self._channel!r})"

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._pty.close()
        self._bus.shutdown()

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + amount)

    def _work(self) -> None:
        try:
            fd = self._pty.fileno()
            while not self._stop_requested.is_set():
                writers = [fd] if self._to_host else []
                readable, writable, _ = select.select([fd], writers, [], self._poll_interval_s)
                if readable:
                    self._from_host(self._pty.read_some())
                self._drain_bus()
                if self._to_host and (writable or select.select([], [fd], [], 0)[1]):
                    del self._to_host[: self._pty.write_some(self._to_host)]
        finally:
            self._release()

    # -- host -> bus --------------------------------------------------------------------------------

    def _from_host(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x0D:
                if self._discarding_long_line:
                    self._discarding_long_line = False
                else:
                    self._handle_line(bytes(self._line))
                self._line.clear()
            elif self._discarding_long_line:
                continue
            elif len(self._line) >= MAX_LINE_CHARS:
                self._line.clear()
                self._discarding_long_line = True
                self._count(lines_from_host=1)
                self._reject(_malformed(f"line longer than {MAX_LINE_CHARS} characters without a CR"), b"...")
            else:
                self._line.append(byte)

    def _reject(self, rejected: _Rejected, raw: bytes) -> None:
        self._count(**{rejected.kind: 1})
        with self._lock:
            self._last_error = f"{raw.decode('ascii', 'backslashreplace')!r} from host: {rejected.reason}"
        self._to_host += BEL

    def _handle_line(self, raw: bytes) -> None:
        self._count(lines_from_host=1)
        try:
            answer = self._answer(raw)
        except _Rejected as rejected:
            self._reject(rejected, raw)
            return
        self._to_host += answer

    def _answer(self, raw: bytes) -> bytes:
        """What the adapter answers to one line from the host (without its CR); `_Rejected` for BEL."""
        if not raw:
            return OK
        if not all(0x20 < byte < 0x7F for byte in raw):
            raise _malformed("not a printable ASCII command")
        line = raw.decode("ascii")
        command, argument = line[0], line[1:]
        if command in _FRAME_FORMS:
            message = _parse_frame(line)
            if not self._is_open:
                raise _refused("the channel is closed; open it with O first")
            if self._listen_only:
                raise _refused("the channel is open listen-only (L); it does not transmit")
            try:
                self._bus.send(message)
            except can.CanError as error:
                raise _Rejected("bus_send_errors", f"virtual bus refused the frame: {error}") from error
            self._count(frames_from_host=1)
            return _FRAME_FORMS[command][3]
        if command == "S":
            if line not in SLCAN_BITRATES:
                raise _malformed(f"unknown bitrate command; expected one of: {', '.join(SLCAN_BITRATES)}")
            self._require_closed(line)
            self._set_bitrate(SLCAN_BITRATES[line], line)
            return OK
        if command == "s":
            if len(argument) != 4 or not _HEX.fullmatch(argument):
                raise _malformed("expected sxxyy (BTR0, BTR1 in hex)")
            self._require_closed(line)
            try:
                timing = can.BitTiming.from_registers(
                    f_clock=BTR_CLOCK_HZ, btr0=int(argument[:2], 16), btr1=int(argument[2:], 16)
                )
            except ValueError as error:
                raise _refused(f"BTR0/BTR1 give no valid bit timing at 8 MHz: {error}") from error
            self._set_bitrate(timing.bitrate, line)
            return OK
        if command in "OL" and not argument:
            self._require_closed(line)
            with self._lock:
                self._is_open, self._listen_only = True, command == "L"
                self._opened_at = time.monotonic()
            return OK
        if command == "C" and not argument:
            with self._lock:
                self._is_open = self._listen_only = False
            return OK
        if command == "F" and not argument:
            if not self._is_open:
                raise _refused("status flags are read on an open channel only")
            with self._lock:
                flags, self._status_flags = self._status_flags, 0
            return f"F{flags:02X}\r".encode()
        if command == "V" and not argument:
            return f"V{self._hardware_version:02d}{self._software_version:02d}\r".encode()
        if command == "v" and not argument:
            return f"v{self._software_version:04d}\r".encode()
        if command == "N" and not argument:
            return f"N{self._serial_number}\r".encode()
        if command == "Z":
            if argument not in ("0", "1"):
                raise _malformed("expected Z0 (timestamps off) or Z1 (on)")
            self._require_closed(line)
            with self._lock:
                self._timestamps = argument == "1"
            return OK
        raise _malformed(
            "not a command this adapter knows; expected one of: S0-S9, sxxyy, O, L, C, F, V, v, N, Z0/Z1, "
            "tiiildd.., Tiiiiiiiildd.., riiil, Riiiiiiiil"
        )

    def _require_closed(self, line: str) -> None:
        if self._is_open:
            raise _refused(f"{line!r} is only accepted while the channel is closed; close it with C first")

    def _set_bitrate(self, bitrate: int, command: str) -> None:
        with self._lock:
            self._bitrate, self._bitrate_command = bitrate, command

    # -- bus -> host --------------------------------------------------------------------------------

    def _drain_bus(self, max_frames: int = 256) -> None:
        for _ in range(max_frames):
            message = self._bus.recv(timeout=0)
            if message is None:
                return
            self._to_host_frame(message)

    def _to_host_frame(self, message: can.Message) -> None:
        if not self._is_open:
            self._count(frames_dropped_closed=1)
            return
        text = format_frame(message)
        if text is None:
            self._count(frames_dropped_unsupported=1)
            return
        if self._timestamps:
            text += f"{int((time.monotonic() - self._opened_at) * 1000) % TIMESTAMP_WRAP_MS:04X}"
        line = text.encode("ascii") + OK
        if len(self._to_host) + len(line) > self._host_buffer_bytes:
            with self._lock:
                self._status_flags |= STATUS_DATA_OVERRUN
            self._count(frames_dropped_overflow=1)
            return
        self._to_host += line
        self._count(frames_to_host=1)
