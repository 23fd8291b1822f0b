"""The CAN databases of the two vehicle profiles, and which plant channel each bus signal carries.

A profile is a DBC shipped in `harness/wire/dbc/` plus the facts a rig needs that a DBC does not say well:
bitrate, identifier width, and the binding of each bus signal to a channel of `harness.wire.signals`.
This is the one place that maps plant units onto bus units; the rest-bus encodes through it and a
receiver (the simulated firmware, a test) decodes through it.

- `obd2`: 500 kbit/s, 11-bit IDs, OBD-II service 01 request/response (SAE J1979, ISO 15765-4).
  It carries speed, rpm, throttle, coolant temperature and fuel level of the ten signals, plus the
  auxiliary channels engine load, intake air temperature, MAF and control-module voltage.
  Brake, longitudinal acceleration and position are not on the bus: the unit measures them itself.
- `j1939`: 250 kbit/s, 29-bit IDs, broadcast parameter groups (SAE J1939-71). It carries all ten
  signals plus the engine fuel rate. `throttle_position` rides on SPN 91 (accelerator pedal
  position 1) and `brake_pressure` on SPN 521 (brake pedal position), see below.

Brake pressure to brake pedal position (J1939 only). J1939 has no standard "service brake
pressure in bar" broadcast that a DTG reads, so the plant's brake pressure is carried as brake pedal
position, linearly: 0 bar is 0 % pedal and `BRAKE_PRESSURE_AT_FULL_PEDAL_BAR` (the top of the plant's
physical brake-pressure range, 160 bar) is 100 % pedal. One bus step (0.4 %) is 0.64 bar. The
mapping has no dead band and no pedal-travel curve; pressures above full scale saturate at 100 %.

What this module does not model: multi-PID OBD requests, ISO-TP multi-frame transfers, J1939
transport protocol, address claiming, or any signal not listed in `Profile.signals`.

>>> get_profile("j1939").bitrate_bps
250000
>>> get_profile("obd2").carried
('vehicle_speed', 'engine_rpm', 'throttle_position', 'coolant_temp', 'fuel_level')
>>> round(brake_pedal_percent(80.0), 3)
50.0
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cantools
import numpy as np

from harness.wire.signals import PHYSICAL_RANGE, SIGNALS

DBC_DIR = Path(__file__).with_name("dbc")

#: Brake pressure that corresponds to 100 % brake pedal position on J1939 (see module docstring).
BRAKE_PRESSURE_AT_FULL_PEDAL_BAR: float = PHYSICAL_RANGE["brake_pressure"][1]


def brake_pedal_percent(brake_pressure_bar: float) -> float:
    """Brake pedal position (%) that carries `brake_pressure_bar` on J1939; not clamped."""
    return brake_pressure_bar * 100.0 / BRAKE_PRESSURE_AT_FULL_PEDAL_BAR


def brake_pressure_bar(brake_pedal_percent_value: float) -> float:
    """Inverse of `brake_pedal_percent`: the plant brake pressure (bar) a pedal position stands for."""
    return brake_pedal_percent_value * BRAKE_PRESSURE_AT_FULL_PEDAL_BAR / 100.0


@dataclass(frozen=True)
class BusSignal:
    """One plant channel carried by one DBC signal.

    `bus_per_plant_unit` converts the plant's unit into the bus signal's unit (1.0 almost everywhere;
    the brake's bar-to-pedal-% factor on J1939). `pid` is the OBD-II service 01 PID (obd2 only).
    """

    channel: str
    message: str
    signal: str
    pid: int | None = None
    bus_per_plant_unit: float = 1.0

    def to_bus(self, plant_value: float) -> float:
        return plant_value * self.bus_per_plant_unit

    def from_bus(self, bus_value: float) -> float:
        return bus_value / self.bus_per_plant_unit


@dataclass(frozen=True)
class Profile:
    """A vehicle profile: its DBC, bitrate, identifier width and signal bindings."""

    name: str
    dbc_file: str
    bitrate_bps: int
    id_bits: int
    signals: tuple[BusSignal, ...]

    @property
    def dbc_path(self) -> Path:
        return DBC_DIR / self.dbc_file

    @property
    def extended_ids(self) -> bool:
        return self.id_bits == 29

    @property
    def carried(self) -> tuple[str, ...]:
        """Which of the ten `harness.wire.signals.SIGNALS` this bus carries, in feature order."""
        on_bus = {binding.channel for binding in self.signals}
        return tuple(name for name in SIGNALS if name in on_bus)

    @property
    def not_carried(self) -> tuple[str, ...]:
        """The ten signals this bus does not carry: the unit must measure them itself."""
        return tuple(name for name in SIGNALS if name not in self.carried)

    def binding(self, channel: str) -> BusSignal:
        """The bus signal that carries plant `channel`; ValueError lists the carried channels."""
        for candidate in self.signals:
            if candidate.channel == channel:
                return candidate
        choices = ", ".join(b.channel for b in self.signals)
        raise ValueError(f"profile '{self.name}' does not carry channel '{channel}'; it carries: {choices}")


_OBD_RESPONSE = "OBD2_RESPONSE"

PROFILES: dict[str, Profile] = {
    "obd2": Profile(
        name="obd2",
        dbc_file="obd2.dbc",
        bitrate_bps=500_000,
        id_bits=11,
        signals=(
            BusSignal("engine_load", _OBD_RESPONSE, "EngineLoad", pid=0x04),
            BusSignal("coolant_temp", _OBD_RESPONSE, "CoolantTemp", pid=0x05),
            BusSignal("engine_rpm", _OBD_RESPONSE, "EngineRPM", pid=0x0C),
            BusSignal("vehicle_speed", _OBD_RESPONSE, "VehicleSpeed", pid=0x0D),
            BusSignal("intake_air_temp", _OBD_RESPONSE, "IntakeAirTemp", pid=0x0F),
            BusSignal("maf", _OBD_RESPONSE, "MAF", pid=0x10),
            BusSignal("throttle_position", _OBD_RESPONSE, "ThrottlePosition", pid=0x11),
            BusSignal("fuel_level", _OBD_RESPONSE, "FuelTankLevel", pid=0x2F),
            BusSignal("battery_voltage", _OBD_RESPONSE, "ControlModuleVoltage", pid=0x42),
        ),
    ),
    "j1939": Profile(
        name="j1939",
        dbc_file="j1939.dbc",
        bitrate_bps=250_000,
        id_bits=29,
        signals=(
            BusSignal("engine_rpm", "EEC1", "EngineSpeed"),
            BusSignal("throttle_position", "EEC2", "AccelPedalPos1"),
            BusSignal("brake_pressure", "EBC1", "BrakePedalPos", bus_per_plant_unit=brake_pedal_percent(1.0)),
            BusSignal("acceleration_x", "VDC2", "LongitudinalAcceleration"),
            BusSignal("vehicle_speed", "CCVS1", "WheelBasedVehicleSpeed"),
            BusSignal("fuel_rate", "LFE1", "EngineFuelRate"),
            BusSignal("coolant_temp", "ET1", "EngineCoolantTemp"),
            BusSignal("fuel_level", "DD", "FuelLevel1"),
            BusSignal("latitude", "VP", "Latitude"),
            BusSignal("longitude", "VP", "Longitude"),
            BusSignal("altitude", "VDS", "Altitude"),
        ),
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; an unknown name raises ValueError listing the choices."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown vehicle profile '{name}'; expected one of: {', '.join(sorted(PROFILES))}"
        ) from None


@cache
def load_database(profile: str) -> cantools.database.Database:
    """The cantools database of `profile`, parsed once per process.

    The returned object is shared between callers: treat it as read-only.
    """
    return cantools.database.load_file(str(get_profile(profile).dbc_path), strict=True)


def as_received(profile: str, readings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Readings as the unit receives them over `profile`'s bus: each carried signal rounded to its bus
    resolution and clamped to its bus range (what encoding and decoding through the DBC does); signals the
    bus does not carry pass unchanged (the unit measures them itself). NaN (no reading) stays NaN.

    Training data goes through this so that models see what the unit sees: a coolant temperature that OBD-II
    sends in whole degrees has no sensor noise left, and a model trained on noisy readings would call every
    warm engine's coolant sensor stuck.

    >>> as_received("obd2", {"coolant_temp": np.array([87.4, 87.6])})["coolant_temp"].tolist()
    [87.0, 88.0]
    """
    chosen = get_profile(profile)
    database = load_database(profile)
    out = dict(readings)
    for binding in chosen.signals:
        if binding.channel not in readings:
            continue
        signal = database.get_message_by_name(binding.message).get_signal_by_name(binding.signal)
        scale, offset = float(signal.scale), float(signal.offset)
        lo = signal.minimum if signal.minimum is not None else -np.inf
        hi = signal.maximum if signal.maximum is not None else np.inf
        bus = np.clip(np.asarray(readings[binding.channel], dtype=float) * binding.bus_per_plant_unit, lo, hi)
        raw = np.round((bus - offset) / scale)
        out[binding.channel] = (raw * scale + offset) / binding.bus_per_plant_unit
    return out


def j1939_valid_max(length_bits: int) -> int:
    """Largest raw value that is data, per SAE J1939-71's transmitted ranges (above it: error / not available)."""
    if length_bits in (8, 16, 32):
        return (0xFA << (length_bits - 8)) | ((1 << (length_bits - 8)) - 1)
    return (1 << length_bits) - 2  # discrete or odd-sized fields: all ones is "not available"
