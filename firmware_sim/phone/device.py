"""A simulated Android device that speaks the real ADB wire protocol on a loopback TCP port (`SimAndroidDevice`).

It stands in for the phone of the loopback rig: the real adb server connects to it (``adb connect
127.0.0.1:PORT``, exactly as to a phone in wireless-debugging mode), and ``adb shell``/``push``/``pull`` and
adbutils drive it as they drive a phone, so the harness's real-device code path runs in CI. `docs/adbd.md`
says how to start it.

The device owns the listening socket, the connections, the installed packages, the running apps, the log and the
file system, and answers the services ``shell:<command>`` and ``exec:<command>`` (raw: stdout and stderr on one
stream, no exit status channel, as a legacy adbd), ``sync:`` and ``reboot:``. Its sections, each in a module of
its own below this one:

- `firmware_sim.phone.adb_wire`: message headers and their codec, `AdbdError`;
- `firmware_sim.phone.filesystem`: the file system sandboxed in a host directory;
- `firmware_sim.phone.logcat`: the log ring, its formats and filters;
- `firmware_sim.phone.packages`: APKs, apps (`SimApp`, `DeviceContext`);
- `firmware_sim.phone.app_manager`: the installed packages and the running apps (`AppManager`);
- `firmware_sim.phone.shell_lexer`: the shell's language;
- `firmware_sim.phone.transport`: connections and streams;
- `firmware_sim.phone.sync`: the ``sync:`` service;
- `firmware_sim.phone.shell_commands`, `firmware_sim.phone.android_commands`: the shell's commands;
- `firmware_sim.phone.shell`: a command line run against the device.

The sections call back into the device through its underscored members (the transport: `_service_handler`,
`_start_thread`, `_connection_closed`; the commands: `_logs`, `_closing`, `_reboot_soon`): they are this
package's internals, not the harness's API.

An app whose ``alive`` turns False dies, with ActivityManager's "Process <pkg> (pid N) has died" line in logcat.
Fault injection for the harness's own tests: `hang_shell`, `drop_connections`, `reboot`, `kill_app`,
`stop_logging`.

What it does NOT model: authentication (AUTH, RSA keys, TLS/STLS pairing), USB, ``shell_v2`` (so no separate
stderr and no exit status through adb: adbutils' ``shell2`` gets it from its appended ``echo $?``), sync v2,
compression, delayed acks, interactive shells and ptys, pipes and background jobs, forwarding
(``tcp:``, ``localabstract:``, ``reverse:``), ``root:``/``remount:``/``tcpip:``, ``abb``/``cmd`` (``adb install``
therefore takes adb's legacy path: push, then ``pm install``), Android permissions beyond "the shell user may
write in /data/local/tmp and /sdcard", symbolic links (a pushed symlink is refused), file ownership, real APK
parsing or signatures, processes other than the apps (no ``ps``, no ``kill``), logcat's chatty/rate limits and
per-buffer sizes, and time: the device clock is the host clock.
"""
from __future__ import annotations

import itertools
import os
import re
import select
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from firmware_sim.phone.adb_wire import DEFAULT_MAX_PAYLOAD, DEVICE_FEATURES, MAX_PAYLOAD, MAX_PAYLOAD_V1, AdbdError
from firmware_sim.phone.app_manager import AppManager
from firmware_sim.phone.filesystem import DeviceFileSystem
from firmware_sim.phone.logcat import LOG_BUFFERS, SYSTEM_SERVER_PID, LogBuffer, format_log_entry
from firmware_sim.phone.packages import PACKAGE_NAME, AppFactory
from firmware_sim.phone.shell import ShellSession
from firmware_sim.phone.shell_commands import Sink
from firmware_sim.phone.sync import SyncService
from firmware_sim.phone.transport import Connection, Stream
from harness.core.worker import Worker

__all__ = ["DEFAULT_PROPS", "SimAndroidDevice"]


