"""Where the harness's simulated STM32 plugs into a lab bench, for one run (`harness.rig.lab`, docs/lab.md).

On a lab rig the bench's lines are network serial ports (ser2net, RFC 2217): the harness's rest-bus, UART tap and
GNSS feed use the rig-side ones (`can`, `uart_tap`, `gnss`), and the simulated STM32, which runs in the harness,
is wired to the unit-side ones as a board would be: its CAN port (`unit_can`, bridged to the run's in-process CAN
wire by `CanBridge`, so the run's bus monitor sees every frame), its UART TX (`unit_uart`) and its GNSS receiver's
input (`unit_gnss`). `LabWiring` opens them all and closes them; a line that cannot be opened is a `LabError`
naming the resource and the place.

Not modelled: the bench wire's timing (frames cross two serial links and the exporter's ser2net each way, which a
board soldered to the bench's CAN does not), and CAN error frames (slcan does not carry them).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import can
import serial

from harness.core.worker import Worker, WorkerError
from harness.rig.lab import LabError, LabRig, PlaceWatch


def close_quietly(close: Callable[[], None]) -> None:
    """Close a line of the bench at the end of a run: one that broke (its exporter gone) cannot say goodbye
    (python-can's slcan sends ``C``), and the run's own error, which names the loss, is what matters."""
    with contextlib.suppress(can.CanError, serial.SerialException, OSError):
        close()


class CanBridge(Worker):
    """Copies frames both ways between the run's in-process wire (a python-can virtual channel) and the bench's
    CAN port (`unit_can`). Frames from the bench are stamped with `now_s()` (scenario time) as the run's virtual
    wire stamps its own."""

    error_type = WorkerError

    def __init__(self, remote: can.BusABC, local: can.BusABC) -> None:
        super().__init__("lab-can-bridge")
        self._remote, self._local = remote, local
        self.now_s: Callable[[], float] = lambda: 0.0
        self.frames_in = self.frames_out = 0
        self._notifier: can.Notifier | None = None

    def _forward_out(self, msg: can.Message) -> None:
        self._remote.send(msg)
        self.frames_out += 1

    def _work(self) -> None:
        self._notifier = can.Notifier(self._local, [self._forward_out], timeout=0.05)
        while not self._stop_requested.is_set():
            msg = self._remote.recv(timeout=0.05)
            if msg is not None:
                msg.timestamp = self.now_s()
                self._local.send(msg)
                self.frames_in += 1

    def _finish(self) -> None:
        if self._notifier is not None:
            self._notifier.stop()


class LabWiring:
    """The lab rig's lines for one run, opened (a context manager): `uart` (the STM32's UART TX), `tap_port`,
    `gnss_feed_port`, `gnss_unit_port` (pyserial ports), `bridge` (a `CanBridge` on `channel`) and `watch` (the
    place's `PlaceWatch`), the last two parts of the run."""

    def __init__(self, rig: LabRig, channel: str, local_bus: Callable[[str], can.BusABC]) -> None:
        self.rig = rig
        self._stack = contextlib.ExitStack()
        try:
            self.watch = PlaceWatch(rig)
            remote = self._open("unit_can", lambda: can.Bus(**{k: v for k, v in rig.unit_can.items()
                                                                if v is not None}))
            self._stack.callback(close_quietly, remote.shutdown)
            local = self._stack.enter_context(local_bus(channel))
            self.bridge = CanBridge(remote, local)
            # pyserial's RFC 2217 ports have no write timeout: a write goes to the TCP socket's buffer
            self.uart = self._serial("unit_uart", rig.unit_uart, rig.uart_baudrate)
            self.tap_port = self._serial("uart_tap", rig.uart_tap, rig.uart_baudrate)
            self.gnss_feed_port = self._serial("gnss", rig.gnss_port, rig.gnss_baudrate)
            self.gnss_unit_port = self._serial("unit_gnss", rig.unit_gnss, rig.gnss_baudrate)
        except BaseException:
            self._stack.close()
            raise

    def _open(self, role: str, opener: Callable):
        try:
            return opener()
        except (can.CanError, serial.SerialException, OSError, ValueError) as error:
            raise LabError(f"cannot open resource '{role}' of place '{self.rig.place}': {error}") from None

    def _serial(self, role: str, url: str, baudrate: int) -> serial.SerialBase:
        port = self._open(role, lambda: serial.serial_for_url(url, baudrate, timeout=0.05))
        self._stack.callback(close_quietly, port.close)
        return port

    def parts(self) -> list[tuple[str, Worker]]:
        """The run's parts this wiring adds (started first, stopped last)."""
        return [(f"lab place '{self.rig.place}' (rig-side)", self.watch),
                (f"CAN bridge to resource 'unit_can' of place '{self.rig.place}' (rig-side)", self.bridge)]

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> LabWiring:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
