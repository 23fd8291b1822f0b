"""A bench's sensor stimulator (``stm32.sensors: PORT``): what the unit's own sensors read, played from the drive.

On OBD-II the bus does not carry brake pressure and acceleration: a unit reads them with its own sensors (the brake
transducer through an ADC, an accelerometer on I2C; docs/firmware.md, "The unit's sensors"). On a bench they read the
bench, a unit at rest, unless something stimulates them. A bench that has a stimulator (an I2C target emulator standing
in for the ADC and the accelerometer) names its serial port in the rig file; the harness writes to it, at
`RATE_HZ` of scenario time, the lines that set what those parts answer at that instant, in the host HAL's format
(`firmware_sim.host_sensors.sensor_commands`: ``D <address> <0|1>``, ``R <address> <register> <value>``, one per
line, only those that changed). A sensor fault of the scenario (a stuck, drifting or missing brake reading) reaches
the unit that way, so the rig can make those signals misread (`RigConfig.injectable_signals`).

What it does not model: the sensors' own bandwidth and noise (the plant's readings are written as they are), the
line's baud rate.
"""
from __future__ import annotations

import math

import serial

from firmware_sim.host_sensors import sensor_commands
from harness.core.worker import Worker, WorkerError
from harness.wire.signals import Trace

__all__ = ["RATE_HZ", "SensorStimulus", "SensorStimulusError"]

#: How often (scenario seconds) the stimulator is told what the sensors read.
RATE_HZ = 10


class SensorStimulusError(WorkerError):
    """The stimulator's port could not be opened or written."""


class SensorStimulus(Worker):
    """Writes what the unit's sensors read (from `trace`, at `RATE_HZ` on `clock`) to the stimulator on `port`."""

    error_type = SensorStimulusError

    def __init__(self, port: str, trace: Trace, clock, *, end_s: float, baudrate: int = 115200) -> None:
        super().__init__(f"sensor-stimulus-{port}")
        self._port_name = port
        self._trace = trace
        self._clock = clock
        self._end_s = end_s
        self._baudrate = baudrate
        self._sent: dict[str, str] = {}
        self.lines_written = 0

    def _describe(self) -> str:
        return f"sensor stimulus on {self._port_name}"

    def _work(self) -> None:
        try:
            port = serial.Serial(self._port_name, self._baudrate, timeout=0.05, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as error:
            raise SensorStimulusError(f"cannot open the sensor stimulator {self._port_name}: {error}") from error
        try:
            tick = max(0, math.ceil(self._clock.now_s() * RATE_HZ))
            while not self._stop_requested.is_set() and tick / RATE_HZ < self._end_s:
                if not self._clock.sleep_until(tick / RATE_HZ, self._stop_requested):
                    break
                changed = {key: line for key, line in sensor_commands(self._trace.reading_at(tick / RATE_HZ)).items()
                           if self._sent.get(key) != line}
                if changed:
                    port.write("".join(line + "\n" for line in changed.values()).encode("ascii"))
                    self._sent.update(changed)
                    self.lines_written += len(changed)
                tick = max(tick + 1, math.floor(self._clock.now_s() * RATE_HZ))
        finally:
            port.close()
