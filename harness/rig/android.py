"""The Android device of a real rig, driven through an adb server (adbutils): install, models, app, logcat.

`AndroidDevice(serial)` drives one phone (or the loopback rig's `firmware_sim.phone.device.SimAndroidDevice`, which
speaks the same protocol) through the adb server on ``adb_host:adb_port`` (default: adbutils' defaults,
``ANDROID_ADB_SERVER_HOST`` / ``ANDROID_ADB_SERVER_PORT``, else 127.0.0.1:5037; a missing local server is
started with ``adb -P PORT start-server``). A serial of the form ``host:port`` (wireless debugging, the
simulated device) is ``adb connect``-ed first; any other serial (USB) must already be listed by ``adb devices``.
docs/android.md is the contract with the app on the phone.

What it does:

- `install(apk_path, package)`: push the APK, ``pm install -r``, check ``pm list packages``;
- `push_models(manifest_path)`: push every model of a `harness.inference.models` manifest and the manifest itself to
  /data/local/tmp/dtg/models, then compare the device's ``sha256sum`` of each file with the manifest
  (`verify_models` alone re-checks later); a file that differs is refused with `HashMismatch`;
- `start_app`/`stop_app` (``am start -n``, ``am force-stop``), `app_pid`/`app_alive` (``pidof``),
  `check_alive()`, the liveness watchdog: `AppDied` when an app it started is gone, `DeviceLost` when the
  device is offline or gone;
- `clear_logcat()`, `stream_logcat(on_line, tag="EdgeAI")` (a `LogcatStream` worker delivering
  ``-v threadtime`` lines, the format `harness.wire.events.parse_event_line` reads), `pull_logs(dest_dir)` (a full
  ``logcat -d`` dump);
- `wait_for_device(timeout_s)` after a reboot or reconnect, `reboot_detected()`;
- `shell(args)`: any other command, with its exit status; `push`/`pull` of single files; `state()`.

Every call has a deadline: it runs in a worker thread whose sockets time out, and the caller stops waiting
at the deadline whatever the thread is doing (an abandoned call's sockets are shut so it ends soon after).
Every value put into a device shell command is quoted with `shlex.quote`: `shell(["cat", name])` is safe for
any name; `shell("a string")` sends the string as a shell script, for callers that quoted it themselves.

How errors look: every failure is an `AdbError` (a RuntimeError) with `serial`, `command` (the shell command
line or adb service the driver sent, without its exit-status marker; ``push SRC -> DST`` for a transfer),
`output` (what came back, so far), `returncode` (None when unknown) and `kind`; its message names them all::

    harness.rig.android.AppDied: com.example.dtg is not running any more (its last pid was 4321). Logcat:
    01-15 10:23:45.123  1127  1154 I ActivityManager: Process com.example.dtg (pid 4321) has died: fg TOP
      device:  127.0.0.1:40001
      command: pidof com.example.dtg
      exit status: 1
      output:  ''

Kinds, one subclass each: ``unreachable`` (`DeviceUnreachable`: no adb server, unknown serial, connect
refused, offline or unauthorized before the driver ever reached it), ``device_lost`` (`DeviceLost`, a
`DeviceUnreachable`: the device was reached once and is now offline or gone, or a call's connection was cut),
``timeout`` (`CommandTimeout`: no answer within the call's timeout), ``command_failed`` (`CommandFailed`: a
non-zero exit status or a failure message), ``hash_mismatch`` (`HashMismatch`), ``app_died`` (`AppDied`),
``logcat_stream`` (`LogcatStreamError`: a stream used out of order, or its `on_line` raised) and ``closed``
(the driver was used after `close()`). A model file on the host that differs from its manifest is a
`harness.inference.models.ManifestError` (a ValueError), raised before anything is sent.

A logcat stream that goes quiet is not an error (a quiet app and a wedged device look the same on a stream):
`check_alive()`, called periodically, is the watchdog. A stream whose connection ends raises DeviceLost.

What it does not do: fastboot or bootloader work, root (``adb root``, ``su``, remount), USB enumeration
beyond what the adb server lists, port forwarding, screen or input control, or starting an emulator. It reads
the exit status of a command from a marker it appends (``; echo :DTG-EXIT:$?``), so it works over the legacy
shell too; a command that calls ``exit`` itself is reported as a lost connection. ``sha256sum`` and ``pidof``
must exist on the device (toybox provides both on current Android releases). `reboot_detected` reads the
kernel's boot id; on a device without a readable ``/proc/sys/kernel/random/boot_id`` (the simulated one) it
can only say whether the driver saw the device go offline in between, which a reboot and a pulled cable both
do.
"""
from __future__ import annotations

