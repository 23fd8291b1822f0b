"""The GNSS feed of a rig: a drive's position as NMEA 0183 RMC and GGA sentences on a serial line, on the
scenario clock, as a GNSS receiver (a u-blox module) writes them to the unit's GNSS input.

`NmeaFeed` (a `Worker` thread) writes one RMC and one GGA per epoch (1, 5 or 10 Hz of scenario time) onto a
serial port or a pty's device end, with the builders of `harness.wire.nmea`. Pure parts: `trace_position_source`
(what the receiver reports along a `Trace`) and the baud-rate capacity check (`epoch_bytes_max`, `line_load`).

From a `Trace` (`trace_position_source`): latitude, longitude and altitude are the trace's *readings*
(`Trace.signals`: a `gps_jump` or a sensor fault on them is what the receiver reports), speed and course its
*truth* (a receiver measures velocity from Doppler, independently of a position error; course is the bearing
of the true track, held while the vehicle stands still). A reading of NaN (a dropout) gives a no-fix epoch.

What it does not model: the receiver's own position noise (the trace's own, if any, is passed through), time to
first fix, and the line's baud rate in simulation (a pty moves bytes as fast as the kernel does; `NmeaFeed`
checks the configured baud rate can carry its sentences on a real line, see `line_load`). The sentences
themselves, and what they do not carry, are `harness.wire.nmea`'s.
"""
from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple, Protocol

import numpy as np

from harness.core.clock import ScenarioClock
from harness.core.errors import DtgHilError
from harness.core.worker import Worker
from harness.rig.restbus import BroadcastSchedule
from harness.wire.nmea import LINE_END, MINUTE_DECIMALS, TALKERS, gga_sentence, rmc_sentence, scenario_utc
from harness.wire.nmea_reader import DEFAULT_BAUDRATE, GnssError, open_serial
from harness.wire.signals import PHYSICAL_RANGE, Trace

__all__ = [
    "FEED_RATES_HZ",
    "GnssPosition",
    "NmeaCapacityError",
    "NmeaFeed",
    "NmeaFeedStats",
    "epoch_bytes_max",
    "line_load",
    "trace_position_source",
]

#: Epoch rates `NmeaFeed` writes at (u-blox modules output 1 Hz by default, 5 or 10 Hz when configured).
FEED_RATES_HZ = (1, 5, 10)
#: 8N1: a start bit, 8 data bits, a stop bit per byte.
BITS_PER_BYTE = 10
#: Baud rates a GNSS module's UART is usually set to; the capacity error suggests the first that fits.
STANDARD_BAUDRATES = (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800)


class NmeaCapacityError(DtgHilError, ValueError):
    """The configured baud rate cannot carry the sentences at the configured rate."""


# ---------------------------------------------------------------------------------------- position sources


class GnssPosition(NamedTuple):
    """What a position source gives for one epoch. NaN latitude, longitude or altitude: no fix."""

    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    speed_kmh: float
    course_deg: float


PositionSource = Callable[[float], tuple[float, float, float, float, float]]

#: Below this speed the course is held (receivers freeze heading when the vehicle stands still).
COURSE_HOLD_BELOW_KMH = 1.0


def _track_course_deg(latitude: np.ndarray, longitude: np.ndarray, speed_kmh: np.ndarray) -> np.ndarray:
    """Course over ground of each sample: the bearing from the previous sample, held while standing still."""
    n = len(latitude)
    if n < 2:
        return np.zeros(n)
    north = np.diff(latitude)
    east = np.diff(longitude) * np.cos(np.radians(latitude[1:]))
    raw = np.concatenate([[0.0], np.degrees(np.arctan2(east, north)) % 360.0])
    moving = np.concatenate([[False], (speed_kmh[1:] >= COURSE_HOLD_BELOW_KMH) & ((north != 0) | (east != 0))])
    moving &= np.isfinite(raw)
    if not moving.any():
        return np.zeros(n)
    last_moving = np.maximum.accumulate(np.where(moving, np.arange(n), 0))
    course = raw[last_moving]
    course[: int(np.argmax(moving))] = raw[int(np.argmax(moving))]  # before the first move: the first course
    return course


