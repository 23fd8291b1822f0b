"""The unit's own sensors as a host build reads them: the board's brake-pressure transducer on ADC1 and its
accelerometer on I2C1, mirrored from the sample firmware's ``Core/Inc/dtg_sensors.h`` (docs/firmware.md, "The unit's
sensors").

`sensor_commands(reading)` turns the plant's readings of the signals the vehicle bus does not carry (on OBD-II:
brake pressure and acceleration) into the host HAL's control lines, keyed so that only what changed is sent:

- ``V 0 <counts>``: ADC1's IN0, the brake-pressure transducer (ratiometric: 410 counts at 0 bar, 3686 at 160 bar;
  a reading beyond saturates, as the voltage would). A missing reading (NaN: a sensor dropout) is an open input,
  0 counts, which the firmware reports as no reading.
- ``D 106 <0|1>`` and ``R 106 <register> <value>``: the accelerometer at 7-bit address 0x6A, an LSM6DSO-type part
  (WHO_AM_I 0x6C, +-2 g at 0.061 mg per count, OUTX_L_A/OUTX_H_A little-endian). A missing reading is a part that
  does not answer.

>>> commands = sensor_commands({"brake_pressure": 0.0, "acceleration_x": -0.5})
>>> [commands[key] for key in ("brake", "accel", "OUTX_L_A", "OUTX_H_A")]
['V 0 410', 'D 106 1', 'R 106 40 188', 'R 106 41 252']
>>> sensor_commands({"brake_pressure": 200.0, "acceleration_x": float("nan")})["brake"], \\
...     sensor_commands({"acceleration_x": float("nan")})["accel"]
('V 0 4095', 'D 106 0')
"""
from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["ACCEL_ADDRESS", "SENSED", "sensor_commands"]

#: The signals the board's own sensors read (the harness feeds them through the ADC and the I2C bus).
SENSED = ("brake_pressure", "acceleration_x")
ADC_FULL_SCALE = 4095
_BRAKE_ZERO, _BRAKE_COUNTS_PER_BAR = 410, 3276 / 160.0  # 0 bar at 410 counts, 160 bar at 3686
ACCEL_ADDRESS = 0x6A
_WHO_AM_I, _WHO_AM_I_VALUE, _OUTX_L_A = 0x0F, 0x6C, 0x28
_ACCEL_MS2_PER_COUNT = 0.061e-3 * 9.80665


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def sensor_commands(reading: Mapping[str, float | None]) -> dict[str, str]:
    """Control lines (key -> line) that set the board's sensors to `reading` (signal -> value)."""
    brake = reading.get("brake_pressure")
    brake_counts = 0 if _missing(brake) else min(max(round(_BRAKE_ZERO + brake * _BRAKE_COUNTS_PER_BAR), 0),
                                                   ADC_FULL_SCALE)
    out = {"brake": f"V 0 {brake_counts}"}
    accel = reading.get("acceleration_x")
    out["accel"] = f"D {ACCEL_ADDRESS} {0 if _missing(accel) else 1}"
    out["WHO_AM_I"] = f"R {ACCEL_ADDRESS} {_WHO_AM_I} {_WHO_AM_I_VALUE}"
    if not _missing(accel):
        counts = min(max(round(accel / _ACCEL_MS2_PER_COUNT), -0x8000), 0x7FFF) & 0xFFFF
        out["OUTX_L_A"] = f"R {ACCEL_ADDRESS} {_OUTX_L_A} {counts & 0xFF}"
        out["OUTX_H_A"] = f"R {ACCEL_ADDRESS} {_OUTX_L_A + 1} {counts >> 8}"
    return out
