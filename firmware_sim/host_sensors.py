"""The unit's own sensors as a host build reads them: the board's brake-pressure transducer and accelerometer, both on
I2C1, mirrored from the sample firmware's ``Core/Inc/dtg_sensors.h`` (docs/firmware.md, "The unit's sensors").

`sensor_commands(reading)` turns the plant's readings of the signals the vehicle bus does not carry (on OBD-II:
brake pressure and acceleration) into the host HAL's control lines, ``D <address> <0|1>`` (the part answers or
not) and ``R <address> <register> <value>`` (a register's byte), keyed so that only what changed is sent:

- 0x48, an ADS1115-type 16-bit ADC (+-6.144 V, 0.1875 mV a count; conversion register 0x00, big-endian) reading the
  ratiometric brake-pressure transducer: 0.5 V at 0 bar, 4.5 V at 160 bar (beyond: saturated, as the voltage
  would be). A missing reading (NaN: a dropout) is an open transducer, 0 V, which the firmware reports as no reading.
- 0x6A, an LSM6DSO-type accelerometer (WHO_AM_I 0x0F = 0x6C; +-2 g at 0.061 mg a count; x in OUTX_L_A/OUTX_H_A
  0x28/0x29, little-endian). A missing reading is a part that does not answer.

>>> commands = sensor_commands({"brake_pressure": 0.0, "acceleration_x": -0.5})
>>> [commands[key] for key in ("brake_hi", "brake_lo", "accel", "accel_lo", "accel_hi")]
['R 72 0 10', 'R 72 1 107', 'D 106 1', 'R 106 40 188', 'R 106 41 252']
>>> sensor_commands({"brake_pressure": float("nan"), "acceleration_x": float("nan")})["accel"]
'D 106 0'
"""
from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["ACCEL_ADDRESS", "BRAKE_ADDRESS", "SENSED", "sensor_commands"]

#: The signals the board's own sensors read (the harness sets what their parts answer on the I2C bus).
SENSED = ("brake_pressure", "acceleration_x")
BRAKE_ADDRESS, ACCEL_ADDRESS = 0x48, 0x6A
_VOLTS_PER_COUNT = 6.144 / 32768
_BRAKE_ZERO_V, _BRAKE_V_PER_BAR, _BRAKE_MAX_V = 0.5, 4.0 / 160.0, 5.0  # ratiometric, 5 V supply
_WHO_AM_I, _WHO_AM_I_VALUE, _OUTX_L_A = 0x0F, 0x6C, 0x28
_ACCEL_MS2_PER_COUNT = 0.061e-3 * 9.80665


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def sensor_commands(reading: Mapping[str, float | None]) -> dict[str, str]:
    """Control lines (key -> line) that set the board's sensors to `reading` (signal -> value)."""
    brake = reading.get("brake_pressure")
    volts = 0.0 if _missing(brake) else min(max(_BRAKE_ZERO_V + brake * _BRAKE_V_PER_BAR, 0.0), _BRAKE_MAX_V)
    brake_counts = min(round(volts / _VOLTS_PER_COUNT), 0x7FFF)
    out = {"brake": f"D {BRAKE_ADDRESS} 1", "brake_hi": f"R {BRAKE_ADDRESS} 0 {brake_counts >> 8}",
           "brake_lo": f"R {BRAKE_ADDRESS} 1 {brake_counts & 0xFF}"}
    accel = reading.get("acceleration_x")
    out["accel"] = f"D {ACCEL_ADDRESS} {0 if _missing(accel) else 1}"
    out["WHO_AM_I"] = f"R {ACCEL_ADDRESS} {_WHO_AM_I} {_WHO_AM_I_VALUE}"
    if not _missing(accel):
        counts = min(max(round(accel / _ACCEL_MS2_PER_COUNT), -0x8000), 0x7FFF) & 0xFFFF
        out["accel_lo"] = f"R {ACCEL_ADDRESS} {_OUTX_L_A} {counts & 0xFF}"
        out["accel_hi"] = f"R {ACCEL_ADDRESS} {_OUTX_L_A + 1} {counts >> 8}"
    return out
