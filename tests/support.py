"""Shared helpers of the project's tests: wall-clock limits (SIGALRM), an isolated adb server, and an app
factory for the simulated Android device.

The test modules import it as ``support``: pytest's default ("prepend") import mode puts the tests folder, which
has no ``__init__.py``, on sys.path.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import adbutils
import pytest

from harness.rig.phone import free_port

if TYPE_CHECKING:
    from firmware_sim.phone.packages import DeviceContext, SimApp

# --- wall-clock limits -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def alarm_after(seconds: float, message: str) -> Iterator[None]:
    """Raise TimeoutError(message) in the block if it runs longer than `seconds` of wall time (SIGALRM, so only in
    the main thread; it interrupts blocking socket reads and waits too)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def time_limit(seconds: float) -> Callable:
    """Fail the test if it runs longer than `seconds` of wall time (SIGALRM; pytest runs tests in the main thread)."""

    def decorate(test: Callable) -> Callable:
        @functools.wraps(test)
        def run(*args: object, **kwargs: object) -> object:
            with alarm_after(seconds, f"{test.__name__} took longer than {seconds} s"):
                return test(*args, **kwargs)

        return run

    return decorate


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """For an autouse fixture: fail a test still running after `seconds`; no limit where SIGALRM cannot be used
    (outside the main thread, or no setitimer)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    with alarm_after(seconds, f"test still running after {seconds} s"):
        yield


# --- an isolated adb server --------------------------------------------------------------------------------------

def adb_problem() -> str | None:
    """Why the real adb (the binary bundled with adbutils) cannot be used here, or None."""
    try:
        path = adbutils.adb_path()
    except Exception as error:  # noqa: BLE001 - any reason is a reason to skip
        return f"adbutils has no adb binary: {error}"
    try:
        result = subprocess.run([path, "version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"the adb binary {path} cannot run here: {error}"
    if result.returncode != 0:
        return f"`{path} version` exited {result.returncode}: {result.stderr.strip()}"
    return None


@dataclass
class AdbServer:
    """An adb server of our own: `run` is the adb command line, `device` an adbutils device on it."""

    port: int
    env: dict[str, str]

    def run(self, *args: str, timeout_s: float = 15.0, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([adbutils.adb_path(), *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"adb {' '.join(args)} exited {result.returncode}: {result.stdout}{result.stderr}")
        return result

    def state(self, serial: str) -> str:
        """The device's state in ``adb devices`` ("device", "offline", ...) or "absent"."""
        for line in self.run("devices").stdout.splitlines()[1:]:
            parts = line.split("\t")
            if parts[0] == serial:
                return parts[1]
        return "absent"

    def wait_state(self, serial: str, wanted: str, timeout_s: float = 10.0) -> float:
        started = time.monotonic()
        while self.state(serial) != wanted:
            assert time.monotonic() - started < timeout_s, f"{serial} not {wanted} after {timeout_s} s"
            time.sleep(0.05)
        return time.monotonic() - started

    def device(self, serial: str) -> adbutils.AdbDevice:
        return adbutils.AdbClient(host="127.0.0.1", port=self.port).device(serial)


@contextlib.contextmanager
def isolated_adb_server(home: Path) -> Iterator[AdbServer]:
    """An adb server on a free loopback port (``ANDROID_ADB_SERVER_PORT``) with USB, emulator scanning and mDNS off,
    its key and log in `home`, killed at the end. The process environment names the port meanwhile, for adbutils
    and drivers that find the server from it."""
    port = free_port()
    quiet = {"ANDROID_ADB_SERVER_PORT": str(port), "ADB_MDNS": "0", "ADB_USB": "0", "ADB_EMU": "0"}
    # HOME keeps the server's adbkey, TMPDIR its log (adb.<uid>.log), out of the user's directories.
    env = {**os.environ, **quiet, "HOME": str(home), "ANDROID_USER_HOME": str(home / ".android"),
           "TMPDIR": str(home)}
    server = AdbServer(port, env)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in quiet.items():  # adbutils starts `adb start-server` itself if it finds no server
            patch.setenv(name, value)
        server.run("start-server")
        try:
            yield server
        finally:
            server.run("kill-server", check=False)


# --- apps on the simulated Android device ------------------------------------------------------------------------

class AppFactory:
    """A `SimAndroidDevice` app factory that makes a `cls` per start and keeps them all (`apps`, the latest last)."""

    def __init__(self, cls: Callable[[DeviceContext], SimApp]) -> None:
        self.cls = cls
        self.apps: list[SimApp] = []

    def __call__(self, context: DeviceContext) -> SimApp:
        self.apps.append(self.cls(context))
        return self.apps[-1]