import codecs
import json
import logging
import os
import posixpath
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

from harness.core.errors import DtgHilError
from harness.core.worker import Worker, WorkerError
from harness.inference.models import ManifestError, sha256_file

__all__ = [
    "DEFAULT_ADB_PORT",
    "DEFAULT_BOOT_TIMEOUT_S",
    "DEFAULT_INSTALL_TIMEOUT_S",
    "DEFAULT_MODELS_DIR",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TRANSFER_TIMEOUT_S",
    "AdbError",
    "AndroidDevice",
    "AppDied",
    "CommandFailed",
    "CommandTimeout",
    "DeviceLost",
    "DeviceUnreachable",
    "HashMismatch",
    "LogcatStream",
    "LogcatStreamError",
    "ModelMismatch",
    "PushedFile",
    "ShellResult",
]

_log = logging.getLogger(__name__)

#: Every call that is not a file transfer, an install or a wait for boot: shell commands, state queries,
#: ``adb connect``, opening a logcat stream.
DEFAULT_TIMEOUT_S = 10.0
#: One push or pull (a model file, the APK, a log dump).
DEFAULT_TRANSFER_TIMEOUT_S = 60.0
#: ``pm install`` (a real phone verifies and optimises the APK: tens of seconds).
DEFAULT_INSTALL_TIMEOUT_S = 120.0
#: `wait_for_device` (a phone's reboot takes about a minute).
DEFAULT_BOOT_TIMEOUT_S = 120.0
#: Where `push_models` puts the models and the manifest (the shell user may write below /data/local/tmp).
DEFAULT_MODELS_DIR = "/data/local/tmp/dtg/models"
DEFAULT_ADB_PORT = 5037
#: How often a logcat stream looks at its stop flag while the device is quiet: the bound on `stop()`'s delay.
_STREAM_POLL_S = 0.2
_EXIT_MARKER = ":DTG-EXIT:"
_SYNC_DATA_MAX = 64 * 1024
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_TCP_SERIAL = re.compile(r"[^\s:/]+:\d{1,5}")
_SHA256_LINE = re.compile(r"([0-9a-f]{64}) [ *](.*)")
# What the adb server answers when it cannot hand a command to the device.
_UNREACHABLE_REPLY = re.compile(r"not found|offline|unauthorized|authorizing|connecting|no devices|"
                                r"more than one|no emulators|device still|closed", re.I)


# --- errors ---------------------------------------------------------------------------------------------------

class AdbError(DtgHilError, RuntimeError):
    """A call to the device failed. `serial`, `command`, `output` (what came back so far), `returncode` (None
    when unknown) and `kind` say what happened; the message names them all."""

    kind = "adb"

    def __init__(self, reason: str, *, serial: str | None = None, command: str | None = None,
                 output: str = "", returncode: int | None = None, kind: str | None = None) -> None:
        self.reason = reason
        self.serial = serial
        self.command = command
        self.output = output
        self.returncode = returncode
        if kind is not None:
            self.kind = kind
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [self.reason]
        if self.serial is not None:
            lines.append(f"  device:  {self.serial}")
        if self.command is not None:
            lines.append(f"  command: {self.command}")
            lines.append(f"  exit status: {'unknown' if self.returncode is None else self.returncode}")
            output = self.output if len(self.output) <= 2000 else "..." + self.output[-2000:]
            lines.append(f"  output:  {output!r}")
        return "\n".join(lines)


class DeviceUnreachable(AdbError):
    """The adb server cannot reach the device (or there is no adb server): unknown serial, connect refused,
    offline, unauthorized."""

    kind = "unreachable"


class DeviceLost(DeviceUnreachable):
    """The device was reached once and is now offline or gone, or a call's connection was cut (USB loss,
    reboot, adbd restart)."""

    kind = "device_lost"


class CommandTimeout(AdbError):
    """No answer within the call's timeout (a hung shell, a stalled transfer, a wedged adbd)."""

    kind = "timeout"


class CommandFailed(AdbError):
    """The device answered, and the answer is a failure: non-zero exit status or a failure message."""

    kind = "command_failed"


@dataclass(frozen=True)
class ModelMismatch:
    """One file whose on-device sha256 is not the manifest's; `actual` is None when the file is missing."""

    model: str
    device_path: str
    expected: str
    actual: str | None

    def describe(self) -> str:
        if self.actual is None:
            return (f"model '{self.model}': {self.device_path} is missing on the device (manifest sha256 "
                    f"{self.expected})")
        return (f"model '{self.model}': {self.device_path} has sha256 {self.actual} on the device, the manifest "
                f"says {self.expected}")