DEFAULT_PROPS: Mapping[str, str] = {
    "ro.product.name": "dtg_sim",
    "ro.product.model": "DTG-SIM",
    "ro.product.device": "dtg_sim",
    "ro.product.brand": "dtg-hil",
    "ro.product.manufacturer": "dtg-hil",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.version.release": "13",
    "ro.build.version.sdk": "33",
    "ro.build.type": "userdebug",
    "ro.build.fingerprint": "dtg-hil/dtg_sim/dtg_sim:13/SIM/1:userdebug/test-keys",
    "ro.serialno": "DTGSIM0001",
    "ro.debuggable": "1",
    "ro.secure": "1",
    "ro.adb.secure": "0",
    "sys.boot_completed": "1",
}


class SimAndroidDevice(Worker):
    """A simulated Android device listening for the adb server on 127.0.0.1 (module docstring: what it models).

    `port` 0 picks a free port; `serial` ("127.0.0.1:PORT") is what ``adb connect`` and ``adb -s`` take.
    `apps` maps package names to factories (`AppFactory`); an installed package without one runs an app that
    does nothing. `root_dir` holds the device's files (default: a temporary directory removed on `stop()`).
    `props` adds to or overrides `DEFAULT_PROPS` (the banner's product name, model and device come from them).
    `reboot_duration_s` is how long a `reboot()` keeps the device unreachable. `max_payload` is the largest
    message payload the device offers in CNXN. `logcat_capacity` bounds the log ring, in lines.

    It is a context manager; `start()` binds and listens, `stop()` closes every connection within `timeout_s`
    (2 s) and cannot be undone: a stopped device refuses to start again.
    """

    error_type = AdbdError

    def __init__(self, port: int = 0, *, apps: Mapping[str, AppFactory] | None = None,
                 root_dir: str | os.PathLike | None = None, props: Mapping[str, str] | None = None,
                 reboot_duration_s: float = 2.0, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 logcat_capacity: int = 20000) -> None:
        super().__init__("sim-adbd")
        if not MAX_PAYLOAD_V1 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} is outside [{MAX_PAYLOAD_V1}, {MAX_PAYLOAD}]")
        if reboot_duration_s < 0:
            raise ValueError(f"reboot_duration_s must be >= 0, got {reboot_duration_s}")
        for package in apps or {}:
            if not PACKAGE_NAME.fullmatch(package):
                raise ValueError(f"invalid package name {package!r} in apps")
        self._requested_port = port
        self._root_dir = Path(root_dir) if root_dir is not None else None
        self.props: dict[str, str] = {**DEFAULT_PROPS, **(props or {})}
        self.reboot_duration_s = reboot_duration_s
        self.max_payload = max_payload
        self._logs = LogBuffer(logcat_capacity)
        self._fs: DeviceFileSystem | None = None
        self._owns_root = False
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._lock = threading.RLock()  # connections, threads, flags
        self._connections: set[Connection] = set()
        self._connection_numbers = itertools.count(1)
        self._threads: set[threading.Thread] = set()
        self._pids = itertools.count(3001)  # shells and apps
        #: The installed packages and the running apps (``pm``, ``am``).
        self.app_manager = AppManager(self, apps or {}, self._logs, self._pids)
        self._shell_hung = False
        self._offline_until: float | None = None
        self._closing = False
        self._stop_deadline = 0.0
        #: Every service the adb server opened, in order (what adb and adbutils really ask of a device).
        self.services_opened: deque[str] = deque(maxlen=10000)

    # -- lifecycle

    def _describe(self) -> str:
        return f"simulated Android device {self._port and self.serial or '(not started)'}"

    def start(self) -> SimAndroidDevice:
        with self._state_lock:
            fresh = self._state == "new" and self._listener is None
        if fresh:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", self._requested_port))
            except OSError as error:
                listener.close()
                raise AdbdError(f"simulated Android device cannot listen on 127.0.0.1:{self._requested_port}: "
                                f"{error}") from error
            listener.listen(16)
            self._listener, self._port = listener, listener.getsockname()[1]
            if self._root_dir is None:
                self._fs = DeviceFileSystem(tempfile.mkdtemp(prefix=f"sim-adbd-{self._port}-"))
                self._owns_root = True
            else:
                self._root_dir.mkdir(parents=True, exist_ok=True)
                self._fs = DeviceFileSystem(self._root_dir)
            self._fs.create_skeleton()
            self._logs.append_system("I", "ActivityManager", "System now ready")
        return super().start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close every connection, stop the apps and the threads within `timeout_s`; idempotent."""
        self._stop_deadline = time.monotonic() + timeout_s
        super().stop(timeout_s)

    def _finish(self) -> None:
        with self._lock:
            self._closing = True
            connections = list(self._connections)
        processes = self.app_manager.detach_all(close=True)
        if self._listener is not None:
            self._listener.close()
        for connection in connections:
            connection.close()
        for process in processes:
            self.app_manager.stop_process(process)
        with self._lock:
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads + [c.thread for c in connections]:
            thread.join(max(0.0, self._stop_deadline - time.monotonic()))
        stuck = [t.name for t in threads + [c.thread for c in connections] if t.is_alive()]
        if self._owns_root and self._fs is not None:
            shutil.rmtree(self._fs.root, ignore_errors=True)
        if stuck:
            raise AdbdError(f"{self._describe()}: threads still running after stop: {', '.join(stuck)}")

    def _work(self) -> None:
        assert self._listener is not None
        while not self._stop_requested.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], 0.05)
            except (OSError, ValueError):
                return
            if readable:
                try:
                    sock, _ = self._listener.accept()
                except OSError:
                    continue
                self._accept(sock)
            self._housekeeping()

    def _check_running(self) -> None:
        if self._state != "running":
            raise AdbdError(f"{self._describe()} is {'stopped' if self._state == 'stopped' else 'not started'}")

    def _start_thread(self, name: str, target: Callable[..., None], *args: object) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())
        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            if self._closing:
                return
            self._threads.add(thread)
        thread.start()

    # -- what the harness sees

    @property
    def port(self) -> int:
        if self._port is None:
            raise AdbdError("simulated Android device is not started: it has no port yet")
        return self._port

    @property
    def serial(self) -> str:
        """``127.0.0.1:PORT``, the serial the adb server knows this device by after ``adb connect``."""
        return f"127.0.0.1:{self.port}"

    @property
    def fs(self) -> DeviceFileSystem:
        if self._fs is None:
            raise AdbdError("simulated Android device is not started: it has no file system yet")
        return self._fs

    @property
    def root(self) -> Path:
        """The host directory holding the device's files."""
        return self.fs.root

    def host_path(self, device_path: str) -> Path:
        """The host path of a device path (inside `root`, whatever ``..`` the device path holds)."""
        return self.fs.host_path(device_path)

    @property
    def online(self) -> bool:
        """True while the device accepts connections (started, not stopped, not rebooting)."""
        return self._state == "running" and self._offline_until is None

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    @property
    def installed_packages(self) -> tuple[str, ...]:
        return tuple(sorted(self.app_manager.packages()))

    @property
    def running_apps(self) -> dict[str, int]:
        """Package → pid of every running app."""
        return self.app_manager.running()

    def banner(self) -> str:
        props = self.props
        return (f"device::ro.product.name={props['ro.product.name']};ro.product.model={props['ro.product.model']};"
                f"ro.product.device={props['ro.product.device']};features={','.join(DEVICE_FEATURES)}")

    def log(self, tag: str, priority: str | int, message: str, *, pid: int = SYSTEM_SERVER_PID,
            buffer: str = "main") -> None:
        """Append a logcat line as some other process of the device would (default: system_server)."""
        if buffer not in LOG_BUFFERS:
            raise ValueError(f"unknown log buffer {buffer!r}; expected one of: {', '.join(LOG_BUFFERS)}")
        self._logs.append(pid, pid, priority, tag, message, buffer)

    def logcat(self, fmt: str = "threadtime") -> list[str]:
        """The log as ``logcat -d -v <fmt>`` would print it (without the buffer banners)."""
        return [format_log_entry(entry, fmt) for entry in self._logs.entries()]

    # -- fault injection

    def hang_shell(self, hang: bool = True) -> None:
        """While on, ``shell:``/``exec:`` streams are accepted and then never answered (until the client closes)."""
        self._check_running()
        self._shell_hung = hang

    def stop_logging(self, stopped: bool = True) -> None:
        """While on, the log takes no lines: logcat streams go silent and dumps show nothing new."""
        self._check_running()
        self._logs.silenced = stopped

    def drop_connections(self) -> int:
        """Close every adb connection at once, as a pulled USB cable does; returns how many were open. The
        device keeps listening: the adb server (or ``adb connect``) can connect again at once."""
        self._check_running()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        return len(connections)

    def reboot(self, duration_s: float | None = None) -> None:
        """Reboot: drop every connection, stop every app, lose the log, and refuse connections for `duration_s`
        (default `reboot_duration_s`); files and installed packages survive."""
        self._check_running()
        duration_s = self.reboot_duration_s if duration_s is None else duration_s
        with self._lock:
            self._offline_until = time.monotonic() + duration_s
        processes = self.app_manager.detach_all()
        self.drop_connections()
        for process in processes:
            self.app_manager.stop_process(process)
        self._logs.clear()

    def _reboot_soon(self) -> None:
        """``reboot:`` and the shell's ``reboot``: go down just after the request was acknowledged."""
        def go_down() -> None:
            try:
                if self.online:
                    self.reboot()
            except AdbdError:
                pass  # stopped in the meantime
        timer = threading.Timer(0.05, go_down)
        timer.daemon = True
        timer.start()

    def kill_app(self, package: str) -> int:
        """Kill a running app as the low-memory killer would; returns its pid. Unlike ``am force-stop``,
        ActivityManager logs "Process <pkg> (pid N) has died". The app's stop() is still called, to end its
        simulated threads; it can log nothing more either way."""
        self._check_running()
        return self.app_manager.kill(package)

    # -- connections and services

    def _accept(self, sock: socket.socket) -> None:
        with self._lock:
            refuse = self._closing or self._offline_until is not None
        if refuse:
            sock.close()  # rebooting: the port is there, adbd is not
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(self, sock, next(self._connection_numbers))
        with self._lock:
            self._connections.add(connection)
        connection.start()

    def _connection_closed(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _service_handler(self, service: str) -> Callable[[Stream], None] | None:
        with self._lock:
            self.services_opened.append(service)
        match = re.fullmatch(r"(shell|exec)(,[^:]*)?:(.*)", service, re.S)
        if match:
            options = (match.group(2) or "").split(",")
            if "v2" in options:
                return None  # shell_v2 is not advertised, so not implemented
            command = match.group(3)
            return lambda stream: self._serve_shell(stream, command)
        if service == "sync:":
            return lambda stream: SyncService(self.fs, stream).run()
        if service.startswith("reboot:"):
            return lambda stream: self._reboot_soon()
        return None

    def _serve_shell(self, stream: Stream, command: str) -> None:
        if self._shell_hung:
            while not stream.wait_closed(0.2) and not self._closing:
                pass
            return
        sink = Sink(stream)
        if not command.strip():
            sink.write("the simulated device has no interactive shell; run: adb shell COMMAND\n")
        else:
            ShellSession(self, sink, next(self._pids)).run(command)
        sink.flush()

    def _housekeeping(self) -> None:
        if self._offline_until is not None and time.monotonic() >= self._offline_until:
            self._offline_until = None
            self._logs.append_system("I", "ActivityManager", "System now ready")
        self.app_manager.reap_dead()

    def __repr__(self) -> str:
        return f"<SimAndroidDevice {self._port and self.serial or 'unbound'} {self._state}>"
