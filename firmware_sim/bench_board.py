"""A stand-in for a real STM32 board on a bench, so that the real-bench path of dtg-hil (`stm32: {kind: real}`) runs
in CI: its flash, reset, power and UART-relay commands point at this script, which (re)starts the HOST-BUILT firmware
(`firmware_sim.host_build`) as its own process, on the wall clock at 1x.

The board is a long-lived process (``serve``) holding what stays wired on a bench across resets:

- ``DIR/can``: a pty speaking slcan (`firmware_sim.slcan.SlcanAdapter`), the bench's USB-CAN adapter: the harness
  opens it with python-can's ``slcan`` driver (``can: {interface: slcan, channel: DIR/can}``);
- ``DIR/uart-app`` and ``DIR/uart-tap``: two ptys receiving the firmware's USART1 (the link), as two USB-serial
  adapters on the TX line: the app reads one (``android.port``), the UART tap the other (``stm32.uart_tap``);
- ``DIR/gnss``: a pty whose other end is the firmware's USART2: the harness's NMEA feed writes it (``gnss.port``);
- ``DIR/sensors``: the bench's sensor stimulator (``stm32.sensors``, `harness.rig.sensor_stimulus`): lines in the host
  HAL's format (``D <address> <0|1>``, ``R <address> <register> <value>``) set what the firmware's I2C parts answer.

(Each is a symlink to the pty, as ``/dev/serial/by-id/...`` names a USB-serial adapter.) The firmware executable is
what was last flashed (``DIR/flash/firmware``). `HostFirmware` drives it with the wall clock as its scenario clock:
the firmware's tick is the milliseconds since its reset, its timers fire on time, frames and NMEA bytes are handed to
it as they arrive (NMEA once a second of its tick). Its own sensors (I2C1) read a unit at rest on the bench (0 bar of
brake pressure, an accelerometer's noise around 0 m/s²) until the stimulator says otherwise.

The commands (``python -m firmware_sim.bench_board COMMAND --dir DIR``), each logged to ``DIR/commands.log``:
``flash --image PATH`` (copies the image to the board's flash and resets it; starts the board when it is not
running), ``reset``, ``power off|on``, ``uart off|on`` (a relay on the TX line), ``stop``. Each waits until the
board has done it (the firmware booted: its first idle report) and exits 0, or prints the reason and exits 1.

Not modelled: a real board's boot time, flash erase and verify, the CAN controller's timing, the UART's baud rate.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import can

from firmware_sim.host_firmware import FirmwareFault, HostFirmware, HostFirmwareError
from firmware_sim.host_sensors import sensor_commands
from firmware_sim.slcan import SlcanAdapter
from firmware_sim.uart import PtyPair
from firmware_sim.uart_sinks import TeeSink
from harness.core.clock import ScenarioClock

__all__ = ["LINKS", "Board", "main"]

#: The bench's wiring as symlinks in the board's folder (see the module docstring).
LINKS = ("can", "uart-app", "uart-tap", "gnss", "sensors")
#: Wall seconds a command waits for the board's answer.
COMMAND_TIMEOUT_S = 30.0
#: Wall seconds the board's main loop sleeps at most between looks at the bus and its ports.
POLL_S = 0.005
_ACCEL_NOISE_MS2 = 0.003  # an LSM6DSO's noise at rest, about 70 ug/sqrt(Hz) over its bandwidth


class _Relay:
    """The relay on the UART's TX line: while open, what the firmware writes is lost."""

    def __init__(self, sink) -> None:
        self.sink, self.closed = sink, True

    def write(self, data: bytes) -> int:
        return self.sink.write(data) if self.closed else len(data)


