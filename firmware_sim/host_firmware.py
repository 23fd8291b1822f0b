"""The unit's own C firmware, built for the host (`firmware_sim.host_build`), running as its own process in the loop.

`HostFirmware` takes the place of `firmware_sim.stm32.Stm32Sim` on virtual time (`harness.run.scheduler`: the same
`step(now_s)` / `next_due_s()` / `wait()` / `stop()`), but the firmware is the process: the harness reaches it only
through the interfaces a bench has.

- CAN1: a pty whose device end the process serves as an slcan (Lawicel) adapter; the harness opens the other end with
  python-can's real ``slcan`` driver and bridges it to the rig's CAN wire (`bus`): frames on the wire go to the
  firmware as ``t``/``T`` lines, frames it transmits come back as ``t``/``T`` lines and are put on the wire.
- USART1 (the link to the phone): a pty; the harness reads it with pyserial and writes the bytes on to `uart` (the
  app's and the tap's ptys, through the rig's `UartLine`), decoding a copy for the run's accounting.
- USART2 (the GNSS receiver): a pty the harness writes each epoch's NMEA sentences to (`gnss_sentences`).
- I2C1 (the unit's own sensors): before each move of the clock, what they read then (`sensors`, e.g.
  `firmware_sim.host_sensors.sensor_commands` of the plant's readings) as ``R``/``D`` lines on the control channel,
  those that changed since they were last sent.
- Time: a control channel (a socketpair). The host HAL (``firmware_sim/host_hal``) reports ``I <next_due_ms>
  <can_frames_out> <usart1_bytes> ... <usart6_bytes>`` when the firmware is idle; the harness answers ``A <t_ms>
  <can_frames_in> <usart1_bytes> ... <usart6_bytes>`` to move the firmware's tick to `t_ms` and say what it wrote to
  each port. The firmware's tick, timers and ``HAL_Delay`` therefore follow the scenario clock: a run is as
  deterministic as on the simulated STM32, and faster than real time.

A sanitizer report, a crash, an exit or a hang (no idle report within `HANG_WALL_S` of wall time) raises
`FirmwareFault`: a FAIL of the unit, naming the report's first lines and the first source line of the firmware's
own code in its stack; the whole report is in the run's ``firmware.log``.

What it does not model: the CAN bus's timing (a frame the firmware transmits is on the wire at the instant it
idles), the UART's baud rate, the firmware's CPU time (an instant's work takes no scenario time), restarts
(`restart` is refused: a reset of the process is the real-bench path's job).
"""
from __future__ import annotations

import bisect
import math
import os
import re
import signal
import socket
import subprocess
import time
import tty
from collections.abc import Callable, Mapping
from pathlib import Path

import can
import serial

from firmware_sim.firmware_stats import FirmwareStats
from harness.core.errors import DtgHilError
from harness.core.worker import Worker, WorkerError
from harness.wire.link import CanFrame, SampleRecord, StatusRecord, get_codec
from harness.wire.virtual_bus import Frame, recv_now

__all__ = ["HANG_WALL_S", "MAX_FRAMES_PER_ADVANCE", "PORTS", "FirmwareFault", "HostFirmware", "HostFirmwareError",
           "summarise_report"]

#: Wall seconds the firmware may take to report idle after it was moved on before it counts as hung.
HANG_WALL_S = 10.0
#: Most CAN frames handed to the firmware in one move of its clock (about 7 KiB of slcan lines: a pty buffers more).
MAX_FRAMES_PER_ADVANCE = 256
#: The UART instances of the host HAL, in the order of the control channel's counts.
PORTS = ("USART1", "USART2", "USART3", "UART4", "UART5", "USART6")
_LINK_PORT, _GNSS_PORT = 0, 1
#: Report lines that start a sanitizer's or the host HAL's finding.
_FINDING = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|host HAL:"
                      r"|ERROR: UndefinedBehaviorSanitizer")
