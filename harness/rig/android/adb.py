"""One device's adb calls, each bounded by a deadline: `AdbClient`, the base of `AndroidDevice`.

`AdbClient(serial)` talks to the adb server on ``adb_host:adb_port`` (default: adbutils' defaults,
``ANDROID_ADB_SERVER_HOST`` / ``ANDROID_ADB_SERVER_PORT``, else 127.0.0.1:5037; a missing local server is
started with ``adb -P PORT start-server``). A serial of the form ``host:port`` (wireless debugging, the
simulated device) is ``adb connect``-ed; any other serial (USB) must already be listed by ``adb devices``.
It gives `state()`, `shell(args)` (any command, with its exit status) and `push`/`pull` of single files (the
sync protocol); `harness.rig.android.device.AndroidDevice` builds the device's work on them.

Every call has a deadline: it runs in a worker thread whose sockets time out, and the caller stops waiting
at the deadline whatever the thread is doing (an abandoned call's sockets are shut so it ends soon after).
Every value put into a device shell command is quoted with `shlex.quote`: `shell(["cat", name])` is safe for
any name; `shell("a string")` sends the string as a shell script, for callers that quoted it themselves.
A failure is one of `harness.rig.android.errors`' errors, naming the serial, the command and its output.

What it does not do: port forwarding, USB enumeration beyond what the adb server lists, or adb's own
transport (it speaks to the adb server only). It reads the exit status of a command from a marker it appends
(``; echo :DTG-EXIT:$?``), so it works over the legacy shell too; a command that calls ``exit`` itself is
reported as a lost connection.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import adbutils
from adbutils import AdbConnection
from adbutils.errors import AdbConnectionError

from harness.rig.android.errors import AdbError, CommandFailed, CommandTimeout, DeviceLost, DeviceUnreachable

__all__ = [
    "DEFAULT_ADB_PORT",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TRANSFER_TIMEOUT_S",
    "UNREACHABLE_REPLY",
    "AdbCall",
    "AdbClient",
    "ShellResult",
    "shut",
]

_log = logging.getLogger(__name__)

#: Every call that is not a file transfer, an install or a wait for boot: shell commands, state queries,
#: ``adb connect``, opening a logcat stream.
DEFAULT_TIMEOUT_S = 10.0
#: One push or pull (a model file, the APK, a log dump).
DEFAULT_TRANSFER_TIMEOUT_S = 60.0
DEFAULT_ADB_PORT = 5037
_EXIT_MARKER = ":DTG-EXIT:"
_SYNC_DATA_MAX = 64 * 1024
_TCP_SERIAL = re.compile(r"[^\s:/]+:\d{1,5}")
#: What the adb server answers when it cannot hand a command to the device.
UNREACHABLE_REPLY = re.compile(r"not found|offline|unauthorized|authorizing|connecting|no devices|"
                               r"more than one|no emulators|device still|closed", re.I)


@dataclass(frozen=True)
class ShellResult:
    """A shell command's output (stdout and stderr together, as adb's legacy shell gives them) and exit status."""

    command: str
    output: str
    returncode: int

    @property
    def text(self) -> str:
        """The output without trailing whitespace."""
        return self.output.rstrip()


class _Connection(AdbConnection):
    """adbutils' connection to the adb server, without its fallback of running ``adb start-server`` (with its own
    20 s timeout) whenever a connection fails: the driver starts the server once, on purpose, in `connect`."""

    def _safe_connect(self):
        return self._create_socket()


class AdbCall:
    """The state of one call running in its worker thread: the bytes received so far, the connections it
    opened (shut by the caller when it gives up), its deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.received = bytearray()
        self._connections: list[AdbConnection] = []
        self._lock = threading.Lock()
        self.abandoned = False

    def remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())

    def track(self, connection: AdbConnection) -> AdbConnection:
        with self._lock:
            self._connections.append(connection)
            abandoned = self.abandoned
        if abandoned:
            shut(connection)
        return connection

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            connections = list(self._connections)
        for connection in connections:
            shut(connection)

    def text(self) -> str:
        return bytes(self.received).decode("utf-8", errors="replace")


def shut(connection: AdbConnection) -> None:
    """Wake whoever is blocked reading or writing a connection (close alone would not wake it): its owner then
    sees end of file and closes it. Only shutdown here: adbutils' close() is not safe against a concurrent
    close() by the owning thread."""
    try:
        connection.conn.shutdown(socket.SHUT_RDWR)
    except (OSError, adbutils.AdbError):
        pass


