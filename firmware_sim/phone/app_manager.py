"""The simulated Android device's package manager and activity manager in one: installed packages, running apps.

`AppManager` installs and uninstalls packages (``pm``), starts and stops their apps (``am``, ``monkey``), notices
an app that died by itself (its ``alive`` turned False: `reap_dead`) and logs what Android's ActivityManager logs:
"Start proc", "Force stopping", "Process <pkg> (pid N) has died", and a crash's ``FATAL EXCEPTION`` in the crash
buffer. An installed package's APK is copied to ``/data/app/<package>-1/base.apk``.

What it does NOT model: activities (any activity name starts the app), a package's data directory (``pm clear``
only stops the app), users and profiles, app uids beyond one number each, the low-memory killer's choice (the
harness picks: `SimAndroidDevice.kill_app`).
"""
from __future__ import annotations

import itertools
import logging
import shutil
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firmware_sim.phone.adb_wire import AdbdError
from firmware_sim.phone.logcat import LogBuffer
from firmware_sim.phone.packages import ApkError, AppFactory, DeviceContext, SimApp, read_apk_package

if TYPE_CHECKING:
    from firmware_sim.phone.device import SimAndroidDevice

__all__ = ["FIRST_APP_UID", "AppManager", "AppProcess", "IdleApp", "InstalledPackage"]

_log = logging.getLogger(__name__)

FIRST_APP_UID = 10100


class IdleApp:
    """The process of an installed package that has no factory: it runs and does nothing."""

    alive = True

    def start(self) -> None:
        self.alive = True

    def stop(self) -> None:
        self.alive = False


@dataclass
class InstalledPackage:
    """A package `pm install` installed: its name, its app uid, and where its APK lies on the device."""

    name: str
    uid: int
    apk_path: str  # device path


@dataclass
class AppProcess:
    """A running app: its package, pid and context, and the `SimApp` its factory made."""

    package: str
    pid: int
    context: DeviceContext
    app: SimApp | None = None  # None until its factory returned
    started: bool = False  # its start() returned: from then on `alive` is watched