class HashMismatch(AdbError):
    """Files on the device differ from the manifest. `mismatches` lists every one; `model`, `device_path`,
    `expected` and `actual` are the first one's."""

    kind = "hash_mismatch"

    def __init__(self, mismatches: Sequence[ModelMismatch], manifest_path: Path, *, serial: str,
                 command: str, output: str, returncode: int | None) -> None:
        self.mismatches = list(mismatches)
        first = self.mismatches[0]
        self.model, self.device_path, self.expected, self.actual = (first.model, first.device_path, first.expected,
                                                                    first.actual)
        self.manifest_path = manifest_path
        reason = (f"refused: {len(self.mismatches)} file(s) on {serial} do not match {manifest_path}:\n"
                  + "\n".join(f"    {m.describe()}" for m in self.mismatches))
        super().__init__(reason, serial=serial, command=command, output=output, returncode=returncode)


class AppDied(AdbError):
    """An app the driver started is not running any more (crash, low-memory kill, reboot). `package`,
    `last_pid` (None if the driver never saw it run) and `pid` (a new pid if it was restarted, else None)."""

    kind = "app_died"

    def __init__(self, reason: str, *, package: str, last_pid: int | None, pid: int | None = None,
                 **details) -> None:
        self.package = package
        self.last_pid = last_pid
        self.pid = pid
        super().__init__(reason, **details)


class LogcatStreamError(AdbError, WorkerError):
    """A logcat stream was used out of order or did not stop in time."""

    kind = "logcat_stream"


# --- results ----------------------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class PushedFile:
    """A file `push_models` pushed and verified: `name` is the model's name, or "manifest"."""

    name: str
    local_path: Path
    device_path: str
    sha256: str
    bytes: int


# --- one bounded call ---------------------------------------------------------------------------------------------

class _Connection(AdbConnection):
    """adbutils' connection to the adb server, without its fallback of running ``adb start-server`` (with its own
    20 s timeout) whenever a connection fails: the driver starts the server once, on purpose, in `connect`."""

    def _safe_connect(self):
        return self._create_socket()


class _Call:
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
            _shut(connection)
        return connection

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)

    def text(self) -> str:
        return bytes(self.received).decode("utf-8", errors="replace")


def _shut(connection: AdbConnection) -> None:
    """Wake whoever is blocked reading or writing a connection (close alone would not wake it): its owner then
    sees end of file and closes it. Only shutdown here: adbutils' close() is not safe against a concurrent
    close() by the owning thread."""
    try:
        connection.conn.shutdown(socket.SHUT_RDWR)
    except (OSError, adbutils.AdbError):
        pass


# --- the driver ----------------------------------------------------------------------------------------------------