class Board:
    """The board's process: the bench wiring (kept across resets) and the firmware (restarted by them)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.channel = f"bench-board-{os.getpid()}"
        self.adapter = SlcanAdapter(self.channel).start()
        # Short write timeouts: a line nobody reads loses bytes, as a UART does; it never stalls the board.
        self.app_pty, self.tap_pty, self.gnss_pty, self.sensors_pty = PtyPair(0.005), PtyPair(0.005), PtyPair(), \
            PtyPair()
        self.relay = _Relay(TeeSink(self.app_pty.device, self.tap_pty.device, names=("app", "tap")))
        ports = (self.adapter.port, self.app_pty.port, self.tap_pty.port, self.gnss_pty.port, self.sensors_pty.port)
        for name, port in zip(LINKS, ports, strict=True):
            link = folder / name
            link.unlink(missing_ok=True)
            link.symlink_to(port)
        self.firmware: HostFirmware | None = None
        self.bus: can.BusABC | None = None
        self.clock = ScenarioClock(1.0)
        self.powered = True
        self.boots = 0
        self.rng = random.Random(0)
        self.stimulated: dict[str, str] = {}  # what the sensor stimulator set, by part and register
        self._stimulus = b""
        self.fault: str | None = None

    @property
    def image(self) -> Path:
        return self.folder / "flash" / "firmware"

    def _sensors(self, t_s: float) -> dict[str, str]:
        """What the firmware's I2C parts answer now: at rest, overridden by what the stimulator set."""
        while chunk := self.sensors_pty.read_device(timeout_s=0.0):
            self._stimulus += chunk
        *lines, self._stimulus = self._stimulus.split(b"\n")
        for line in lines:
            self.stimulated.update(_by_part([line.decode("ascii", "replace").strip()]))
        rest = sensor_commands({"brake_pressure": 0.0, "acceleration_x": self.rng.gauss(0.0, _ACCEL_NOISE_MS2)})
        return {**_by_part(rest.values()), **self.stimulated}

    def _gnss_bytes(self, epoch: int) -> bytes:
        data = b""
        while chunk := self.gnss_pty.read_device(timeout_s=0.0):
            data += chunk
        return data

    def halt(self) -> None:
        """The firmware stops (reset held, power off): its process ends."""
        firmware, bus, self.firmware, self.bus = self.firmware, self.bus, None, None
        if firmware is not None:
            with contextlib.suppress(FirmwareFault, HostFirmwareError):
                firmware.stop()
        if bus is not None:
            bus.shutdown()

    def boot(self) -> None:
        """Reset: the flashed firmware starts again, its tick at 0."""
        self.halt()
        self.fault = None
        if not self.powered or not self.image.is_file():
            return
        self.bus = can.Bus(interface="virtual", channel=self.channel, receive_own_messages=False)
        self.clock = ScenarioClock(1.0)
        self.boots += 1
        self.firmware = HostFirmware(self.image, self.bus, self.relay, self.clock, codec=os.environ.get(
            "DTG_BOARD_CODEC", "dtg-link-v2"), gnss_sentences=self._gnss_bytes, sensors=self._sensors,
            log_path=self.folder / f"firmware-{self.boots}.log").start_stepped()
        self.firmware.step(0.0)  # boots the process: its first idle report

    def step(self) -> float:
        """The firmware's work due now; the wall seconds until it is due again (at most `POLL_S`)."""
        if self.firmware is None:
            return POLL_S
        try:
            self.firmware.step(self.clock.now_s())
        except (FirmwareFault, HostFirmwareError) as error:  # the unit died: it stays dead until a reset
            self.fault = str(error)
            print(f"bench board: the firmware failed: {error}", file=sys.stderr, flush=True)
            self.halt()
            return POLL_S
        due_s = self.firmware.next_due_s()
        return min(POLL_S, max(0.0, due_s - self.clock.now_s())) if math.isfinite(due_s) else POLL_S

    def command(self, words: list[str]) -> str:
        match words:
            case ["reset"]:
                self.boot()
            case ["power", "off"]:
                self.powered = False
                self.halt()
            case ["power", "on"]:
                self.powered = True
                self.boot()
            case ["uart", "off" | "on" as state]:
                self.relay.closed = state == "on"
            case ["status"]:
                pass
            case _:
                return f"error unknown command {' '.join(words)!r}"
        running = f"firmware running (boot {self.boots})" if self.firmware else f"firmware stopped ({self.fault})"
        return f"ok {running}; power {'on' if self.powered else 'off'}; uart {'on' if self.relay.closed else 'off'}"

    def close(self) -> None:
        self.halt()
        for part in (self.app_pty, self.tap_pty, self.gnss_pty, self.sensors_pty):
            part.close()
        self.adapter.stop()
        for name in LINKS:
            (self.folder / name).unlink(missing_ok=True)