def trace_position_source(trace: Trace) -> Callable[[float], GnssPosition]:
    """A position source reading `trace`: position and altitude from its readings (faults included), speed and
    course from its truth (see the module docstring), sample-and-hold at scenario time `t_s`."""
    truth = trace.truth if "latitude" in trace.truth else trace.signals
    speed = np.asarray(truth["vehicle_speed"], dtype=float)
    course = _track_course_deg(np.asarray(truth["latitude"], dtype=float),
                               np.asarray(truth["longitude"], dtype=float), speed)
    latitude, longitude = trace.signals["latitude"], trace.signals["longitude"]
    altitude = trace.signals["altitude"]

    def at(t_s: float) -> GnssPosition:
        i = trace.index_at(t_s)
        return GnssPosition(float(latitude[i]), float(longitude[i]), float(altitude[i]), float(speed[i]),
                            float(course[i]))

    return at


# ---------------------------------------------------------------------------------- line capacity (baud rate)


def epoch_bytes_max(talker: str = "GP", minute_decimals: int = 4) -> int:
    """Bytes of the longest RMC + GGA pair (CR LF included) `NmeaFeed` writes for positions within the
    signals' physical ranges (`harness.wire.signals.PHYSICAL_RANGE`)."""
    worst = datetime(2099, 12, 31, 23, 59, 59)
    altitude_low = min(PHYSICAL_RANGE["altitude"][0], -100.0)
    speed_high = PHYSICAL_RANGE["vehicle_speed"][1]
    gga = gga_sentence(worst, -89.5, -179.5, altitude_low, talker=talker, geoid_separation_m=-100.0,
                       minute_decimals=minute_decimals)
    rmc = rmc_sentence(worst, -89.5, -179.5, speed_high, 359.99, talker=talker, minute_decimals=minute_decimals)
    return len(gga) + len(rmc) + 2 * len(LINE_END)


def line_load(baudrate: int, rate_hz: float, epoch_bytes: int) -> float:
    """The fraction of an 8N1 line at `baudrate` that `epoch_bytes` per epoch at `rate_hz` take (> 1: does not fit).

    >>> round(line_load(9600, 10, 150), 3)
    1.562
    """
    if baudrate <= 0:
        raise ValueError(f"baudrate must be > 0, got {baudrate!r}")
    return rate_hz * epoch_bytes / (baudrate / BITS_PER_BYTE)


# ------------------------------------------------------------------------------------------------ the feed


class SerialLike(Protocol):
    """What `NmeaFeed` writes to: a pyserial `Serial`, or a pty's device end (`firmware_sim.uart.PtyDeviceWriter`)."""

    def write(self, data: bytes) -> int | None: ...

    def flush(self) -> None: ...


@dataclass
class NmeaFeedStats:
    """What the feed wrote: epochs (one RMC and one GGA each), of them without a fix, sentences, bytes, and
    epochs skipped because the feed fell more than `max_lag_wall_s` behind (the host was busy)."""

    epochs: int = 0
    no_fix_epochs: int = 0
    sentences_written: int = 0
    bytes_written: int = 0
    epochs_skipped: int = 0