class AndroidDevice:
    """One Android device behind an adb server. See the module docstring for what it does and how it fails.

    `timeout_s` bounds every call that has no longer default: shell commands, state queries, ``adb connect``,
    opening a logcat stream. `transfer_timeout_s` bounds one push or pull, `install_timeout_s` a
    ``pm install``. Every method also takes its own `timeout_s`. With `connect` (the default) the constructor
    reaches the device at once (``adb connect`` for a host:port serial, then waits for the "device" state), so
    a driver that exists has seen its device; `connect()` does it later otherwise.
    """

    def __init__(self, serial: str, *, adb_host: str | None = None, adb_port: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, transfer_timeout_s: float = DEFAULT_TRANSFER_TIMEOUT_S,
                 install_timeout_s: float = DEFAULT_INSTALL_TIMEOUT_S, connect: bool = True) -> None:
        if not serial or any(c.isspace() for c in serial):
            raise ValueError(f"invalid adb serial {serial!r}")
        for name, value in (("timeout_s", timeout_s), ("transfer_timeout_s", transfer_timeout_s),
                            ("install_timeout_s", install_timeout_s)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.serial = serial
        self.adb_host = adb_host or os.environ.get("ANDROID_ADB_SERVER_HOST", "127.0.0.1")
        self.adb_port = int(adb_port or os.environ.get("ANDROID_ADB_SERVER_PORT", DEFAULT_ADB_PORT))
        self.timeout_s = float(timeout_s)
        self.transfer_timeout_s = float(transfer_timeout_s)
        self.install_timeout_s = float(install_timeout_s)
        self._lock = threading.Lock()
        self._reached = False  # once reached, losing the device is DeviceLost rather than DeviceUnreachable
        self._closed = False
        self._we_connected = False
        self._offline_seen = False  # for reboot_detected on devices without a boot id
        self._boot_id: str | None = None
        self._pids: dict[str, int | None] = {}  # package -> last pid seen, for the apps this driver started
        self._streams: list[LogcatStream] = []
        if connect:
            self.connect()

    @property
    def is_tcp(self) -> bool:
        """True for a host:port serial (wireless debugging, the simulated device): it is ``adb connect``-ed."""
        return _TCP_SERIAL.fullmatch(self.serial) is not None

    def __repr__(self) -> str:
        return f"<AndroidDevice {self.serial} via adb server {self.adb_host}:{self.adb_port}>"

    def __enter__(self) -> AndroidDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the plumbing

    def _error(self, cls: type[AdbError], reason: str, command: str | None, output: str = "",
               returncode: int | None = None, **extra) -> AdbError:
        return cls(reason, serial=self.serial, command=command, output=output, returncode=returncode, **extra)

    def _lost_or_unreachable(self) -> type[DeviceUnreachable]:
        return DeviceLost if self._reached else DeviceUnreachable

    def _check_open(self, command: str) -> None:
        if self._closed:
            raise self._error(AdbError, f"{self!r} is closed; create a new AndroidDevice", command, kind="closed")

    def _bounded(self, command: str, timeout_s: float, body: Callable[[_Call], object]) -> object:
        """Run `body(call)` in a worker thread; raise CommandTimeout at the deadline, whatever it is doing."""
        self._check_open(command)
        call = _Call(time.monotonic() + timeout_s)
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

    def _translate(self, error: BaseException, command: str, call: _Call, timeout_s: float) -> BaseException:
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
            self._offline_seen = True
            cause = reply or type(error).__name__
            return self._error(self._lost_or_unreachable(), f"the connection to {self.serial} was cut ({cause})",
                               command, output)
        if isinstance(error, adbutils.AdbError):
            if _UNREACHABLE_REPLY.search(reply):
                self._offline_seen = self._offline_seen or self._reached
                return self._error(self._lost_or_unreachable(), f"the adb server cannot reach {self.serial}: "
                                                                f"{reply}", command, output)
            return self._error(CommandFailed, f"the adb server refused the request: {reply}", command, output)
        return error  # a bug here, not the device: let it through unchanged

    def _server(self, call: _Call) -> AdbConnection:
        connection = call.track(_Connection(self.adb_host, self.adb_port))
        connection.conn.settimeout(call.remaining())
        return connection

    def _host_request(self, call: _Call, request: str) -> str:
        """A request to the adb server itself (``host:...``, ``host-serial:...``): its string reply."""
        with self._server(call) as connection:
            connection.send_command(request)
            connection.check_okay()
            return connection.read_string_block()

    def _service(self, call: _Call, service: str) -> AdbConnection:
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

    def _read_to_end(self, call: _Call, connection: AdbConnection) -> None:
        while True:
            connection.conn.settimeout(call.remaining())
            chunk = connection.conn.recv(65536)
            if not chunk:
                return
            call.received += chunk

    # -- connecting

    def connect(self, timeout_s: float | None = None) -> None:
        """Reach the device: start a local adb server if none runs, ``adb connect`` a host:port serial, then
        wait for the "device" state. Raises DeviceUnreachable (with the reason: refused, unauthorized, offline,
        unknown serial and the serials the server does know)."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        self._ensure_server(timeout_s)
        if self.is_tcp:
            self._adb_connect(max(0.1, deadline - time.monotonic()))
        state = None
        while True:
            try:
                state = self.state(timeout_s=max(0.1, deadline - time.monotonic()))
            except DeviceUnreachable as error:
                if time.monotonic() >= deadline or not _UNREACHABLE_REPLY.search(error.reason):
                    raise self._not_reachable(error, timeout_s) from None
                state = error.reason
            if state == "device":
                break
            if time.monotonic() >= deadline:
                raise self._not_reachable(None, timeout_s, state)
            time.sleep(0.05)
        self._reached = True
        self._boot_id = self.boot_id(timeout_s=max(0.5, deadline - time.monotonic()))
        self._offline_seen = False

    def _not_reachable(self, error: AdbError | None, timeout_s: float, state: str | None = None) -> AdbError:
        state = state if error is None else error.reason
        hint = ""
        if "unauthorized" in state:
            hint = "; accept the 'Allow USB debugging?' prompt on the phone (docs/android.md)"
        elif "offline" in state:
            hint = "; reconnect the cable or run `adb reconnect` (docs/android.md)"
        elif "not found" in state:
            hint = f"; the adb server lists: {', '.join(self._listed_serials()) or 'no devices'}"
        return self._error(self._lost_or_unreachable(), f"{self.serial} is not ready after {timeout_s:g} s: "
                                                        f"{state}{hint}", f"host-serial:{self.serial}:get-state",
                           error.output if error else "")

    def _listed_serials(self) -> list[str]:
        try:
            listing = self._bounded("host:devices", min(self.timeout_s, 0.5),  # a local server answers in ms
                                    lambda call: self._host_request(call, "host:devices"))
        except AdbError:
            return []
        rows = [line.split("\t", 1) for line in str(listing).splitlines() if "\t" in line]
        return [f"{serial} ({state})" for serial, state in rows]

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

    def close(self) -> None:
        """Stop the logcat streams still running and, if this driver ``adb connect``-ed the device,
        ``adb disconnect`` it. Idempotent; a closed driver refuses every call."""
        if self._closed:
            return
        for stream in list(self._streams):
            try:
                stream.stop()
            except AdbError as error:
                _log.warning("%s: logcat stream ended with an error: %s", self.serial, error)
        if self._we_connected:
            command = f"host:disconnect:{self.serial}"
            try:
                self._bounded(command, min(self.timeout_s, 2.0), lambda call: self._host_request(call, command))
            except AdbError as error:
                _log.debug("%s: disconnect failed: %s", self.serial, error)
        self._closed = True

    # -- shell

    def shell(self, args: Sequence[str] | str, *, timeout_s: float | None = None, check: bool = True) -> ShellResult:
        """Run a command on the device: `args` as a list of words (each quoted with shlex.quote), or a string
        sent as written (a shell script: quote any value in it with shlex.quote). With `check`, a non-zero exit
        status raises CommandFailed. Raises CommandTimeout, DeviceLost/DeviceUnreachable."""
        command = args if isinstance(args, str) else shlex.join(args)
        if not command.strip():
            raise ValueError("empty shell command")

        def body(call: _Call) -> str:
            with self._service(call, f"shell:{command}; echo {_EXIT_MARKER}$?") as connection:
                self._read_to_end(call, connection)
            return call.text()

        raw = str(self._bounded(command, self.timeout_s if timeout_s is None else timeout_s, body))
        raw = raw.replace("\r\n", "\n")
        at = raw.rfind(_EXIT_MARKER)
        status = raw[at + len(_EXIT_MARKER):].strip() if at >= 0 else ""
        if at < 0 or not status.isdigit():
            self._offline_seen = True
            raise self._error(self._lost_or_unreachable(), f"the connection to {self.serial} closed before the "
                                                           f"command finished", command, raw)
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

        def body(call: _Call) -> int:
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

    def _sync_status(self, call: _Call, connection: AdbConnection, command: str) -> None:
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

        def body(call: _Call) -> int:
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

    # -- packages and models

    def install(self, apk_path: Path | str, package: str, *, timeout_s: float | None = None) -> None:
        """Install (or reinstall, keeping data) an APK: push it to /data/local/tmp, ``pm install -r``, remove the
        pushed copy, and check that ``pm list packages`` lists `package`. Raises CommandFailed with pm's output."""
        apk_path = Path(apk_path)
        timeout_s = self.install_timeout_s if timeout_s is None else timeout_s
        remote = f"/data/local/tmp/{apk_path.name}"
        self.push(apk_path, remote, timeout_s=min(timeout_s, self.transfer_timeout_s))
        try:
            result = self.shell(["pm", "install", "-r", remote], timeout_s=timeout_s, check=False)
            if result.returncode != 0 or "Success" not in result.output:
                raise self._error(CommandFailed, f"installing {apk_path.name} ({package}) on {self.serial} failed",
                                  result.command, result.output, result.returncode)
        finally:
            try:
                self.shell(["rm", "-f", remote], check=False)
            except AdbError as error:
                _log.warning("%s: could not remove %s: %s", self.serial, remote, error)
        if package not in self.packages(package):
            listing = self.shell(["pm", "list", "packages", package], check=False)
            raise self._error(CommandFailed, f"{apk_path.name} installed, but {self.serial} does not list "
                                             f"package {package}: is the APK's package name different?",
                              listing.command, listing.output, listing.returncode)

    def packages(self, contains: str | None = None) -> list[str]:
        """Installed package names (``pm list packages [contains]``)."""
        result = self.shell(["pm", "list", "packages"] + ([contains] if contains else []))
        return [line[len("package:"):].strip() for line in result.output.splitlines() if line.startswith("package:")]

    def push_models(self, manifest_path: Path | str, device_dir: str = DEFAULT_MODELS_DIR, *,
                    timeout_s: float | None = None) -> list[PushedFile]:
        """Push every model of the manifest and the manifest itself to `device_dir`, then verify them
        (`verify_models`). The local files are checked against the manifest first: a local mismatch raises
        ManifestError before anything is sent. Model files keep their path relative
        to the manifest. Raises HashMismatch naming each model, file and both hashes."""
        files = self._manifest_files(Path(manifest_path), device_dir)
        self.shell(["mkdir", "-p"] + sorted({posixpath.dirname(f.device_path) for f in files}))
        for pushed in files:
            self.push(pushed.local_path, pushed.device_path, timeout_s=timeout_s)
        return self.verify_models(manifest_path, device_dir, timeout_s=timeout_s)

    def verify_models(self, manifest_path: Path | str, device_dir: str = DEFAULT_MODELS_DIR, *,
                      timeout_s: float | None = None) -> list[PushedFile]:
        """Compare the device's ``sha256sum`` of every model file (and of the manifest) under `device_dir` with
        the manifest; raises HashMismatch listing every file that differs or is missing."""
        manifest_path = Path(manifest_path)
        files = self._manifest_files(manifest_path, device_dir)
        result = self.shell(["sha256sum"] + [f.device_path for f in files], check=False,
                            timeout_s=self.transfer_timeout_s if timeout_s is None else timeout_s)
        if result.returncode not in (0, 1):  # 1: some file missing, reported below; 127: no sha256sum
            raise self._error(CommandFailed, f"cannot hash files on {self.serial}", result.command, result.output,
                              result.returncode)
        on_device = {}
        for line in result.output.splitlines():
            match = _SHA256_LINE.fullmatch(line.rstrip("\r"))
            if match:
                on_device[match[2]] = match[1]
        mismatches = [ModelMismatch(f.name, f.device_path, f.sha256, on_device.get(f.device_path))
                      for f in files if on_device.get(f.device_path) != f.sha256]
        if mismatches:
            raise HashMismatch(mismatches, manifest_path, serial=self.serial, command=result.command,
                               output=result.output, returncode=result.returncode)
        return files

    @staticmethod
    def _manifest_files(manifest_path: Path, device_dir: str) -> list[PushedFile]:
        """The manifest's model files (every entry of ``models``: ``file``, ``sha256``) and the manifest itself.

        Only what pushing needs is read, so a manifest whose contract is being changed can still be pushed
        (checking the contract is `harness.inference.models.load_manifest`'s job). Each local file is checked against
        the manifest first: a local mismatch raises ManifestError before anything is sent."""
        try:
            raw = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as error:
            raise ManifestError(f"{manifest_path}: cannot read the manifest: {error}") from None
        models = raw.get("models") if isinstance(raw, dict) else None
        if not isinstance(models, dict) or not models:
            raise ManifestError(f"{manifest_path}: models: missing or empty")
        base = manifest_path.parent.resolve()
        files = []
        for name, entry in models.items():
            file, sha256 = (entry.get("file"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
            if not isinstance(file, str) or not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
                raise ManifestError(f"{manifest_path}: models.{name}: needs 'file' and a 64-hex-digit 'sha256'")
            local = (base / file).resolve()
            if not local.is_file():
                raise ManifestError(f"{manifest_path}: models.{name}.file: {local} does not exist")
            actual = sha256_file(local)
            if actual != sha256:
                raise ManifestError(f"{manifest_path}: model '{name}' ({local.name}): sha256 mismatch on the host: "
                                    f"manifest says {sha256}, file has {actual}; not pushed")
            relative = local.relative_to(base).as_posix() if local.is_relative_to(base) else local.name
            files.append(PushedFile(name, local, posixpath.join(device_dir, relative), sha256, local.stat().st_size))
        files.append(PushedFile("manifest", manifest_path, posixpath.join(device_dir, manifest_path.name),
                                sha256_file(manifest_path), manifest_path.stat().st_size))
        return files

    # -- the app

    def start_app(self, package: str, activity: str, *, timeout_s: float | None = None) -> int:
        """``am start -n PACKAGE/ACTIVITY`` (activity ".Main" or fully qualified), then wait for its pid; returns
        it. Raises CommandFailed when am refuses (unknown package or activity), AppDied when no process appears
        within the timeout (a crash at start: the message carries the crash lines of logcat)."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        notes_s = min(1.0, timeout_s / 4)  # kept at the end to quote logcat's crash lines
        wait_until = deadline - notes_s
        result = self.shell(["am", "start", "-n", f"{package}/{activity}"], timeout_s=timeout_s, check=False)
        if result.returncode != 0 or re.search(r"^Error", result.output, re.M):
            raise self._error(CommandFailed, f"cannot start {package}/{activity} on {self.serial}", result.command,
                              result.output, result.returncode)
        while True:
            pid = self.app_pid(package, timeout_s=max(0.05, wait_until - time.monotonic()))
            if pid is not None:
                with self._lock:
                    self._pids[package] = pid
                return pid
            if time.monotonic() >= wait_until:
                with self._lock:
                    self._pids.pop(package, None)
                raise self._error(AppDied, f"{package} has no process {timeout_s - notes_s:g} s after `am start`: "
                                           f"it crashed at start or never started. "
                                           f"{self._death_notes(package, deadline)}",
                                  f"pidof {package}", "", 1, package=package, last_pid=None)
            time.sleep(0.05)

    def stop_app(self, package: str, *, timeout_s: float | None = None) -> None:
        """``am force-stop PACKAGE``; `check_alive` stops watching it."""
        self.shell(["am", "force-stop", package], timeout_s=timeout_s)
        with self._lock:
            self._pids.pop(package, None)

    def app_pid(self, package: str, *, timeout_s: float | None = None) -> int | None:
        """The app's pid (``pidof``), or None when it is not running."""
        result = self.shell(["pidof", package], timeout_s=timeout_s, check=False)
        pids = result.output.split()
        if result.returncode not in (0, 1) or not all(p.isdigit() for p in pids):
            raise self._error(CommandFailed, f"unexpected pidof answer from {self.serial}", result.command,
                              result.output, result.returncode)
        return int(pids[0]) if pids else None

    def app_alive(self, package: str, *, timeout_s: float | None = None) -> bool:
        return self.app_pid(package, timeout_s=timeout_s) is not None

    def check_alive(self, package: str | None = None, *, timeout_s: float | None = None) -> dict[str, int]:
        """The liveness watchdog: raises DeviceLost when the device is offline or gone, AppDied when an app this
        driver started (or `package`) no longer runs under the pid it had (naming the package, its last pid and,
        if it was restarted, the new one). Returns package -> pid of the apps watched."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        state = self.state(timeout_s=timeout_s)
        if state != "device":
            self._offline_seen = True
            raise self._error(self._lost_or_unreachable(), f"{self.serial} is {state}",
                              f"host-serial:{self.serial}:get-state", state)
        with self._lock:
            watched = dict(self._pids) if package is None else {package: self._pids.get(package)}
        alive = {}
        for name, last_pid in watched.items():
            command = f"pidof {name}"
            pid = self.app_pid(name, timeout_s=max(0.1, deadline - time.monotonic()))
            if pid is None:
                raise self._error(AppDied, f"{name} is not running any more (its last pid was {last_pid}). "
                                           f"{self._death_notes(name, deadline)}", command, "", 1, package=name,
                                  last_pid=last_pid)
            if last_pid is not None and pid != last_pid:
                with self._lock:
                    self._pids[name] = pid
                raise self._error(AppDied, f"{name} died and was restarted: pid {last_pid} is gone, it now runs as "
                                           f"pid {pid}. {self._death_notes(name, deadline)}", command, str(pid), 0,
                                  package=name, last_pid=last_pid, pid=pid)
            alive[name] = pid
        return alive

    def _death_notes(self, package: str, deadline: float) -> str:
        """What logcat says about the package's end (ActivityManager, AndroidRuntime), best effort, with what is
        left of the caller's deadline (at most 3 s)."""
        remaining = min(3.0, deadline - time.monotonic())
        if remaining < 0.05:
            return "No time left to read logcat."
        try:
            log = self.shell(["logcat", "-d", "-v", "threadtime", "-s", "ActivityManager", "AndroidRuntime"],
                             timeout_s=remaining, check=False).output
        except AdbError:
            return "Logcat could not be read."
        lines = [line for line in log.splitlines() if package in line and ("died" in line or "Process:" in line
                                                                             or "FATAL" in line)]
        return f"Logcat: {' | '.join(lines[-3:])}" if lines else "Logcat says nothing about it."

    # -- logcat

    def clear_logcat(self, *, timeout_s: float | None = None) -> None:
        """``logcat -c``: empty the device's log buffers."""
        self.shell(["logcat", "-c"], timeout_s=timeout_s)

    def stream_logcat(self, on_line: Callable[[str], object], tag: str | None = "EdgeAI", *,
                      timeout_s: float | None = None) -> LogcatStream:
        """Stream ``logcat -v threadtime`` (only `tag`'s lines, or every line with tag None) to `on_line`, one
        line at a time without its newline, from a worker thread; returns the running `LogcatStream`. The
        stream starts with what the log already holds: `clear_logcat()` first for a fresh start.
        `timeout_s` bounds opening the stream."""
        args = ["logcat", "-v", "threadtime"] + (["-s", tag] if tag else [])
        stream = LogcatStream(self, shlex.join(args), on_line)
        stream.start(self.timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            self._streams = [s for s in self._streams if s.running] + [stream]
        return stream

    def pull_logs(self, dest_dir: Path | str, name: str = "logcat.txt", *, timeout_s: float | None = None) -> Path:
        """Dump every log buffer (``logcat -d -b all -v threadtime``) into `dest_dir`/`name`; returns the path."""
        dest = Path(dest_dir) / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        result = self.shell(["logcat", "-d", "-b", "all", "-v", "threadtime"],
                            timeout_s=self.transfer_timeout_s if timeout_s is None else timeout_s)
        dest.write_text(result.output, encoding="utf-8")
        return dest

    # -- reboots

    def wait_for_device(self, timeout_s: float = DEFAULT_BOOT_TIMEOUT_S) -> float:
        """Wait until the device is back and booted (state "device", ``sys.boot_completed`` 1, a shell that
        answers), re-running ``adb connect`` for a host:port serial the server has dropped; returns the seconds
        waited. Raises DeviceLost (or DeviceUnreachable) naming the last state seen when it is not back in time."""
        started = time.monotonic()
        deadline = started + timeout_s
        last = "never answered"
        last_connect = started
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(self._lost_or_unreachable(), f"{self.serial} did not come back within "
                                                               f"{timeout_s:g} s; last seen: {last}",
                                  f"host-serial:{self.serial}:get-state")
            per_call = max(0.1, min(remaining, self.timeout_s))
            try:
                state = self.state(timeout_s=per_call)
                if state == "device":
                    booted = self.shell(["getprop", "sys.boot_completed"], timeout_s=per_call, check=False).text
                    if booted == "1":
                        self._reached = True
                        return time.monotonic() - started
                    state = f"booting (sys.boot_completed={booted!r})"
                last = state
                self._offline_seen = True
            except (DeviceUnreachable, CommandTimeout) as error:
                last = error.reason
                self._offline_seen = True
                if self.is_tcp and time.monotonic() - last_connect > 1.0:
                    last_connect = time.monotonic()
                    try:
                        self._adb_connect(max(0.1, min(deadline - time.monotonic(), self.timeout_s)))
                    except AdbError as connect_error:
                        last = connect_error.reason
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def boot_id(self, *, timeout_s: float | None = None) -> str | None:
        """The kernel's boot id (a new one at every boot), or None when the device does not expose it."""
        result = self.shell(["cat", _BOOT_ID_PATH], timeout_s=timeout_s, check=False)
        text = result.text
        return text if result.returncode == 0 and re.fullmatch(r"[0-9a-fA-F-]{8,64}", text) else None

    def reboot_detected(self) -> bool:
        """True if the device rebooted since the driver connected or since the previous call (which re-arms it).
        Compares the kernel's boot id; a device without one can only be judged by whether the driver saw it
        offline in between (a reboot and a reconnected cable look the same then). Raises DeviceLost while the
        device is offline: call `wait_for_device` first."""
        current = self.boot_id()
        with self._lock:
            previous, self._boot_id = self._boot_id, current
            seen_offline, self._offline_seen = self._offline_seen, False
        if current is not None and previous is not None:
            return current != previous
        return seen_offline


# --- logcat stream ------------------------------------------------------------------------------------------------

class LogcatStream(Worker):
    """A running ``adb shell logcat``: calls `on_line(line)` (no newline) from its thread for each complete line.

    `stop(timeout_s)` ends it within about 0.2 s even on a quiet device (the connection is shut, not waited on)
    and raises what ended the thread early: DeviceLost when the device went away (the stream hit end of file
    without being asked to stop), or LogcatStreamError wrapping an exception of `on_line`. `error` holds it
    meanwhile; `lines` counts the lines delivered. A partial last line is not delivered.
    """

    error_type = LogcatStreamError

    def __init__(self, device: AndroidDevice, command: str, on_line: Callable[[str], object]) -> None:
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

        def body(call: _Call) -> AdbConnection:
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
        device = self.device
        device._offline_seen = True
        return device._error(device._lost_or_unreachable(), f"{reason} after {self.lines} lines", self.command,
                             pending)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop reading and close the connection; raises what ended the stream early, if anything."""
        connection = self._connection
        if connection is not None and self._state == "running":
            self._stop_requested.set()
            _shut(connection)
        try:
            super().stop(timeout_s)
        except LogcatStreamError as error:
            if isinstance(self._error, AdbError):
                raise self._error from None
            raise self.device._error(LogcatStreamError, error.reason, self.command) from error.__cause__

    def _finish(self) -> None:
        if self._connection is not None:  # the reading thread has ended: this thread owns the connection now
            _shut(self._connection)
            self._connection.close()
