"""The Android device of a real rig, driven through an adb server (adbutils): install, models, app, liveness.

`AndroidDevice(serial)` drives one phone (or the loopback rig's `firmware_sim.phone.device.SimAndroidDevice`, which
speaks the same protocol) through the adb server, with the bounded calls of its base
`harness.rig.android.adb.AdbClient` (``state``, ``shell``, ``push``, ``pull``; a host:port serial is
``adb connect``-ed first). docs/android.md is the contract with the app on the phone.

What it does:

- `install(apk_path, package)`: push the APK, ``pm install -r``, check ``pm list packages``;
- `push_models(manifest_path)`: push every model of a `harness.inference.models` manifest and the manifest itself to
  /data/local/tmp/dtg/models, then compare the device's ``sha256sum`` of each file with the manifest
  (`verify_models` alone re-checks later); a file that differs is refused with `HashMismatch`;
- `start_app`/`stop_app` (``am start -n``, ``am force-stop``), `app_pid`/`app_alive` (``pidof``),
  `check_alive()`, the liveness watchdog: `AppDied` when an app it started is gone, `DeviceLost` when the
  device is offline or gone;
- `clear_logcat()`, `stream_logcat(on_line, tag="EdgeAI")` (a `harness.rig.android.logcat.LogcatStream` worker
  delivering ``-v threadtime`` lines, the format `harness.wire.events.parse_event_line` reads),
  `pull_logs(dest_dir)` (a full ``logcat -d`` dump);
- `wait_for_device(timeout_s)` after a reboot or reconnect, `reboot_detected()`.

Every failure is one of `harness.rig.android.errors`' errors. A logcat stream that goes quiet is not an error (a
quiet app and a wedged device look the same on a stream): `check_alive()`, called periodically, is the
watchdog. A stream whose connection ends raises DeviceLost.

What it does not do: fastboot or bootloader work, root (``adb root``, ``su``, remount), screen or input
control, or starting an emulator. ``sha256sum`` and ``pidof`` must exist on the device (toybox provides both
on current Android releases). `reboot_detected` reads the kernel's boot id; on a device without a readable
``/proc/sys/kernel/random/boot_id`` (the simulated one) it can only say whether the driver saw the device go
offline in between, which a reboot and a pulled cable both do.
"""
from __future__ import annotations

import logging
import posixpath
import re
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.rig.android.adb import DEFAULT_TIMEOUT_S, DEFAULT_TRANSFER_TIMEOUT_S, UNREACHABLE_REPLY, AdbClient
from harness.rig.android.errors import (
    AdbError,
    AppDied,
    CommandFailed,
    CommandTimeout,
    DeviceUnreachable,
    HashMismatch,
    ModelMismatch,
)
from harness.rig.android.logcat import LogcatStream
from harness.rig.android.model_files import DEFAULT_MODELS_DIR, PushedFile, manifest_files, parse_sha256sum

__all__ = ["DEFAULT_BOOT_TIMEOUT_S", "DEFAULT_INSTALL_TIMEOUT_S", "AndroidDevice"]

_log = logging.getLogger(__name__)

#: ``pm install`` (a real phone verifies and optimises the APK: tens of seconds).
DEFAULT_INSTALL_TIMEOUT_S = 120.0
#: `wait_for_device` (a phone's reboot takes about a minute).
DEFAULT_BOOT_TIMEOUT_S = 120.0
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class AndroidDevice(AdbClient):
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
        super().__init__(serial, adb_host=adb_host, adb_port=adb_port, timeout_s=timeout_s,
                         transfer_timeout_s=transfer_timeout_s)
        if not install_timeout_s > 0:
            raise ValueError(f"install_timeout_s must be > 0, got {install_timeout_s}")
        self.install_timeout_s = float(install_timeout_s)
        self._lock = threading.Lock()
        self._boot_id: str | None = None
        self._pids: dict[str, int | None] = {}  # package -> last pid seen, for the apps this driver started
        self._streams: list[LogcatStream] = []
        if connect:
            self.connect()

    def __enter__(self) -> AndroidDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
                if time.monotonic() >= deadline or not UNREACHABLE_REPLY.search(error.reason):
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
        files = manifest_files(Path(manifest_path), device_dir)
        self.shell(["mkdir", "-p"] + sorted({posixpath.dirname(f.device_path) for f in files}))
        for pushed in files:
            self.push(pushed.local_path, pushed.device_path, timeout_s=timeout_s)
        return self.verify_models(manifest_path, device_dir, timeout_s=timeout_s)

    def verify_models(self, manifest_path: Path | str, device_dir: str = DEFAULT_MODELS_DIR, *,
                      timeout_s: float | None = None) -> list[PushedFile]:
        """Compare the device's ``sha256sum`` of every model file (and of the manifest) under `device_dir` with
        the manifest; raises HashMismatch listing every file that differs or is missing."""
        manifest_path = Path(manifest_path)
        files = manifest_files(manifest_path, device_dir)
        result = self.shell(["sha256sum"] + [f.device_path for f in files], check=False,
                            timeout_s=self.transfer_timeout_s if timeout_s is None else timeout_s)
        if result.returncode not in (0, 1):  # 1: some file missing, reported below; 127: no sha256sum
            raise self._error(CommandFailed, f"cannot hash files on {self.serial}", result.command, result.output,
                              result.returncode)
        on_device = parse_sha256sum(result.output)
        mismatches = [ModelMismatch(f.name, f.device_path, f.sha256, on_device.get(f.device_path))
                      for f in files if on_device.get(f.device_path) != f.sha256]
        if mismatches:
            raise HashMismatch(mismatches, manifest_path, serial=self.serial, command=result.command,
                               output=result.output, returncode=result.returncode)
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
            raise self._lost(f"{self.serial} is {state}", f"host-serial:{self.serial}:get-state", state)
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

