"""Packages and apps on the simulated Android device: the APKs it installs and what an app is given and gives.

``pm install`` reads the package name from an APK that is a zip holding ``dtg-package.txt``
(`APK_PACKAGE_ENTRY`; `build_apk` makes one, `read_apk_package` reads it). ``am start`` starts the app made by
the factory registered for that package (`AppFactory`): a `SimApp`, given a `DeviceContext` (its package and
pid, logcat, the device's files). Installing, starting and stopping are `firmware_sim.phone.app_manager`'s.

What it does NOT model: real APK parsing or signatures, manifests, activities (any activity name starts the
app), permissions, processes other than the apps.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from harness.core.errors import DtgHilError

if TYPE_CHECKING:
    from firmware_sim.phone.device import SimAndroidDevice

__all__ = [
    "APK_PACKAGE_ENTRY",
    "PACKAGE_NAME",
    "SYSTEM_PACKAGES",
    "ApkError",
    "AppFactory",
    "DeviceContext",
    "SimApp",
    "build_apk",
    "read_apk_package",
]


#: The one entry the simulated package manager reads from an APK (a zip): the package name, on its first
#: non-blank line that is not a ``#`` comment.
APK_PACKAGE_ENTRY = "dtg-package.txt"
PACKAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
SYSTEM_PACKAGES = ("android", "com.android.settings", "com.android.shell", "com.android.systemui")


class ApkError(DtgHilError, ValueError):
    """An APK the simulated package manager cannot install; the message says why."""


def build_apk(package: str, files: Mapping[str, bytes] | None = None) -> bytes:
    """An APK for the simulated device: a zip with `APK_PACKAGE_ENTRY` naming `package`, plus `files`."""
    if not PACKAGE_NAME.fullmatch(package):
        raise ApkError(f"invalid package name {package!r}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as apk:
        apk.writestr(APK_PACKAGE_ENTRY, package + "\n")
        for name, data in (files or {}).items():
            apk.writestr(name, data)
    return buffer.getvalue()


def read_apk_package(path: str | os.PathLike) -> str:
    """The package name inside an APK made like `build_apk`'s; `ApkError` says what is wrong otherwise."""
    try:
        with zipfile.ZipFile(path) as apk:
            try:
                text = apk.read(APK_PACKAGE_ENTRY).decode("utf-8")
            except KeyError:
                raise ApkError(f"no {APK_PACKAGE_ENTRY} entry") from None
    except zipfile.BadZipFile:
        raise ApkError("not a zip archive") from None
    except UnicodeDecodeError:
        raise ApkError(f"{APK_PACKAGE_ENTRY} is not UTF-8") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise ApkError(f"{APK_PACKAGE_ENTRY} names no package")
    if not PACKAGE_NAME.fullmatch(lines[0]):
        raise ApkError(f"invalid package name {lines[0]!r} in {APK_PACKAGE_ENTRY}")
    return lines[0]


class SimApp(Protocol):
    """What an app factory returns. `start()` returns once the app runs (then `alive` is True); `stop()` ends
    it and is called once, when the app is force-stopped, killed, replaced, uninstalled or the device stops or
    reboots. An app whose `alive` turns False by itself has died: the device logs it and does not call stop()."""

    @property
    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class DeviceContext:
    """What the device gives an app: its package and pid, logcat, and the device's file system.

    `log(tag, priority, message)` appends a line to logcat with this process's pid (as tid too) and the device
    clock; a process that was killed logs nothing more, as on a phone. `host_path("/data/local/tmp/dtg/x")`
    is the host path of a device file (pushed models, configuration).
    """

    def __init__(self, device: SimAndroidDevice, package: str, pid: int) -> None:
        self._device = device
        self.package = package
        self.pid = pid
        self.serial = device.serial
        self.props: Mapping[str, str] = dict(device.props)
        self._alive = True

    def log(self, tag: str, priority: str | int, message: str) -> None:
        if self._alive:
            self._device.log(tag, priority, message, pid=self.pid)

    def host_path(self, device_path: str) -> Path:
        return self._device.fs.host_path(device_path)

    def end(self) -> None:
        """The process is gone (killed, stopped, crashed, died): it logs nothing more."""
        self._alive = False

    def __repr__(self) -> str:
        return f"<DeviceContext {self.package} pid={self.pid} on {self.serial}>"


AppFactory = Callable[[DeviceContext], SimApp]
