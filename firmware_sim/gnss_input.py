"""The unit's GNSS input, simulated: NMEA sentences on a serial port → the latest fix → position readings.

On a rig with a GNSS feed (`harness.rig.gnss_feed.NmeaFeed` writing into a pty, or a receiver on a real serial
line), the STM32 takes its position from NMEA 0183 on its GNSS serial input instead of from the plant. `GnssInput`
is that input for the simulated firmware: a reader thread (`harness.wire.nmea_reader.NmeaReader`, the strict
parser) holds the latest fix, and calling it gives the unit's local-sensor readings in the shape
`Stm32Sim(local_sensors=...)` takes: ``latitude`` and ``longitude`` from the latest GGA or RMC, ``altitude`` from
the latest GGA (RMC carries none), every other signal from the `other` local sensors it wraps. `Stm32Sim` needs no
change::

    with GnssInput(gnss_pty.port, other=trace.reading_at) as gnss:
        firmware = Stm32Sim(bus, uart, clock, local_sensors=gnss, ...)

A sentence without a fix (GGA quality 0, RMC status V: what `NmeaFeed` writes for a NaN reading) makes the
position no reading (NaN) until a fix comes back, as a receiver that lost its fix does. With `max_fix_age_s`
(on the `now_s` clock: pass the scenario clock's `now_s` on a simulated rig) a fix older than that is no
reading either, as when the receiver falls silent; by default the last fix is held, as `Stm32Sim` holds bus values.

What it does not model: the firmware's own NMEA parser (the harness's strict one stands in: a real firmware may
accept sentences it rejects), fix interpolation or dead reckoning between epochs, the receiver's speed and
course (the unit's speed comes from the bus), and the time the sentences take on a 9600 baud line (a pty
delivers them at once). By default the unit uses the latest fix whatever its epoch, so at a high time scale a
sample may carry the position of the epoch before or after its own tick; given the feed's `start_utc` (the UTC
time of scenario second 0), a sample takes the fix of its own epoch once that has arrived, as a unit whose
sample tick and receiver epochs share UTC seconds does.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import time as time_of_day

import serial

from firmware_sim.stm32 import LocalSensors
from harness.wire.nmea_parser import NmeaFix
from harness.wire.nmea_reader import DEFAULT_BAUDRATE, GnssError, NmeaReader, open_serial

__all__ = ["GNSS_SIGNALS", "GnssInput", "GnssReading"]

#: The signals the GNSS input provides; `GnssInput` takes every other one from its `other` local sensors.
GNSS_SIGNALS = ("latitude", "longitude", "altitude")
#: With `start_utc`, fixes of this many past epochs are kept to be looked up by a sample's time.
EPOCHS_KEPT = 10


def _seconds_of_day(t: time_of_day) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


@dataclass(frozen=True)
class GnssReading:
    """The position the unit holds: NaN where it has none. `time_utc` is the time of day of the sentence that last
    changed it (None before the first one); `received_s` when that sentence was read (the `now_s` clock)."""

    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    time_utc: time_of_day | None
    received_s: float

    @property
    def has_fix(self) -> bool:
        return not math.isnan(self.latitude_deg)


_NO_READING = GnssReading(math.nan, math.nan, math.nan, None, math.nan)


class GnssInput(NmeaReader):
    """The simulated unit's GNSS serial input: reads NMEA from `port`, holds the latest fix, and gives readings.

    `port` is a pyserial `Serial` (the caller keeps owning it) or a device path, opened here at `baudrate` 8N1
    (so a wrong path fails at once, naming it) and closed by `stop()`. Calling the object with a scenario time
    returns ``other(t_s)`` with the three `GNSS_SIGNALS` replaced by the latest fix (NaN without one). Start it
    before the firmware and stop it after. `stats` and `last_error` count and name what the parser rejected.
    """

    def __init__(
        self,
        port: serial.Serial | str,
        other: LocalSensors | None = None,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        max_fix_age_s: float | None = None,
        now_s: Callable[[], float] = time.monotonic,
        read_timeout_s: float = 0.05,
        start_utc: datetime | None = None,
    ) -> None:
        if max_fix_age_s is not None and not max_fix_age_s > 0:
            raise ValueError(f"max_fix_age_s must be > 0 seconds (or None: hold the last fix), got {max_fix_age_s!r}")
        self._owned_port: serial.Serial | None = None
        if isinstance(port, str):
            try:
                port = open_serial(port, baudrate, read_timeout_s, None)
            except (serial.SerialException, OSError, ValueError) as error:
                raise GnssError(f"cannot open GNSS input {port} at {baudrate} baud 8N1: {error}") from error
            self._owned_port = port
        self._other = other
        self._max_fix_age_s = max_fix_age_s
        self._now_s = now_s
        self._reading = _NO_READING
        self._fix_lock = threading.Lock()
        self._start_of_day_s = None if start_utc is None else _seconds_of_day(start_utc.time())
        self._by_epoch: dict[int, GnssReading] = {}
        super().__init__(port, baudrate=baudrate, keep_fixes=False, on_fix=self._on_fix, read_timeout_s=read_timeout_s)

    @property
    def reading(self) -> GnssReading:
        """The position held now (NaN where none, or where older than `max_fix_age_s`)."""
        with self._fix_lock:
            reading = self._reading
        if (self._max_fix_age_s is not None and reading.has_fix
                and self._now_s() - reading.received_s > self._max_fix_age_s):
            return GnssReading(math.nan, math.nan, math.nan, reading.time_utc, reading.received_s)
        return reading

    def __call__(self, t_s: float) -> Mapping[str, float]:
        """The unit's local-sensor readings at scenario time `t_s`: `other`'s, with the position from the GNSS."""
        readings = dict(self._other(t_s)) if self._other is not None else {}
        reading = self.reading
        if self._start_of_day_s is not None:
            # The fix of the sample's own epoch when it has arrived: the unit samples on whole seconds, as the
            # receiver's epochs are, and at a high time scale the latest fix may be a second off either way.
            with self._fix_lock:
                reading = self._by_epoch.get(int(round(t_s)), reading)
        readings.update(latitude=reading.latitude_deg, longitude=reading.longitude_deg, altitude=reading.altitude_m)
        return readings

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, and close the port if the input opened it (started or not)."""
        try:
            super().stop(timeout_s)
        finally:
            if self._owned_port is not None:
                self._owned_port.close()

    def _describe(self) -> str:
        return f"GNSS input on {self._port_name}"

    def _on_fix(self, fix: NmeaFix) -> None:
        received_s = self._now_s()
        with self._fix_lock:
            held = self._reading
            if not fix.valid or fix.latitude_deg is None or fix.longitude_deg is None:
                self._reading = GnssReading(math.nan, math.nan, math.nan, fix.time_utc, received_s)
            elif fix.sentence_type == "GGA":
                altitude = math.nan if fix.altitude_m is None else fix.altitude_m
                self._reading = GnssReading(fix.latitude_deg, fix.longitude_deg, altitude, fix.time_utc, received_s)
            else:  # RMC: position only; the altitude of the last GGA stays
                self._reading = GnssReading(fix.latitude_deg, fix.longitude_deg, held.altitude_m, fix.time_utc,
                                            received_s)
            if self._start_of_day_s is not None and fix.time_utc is not None:
                epoch = int(round(_seconds_of_day(fix.time_utc) - self._start_of_day_s)) % 86400
                self._by_epoch[epoch] = self._reading
                for old in [e for e in self._by_epoch if e < epoch - EPOCHS_KEPT]:
                    del self._by_epoch[old]