class AdbClient:
    """One device behind an adb server: bounded calls, `state`, `shell`, `push` and `pull` (module docstring).

    `timeout_s` bounds every call that has no longer default: shell commands, state queries, ``adb connect``,
    opening a logcat stream. `transfer_timeout_s` bounds one push or pull. Every method also takes its own
    `timeout_s`. Creating a client sends nothing; `AndroidDevice` reaches the device.
    """

    def __init__(self, serial: str, *, adb_host: str | None = None, adb_port: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 transfer_timeout_s: float = DEFAULT_TRANSFER_TIMEOUT_S) -> None:
        if not serial or any(c.isspace() for c in serial):
            raise ValueError(f"invalid adb serial {serial!r}")
        for name, value in (("timeout_s", timeout_s), ("transfer_timeout_s", transfer_timeout_s)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.serial = serial
        self.adb_host = adb_host or os.environ.get("ANDROID_ADB_SERVER_HOST", "127.0.0.1")
        self.adb_port = int(adb_port or os.environ.get("ANDROID_ADB_SERVER_PORT", DEFAULT_ADB_PORT))
        self.timeout_s = float(timeout_s)
        self.transfer_timeout_s = float(transfer_timeout_s)
        self._reached = False  # once reached, losing the device is DeviceLost rather than DeviceUnreachable
        self._closed = False
        self._we_connected = False
        self._offline_seen = False  # for reboot_detected on devices without a boot id

    @property
    def is_tcp(self) -> bool:
        """True for a host:port serial (wireless debugging, the simulated device): it is ``adb connect``-ed."""
        return _TCP_SERIAL.fullmatch(self.serial) is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.serial} via adb server {self.adb_host}:{self.adb_port}>"

    # -- the plumbing

    def _error(self, cls: type[AdbError], reason: str, command: str | None, output: str = "",
               returncode: int | None = None, **extra) -> AdbError:
        return cls(reason, serial=self.serial, command=command, output=output, returncode=returncode, **extra)

    def _lost_or_unreachable(self) -> type[DeviceUnreachable]:
        return DeviceLost if self._reached else DeviceUnreachable

    def _lost(self, reason: str, command: str, output: str = "") -> AdbError:
        """The device went offline or a connection to it was cut: noted for `reboot_detected`, and the error to
        raise (DeviceLost once the device was reached, DeviceUnreachable before)."""
        self._offline_seen = True
        return self._error(self._lost_or_unreachable(), reason, command, output)

    def _check_open(self, command: str) -> None:
        if self._closed:
            raise self._error(AdbError, f"{self!r} is closed; create a new AndroidDevice", command, kind="closed")

    def _bounded(self, command: str, timeout_s: float, body: Callable[[AdbCall], object]) -> object:
        """Run `body(call)` in a worker thread; raise CommandTimeout at the deadline, whatever it is doing."""
        self._check_open(command)
        call = AdbCall(time.monotonic() + timeout_s)
        outcome: dict[str, object] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["value"] = body(call)
            except BaseException as error:  # noqa: BLE001 - handed to the caller below
                outcome["error"] = error
            finally:
                done.set()

        _log.debug("%s: %s (timeout %.1f s)", self.serial, command, timeout_s)
        worker = threading.Thread(target=run, name=f"adb {self.serial}: {command[:40]}", daemon=True)
        worker.start()
        if not done.wait(timeout_s):
            call.abandon()
            raise self._error(CommandTimeout, f"no answer from {self.serial} within {timeout_s:g} s", command,
                              call.text())
        if "error" in outcome:
            raise self._translate(outcome["error"], command, call, timeout_s)
        return outcome.get("value")

    def _translate(self, error: BaseException, command: str, call: AdbCall, timeout_s: float) -> BaseException:
        """An exception from adbutils or a socket, as the driver's error."""
        output = call.text()
        if isinstance(error, AdbError):
            return error
        if isinstance(error, (socket.timeout, adbutils.AdbTimeout, TimeoutError)):
            return self._error(CommandTimeout, f"no answer from {self.serial} within {timeout_s:g} s", command,
                               output)
        if isinstance(error, (AdbConnectionError, ConnectionRefusedError)):
            return self._error(DeviceUnreachable, f"cannot reach the adb server at {self.adb_host}:{self.adb_port}: "
                                                  f"{error}", command, output)
        reply = str(error.args[0]) if isinstance(error, adbutils.AdbError) and error.args else str(error)
        if isinstance(error, (EOFError, OSError)) or "Unknown data: b''" in reply:
            cause = reply or type(error).__name__
            return self._lost(f"the connection to {self.serial} was cut ({cause})", command, output)
        if isinstance(error, adbutils.AdbError):
            if UNREACHABLE_REPLY.search(reply):
                self._offline_seen = self._offline_seen or self._reached
                return self._error(self._lost_or_unreachable(), f"the adb server cannot reach {self.serial}: "
                                                                f"{reply}", command, output)
            return self._error(CommandFailed, f"the adb server refused the request: {reply}", command, output)
        return error  # a bug here, not the device: let it through unchanged

    def _server(self, call: AdbCall) -> AdbConnection:
        connection = call.track(_Connection(self.adb_host, self.adb_port))
        connection.conn.settimeout(call.remaining())
        return connection

    def _host_request(self, call: AdbCall, request: str) -> str:
        """A request to the adb server itself (``host:...``, ``host-serial:...``): its string reply."""
        with self._server(call) as connection:
            connection.send_command(request)
            connection.check_okay()
            return connection.read_string_block()

    def _service(self, call: AdbCall, service: str) -> AdbConnection:
        """A stream to a service on the device (``shell:...``, ``sync:``)."""
        connection = self._server(call)
        try:
            connection.send_command(f"host:transport:{self.serial}")
            connection.check_okay()
            connection.send_command(service)
            connection.check_okay()
        except BaseException:
            connection.close()
            raise
        return connection

    def _read_to_end(self, call: AdbCall, connection: AdbConnection) -> None:
        while True:
            connection.conn.settimeout(call.remaining())
            chunk = connection.conn.recv(65536)
            if not chunk:
                return
            call.received += chunk

    # -- the adb server

    def _ensure_server(self, timeout_s: float) -> None:
        try:
            socket.create_connection((self.adb_host, self.adb_port), timeout=min(1.0, timeout_s)).close()
            return
        except OSError:
            pass
        command = f"adb -P {self.adb_port} start-server"
        if self.adb_host not in ("127.0.0.1", "localhost", "::1"):
            raise self._error(DeviceUnreachable, f"no adb server at {self.adb_host}:{self.adb_port}", command)
        try:
            result = subprocess.run([adbutils.adb_path(), "-P", str(self.adb_port), "start-server"],
                                    capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                                    check=False)
        except subprocess.TimeoutExpired as error:
            raise self._error(CommandTimeout, f"the adb server did not start within {timeout_s:g} s", command,
                              str(error.stdout or "")) from None
        except OSError as error:
            raise self._error(DeviceUnreachable, f"cannot run adb: {error}", command) from None
        if result.returncode != 0:
            raise self._error(DeviceUnreachable, "the adb server did not start", command,
                              result.stdout + result.stderr, result.returncode)

    def _adb_connect(self, timeout_s: float) -> None:
        command = f"host:connect:{self.serial}"
        reply = str(self._bounded(command, timeout_s, lambda call: self._host_request(call, command)))
        if "connected to" not in reply:  # "failed to connect to ...", "unable to connect to ..."
            raise self._error(DeviceUnreachable, f"adb connect {self.serial} failed: {reply.strip()}", command,
                              reply)
        self._we_connected = True

    def state(self, timeout_s: float | None = None) -> str:
        """The device's state as the adb server sees it ("device", "offline", "unauthorized", ...). Raises
        DeviceUnreachable/DeviceLost when the server does not know the serial."""
        command = f"host-serial:{self.serial}:get-state"
        return str(self._bounded(command, self.timeout_s if timeout_s is None else timeout_s,
                                 lambda call: self._host_request(call, command))).strip()

    # -- shell

    def shell(self, args: Sequence[str] | str, *, timeout_s: float | None = None, check: bool = True) -> ShellResult:
        """Run a command on the device: `args` as a list of words (each quoted with shlex.quote), or a string
        sent as written (a shell script: quote any value in it with shlex.quote). With `check`, a non-zero exit
        status raises CommandFailed. Raises CommandTimeout, DeviceLost/DeviceUnreachable."""
        command = args if isinstance(args, str) else shlex.join(args)
        if not command.strip():
            raise ValueError("empty shell command")

        def body(call: AdbCall) -> str:
            with self._service(call, f"shell:{command}; echo {_EXIT_MARKER}$?") as connection:
                self._read_to_end(call, connection)
            return call.text()

        raw = str(self._bounded(command, self.timeout_s if timeout_s is None else timeout_s, body))
        raw = raw.replace("\r\n", "\n")
        at = raw.rfind(_EXIT_MARKER)
        status = raw[at + len(_EXIT_MARKER):].strip() if at >= 0 else ""
        if at < 0 or not status.isdigit():
            raise self._lost(f"the connection to {self.serial} closed before the command finished", command, raw)
        result = ShellResult(command, raw[:at], int(status))
        if check and result.returncode != 0:
            raise self._error(CommandFailed, f"`{command}` failed on {self.serial} with exit status "
                                             f"{result.returncode}", command, result.output, result.returncode)
        return result

    # -- files

    def push(self, local_path: Path | str, device_path: str, *, mode: int = 0o644,
             timeout_s: float | None = None) -> int:
        """Push a file (sync SEND); returns its size. Missing parent directories are created by adbd
        (``fixed_push_mkdir``, Android 7+). Raises CommandFailed with the device's reason (read-only, denied)."""
        local_path = Path(local_path)
        if not local_path.is_file():
            raise FileNotFoundError(f"cannot push {local_path}: no such file")
        command = f"push {local_path} -> {device_path}"
        timeout_s = self.transfer_timeout_s if timeout_s is None else timeout_s

        def body(call: AdbCall) -> int:
            target = f"{device_path},{stat.S_IFREG | mode}".encode()
            size = 0
            with self._service(call, "sync:") as connection, open(local_path, "rb") as source:
                sock = connection.conn
                sock.settimeout(call.remaining())
                sock.sendall(b"SEND" + struct.pack("<I", len(target)) + target)
                while chunk := source.read(_SYNC_DATA_MAX):
                    sock.settimeout(call.remaining())
                    sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                    size += len(chunk)
                sock.sendall(b"DONE" + struct.pack("<I", int(local_path.stat().st_mtime)))
                self._sync_status(call, connection, command)
                sock.sendall(b"QUIT" + struct.pack("<I", 0))
            return size

        return int(self._bounded(command, timeout_s, body))

    def _sync_status(self, call: AdbCall, connection: AdbConnection, command: str) -> None:
        connection.conn.settimeout(call.remaining())
        status = connection.read_exact(4)
        if status == b"OKAY":
            connection.read_exact(4)
            return
        if status == b"FAIL":
            reason = connection.read_exact(struct.unpack("<I", connection.read_exact(4))[0]).decode(
                "utf-8", errors="replace")
            raise self._error(CommandFailed, f"{self.serial} refused the transfer: {reason}", command, reason)
        raise self._error(CommandFailed, f"unexpected sync reply {status!r} from {self.serial}", command)

    def pull(self, device_path: str, local_path: Path | str, *, timeout_s: float | None = None) -> int:
        """Pull one file (sync RECV) to `local_path` (its directory must exist); returns its size. Raises
        CommandFailed with the device's reason when the file is missing or unreadable."""
        local_path = Path(local_path)
        command = f"pull {device_path} -> {local_path}"
        timeout_s = self.transfer_timeout_s if timeout_s is None else timeout_s

        partial = local_path.with_name(local_path.name + ".part")

        def body(call: AdbCall) -> int:
            size = 0
            with self._service(call, "sync:") as connection, open(partial, "wb") as sink:
                path = device_path.encode()
                connection.conn.sendall(b"RECV" + struct.pack("<I", len(path)) + path)
                while True:
                    connection.conn.settimeout(call.remaining())
                    kind = connection.read_exact(4)
                    length = struct.unpack("<I", connection.read_exact(4))[0]
                    if kind == b"DATA":
                        sink.write(connection.read_exact(length))
                        size += length
                    elif kind == b"DONE":
                        break
                    elif kind == b"FAIL":
                        reason = connection.read_exact(length).decode("utf-8", errors="replace")
                        raise self._error(CommandFailed, f"cannot pull {device_path} from {self.serial}: {reason}",
                                          command, reason)
                    else:
                        raise self._error(CommandFailed, f"unexpected sync reply {kind!r} from {self.serial}",
                                          command)
                connection.conn.sendall(b"QUIT" + struct.pack("<I", 0))
            partial.replace(local_path)
            return size

        try:
            return int(self._bounded(command, timeout_s, body))
        except AdbError:
            partial.unlink(missing_ok=True)  # an abandoned transfer may still write a little: best effort
            raise