_FRAME = re.compile(r"#\d+ 0x[0-9a-f]+ in (\S+) (\S+?):(\d+)")


class HostFirmwareError(WorkerError):
    """The host firmware process could not be started or driven (a harness-side problem: an ERROR of the run)."""


class FirmwareFault(DtgHilError):
    """The unit's firmware failed: a sanitizer finding, a crash, an exit or a hang. A FAIL of the unit, not an ERROR
    of the run. `report` is the firmware's whole output (sanitizer report included), `log_path` where it is kept."""

    def __init__(self, message: str, report: str = "", log_path: Path | None = None) -> None:
        super().__init__(message)
        self.report = report
        self.log_path = log_path


def summarise_report(report: str, source_root: Path | None = None) -> str:
    """The first lines of a sanitizer report (its finding and the line after it) and the first stack frame in the
    firmware's own sources (``path:line in function``); '' when the report holds no finding."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if _FINDING.search(line)), None)
    if start is None:
        return ""
    head = [re.sub(r"^==\d+==", "", lines[start]).strip()]
    if start + 1 < len(lines) and lines[start + 1].strip() and not _FRAME.search(lines[start + 1]):
        head.append(lines[start + 1].strip())
    for line in lines[start:]:
        match = _FRAME.search(line)
        if match is None:
            continue
        function, path, number = match.groups()
        if "host_hal" in path or path.startswith("/usr/") or "sanitizer" in path:
            continue
        where = Path(path)
        if source_root is not None:
            try:
                where = where.resolve().relative_to(source_root.resolve())
            except ValueError:
                pass
        head.append(f"at {where}:{number} in {function}")
        break
    return "; ".join(head)


def _raw_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


class HostFirmware(Worker):
    """The firmware `executable` as its own process, stepped on virtual time (see the module docstring)."""

    error_type = HostFirmwareError

    def __init__(self, executable: Path, bus: can.BusABC, uart, clock, *, codec: str = "dtg-link-v2",
                 end_s: float = math.inf, gnss_sentences: Callable[[int], bytes] | None = None,
                 log_path: Path, source_root: Path | None = None, can_bitrate: int = 500000,
                 sensors: Callable[[float], Mapping[str, str]] | None = None) -> None:
        super().__init__(f"host-firmware-{Path(executable).name}")
        self._executable = Path(executable)
        self._bus = bus
        self._uart = uart
        self._clock = clock
        self._codec_name = codec
        self._decoder = get_codec(codec).decoder()
        self._resync = False  # the link's frames stopped lining up: counted through the decoder from then on
        self._end_ms = math.inf if math.isinf(end_s) else round(end_s * 1000)
        self._gnss_sentences = gnss_sentences
        self._sensors = sensors
        self._sensors_sent: dict[str, str] = {}  # what the firmware was last told of each sensor input
        self._next_epoch = 0
        self._log_path = Path(log_path)
        self._source_root = source_root
        self._can_bitrate = can_bitrate
        self._proc: subprocess.Popen | None = None
        self._ctrl: socket.socket | None = None
        self._ctrl_buffer = b""
        self._fds: list[int] = []
        self._slcan: can.BusABC | None = None
        self._link: serial.Serial | None = None
        self._gnss: serial.Serial | None = None
        self._firmware_ms = 0
        self._due_ms: float = 0.0
        self._stats = FirmwareStats()
        self._last_status: StatusRecord | None = None
        self._sample_times_s: list[float] = []
        self.encode_cpu_s = 0.0  # the link is encoded in the firmware's process

    # -- what the chain reads ------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def stats(self) -> FirmwareStats:
        """The firmware's counters as the harness sees them: its last status record (requests, frames received and
        dropped) and the frames, samples and status records decoded off its UART."""
        stats = FirmwareStats(**vars(self._stats))
        status = self._last_status
        if status is not None:
            stats.requests_sent, stats.requests_unanswered = status.requests_sent, status.requests_unanswered
            stats.requests_answered = status.requests_sent - status.requests_unanswered
            stats.frames_received, stats.frames_unforwardable = status.can_frames_received, status.can_frames_dropped
        return stats

    def samples_sent_until(self, t_s: float) -> int:
        return bisect.bisect_right(self._sample_times_s, t_s + 1e-3)

    def restart(self, down_s: float = 2.0, at_s: float | None = None) -> None:
        raise HostFirmwareError(f"{self._describe()}: firmware_restart is not available on a host build (the process "
                                f"is the unit; a rig with stm32: {{kind: real}} resets it through its reset command)")

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the firmware has nothing due before the end of the drive (its polling is over)."""
        if self._state == "new":
            raise HostFirmwareError(f"{self._describe()} was never started")
        return self._proc is not None and self._due_ms >= self._end_ms

    # -- the process ---------------------------------------------------------------------------------------------

    def _describe(self) -> str:
        pid = f", pid {self._proc.pid}" if self._proc is not None else ""
        return f"host firmware {self._executable}{pid}"

    def _boot(self) -> None:
        can_master, can_slave, can_port = _raw_pty()
        link_master, link_slave, link_port = _raw_pty()
        gnss_master, gnss_slave, gnss_port = _raw_pty()
        ours, theirs = socket.socketpair()
        self._fds = [can_master, can_slave, link_master, link_slave, gnss_master, gnss_slave]
        self._ctrl = ours
        env = dict(os.environ, DTG_HOST_CTRL_FD=str(theirs.fileno()), DTG_HOST_CAN1_FD=str(can_master),
                   DTG_HOST_USART1_FD=str(link_master), DTG_HOST_USART2_FD=str(gnss_master),
                   ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:handle_abort=1",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        # The harness's ends first: pyserial flushes a port's input when it opens it, which would lose what a quick
        # firmware wrote at boot.
        self._link = serial.Serial(link_port, 921600, timeout=HANG_WALL_S)
        self._gnss = serial.Serial(gnss_port, 9600, timeout=HANG_WALL_S, write_timeout=HANG_WALL_S)
        self._slcan = can.Bus(interface="slcan", channel=can_port, bitrate=self._can_bitrate, sleep_after_open=0)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("wb") as log:
            try:
                self._proc = subprocess.Popen([str(self._executable)], stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                              pass_fds=(theirs.fileno(), can_master, link_master, gnss_master))
            except OSError as error:
                raise HostFirmwareError(f"cannot start the host firmware {self._executable}: {error}") from error
        theirs.close()
        for fd in (can_master, link_master, gnss_master):  # the process holds them now
            os.close(fd)
            self._fds.remove(fd)
        self._take_report(self._read_report(0))  # boot: the firmware's first idle

    def _fault(self, what: str, t_ms: int) -> FirmwareFault:
        """The firmware failed at `t_ms` (what the harness saw: `what`): its process is ended and its report read."""
        proc = self._proc
        hung = proc is not None and proc.poll() is None
        if hung:  # SIGABRT: AddressSanitizer (handle_abort=1) prints where the firmware is stuck
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        report = self._log_path.read_text(errors="replace") if self._log_path.is_file() else ""
        finding = summarise_report(report, self._source_root)
        if hung:
            cause = f"hung: {what}"
        elif proc is not None and proc.returncode is not None and proc.returncode < 0:
            cause = f"was killed by {signal.Signals(-proc.returncode).name}"
        else:
            cause = f"exited with status {proc.returncode if proc is not None else '?'}"
        message = (f"the unit's firmware ({self._executable.name}, pid {proc.pid if proc else '?'}) {cause} at "
                   f"t={t_ms / 1000:.3f} s of scenario time" + (f": {finding}" if finding else "")
                   + f" (whole report: {self._log_path.name})")
        return FirmwareFault(message, report, self._log_path)

    def _read_report(self, t_ms: int) -> list[int]:
        deadline = time.monotonic() + HANG_WALL_S
        while b"\n" not in self._ctrl_buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fault(f"no idle report within {HANG_WALL_S:g} s of wall time (it never sleeps: no __WFI, "
                                  f"HAL_Delay or HAL_GetTick busy-wait)", t_ms)
            self._ctrl.settimeout(remaining)
            try:
                chunk = self._ctrl.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if self._proc is not None:
                    try:
                        self._proc.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
                raise self._fault("its control channel closed", t_ms)
            self._ctrl_buffer += chunk
        line, self._ctrl_buffer = self._ctrl_buffer.split(b"\n", 1)
        fields = line.split()
        if len(fields) != 3 + len(PORTS) or fields[0] != b"I":
            raise HostFirmwareError(f"{self._describe()}: malformed idle report {line!r} (is it built against "
                                    f"dtg-hil's host HAL?)")
        return [int(f) for f in fields[1:]]

    def _take_report(self, report: list[int]) -> bool:
        """Move what the firmware sent in this instant on: its CAN frames to the wire, its link bytes to the UART."""
        due_ms, can_frames, *port_bytes = report
        self._due_ms = math.inf if due_ms < 0 else due_ms
        now_s = self._firmware_ms / 1000
        for _ in range(can_frames):
            message = self._slcan.recv(timeout=HANG_WALL_S)
            if message is None:
                raise HostFirmwareError(f"{self._describe()}: a CAN frame it reported did not come through slcan")
            self._bus.send(Frame(arbitration_id=message.arbitration_id, is_extended_id=message.is_extended_id,
                                 is_remote_frame=message.is_remote_frame, data=bytes(message.data),
                                 dlc=message.dlc, timestamp=now_s))
        link_bytes = port_bytes[_LINK_PORT]
        if link_bytes:
            data = self._link.read(link_bytes)
            if len(data) < link_bytes:
                raise HostFirmwareError(f"{self._describe()}: {link_bytes} bytes reported on USART1, "
                                        f"{len(data)} arrived")
            self._account(data)
            try:
                self._uart.write(data)
            except serial.SerialTimeoutException:
                self._stats.uart_write_timeouts += 1
        return bool(can_frames or any(port_bytes))

    def _account(self, data: bytes) -> None:
        """Count what the firmware wrote: by the frames' headers while they line up (the firmware writes whole frames;
        the app and the tap check the CRCs), else through the codec's decoder."""
        stats = self._stats
        stats.bytes_written += len(data)
        if not self._resync and self._walk(data):
            return
        self._resync = True
        for item in self._decoder.feed(data):
            record = item.record
            if isinstance(record, CanFrame):
                stats.frames_forwarded += 1
            elif isinstance(record, SampleRecord):
                stats.samples_sent += 1
                self._sample_times_s.append(record.t_ms / 1000)
            else:
                stats.status_sent += 1
                self._last_status = record

    def _walk(self, data: bytes) -> bool:
        """Count `data` by the frames' headers; False (nothing counted) when they do not line up."""
        frames, pos, end = [], 0, len(data)
        v2 = self._codec_name == "dtg-link-v2"
        while pos < end:
            if v2:
                if data[pos:pos + 3] != b"\xd7\x47\x02" or pos + 5 > end or pos + 17 + data[pos + 4] > end:
                    return False
                kind, size = data[pos + 3], 17 + data[pos + 4]
                if kind not in (1, 2, 3) or (kind == 3 and size != 33):
                    return False
            else:
                kind, size = 1, 15
                if data[pos] != 0xAA or pos + size > end or data[pos + size - 1] != 0x55:
                    return False
            frames.append((pos, kind))
            pos += size
        stats = self._stats
        for pos, kind in frames:
            if kind == 1:
                stats.frames_forwarded += 1
                if not v2 and data[pos + 1:pos + 3] == b"\x07\xdf":  # raw-can-v1 has no status: its own requests
                    stats.requests_sent += 1
                elif not v2:
                    stats.frames_received += 1
            elif kind == 2:
                stats.samples_sent += 1
                self._sample_times_s.append(int.from_bytes(data[pos + 9:pos + 13], "big") / 1000)
            else:
                stats.status_sent += 1
                self._last_status = StatusRecord(int.from_bytes(data[pos + 9:pos + 13], "big"), *(
                    int.from_bytes(data[pos + 13 + 4 * i:pos + 17 + 4 * i], "big") for i in range(4)))
        return True

    # -- virtual time --------------------------------------------------------------------------------------------

    def step(self, now_s: float) -> bool:
        """Everything due at `now_s`: the wire's frames and the GNSS epochs to the firmware, the firmware moved to
        `now_s` if it has input or anything due, and what it sent on."""
        if self._proc is None:
            self._boot()
        now_ms = math.floor(now_s * 1000 + 1e-6)
        frames, burst = 0, False
        message = recv_now(self._bus)
        while message is not None:
            if not message.is_error_frame:
                self._slcan.send(message)
                frames += 1
                if frames == MAX_FRAMES_PER_ADVANCE:  # a burst: handed over in parts, so the pty never fills up
                    self._advance(now_ms, frames, b"")
                    frames, burst = 0, True
            else:
                self._stats.error_frames += 1
            message = recv_now(self._bus)
        nmea = b""
        if self._gnss_sentences is not None:
            while self._next_epoch * 1000 <= now_ms and self._next_epoch * 1000 < self._end_ms:
                nmea += self._gnss_sentences(self._next_epoch)
                self._next_epoch += 1
            if nmea:
                self._gnss.write(nmea)
        if not frames and not nmea and self._due_ms > now_ms:
            return burst
        self._advance(now_ms, frames, nmea)
        return True

    def _advance(self, now_ms: int, frames: int, nmea: bytes) -> None:
        """Move the firmware to `now_ms` with `frames` CAN frames and `nmea` bytes written to its ports."""
        counts = [0] * len(PORTS)
        counts[_GNSS_PORT] = len(nmea)
        command = ""
        if self._sensors is not None:  # what the unit's own sensors read now: only what changed
            for key, line in self._sensors(now_ms / 1000).items():
                if self._sensors_sent.get(key) != line:
                    command += line + "\n"
                    self._sensors_sent[key] = line
        command += f"A {now_ms} {frames} {' '.join(map(str, counts))}\n"
        try:
            self._ctrl.sendall(command.encode())
        except OSError:
            raise self._fault("its control channel closed", now_ms) from None
        self._firmware_ms = now_ms
        self._take_report(self._read_report(now_ms))

    def next_due_s(self) -> float:
        if self._proc is None:
            return self._clock.now_s()
        return self._due_ms / 1000 if self._due_ms < self._end_ms else math.inf

    def _finish(self) -> None:
        """stop(): hand over what is still on the wire, end the process (end of its control channel) and check
        how it ended; release the ports."""
        try:
            if self._proc is not None and self._proc.poll() is None:
                # the frames still on the wire, at the firmware's last instant (no timer of a later one fires)
                self.step(self._firmware_ms / 1000)
                self._ctrl.shutdown(socket.SHUT_RDWR)
                try:
                    self._proc.wait(HANG_WALL_S)
                except subprocess.TimeoutExpired:
                    raise self._fault("it did not exit when its control channel closed", self._firmware_ms) from None
                if self._proc.returncode != 0:
                    raise self._fault("it failed on the way out", self._firmware_ms)
        finally:
            self._release()

    def _release(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
        for closing in (self._slcan.shutdown if self._slcan else None, self._link.close if self._link else None,
                        self._gnss.close if self._gnss else None, self._ctrl.close if self._ctrl else None):
            if closing is not None:
                try:
                    closing()
                except (OSError, can.CanError, serial.SerialException):
                    pass
        self._slcan = self._link = self._gnss = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
