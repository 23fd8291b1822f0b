"""A running ``adb shell logcat`` on one device: `LogcatStream`, a worker thread that hands on each line.

`AndroidDevice.stream_logcat` starts one; the lines are ``logcat -v threadtime`` lines, the format
`harness.wire.events.parse_event_line` reads. Opening the stream is a bounded call of the device's
(`harness.rig.android.adb.AdbClient`); reading it is this thread's, which looks at its stop flag every 0.2 s
while the device is quiet.

What it does not model: logcat's own buffers and its ``-T``/``-t`` selections (the stream starts with what the
device's log already holds), and a quiet stream as an error: a quiet app and a wedged device look the same on
a stream, so `AndroidDevice.check_alive` is the watchdog.
"""
from __future__ import annotations

import codecs
from collections.abc import Callable

from adbutils import AdbConnection

from harness.core.worker import Worker
from harness.rig.android.adb import DEFAULT_TIMEOUT_S, AdbCall, AdbClient, shut
from harness.rig.android.errors import AdbError, LogcatStreamError

__all__ = ["LogcatStream"]

#: How often a logcat stream looks at its stop flag while the device is quiet: the bound on `stop()`'s delay.
_STREAM_POLL_S = 0.2


class LogcatStream(Worker):
    """A running ``adb shell logcat``: calls `on_line(line)` (no newline) from its thread for each complete line.

    `stop(timeout_s)` ends it within about 0.2 s even on a quiet device (the connection is shut, not waited on)
    and raises what ended the thread early: DeviceLost when the device went away (the stream hit end of file
    without being asked to stop), or LogcatStreamError wrapping an exception of `on_line`. `error` holds it
    meanwhile; `lines` counts the lines delivered. A partial last line is not delivered.
    """

    error_type = LogcatStreamError

    def __init__(self, device: AdbClient, command: str, on_line: Callable[[str], object]) -> None:
        super().__init__(f"logcat {device.serial}")
        self.device = device
        self.command = command
        self._on_line = on_line
        self._connection: AdbConnection | None = None
        self.lines = 0

    def _describe(self) -> str:
        return f"logcat stream `{self.command}` on {self.device.serial}"

    def start(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> LogcatStream:  # type: ignore[override]
        """Open the stream (bounded by `timeout_s`), then start reading it."""
        if self._state != "new":
            return super().start()  # raises: used out of order

        def body(call: AdbCall) -> AdbConnection:
            connection = self.device._service(call, f"shell:{self.command}")
            return connection

        connection = self.device._bounded(self.command, timeout_s, body)
        assert isinstance(connection, AdbConnection)
        self._connection = connection
        return super().start()

    def _work(self) -> None:
        assert self._connection is not None
        sock = self._connection.conn
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        sock.settimeout(_STREAM_POLL_S)
        while not self._stop_requested.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as error:
                if self._stop_requested.is_set():
                    return
                raise self._lost(f"the logcat stream broke ({error!r})", pending) from None
            if not chunk:
                if self._stop_requested.is_set():
                    return
                raise self._lost("the logcat stream ended: the device went away", pending)
            *complete, pending = (pending + decoder.decode(chunk)).split("\n")
            for line in complete:
                self.lines += 1
                self._on_line(line.rstrip("\r"))

    def _lost(self, reason: str, pending: str) -> AdbError:
        return self.device._lost(f"{reason} after {self.lines} lines", self.command, pending)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop reading and close the connection; raises what ended the stream early, if anything."""
        connection = self._connection
        if connection is not None and self._state == "running":
            self._stop_requested.set()
            shut(connection)
        try:
            super().stop(timeout_s)
        except LogcatStreamError as error:
            if isinstance(self._error, AdbError):
                raise self._error from None
            raise self.device._error(LogcatStreamError, error.reason, self.command) from error.__cause__

    def _finish(self) -> None:
        if self._connection is not None:  # the reading thread has ended: this thread owns the connection now
            shut(self._connection)
            self._connection.close()