class AppManager:
    """The packages installed on `device` and their running apps. `factories` maps package names to app factories;
    `pids` is the device's pid counter (shells and apps draw from it). Thread-safe; app code (a factory, an app's
    start() and stop()) always runs outside the lock."""

    def __init__(self, device: SimAndroidDevice, factories: Mapping[str, AppFactory], logs: LogBuffer,
                 pids: Iterator[int]) -> None:
        self._device = device
        self._factories = dict(factories)
        self._logs = logs
        self._pids = pids
        self._uids = itertools.count(FIRST_APP_UID)
        self._lock = threading.RLock()
        self._packages: dict[str, InstalledPackage] = {}
        self._processes: dict[str, AppProcess] = {}
        self._closed = False

    def packages(self) -> dict[str, InstalledPackage]:
        """Package name → its record, a snapshot."""
        with self._lock:
            return dict(self._packages)

    def running(self) -> dict[str, int]:
        """Package → pid of every running app."""
        with self._lock:
            return {name: process.pid for name, process in self._processes.items()}

    def install(self, apk: str, cwd: str) -> str:
        """Install the APK at device path `apk` (from `cwd`), stopping the package's app if it runs; returns pm's
        answer, ``Success`` or ``Failure [INSTALL_FAILED_INVALID_APK: …]``."""
        fs = self._device.fs
        try:
            host = fs.host_path(apk, cwd)
            if not host.is_file():
                raise ApkError(f"{apk}: No such file or directory")
            package = read_apk_package(host)
        except (ApkError, OSError) as error:
            return f"Failure [INSTALL_FAILED_INVALID_APK: Failed to parse {apk}: {error}]"
        self.force_stop(package, reason="installPackageLI")
        apk_path = f"/data/app/{package}-1/base.apk"
        target = fs.host_path(apk_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(host, target)
        with self._lock:
            if package not in self._packages:
                self._packages[package] = InstalledPackage(package, next(self._uids), apk_path)
        return "Success"

    def uninstall(self, package: str) -> str:
        """Stop the package's app and remove it; returns pm's answer, ``Success`` or ``Failure […]``."""
        with self._lock:
            known = package in self._packages
        if not known:
            return "Failure [DELETE_FAILED_INTERNAL_ERROR]"
        self.force_stop(package, reason="deletePackageX")
        with self._lock:
            record = self._packages.pop(package)
        shutil.rmtree(self._device.fs.host_path(record.apk_path).parent, ignore_errors=True)
        return "Success"

    def start(self, package: str, activity: str) -> bool:
        """Start the installed package's app; False if it was running already (or the device is closing)."""
        with self._lock:
            if package in self._processes or self._closed:
                return False
            pid = next(self._pids)
            context = DeviceContext(self._device, package, pid)
            record = self._packages[package]
            factory = self._factories.get(package)
            process = AppProcess(package, pid, context)
            self._processes[package] = process  # registered first: the app may log from start()
        self._logs.append_system("I", "ActivityManager", f"Start proc {pid}:{package}/u0a{record.uid - 10000} for "
                                                         f"activity {{{package}/{activity}}}")
        try:
            app = factory(context) if factory is not None else IdleApp()
            process.app = app
            app.start()
            process.started = True
        except Exception as error:  # noqa: BLE001 - the app crashed on start; the device logs it, as Android does
            with self._lock:
                if self._processes.get(package) is process:
                    del self._processes[package]
            context.end()
            self._logs.append(pid, pid, "E", "AndroidRuntime", f"FATAL EXCEPTION: main\nProcess: {package}, "
                              f"PID: {pid}\n{type(error).__name__}: {error}", "crash")
            self._log_death(process)
        return True

    def force_stop(self, package: str, reason: str) -> None:
        """``am force-stop``: stop the package's app if it runs (ActivityManager logs "Force stopping")."""
        with self._lock:
            process = self._processes.pop(package, None)
            record = self._packages.get(package)
        if record is not None:
            self._logs.append_system("I", "ActivityManager", f"Force stopping {package} appid={record.uid} user=0: "
                                                             f"{reason}")
        if process is not None:
            self.stop_process(process)

    def kill(self, package: str) -> int:
        """The low-memory killer takes the package's app: stopped, and its death logged; returns its pid.
        `AdbdError` (listing the running apps) if it does not run."""
        with self._lock:
            process = self._processes.pop(package, None)
            running = sorted(self._processes)
        if process is None:
            raise AdbdError(f"{package!r} is not running on {self._device.serial}; running apps: "
                            f"{', '.join(running) or 'none'}")
        self.stop_process(process)
        self._log_death(process)
        return process.pid

    def detach_all(self, *, close: bool = False) -> list[AppProcess]:
        """Forget every running app and return them, for the caller to `stop_process` (a reboot, the device's
        stop). With `close`, no app starts any more."""
        with self._lock:
            self._closed = self._closed or close
            processes = list(self._processes.values())
            self._processes.clear()
        return processes

    def stop_process(self, process: AppProcess) -> None:
        """End the app: it logs nothing more, and its stop() is called (a failing stop() is logged, not raised)."""
        process.context.end()  # a killed process logs nothing more
        if process.app is None:
            return
        try:
            process.app.stop()
        except Exception:  # noqa: BLE001 - the process is gone either way
            _log.exception("app %s (pid %d) failed to stop", process.package, process.pid)

    def reap_dead(self) -> None:
        """Forget and log the death of every started app whose ``alive`` turned False; skipped if the manager is
        busy (the device calls it again soon)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            dead = []
            for package, process in list(self._processes.items()):
                if not process.started:
                    continue  # still in start(): `alive` means nothing yet
                try:
                    alive = bool(process.app.alive)
                except Exception:  # noqa: BLE001 - an app that cannot say is not alive
                    alive = False
                if not alive:
                    dead.append(self._processes.pop(package))
        finally:
            self._lock.release()
        for process in dead:
            process.context.end()
            self._log_death(process)

    def _log_death(self, process: AppProcess) -> None:
        self._logs.append_system("I", "ActivityManager",
                                 f"Process {process.package} (pid {process.pid}) has died: fg TOP")
