"""The DTG app as it runs on the simulated phone (`firmware_sim.phone.device.SimAndroidDevice`).

Installing the DTG package on the simulated device and starting it (`am start`) runs `PhoneApp`: the same app
simulator as the simulated rig (`firmware_sim.phone.app.AppSim`), but configured the way a real app on a phone is,
through files the harness pushed over adb, and logging through the device's logcat:

- `/data/local/tmp/dtg/config.json` (`CONFIG_PATH`): the UART port the app reads (on a phone, its USB-serial
  adapter; here the pty the STM32 simulator writes), its baud rate, the link codec, the CAN profile and the
  vehicle's redline for the rule-based detector, and the app options (`firmware_sim.phone.app.AppOptions`: debug
  `features` lines, a broken variant) the contract suite starts it with;
- `/data/local/tmp/dtg/models/manifest.json` (`MODELS_DIR`): the models manifest and the three ONNX files,
  pushed and checked by sha256 by the harness (`harness.rig.android.device`); the app checks them again on load.

Each result is a logcat line with tag `EdgeAI` at priority I (docs/events.md). If the app cannot start (no
config, a model that fails its hash, a port that does not open) it raises from `start()`: the device then logs
a FATAL EXCEPTION and the process death, as Android does.

What it does not model: Android's activity lifecycle beyond start/stop, permissions, USB-serial enumeration.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import serial

from firmware_sim.phone.app import AppOptions, AppSim
from firmware_sim.phone.packages import DeviceContext
from firmware_sim.phone.rules import RuleLimits
from harness.inference.models import ModelSet
from harness.wire.events import TAG

PACKAGE = "com.dtg.edgeai"
ACTIVITY = ".MainActivity"
DEVICE_DIR = "/data/local/tmp/dtg"
CONFIG_PATH = f"{DEVICE_DIR}/config.json"
MODELS_DIR = f"{DEVICE_DIR}/models"


@dataclass(frozen=True)
class PhoneConfig:
    """What the harness tells the app before it starts (written to `CONFIG_PATH` as JSON)."""

    uart_port: str
    baudrate: int = 921600
    codec: str = "dtg-link-v2"
    profile: str = "obd2"
    redline_rpm: float = 6000.0
    debug_features: bool = False
    debug_every: int = 1
    variant: str | None = None

    @property
    def app_options(self) -> AppOptions:
        return AppOptions(self.debug_features, self.debug_every, self.variant)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1) + "\n"


class PhoneApp:
    """One process of the DTG app on the simulated phone (the device's app-factory contract)."""

    def __init__(self, context: DeviceContext) -> None:
        self._context = context
        self._app: AppSim | None = None
        self._port: serial.Serial | None = None
        self._models: ModelSet | None = None

    def start(self) -> None:
        config_file = self._context.host_path(CONFIG_PATH)
        try:
            raw = json.loads(config_file.read_text())
            config = PhoneConfig(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise RuntimeError(f"DTG app: cannot read {CONFIG_PATH}: {exc}") from exc
        self._models = ModelSet.open(self._context.host_path(f"{MODELS_DIR}/manifest.json"))
        self._port = serial.Serial(config.uart_port, config.baudrate, timeout=0.02)
        self._app = AppSim(self._port, self._models, log=lambda line: None, codec=config.codec,
                           profile=config.profile, limits=RuleLimits.for_redline(config.redline_rpm),
                           pid=self._context.pid, options=config.app_options,
                           log_payload=lambda payload: self._context.log(TAG, "I", payload))
        self._app.start()

    @property
    def alive(self) -> bool:
        return self._app is not None and self._app.error is None and self._app.running

    def stop(self) -> None:
        app, self._app = self._app, None
        try:
            if app is not None:
                app.stop()
        finally:
            if self._port is not None:
                self._port.close()
            if self._models is not None:
                self._models.close()


def phone_apps() -> dict:
    """The `apps` mapping for `SimAndroidDevice`: the DTG package runs `PhoneApp`."""
    return {PACKAGE: PhoneApp}