def _by_part(lines) -> dict[str, str]:
    """Sensor lines keyed by what they set (a part's presence, a register), so a later line replaces an earlier one."""
    out = {}
    for line in lines:
        words = line.split()
        if len(words) == 3 and words[0] == "D" or len(words) == 4 and words[0] == "R":
            out[" ".join(words[:-1])] = line
    return out


def serve(folder: Path) -> None:
    """The board's main loop: the firmware stepped on the wall clock, commands taken from ``DIR/board.sock``."""
    board = Board(folder)
    sock_path = folder / "board.sock"
    sock_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(4)
    server.setblocking(False)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    board.boot()
    (folder / "board.pid").write_text(f"{os.getpid()}\n")
    try:
        while not stopping:
            wait_s = board.step()
            try:
                client, _ = server.accept()
            except BlockingIOError:
                if wait_s > 0:
                    time.sleep(wait_s)
                continue
            with client:
                client.settimeout(5.0)
                words = client.recv(4096).decode(errors="replace").split()
                if words == ["stop"]:
                    stopping.append(True)
                    client.sendall(b"ok stopping\n")
                    break
                client.sendall((board.command(words) + "\n").encode())
    finally:
        board.close()
        server.close()
        sock_path.unlink(missing_ok=True)
        (folder / "board.pid").unlink(missing_ok=True)


def _ask(folder: Path, words: list[str], timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        client.connect(str(folder / "board.sock"))
        client.sendall(" ".join(words).encode())
        return client.recv(4096).decode(errors="replace").strip()


def _running(folder: Path) -> bool:
    try:
        _ask(folder, ["status"], timeout_s=2.0)
        return True
    except OSError:
        return False


def _start(folder: Path) -> None:
    """The board's process, detached (its own session), its output in ``DIR/board.log``; waits until it answers."""
    with (folder / "board.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "firmware_sim.bench_board", "serve", "--dir", str(folder)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while not _running(folder):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise OSError(f"the bench board did not start (see {folder / 'board.log'})")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.bench_board", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("serve", "flash", "reset", "power", "uart", "stop", "status"))
    parser.add_argument("state", nargs="?", choices=("on", "off"))
    parser.add_argument("--dir", required=True, type=Path, help="the board's folder (its wiring, flash and logs)")
    parser.add_argument("--image", type=Path, help="flash: the firmware image (a host build's executable)")
    args = parser.parse_args(argv)
    folder = args.dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if args.command == "serve":
        serve(folder)
        return 0
    with (folder / "commands.log").open("a") as log:
        log.write(" ".join([args.command, *([args.state] if args.state else []),
                            *([str(args.image)] if args.image else [])]) + "\n")
    try:
        if args.command in ("power", "uart") and args.state is None:
            raise OSError(f"{args.command} needs a state: on or off")
        if args.command == "flash":
            if args.image is None or not args.image.is_file():
                raise OSError(f"flash: no image {args.image} (give --image PATH)")
            (folder / "flash").mkdir(exist_ok=True)
            shutil.copyfile(args.image, folder / "flash" / "firmware.partial")
            os.chmod(folder / "flash" / "firmware.partial", 0o755)
            os.replace(folder / "flash" / "firmware.partial", folder / "flash" / "firmware")
            if not _running(folder):
                _start(folder)
                print(_ask(folder, ["status"]))
                return 0
            answer = _ask(folder, ["reset"])
        elif args.command == "stop" and not _running(folder):
            answer = "ok not running"
        else:
            answer = _ask(folder, [args.command, *([args.state] if args.state else [])])
    except OSError as error:
        print(f"bench board {folder}: {args.command}: {error}", file=sys.stderr)
        return 1
    print(answer)
    return 0 if answer.startswith("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
