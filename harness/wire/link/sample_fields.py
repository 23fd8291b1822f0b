"""How dtg-link-v2 packs the ten signals of a sample record: fixed-point, one field per signal.

`SAMPLE_FIELDS` gives each signal's struct type, resolution and reserved "not available" code;
`SAMPLE_STRUCT` is the 26-byte payload they make; `as_sampled` rounds readings the way the link does, so
training data matches what the app receives. Nothing here frames or checks bytes (`dtg_link_v2` does).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from harness.wire.signals import SIGNALS, UNITS

__all__ = ["SAMPLE_FIELDS", "SAMPLE_STRUCT", "SampleField", "as_sampled"]


@dataclass(frozen=True)
class SampleField:
    """How one signal is packed in a dtg-link-v2 sample record: ``raw = round(value * counts_per_unit)``."""

    name: str
    unit: str
    struct_code: str  # "H" uint16, "h" int16, "i" int32
    counts_per_unit: int

    @property
    def not_available(self) -> int:
        """The reserved raw code for "no reading" (NaN): the one value saturation never produces."""
        return {"H": 0xFFFF, "h": -0x8000, "i": -0x80000000}[self.struct_code]

    @property
    def raw_range(self) -> tuple[int, int]:
        return {"H": (0, 0xFFFE), "h": (-0x7FFF, 0x7FFF), "i": (-0x7FFFFFFF, 0x7FFFFFFF)}[self.struct_code]

    @property
    def value_range(self) -> tuple[float, float]:
        lo, hi = self.raw_range
        return lo / self.counts_per_unit, hi / self.counts_per_unit

    @property
    def resolution(self) -> float:
        return 1.0 / self.counts_per_unit

    def to_raw(self, value: float | None) -> int:
        """Fixed-point code of `value`; out-of-range values saturate (as a firmware's conversion would)."""
        if value is None or math.isnan(value):
            return self.not_available
        lo, hi = self.raw_range
        if math.isinf(value):
            return hi if value > 0 else lo
        return min(max(round(value * self.counts_per_unit), lo), hi)

    def from_raw(self, raw: int) -> float | None:
        return None if raw == self.not_available else raw / self.counts_per_unit


_SAMPLE_RESOLUTION: dict[str, tuple[str, int]] = {
    # signal: (struct code, counts per unit). Unsigned where the quantity cannot be negative.
    "vehicle_speed": ("H", 100),  # 0.01 km/h, 0..655.34
    "engine_rpm": ("H", 4),  # 0.25 rpm (OBD-II PID 0x0C's own resolution), 0..16383.5
    "throttle_position": ("H", 100),  # 0.01 %, 0..655.34
    "brake_pressure": ("H", 100),  # 0.01 bar, 0..655.34
    "coolant_temp": ("h", 100),  # 0.01 degC, ±327.67
    "fuel_level": ("H", 100),  # 0.01 %, 0..655.34
    "acceleration_x": ("h", 1000),  # 0.001 m/s², ±32.767 (±3.3 g, a usual accelerometer range)
    "latitude": ("i", 10_000_000),  # 1e-7 deg (~1.1 cm), ±214.7
    "longitude": ("i", 10_000_000),  # 1e-7 deg
    "altitude": ("i", 100),  # 0.01 m, ±21474836
}

#: The sample record's fields, in wire order (= `harness.wire.signals.SIGNALS`).
SAMPLE_FIELDS: tuple[SampleField, ...] = tuple(
    SampleField(name, UNITS[name], *_SAMPLE_RESOLUTION[name]) for name in SIGNALS
)
SAMPLE_STRUCT = struct.Struct(">" + "".join(f.struct_code for f in SAMPLE_FIELDS))


def as_sampled(readings: dict) -> dict:
    """Readings as a dtg-link-v2 sample record delivers them to the app: each of the ten signals rounded to
    its field's resolution and saturated to its range; NaN stays NaN. Training data goes through this (after
    `harness.wire.dbc.as_received`) so that models see the values the app sees.
    """
    out = dict(readings)
    for spec in SAMPLE_FIELDS:
        if spec.name in readings:
            lo, hi = spec.value_range
            values = np.asarray(readings[spec.name], dtype=float)
            out[spec.name] = np.clip(np.round(values * spec.counts_per_unit), lo * spec.counts_per_unit,
                                     hi * spec.counts_per_unit) / spec.counts_per_unit
    return out