class NmeaFeed(Worker):
    """Writes RMC and GGA sentences of `source`'s position to `port` at `rate_hz` of scenario time on `clock`.

    `port` is a pyserial `Serial` (or anything with `write`, such as a pty's device end; the caller keeps
    owning it), or a device path that the feed opens at `baudrate` and closes when it stops. `source` is a
    `Trace` (see `trace_position_source`) or a callable ``t_s -> (latitude_deg, longitude_deg, altitude_m,
    speed_kmh, course_deg)``. Epochs fall on whole multiples of ``1 / rate_hz`` scenario seconds, from
    `first_epoch_s` (default: the first one at or after `start()`; one already past, such as 0 on a clock that
    started a moment ago, goes out at once unless it is more than `max_lag_wall_s` old); epoch time ``t_s`` is
    written as UTC ``start_utc + t_s``. The feed runs until `stop()` or until scenario time reaches `end_s`
    (default: a trace's end, otherwise never).

    At a high time scale epochs go out in batches, one write per wake-up (at most every `min_wall_sleep_s` of
    wall time), each epoch with its own scenario time, as `harness.rig.restbus.RestBus` batches frames. A feed
    more than `max_lag_wall_s` of wall time behind skips that backlog and counts it.

    Baud-rate capacity: at construction the feed compares the bytes per second of its longest epoch
    (`epoch_bytes_max`) at `rate_hz` with what `baudrate` carries (baud / 10 bytes/s, 8N1), at real time:
    `NmeaCapacityError` when they do not fit, or a warning if `on_overload="warn"`. The baud rate is
    `baudrate` if given, else the port's own (`Serial.baudrate`), else `DEFAULT_BAUDRATE`.

    A write that times out (nobody reads the line: `serial.SerialTimeoutException` after `write_timeout_s`)
    ends the feed; `stop()` re-raises it as `GnssError`.
    """

    error_type = GnssError

    def __init__(
        self,
        port: SerialLike | str,
        source: PositionSource | Trace,
        clock: ScenarioClock,
        *,
        start_utc: datetime,
        baudrate: int | None = None,
        rate_hz: int = 1,
        talker: str = "GP",
        minute_decimals: int = MINUTE_DECIMALS,
        end_s: float | None = None,
        first_epoch_s: float | None = None,
        on_overload: str = "error",
        min_wall_sleep_s: float = 0.002,
        max_lag_wall_s: float = 0.25,
        write_timeout_s: float | None = 1.0,
    ) -> None:
        if rate_hz not in FEED_RATES_HZ:
            raise ValueError(f"rate_hz must be one of: {', '.join(map(str, FEED_RATES_HZ))}; got {rate_hz!r}")
        if talker not in TALKERS:
            raise ValueError(f"talker must be one of: {', '.join(TALKERS)}; got {talker!r}")
        if on_overload not in ("error", "warn"):
            raise ValueError(f"on_overload must be one of: error, warn; got {on_overload!r}")
        if isinstance(port, str):
            self._port_name = port
        else:
            self._port_name = str(getattr(port, "port", None) or type(port).__name__)
        super().__init__(f"nmea-feed-{self._port_name}")
        self._baudrate = int(baudrate or getattr(port, "baudrate", None) or DEFAULT_BAUDRATE)
        self._epoch_bytes = epoch_bytes_max(talker, minute_decimals)
        self._load = line_load(self._baudrate, rate_hz, self._epoch_bytes)
        if self._load > 1.0:
            fitting = [b for b in STANDARD_BAUDRATES if line_load(b, rate_hz, self._epoch_bytes) <= 1.0]
            fitting_rates = [r for r in FEED_RATES_HZ if line_load(self._baudrate, r, self._epoch_bytes) <= 1.0]
            message = (
                f"RMC+GGA at {rate_hz} Hz need up to {rate_hz * self._epoch_bytes} bytes/s but {self._baudrate} "
                f"baud 8N1 carries {self._baudrate // BITS_PER_BYTE} bytes/s ({self._load:.0%} of the line); "
                f"use baudrate >= {fitting[0] if fitting else 'a faster line'} or rate_hz in "
                f"{{{', '.join(map(str, fitting_rates)) or 'none'}}}"
            )
            if on_overload == "error":
                raise NmeaCapacityError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        self._source: PositionSource = trace_position_source(source) if isinstance(source, Trace) else source
        if end_s is None and isinstance(source, Trace):
            end_s = source.duration_s
        self._end_s = math.inf if end_s is None else float(end_s)
        if first_epoch_s is not None and not math.isclose(first_epoch_s * rate_hz, round(first_epoch_s * rate_hz)):
            raise ValueError(f"first_epoch_s must be a multiple of 1/rate_hz = {1 / rate_hz:g} s, "
                             f"got {first_epoch_s!r}")
        self._first_epoch_s = first_epoch_s
        self._clock = clock
        self._start_utc = start_utc
        self._rate_hz = rate_hz
        self._talker = talker
        self._minute_decimals = minute_decimals
        self._min_wall_sleep_s = min_wall_sleep_s
        self._max_lag_s = max_lag_wall_s * clock.time_scale
        self._owns_port = isinstance(port, str)
        self._port_arg = port
        self._write_timeout_s = write_timeout_s
        self._port: SerialLike | None = None if isinstance(port, str) else port
        self._stats = NmeaFeedStats()
        self._lock = threading.Lock()

    # -- public API ---------------------------------------------------------------------------------

    @property
    def baudrate(self) -> int:
        return self._baudrate

    @property
    def line_load(self) -> float:
        """The fraction of the line the feed's longest epochs take at real time (see `line_load`)."""
        return self._load

    @property
    def stats(self) -> NmeaFeedStats:
        with self._lock:
            return replace(self._stats)

    def epoch_sentences(self, t_s: float) -> list[str]:
        """The RMC and GGA sentences (without CR LF) of the epoch at scenario time `t_s`, in the order a u-blox
        receiver writes them. A NaN latitude, longitude or altitude from the source gives the no-fix forms."""
        return self._epoch(t_s)[0]

    def _epoch(self, t_s: float) -> tuple[list[str], bool]:
        latitude, longitude, altitude, speed, course = (float(v) for v in self._source(t_s))
        moment = scenario_utc(self._start_utc, t_s)
        has_fix = all(math.isfinite(v) for v in (latitude, longitude, altitude))
        lat = latitude if has_fix else None
        lon = longitude if has_fix else None
        sentences = [
            rmc_sentence(moment, lat, lon, speed if math.isfinite(speed) else None,
                         course if math.isfinite(course) else None, talker=self._talker,
                         minute_decimals=self._minute_decimals),
            gga_sentence(moment, lat, lon, altitude if has_fix else None, talker=self._talker,
                         minute_decimals=self._minute_decimals),
        ]
        return sentences, has_fix

    def __repr__(self) -> str:
        return f"<NmeaFeed {self._describe()} state={self._state} {self.stats}>"

    # -- worker -------------------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"NMEA feed on {self._port_name} ({self._rate_hz} Hz, {self._baudrate} baud)"

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + amount)

    def _work(self) -> None:
        if self._owns_port:
            self._port = open_serial(str(self._port_arg), self._baudrate, 0.05, self._write_timeout_s)
        try:
            self._play()
        finally:
            if self._owns_port and self._port is not None:
                self._port.close()  # type: ignore[attr-defined]

    def _play(self) -> None:
        assert self._port is not None
        period_s = 1.0 / self._rate_hz
        if self._first_epoch_s is None:
            first_s = math.ceil(self._clock.now_s() * self._rate_hz - 1e-9) / self._rate_hz
        else:
            first_s = self._first_epoch_s
        schedule = BroadcastSchedule({"epoch": period_s}, start_s=first_s, max_lag_s=self._max_lag_s)
        while not self._stop_requested.is_set():
            now_s = self._clock.now_s()
            skipped_before = schedule.skipped
            batch: list[str] = []
            no_fix = 0
            for t_due, _ in schedule.due(min(now_s, self._end_s)):
                if t_due >= self._end_s:
                    continue
                sentences, has_fix = self._epoch(t_due)
                no_fix += not has_fix
                batch += sentences
            if batch:
                data = "".join(s + LINE_END for s in batch).encode("ascii")
                self._port.write(data)
                self._port.flush()
                self._count(epochs=len(batch) // 2, no_fix_epochs=no_fix, sentences_written=len(batch),
                            bytes_written=len(data))
            if schedule.skipped != skipped_before:
                self._count(epochs_skipped=schedule.skipped - skipped_before)
            if now_s >= self._end_s:
                return
            wait_wall_s = max(self._min_wall_sleep_s, self._clock.wall_s_until(schedule.next_due_s()))
            self._stop_requested.wait(wait_wall_s)
