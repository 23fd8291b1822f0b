"""The phone of one run: the Android device over adb, set up with the app, its config and its models.

`PhoneSession` is what `harness.run.chain` uses when the rig's Android device is `kind: adb`:

1. with the `adb` stand-in (`serial: simulated`) it starts a simulated phone (`firmware_sim.phone.device`) whose
   DTG package runs the app simulator (`firmware_sim.phone.dtg_package`), and an adb server of its own on a free
   port (killed at the end), as it does for a lab rig's phone (`harness.rig.lab`); otherwise it talks to the
   phone the rig names through the adb server the environment names;
2. installs the APK (`apk: simulated` builds the simulated phone's stand-in package), pushes the app's config
   (`firmware_sim.phone.dtg_package.CONFIG_PATH`: the UART port (without one, the phone's property
   `dtg.uart_port`: a lab bench's phone names the line it is wired to), codec, profile, redline, app options) and the
   models with their manifest, verifying every model's sha256 on the device
   (`harness.rig.android.device.AndroidDevice.push_models`);
3. clears logcat, streams the `EdgeAI` lines to the run's collector, and starts the app;
4. at the end checks that the app still runs (a dead app is an error naming its package and pid), stops it,
   and pulls the whole logcat into the run's artifacts (`logcat.txt`).

What it does not do: grant permissions, unlock a screen, or pick one phone among several (the rig names it).
"""
from __future__ import annotations

import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import adbutils

from firmware_sim.bench import UART_PORT_PROP
from firmware_sim.phone.app import AppOptions
from firmware_sim.phone.device import SimAndroidDevice
from firmware_sim.phone.dtg_package import ACTIVITY, CONFIG_PATH, PhoneConfig, phone_apps
from firmware_sim.phone.packages import build_apk
from harness.rig.android.device import AndroidDevice
from harness.rig.android.errors import AdbError
from harness.rig.lab import LabRig
from harness.rig.rigfile import SIMULATED, RigConfig


def free_port() -> int:
    """A loopback TCP port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PhoneSession:
    """Set up the rig's phone for one run (a context manager); see the module docstring."""

    def __init__(self, rig: RigConfig, uart_port: str | None, redline_rpm: float, on_line: Callable[[str], None],
                 artifacts: Path, timeout_s: float = 10.0, app_options: AppOptions | None = None) -> None:
        self.rig = rig
        self._uart_port = uart_port
        self._redline_rpm = redline_rpm
        self._on_line = on_line
        self._artifacts = artifacts
        self._timeout_s = timeout_s
        self._app_options = app_options or AppOptions()
        self._sim: SimAndroidDevice | None = None
        self._server_port: int | None = None
        self.device: AndroidDevice | None = None
        self._stream = None
        self.package = rig.package or ""

    def __enter__(self) -> PhoneSession:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        rig = self.rig
        serial, adb_port = rig.adb_serial, None
        if "adb" in rig.standins:
            self._sim = SimAndroidDevice(apps=phone_apps()).start()
            serial = self._sim.serial
        if "adb" in rig.standins or isinstance(rig, LabRig):
            adb_port = self._server_port = free_port()
        self.device = AndroidDevice(serial, adb_port=adb_port, timeout_s=self._timeout_s)
        apk = Path(rig.apk) if rig.apk and rig.apk != SIMULATED else None
        if apk is None:
            apk = self._artifacts / "dtg-app-simulated.apk"
            apk.write_bytes(build_apk(self.package))
        self.device.install(apk, self.package)
        options = self._app_options
        uart_port = self._uart_port or self.device.shell(["getprop", UART_PORT_PROP]).output.strip()
        if not uart_port:
            raise AdbError(f"no UART port given and the phone's property {UART_PORT_PROP} is empty", serial=serial,
                           command=f"getprop {UART_PORT_PROP}")
        config = PhoneConfig(uart_port=uart_port, baudrate=rig.uart_baudrate, codec=rig.codec,
                             profile=rig.profile, redline_rpm=self._redline_rpm,
                             debug_features=options.debug_features, debug_every=options.debug_every,
                             variant=options.variant)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "config.json"
            local.write_text(config.to_json())
            self.device.push(local, CONFIG_PATH)
        self.device.push_models(rig.models)
        self.device.clear_logcat()
        self._stream = self.device.stream_logcat(self._on_line, tag="EdgeAI")

    def start_app(self) -> int:
        """Start the app; returns its pid."""
        return self.device.start_app(self.package, ACTIVITY)

    def check_alive(self) -> None:
        """Raises harness.rig.android.errors.AppDied / DeviceLost when the app or the device is gone."""
        self.device.check_alive(self.package)

    @property
    def simulated(self) -> SimAndroidDevice | None:
        """The simulated phone, when the rig uses the adb stand-in: the handle for injecting its faults
        (`kill_app`, `stop_logging`; see harness.rig.device_faults). None for a real phone."""
        return self._sim

    def close(self) -> None:
        device, self.device = self.device, None
        try:
            if device is not None:
                for step in (lambda: device.stop_app(self.package), lambda: device.pull_logs(self._artifacts)):
                    try:
                        step()
                    except Exception:  # noqa: BLE001 - a teardown step; the run's own error is what matters
                        pass
                if self._stream is not None:
                    self._stream.stop()
                device.close()
        finally:
            if self._sim is not None:
                self._sim.stop()
                self._sim = None
            if self._server_port is not None:
                subprocess.run([adbutils.adb_path(), "-P", str(self._server_port), "kill-server"],
                               capture_output=True, timeout=10, stdin=subprocess.DEVNULL, check=False)
                self._server_port = None

    def __exit__(self, *exc_info: object) -> None:
        self.close()
