"""The GNSS feed: the drive's position as NMEA 0183 GGA and RMC sentences on a serial line, as a GNSS receiver
(a u-blox module) writes them to the unit's GNSS input; and the strict parser that reads them back.

Pure parts: `nmea_checksum`, `gga_sentence`, `rmc_sentence` (builders), `parse_sentence` (the strict parser:
any input, str or bytes, either gives an `NmeaFix` or raises `NmeaError`, a ValueError naming the field and its
valid form), `NmeaStream` (splits a byte stream into lines and parses them, counting what it rejects),
`epoch_bytes_max` / `line_load` (the baud-rate capacity check) and `trace_position_source`.
Threads at the edge: `NmeaFeed` writes one RMC and one GGA per epoch (1, 5 or 10 Hz of scenario time) onto a
serial port on a `ScenarioClock`; `NmeaReader` reads a serial port and parses what arrives.

Sentences (NMEA 0183 v2.3 forms, with u-blox's field widths)::

    $GPGGA,hhmmss.ss,ddmm.mmmm,N,dddmm.mmmm,E,q,ss,h.hh,aaaa.a,M,g.g,M,,*CS
    $GPRMC,hhmmss.ss,A,ddmm.mmmm,N,dddmm.mmmm,E,k.kkk,c.cc,ddmmyy,,,A*CS

GGA fields: UTC time, latitude and hemisphere, longitude and hemisphere, fix quality (0 none, 1 GPS, 2 DGPS,
... 8 simulation), satellites used, HDOP, altitude above mean sea level (m), geoid separation (m), age of
DGPS corrections, DGPS station. RMC fields: UTC time, status (A valid, V invalid), position, speed over ground
(knots), course over ground (degrees true), date (ddmmyy), magnetic variation and its direction, mode
indicator (A autonomous, D differential, E estimated, N not valid, ...). The checksum is the XOR of every
character between ``$`` and ``*``, as two upper-case hex digits; a sentence ends with CR LF and is at most 82
characters long. A GNSS without a fix writes GGA with quality 0 and RMC with status V, position fields empty.

Time: scenario second ``t_s`` is UTC ``start_utc + t_s`` (a naive `start_utc` is taken as UTC), rounded to
the 10 ms that ``hhmmss.ss`` holds. Constant receiver state: fix quality 1 (GPS fix), 10 satellites, HDOP 0.9,
geoid separation 0.0 m (the route has no geoid model: its altitude is given as height above mean sea level).

From a `Trace` (`trace_position_source`): latitude, longitude and altitude are the trace's *readings*
(`Trace.signals`: a `gps_jump` or a sensor fault on them is what the receiver reports), speed and course its
*truth* (a receiver measures velocity from Doppler, independently of a position error; course is the bearing
of the true track, held while the vehicle stands still). A reading of NaN (a dropout) gives a no-fix epoch.

What it does not model: satellite geometry and a varying HDOP or satellite count, time to first fix, the
receiver's position noise (the trace's own, if any, is passed through), leap seconds (``ss`` = 60 is
rejected by the parser), the other sentences a receiver writes (GSA, GSV, VTG, GLL, TXT: the parser
rejects them as unsupported types), UBX binary messages and the receiver's configuration protocol, and the
line's baud rate in simulation (a pty moves bytes as fast as the kernel does; `NmeaFeed` checks the
configured baud rate can carry its sentences on a real line, see `line_load`).
"""
from __future__ import annotations

import math
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from datetime import time as time_of_day
from typing import NamedTuple, Protocol

import numpy as np
import serial

from harness.core.clock import ScenarioClock
from harness.core.errors import DtgHilError
from harness.core.worker import Worker, WorkerError
from harness.rig.restbus import BroadcastSchedule
from harness.wire.signals import PHYSICAL_RANGE, Trace

__all__ = [
    "DEFAULT_BAUDRATE",
    "FEED_RATES_HZ",
    "NMEA_MAX_SENTENCE_CHARS",
    "SENTENCE_TYPES",
    "TALKERS",
    "GnssError",
    "GnssPosition",
    "NmeaCapacityError",
    "NmeaError",
    "NmeaFeed",
    "NmeaFeedStats",
    "NmeaFix",
    "NmeaReader",
    "NmeaStream",
    "NmeaStreamStats",
    "epoch_bytes_max",
    "gga_sentence",
    "line_load",
    "nmea_checksum",
    "parse_sentence",
    "rmc_sentence",
    "scenario_utc",
    "trace_position_source",
]

#: Talkers the builders write and the parser accepts: GPS only, or combined GNSS (a multi-constellation u-blox).
TALKERS = ("GP", "GN")
SENTENCE_TYPES = ("GGA", "RMC")
#: Epoch rates `NmeaFeed` writes at (u-blox modules output 1 Hz by default, 5 or 10 Hz when configured).
FEED_RATES_HZ = (1, 5, 10)
#: A u-blox module's factory-default serial baud rate.
DEFAULT_BAUDRATE = 9600
#: 8N1: a start bit, 8 data bits, a stop bit per byte.
BITS_PER_BYTE = 10
#: Baud rates a GNSS module's UART is usually set to; the capacity error suggests the first that fits.
STANDARD_BAUDRATES = (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800)
#: NMEA 0183 limit on one sentence, "$" to CR LF inclusive.
NMEA_MAX_SENTENCE_CHARS = 82
KMH_PER_KNOT = 1.852
LINE_END = "\r\n"

DEFAULT_FIX_QUALITY = 1
DEFAULT_SATELLITES = 10
DEFAULT_HDOP = 0.9
DEFAULT_GEOID_SEPARATION_M = 0.0
#: HDOP a receiver reports without a fix (u-blox writes 99.99).
NO_FIX_HDOP = 99.99

#: Parser ranges: altitude as u-blox receivers' operational limit (50 km), geoid undulation (within about
#: +-110 m on Earth), speed (u-blox limit 500 m/s = 972 knots).
ALTITUDE_RANGE_M = (-1000.0, 50000.0)
GEOID_SEPARATION_RANGE_M = (-200.0, 200.0)
MAX_SPEED_KNOTS = 1000.0
MAX_HDOP = 99.99
#: RMC mode indicator (NMEA 2.3+): autonomous, differential, estimated, float RTK, manual, not valid, precise,
#: RTK, simulator.
RMC_MODES = "ADEFMNPRS"
#: RMC navigational status (NMEA 4.1): safe, caution, unsafe, not valid.
RMC_NAV_STATUSES = "SCUV"
#: RMC data fields: NMEA 2.0 (no mode), 2.3 (mode), 4.1 (mode and navigational status).
RMC_FIELD_COUNTS = (11, 12, 13)
GGA_FIELD_COUNT = 14

_UNSIGNED = re.compile(r"\d+(\.\d+)?", re.ASCII)
_SIGNED = re.compile(r"-?\d+(\.\d+)?", re.ASCII)
_LATITUDE = re.compile(r"(\d{2})(\d{2}(?:\.\d+)?)", re.ASCII)
_LONGITUDE = re.compile(r"(\d{3})(\d{2}(?:\.\d+)?)", re.ASCII)
_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})(?:\.(\d+))?", re.ASCII)
_DATE = re.compile(r"(\d{2})(\d{2})(\d{2})", re.ASCII)
_CHECKSUM = re.compile(r"[0-9A-F]{2}", re.ASCII)
_DIGITS = re.compile(r"\d{1,4}", re.ASCII)


class NmeaError(DtgHilError, ValueError):
    """A sentence the strict parser rejects. `field` names what is wrong (``"checksum"``, ``"talker"``,
    ``"sentence type"``, ``"latitude"``, ...); the message gives the value and the valid form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class GnssError(WorkerError):
    """The GNSS feed or reader was misused (used after stop) or its thread failed; says which port."""


class NmeaCapacityError(DtgHilError, ValueError):
    """The configured baud rate cannot carry the sentences at the configured rate."""


# ------------------------------------------------------------------------------------------------ builders


def nmea_checksum(body: str) -> str:
    """The checksum of the characters between ``$`` and ``*``: their XOR, as two upper-case hex digits.

    >>> nmea_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    '47'
    """
    value = 0
    for char in body:
        value ^= ord(char)
    return f"{value:02X}"


def _sentence(talker: str, sentence_type: str, fields: list[str]) -> str:
    if talker not in TALKERS:
        raise ValueError(f"talker must be one of: {', '.join(TALKERS)}; got {talker!r}")
    body = ",".join([talker + sentence_type, *fields])
    sentence = f"${body}*{nmea_checksum(body)}"
    if len(sentence) + len(LINE_END) > NMEA_MAX_SENTENCE_CHARS:
        raise ValueError(f"{sentence!r} is {len(sentence) + 2} characters with CR LF; NMEA 0183 allows "
                         f"{NMEA_MAX_SENTENCE_CHARS} (use fewer minute_decimals)")
    return sentence


def scenario_utc(start_utc: datetime, t_s: float) -> datetime:
    """UTC at scenario second `t_s` of a scenario starting at `start_utc` (naive = UTC), to the 10 ms of NMEA.

    >>> scenario_utc(datetime(2024, 12, 31, 23, 59, 59), 0.996).isoformat()
    '2025-01-01T00:00:00+00:00'
    """
    if not math.isfinite(t_s):
        raise ValueError(f"scenario time must be finite, got {t_s!r}")
    if start_utc.tzinfo is None:
        start_utc = start_utc.replace(tzinfo=timezone.utc)
    moment = start_utc.astimezone(timezone.utc) + timedelta(microseconds=round(t_s * 1e6))
    centiseconds = round(moment.microsecond / 10_000)
    return moment.replace(microsecond=0) + timedelta(milliseconds=10 * centiseconds)


def _format_time(moment: datetime) -> str:
    moment = scenario_utc(moment, 0.0)
    return f"{moment:%H%M%S}.{moment.microsecond // 10_000:02d}"


def _format_angle(value_deg: float, degree_digits: int, limit: float, hemispheres: str, minute_decimals: int,
                  name: str) -> tuple[str, str]:
    """`value_deg` as (d)ddmm.mmmm and its hemisphere letter; integer rounding so minutes never read 60."""
    if not (math.isfinite(value_deg) and -limit <= value_deg <= limit):
        raise ValueError(f"{name} must be a finite number of degrees in [-{limit:g}, {limit:g}], got {value_deg!r}")
    scale = 10**minute_decimals
    total = round(abs(value_deg) * 60 * scale)
    degrees, minutes_scaled = divmod(total, 60 * scale)
    whole_minutes, fraction = divmod(minutes_scaled, scale)
    hemisphere = hemispheres[0] if value_deg >= 0 else hemispheres[1]
    return f"{degrees:0{degree_digits}d}{whole_minutes:02d}.{fraction:0{minute_decimals}d}", hemisphere


def _position_fields(latitude_deg: float | None, longitude_deg: float | None, minute_decimals: int) -> list[str]:
    if not 1 <= minute_decimals <= 5:
        raise ValueError(f"minute_decimals must be 1-5 (ddmm.m to ddmm.mmmmm), got {minute_decimals!r}")
    if latitude_deg is None or longitude_deg is None:
        return ["", "", "", ""]
    latitude, north_south = _format_angle(latitude_deg, 2, 90.0, "NS", minute_decimals, "latitude")
    longitude, east_west = _format_angle(longitude_deg, 3, 180.0, "EW", minute_decimals, "longitude")
    return [latitude, north_south, longitude, east_west]


def gga_sentence(
    time_utc: datetime,
    latitude_deg: float | None,
    longitude_deg: float | None,
    altitude_m: float | None,
    *,
    talker: str = "GP",
    fix_quality: int = DEFAULT_FIX_QUALITY,
    satellites: int = DEFAULT_SATELLITES,
    hdop: float = DEFAULT_HDOP,
    geoid_separation_m: float = DEFAULT_GEOID_SEPARATION_M,
    minute_decimals: int = 4,
) -> str:
    """A GGA sentence (without CR LF). A position or altitude of None writes the receiver's no-fix form:
    quality 0, no satellites, HDOP 99.99, position and altitude empty.

    >>> gga_sentence(datetime(2024, 5, 1, 12, 35, 19), 48.1173, 11.516667, 545.4)
    '$GPGGA,123519.00,4807.0380,N,01131.0000,E,1,10,0.90,545.4,M,0.0,M,,*6B'
    """
    position = _position_fields(latitude_deg, longitude_deg, minute_decimals)
    if latitude_deg is None or longitude_deg is None or altitude_m is None:
        fields = [_format_time(time_utc), "", "", "", "", "0", "00", f"{NO_FIX_HDOP:.2f}", "", "", "", "", "", ""]
        return _sentence(talker, "GGA", fields)
    low, high = ALTITUDE_RANGE_M
    if not (math.isfinite(altitude_m) and low <= altitude_m <= high):
        raise ValueError(f"altitude_m must be finite and in [{low:g}, {high:g}] m, got {altitude_m!r}")
    if fix_quality not in range(1, 9):
        raise ValueError(f"fix_quality with a position must be 1-8 (1 = GPS fix), got {fix_quality!r}")
    if satellites not in range(0, 100):
        raise ValueError(f"satellites must be 0-99, got {satellites!r}")
    if not 0.0 <= hdop <= MAX_HDOP:
        raise ValueError(f"hdop must be in [0, {MAX_HDOP}], got {hdop!r}")
    fields = [
        _format_time(time_utc), *position, str(fix_quality), f"{satellites:02d}", f"{hdop:.2f}",
        f"{altitude_m:.1f}", "M", f"{geoid_separation_m:.1f}", "M", "", "",
    ]
    return _sentence(talker, "GGA", fields)


def rmc_sentence(
    time_utc: datetime,
    latitude_deg: float | None,
    longitude_deg: float | None,
    speed_kmh: float | None,
    course_deg: float | None,
    *,
    talker: str = "GP",
    minute_decimals: int = 4,
) -> str:
    """An RMC sentence (without CR LF), NMEA 2.3 form (mode indicator A; N without a fix). A position of None
    writes status V with the position, speed and course empty; a speed or course of None leaves that field
    empty (receivers leave course empty when they cannot tell it). Course is written modulo 360.

    >>> rmc_sentence(datetime(2002, 12, 9, 8, 35, 59), 47.285240, 8.565254, 0.0074, 77.52)
    '$GPRMC,083559.00,A,4717.1144,N,00833.9152,E,0.004,77.52,091202,,,A*55'
    """
    moment = scenario_utc(time_utc, 0.0)
    day = f"{moment:%d%m%y}"
    if latitude_deg is None or longitude_deg is None:
        _position_fields(None, None, minute_decimals)
        return _sentence(talker, "RMC", [_format_time(moment), "V", "", "", "", "", "", "", day, "", "", "N"])
    position = _position_fields(latitude_deg, longitude_deg, minute_decimals)
    speed = ""
    if speed_kmh is not None:
        if not (math.isfinite(speed_kmh) and 0.0 <= speed_kmh / KMH_PER_KNOT < MAX_SPEED_KNOTS):
            raise ValueError(f"speed_kmh must be finite, >= 0 and below {MAX_SPEED_KNOTS * KMH_PER_KNOT:g}, "
                             f"got {speed_kmh!r}")
        speed = f"{speed_kmh / KMH_PER_KNOT:.3f}"
    course = ""
    if course_deg is not None:
        if not math.isfinite(course_deg):
            raise ValueError(f"course_deg must be finite (degrees true), got {course_deg!r}")
        hundredths = round(course_deg * 100) % 36000  # so 359.999 reads 0.00, never 360.00
        course = f"{hundredths // 100}.{hundredths % 100:02d}"
    fields = [_format_time(moment), "A", *position, speed, course, day, "", "", "A"]
    return _sentence(talker, "RMC", fields)


# -------------------------------------------------------------------------------------------------- parser


@dataclass(frozen=True)
class NmeaFix:
    """One parsed GGA or RMC sentence. Fields a sentence type does not carry, or that were empty, are None.

    `valid` is the receiver's own verdict: GGA fix quality > 0, RMC status A.
    """

    talker: str
    sentence_type: str
    valid: bool
    time_utc: time_of_day | None = None
    date_utc: date | None = None  # RMC
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    altitude_m: float | None = None  # GGA, above mean sea level
    geoid_separation_m: float | None = None  # GGA
    fix_quality: int | None = None  # GGA
    satellites: int | None = None  # GGA
    hdop: float | None = None  # GGA
    speed_knots: float | None = None  # RMC
    course_deg: float | None = None  # RMC
    mode: str | None = None  # RMC, NMEA 2.3+

    @property
    def speed_kmh(self) -> float | None:
        return None if self.speed_knots is None else self.speed_knots * KMH_PER_KNOT

    @property
    def datetime_utc(self) -> datetime | None:
        """Date and time together (RMC with both), timezone-aware UTC."""
        if self.date_utc is None or self.time_utc is None:
            return None
        return datetime.combine(self.date_utc, self.time_utc, tzinfo=timezone.utc)


def _field_error(name: str, index: int, sentence_type: str, value: str, form: str) -> NmeaError:
    return NmeaError(name, f"{value!r} (field {index} of {sentence_type}) is not valid; expected {form}")


class _Fields:
    """The data fields of one sentence, with typed, range-checked readers that raise `NmeaError`."""

    def __init__(self, sentence_type: str, fields: list[str]) -> None:
        self.sentence_type = sentence_type
        self.fields = fields

    def raw(self, index: int) -> str:
        return self.fields[index - 1]

    def error(self, name: str, index: int, form: str) -> NmeaError:
        return _field_error(name, index, self.sentence_type, self.raw(index), form)

    def empty(self, index: int) -> bool:
        return self.raw(index) == ""

    def number(self, name: str, index: int, low: float, high: float, *, signed: bool = False,
               high_inclusive: bool = True, unit: str = "") -> float:
        text = self.raw(index)
        pattern = _SIGNED if signed else _UNSIGNED
        bracket = "]" if high_inclusive else ")"
        form = f"a decimal number{' (optionally negative)' if signed else ''} in [{low:g}, {high:g}{bracket}{unit}"
        if not pattern.fullmatch(text):
            raise self.error(name, index, form)
        value = float(text)
        if not (low <= value and (value <= high if high_inclusive else value < high)):
            raise self.error(name, index, form)
        return value

    def optional_number(self, name: str, index: int, low: float, high: float, **kwargs: object) -> float | None:
        return None if self.empty(index) else self.number(name, index, low, high, **kwargs)  # type: ignore[arg-type]

    def choice(self, name: str, index: int, allowed: str | tuple[str, ...], *, optional: bool = False) -> str | None:
        text = self.raw(index)
        if optional and text == "":
            return None
        options = tuple(allowed)
        if text not in options:
            raise self.error(name, index, f"one of: {', '.join(options)}{' (or empty)' if optional else ''}")
        return text

    def time(self, index: int) -> time_of_day | None:
        text = self.raw(index)
        if text == "":
            return None
        form = "hhmmss or hhmmss.ss (UTC, hh 00-23, mm 00-59, ss 00-59)"
        match = _TIME.fullmatch(text)
        if not match:
            raise self.error("time", index, form)
        hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3])
        if hours > 23 or minutes > 59 or seconds > 59:
            raise self.error("time", index, form)
        fraction = match[4] or ""
        microseconds = int(fraction[:6].ljust(6, "0"))
        return time_of_day(hours, minutes, seconds, microseconds)

    def date(self, index: int) -> date | None:
        text = self.raw(index)
        if text == "":
            return None
        form = "ddmmyy, a calendar date (yy 80-99 is 19yy, 00-79 is 20yy)"
        match = _DATE.fullmatch(text)
        if not match:
            raise self.error("date", index, form)
        day, month, year = int(match[1]), int(match[2]), int(match[3])
        try:
            return date(year + (1900 if year >= 80 else 2000), month, day)
        except ValueError:
            raise self.error("date", index, form) from None

    def angle(self, name: str, index: int, hemisphere_index: int) -> float | None:
        """A latitude (ddmm.mmmm, N/S) or longitude (dddmm.mmmm, E/W) and its hemisphere field, in degrees."""
        is_latitude = name == "latitude"
        text, hemisphere = self.raw(index), self.raw(hemisphere_index)
        hemispheres = "NS" if is_latitude else "EW"
        hemisphere_name = "north/south" if is_latitude else "east/west"
        if text == "" and hemisphere == "":
            return None
        limit = 90 if is_latitude else 180
        form = (f"{'ddmm.mmmm' if is_latitude else 'dddmm.mmmm'} (degrees 0-{limit}, minutes 00-59.99..., "
                f"at most {limit} degrees in all)")
        match = (_LATITUDE if is_latitude else _LONGITUDE).fullmatch(text)
        if not match:
            raise self.error(name, index, form)
        degrees, minutes = int(match[1]), float(match[2])
        if minutes >= 60.0 or degrees + minutes / 60.0 > limit:
            raise self.error(name, index, form)
        if hemisphere not in tuple(hemispheres):
            raise self.error(hemisphere_name, hemisphere_index, f"one of: {', '.join(hemispheres)}")
        value = degrees + minutes / 60.0
        return -value if hemisphere in "SW" else value

    def metres(self, name: str, index: int, low: float, high: float) -> float | None:
        """A signed distance and its unit field (M); both empty when the receiver has none."""
        unit = self.raw(index + 1)
        if self.empty(index):
            if unit not in ("", "M"):
                raise self.error(f"{name} unit", index + 1, "M (metres), or empty")
            return None
        value = self.number(name, index, low, high, signed=True, unit=" m")
        if unit != "M":
            raise self.error(f"{name} unit", index + 1, "M (metres)")
        return value


def _decode(line: object) -> str:
    if isinstance(line, (bytes, bytearray, memoryview)):
        try:
            return bytes(line).decode("ascii")
        except UnicodeDecodeError:
            raise NmeaError("sentence", "contains non-ASCII bytes; expected printable ASCII") from None
    if isinstance(line, str):
        return line
    raise NmeaError("sentence", f"expected str or bytes, got {type(line).__name__}")


def parse_sentence(line: str | bytes | bytearray | memoryview) -> NmeaFix:
    """Parse one GGA or RMC sentence, strictly; `NmeaError` (naming the field and its valid form) otherwise.

    The line may end in CR LF, LF or nothing. Checked in order: printable ASCII, framing (``$``, ``*hh``,
    at most 82 characters), checksum, talker (GP, GN), sentence type (GGA, RMC), number of fields, then each
    field's form and range. No other exception escapes, whatever the input.

    >>> parse_sentence("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47").altitude_m
    545.4
    >>> try:
    ...     parse_sentence(b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48")
    ... except NmeaError as error:
    ...     print(error)
    checksum: '*48' does not match the sentence; expected *47 (XOR of the characters between $ and *)
    """
    text = _decode(line)
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            text = text[: -len(ending)]
            break
    if not all(" " <= char <= "~" for char in text):
        raise NmeaError("sentence", "contains control or non-ASCII characters; expected printable ASCII "
                                    "between $ and CR LF")
    if len(text) + len(LINE_END) > NMEA_MAX_SENTENCE_CHARS:
        raise NmeaError("sentence", f"is {len(text) + 2} characters with CR LF; NMEA 0183 allows at most "
                                    f"{NMEA_MAX_SENTENCE_CHARS}")
    if not text.startswith("$"):
        raise NmeaError("sentence", f"{text[:12]!r} does not start with '$'; expected $ttsss,...*hh")
    star = text.rfind("*")
    if star < 0 or len(text) - star != 3:
        raise NmeaError("checksum", f"{text[star:] if star >= 0 else text[-3:]!r} at the end; expected '*hh', two "
                                    "upper-case hex digits after the last '*'")
    body, given = text[1:star], text[star + 1:]
    if not _CHECKSUM.fullmatch(given):
        raise NmeaError("checksum", f"'*{given}' is not two upper-case hex digits; expected *{nmea_checksum(body)}")
    if given != nmea_checksum(body):
        raise NmeaError("checksum", f"'*{given}' does not match the sentence; expected *{nmea_checksum(body)} "
                                    "(XOR of the characters between $ and *)")
    if "$" in body or "*" in body:
        raise NmeaError("sentence", "contains a reserved character ('$' or '*') inside; expected one sentence "
                                    "per line")
    address, *fields = body.split(",")
    if len(address) != 5:
        raise NmeaError("address", f"{address!r} is not a 5-character address; expected a talker "
                                   f"({', '.join(TALKERS)}) and a sentence type ({', '.join(SENTENCE_TYPES)})")
    talker, sentence_type = address[:2], address[2:]
    if talker not in TALKERS:
        raise NmeaError("talker", f"{talker!r} is not supported; expected one of: {', '.join(TALKERS)}")
    if sentence_type not in SENTENCE_TYPES:
        raise NmeaError("sentence type", f"{sentence_type!r} is not supported; expected one of: "
                                         f"{', '.join(SENTENCE_TYPES)}")
    if sentence_type == "GGA":
        if len(fields) != GGA_FIELD_COUNT:
            raise NmeaError("field count", f"GGA has {len(fields)} data fields; expected {GGA_FIELD_COUNT}")
        return _parse_gga(talker, _Fields("GGA", fields))
    if len(fields) not in RMC_FIELD_COUNTS:
        raise NmeaError("field count", f"RMC has {len(fields)} data fields; expected one of: "
                                       f"{', '.join(map(str, RMC_FIELD_COUNTS))} (NMEA 2.0, 2.3, 4.1)")
    return _parse_rmc(talker, _Fields("RMC", fields))


def _parse_gga(talker: str, f: _Fields) -> NmeaFix:
    time_utc = f.time(1)
    quality_text = f.choice("fix quality", 6, "012345678")
    quality = int(quality_text or 0)
    latitude = f.angle("latitude", 2, 3)
    longitude = f.angle("longitude", 4, 5)
    satellites = None
    if not f.empty(7):
        if not _DIGITS.fullmatch(f.raw(7)) or len(f.raw(7)) > 2:
            raise f.error("satellites", 7, "the number of satellites used, 0-99 (one or two digits), or empty")
        satellites = int(f.raw(7))
    hdop = f.optional_number("hdop", 8, 0.0, MAX_HDOP)
    altitude = f.metres("altitude", 9, *ALTITUDE_RANGE_M)
    geoid_separation = f.metres("geoid separation", 11, *GEOID_SEPARATION_RANGE_M)
    f.optional_number("dgps age", 13, 0.0, 9999.0, unit=" s")
    if not f.empty(14) and not (_DIGITS.fullmatch(f.raw(14)) and int(f.raw(14)) <= 1023):
        raise f.error("dgps station", 14, "a station ID 0000-1023, or empty")
    if quality > 0:
        for name, index, value in (("time", 1, time_utc), ("latitude", 2, latitude), ("longitude", 4, longitude),
                                   ("satellites", 7, satellites), ("altitude", 9, altitude)):
            if value is None:
                raise f.error(name, index, f"a value: fix quality {quality} says the receiver has a fix")
    if (latitude is None) != (longitude is None):
        raise f.error("latitude" if latitude is None else "longitude", 2 if latitude is None else 4,
                      "both latitude and longitude, or neither")
    return NmeaFix(
        talker=talker, sentence_type="GGA", valid=quality > 0, time_utc=time_utc, latitude_deg=latitude,
        longitude_deg=longitude, altitude_m=altitude, geoid_separation_m=geoid_separation, fix_quality=quality,
        satellites=satellites, hdop=hdop,
    )


def _parse_rmc(talker: str, f: _Fields) -> NmeaFix:
    time_utc = f.time(1)
    status = f.choice("status", 2, "AV")
    latitude = f.angle("latitude", 3, 4)
    longitude = f.angle("longitude", 5, 6)
    speed = f.optional_number("speed over ground", 7, 0.0, MAX_SPEED_KNOTS, high_inclusive=False, unit=" knots")
    course = f.optional_number("course over ground", 8, 0.0, 360.0, high_inclusive=False, unit=" degrees true")
    date_utc = f.date(9)
    variation = f.optional_number("magnetic variation", 10, 0.0, 180.0, unit=" degrees")
    variation_direction = f.choice("magnetic variation direction", 11, "EW", optional=True)
    if (variation is None) != (variation_direction is None):
        raise f.error("magnetic variation direction", 11, "E or W with a variation, empty without one")
    mode = f.choice("mode", 12, RMC_MODES) if len(f.fields) >= 12 else None
    if len(f.fields) == 13:
        f.choice("navigational status", 13, RMC_NAV_STATUSES)
    valid = status == "A"
    if valid:
        for name, index, value in (("time", 1, time_utc), ("latitude", 3, latitude), ("longitude", 5, longitude),
                                   ("date", 9, date_utc)):
            if value is None:
                raise f.error(name, index, "a value: status A says the receiver has a fix")
    if (latitude is None) != (longitude is None):
        raise f.error("latitude" if latitude is None else "longitude", 3 if latitude is None else 5,
                      "both latitude and longitude, or neither")
    return NmeaFix(
        talker=talker, sentence_type="RMC", valid=valid, time_utc=time_utc, date_utc=date_utc,
        latitude_deg=latitude, longitude_deg=longitude, speed_knots=speed, course_deg=course, mode=mode,
    )


# -------------------------------------------------------------------------------------------- byte streams


@dataclass
class NmeaStreamStats:
    """What a stream of lines held. `unsupported` counts well-formed sentences of other talkers or types (a
    real receiver's GSV, VTG, ...), `bad_checksum` lines whose checksum failed, `malformed` every other
    rejected line (garbage, a field out of range, a line over `NmeaStream.MAX_LINE_BYTES`)."""

    bytes_read: int = 0
    lines: int = 0
    fixes: int = 0
    bad_checksum: int = 0
    unsupported: int = 0
    malformed: int = 0


class NmeaStream:
    """Splits bytes into lines (ending in LF; a CR before it is dropped) and parses each with `parse_sentence`.

    Pure: no I/O. `feed(data)` returns the fixes completed by `data`; `stats` counts lines by outcome, and
    `last_error` keeps the last rejection. Empty lines are skipped, not counted.
    """

    #: A line longer than this without an LF is dropped as malformed (an NMEA sentence is at most 82).
    MAX_LINE_BYTES = 256

    def __init__(self) -> None:
        self.stats = NmeaStreamStats()
        self.last_error: NmeaError | None = None
        self._pending = bytearray()
        self._discarding = False

    def feed(self, data: bytes | bytearray) -> list[NmeaFix]:
        self.stats.bytes_read += len(data)
        fixes: list[NmeaFix] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            chunk = data[start:] if newline < 0 else data[start:newline]
            if not self._discarding:
                self._pending += chunk
                if len(self._pending) > self.MAX_LINE_BYTES:
                    self._reject(NmeaError("sentence", f"no LF within {self.MAX_LINE_BYTES} bytes; expected "
                                                       "lines of at most 82 characters"))
                    self._pending.clear()
                    self._discarding = True
            if newline < 0:
                return fixes
            if self._discarding:
                self._discarding = False
            elif self._pending.strip(b"\r"):
                line = bytes(self._pending)
                fix = self._parse(line[:-1] if line.endswith(b"\r") else line)
                if fix is not None:
                    fixes.append(fix)
            self._pending.clear()
            start = newline + 1

    def _parse(self, line: bytes) -> NmeaFix | None:
        try:
            fix = parse_sentence(line)
        except NmeaError as error:
            self._reject(error)
            return None
        self.stats.lines += 1
        self.stats.fixes += 1
        return fix

    def _reject(self, error: NmeaError) -> None:
        self.stats.lines += 1
        self.last_error = error
        if error.field == "checksum":
            self.stats.bad_checksum += 1
        elif error.field in ("talker", "sentence type"):
            self.stats.unsupported += 1
        else:
            self.stats.malformed += 1


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


#: What the unit's position readings keep of a fix: GGA/RMC as the feed writes them (4 decimals of minutes,
#: altitude in 0.1 m).
MINUTE_DECIMALS = 4
ALTITUDE_RESOLUTION_M = 0.1


def as_received_nmea(readings: dict, minute_decimals: int = MINUTE_DECIMALS) -> dict:
    """Position readings at the resolution NMEA sentences carry them (latitude and longitude to
    10^-minute_decimals minutes, altitude to 0.1 m); other readings pass unchanged, NaN stays NaN.

    Training data and the simulated unit's GNSS input go through this, so that the models see what a unit
    reading a GNSS receiver sees (a loopback run showed a model trained on 0.01 m altitude calling 0.1 m steps
    a stuck sensor).

    >>> as_received_nmea({"altitude": np.array([101.26])})["altitude"].tolist()
    [101.3]
    """
    out = dict(readings)
    per_deg = 60.0 * 10**minute_decimals
    for name, counts in (("latitude", per_deg), ("longitude", per_deg), ("altitude", 1.0 / ALTITUDE_RESOLUTION_M)):
        if name in readings:
            out[name] = np.round(np.asarray(readings[name], dtype=float) * counts) / counts
    return out


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


# ------------------------------------------------------------------------------------------------- threads


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


def _open_serial(port: str, baudrate: int, timeout_s: float, write_timeout_s: float | None) -> serial.Serial:
    return serial.Serial(port, baudrate, bytesize=8, parity="N", stopbits=1, timeout=timeout_s,
                         write_timeout=write_timeout_s)


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
            self._port = _open_serial(str(self._port_arg), self._baudrate, 0.05, self._write_timeout_s)
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


class NmeaReader(Worker):
    """Reads NMEA lines from a serial port in a background thread and parses them (the harness's side).

    `port` is a pyserial `Serial` (the caller keeps owning it) or a device path opened at `baudrate`.
    `fixes` keeps every parsed sentence when `keep_fixes` is true; `on_fix`, if given, is called in the reader
    thread with each. `stats` counts lines by outcome (`NmeaStreamStats`); `last_error` is the last rejection.
    """

    error_type = GnssError

    def __init__(
        self,
        port: serial.Serial | str,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        keep_fixes: bool = True,
        on_fix: Callable[[NmeaFix], None] | None = None,
        read_timeout_s: float = 0.05,
    ) -> None:
        self._port_name = port if isinstance(port, str) else str(port.port)
        super().__init__(f"nmea-reader-{self._port_name}")
        self._owns_port = isinstance(port, str)
        self._port_arg = port
        self._baudrate = baudrate
        self._read_timeout_s = read_timeout_s
        self._keep_fixes = keep_fixes
        self._on_fix = on_fix
        self._stream = NmeaStream()
        self._fixes: list[NmeaFix] = []
        self._lock = threading.Lock()

    @property
    def fixes(self) -> list[NmeaFix]:
        with self._lock:
            return list(self._fixes)

    @property
    def stats(self) -> NmeaStreamStats:
        with self._lock:
            return replace(self._stream.stats)

    @property
    def last_error(self) -> NmeaError | None:
        with self._lock:
            return self._stream.last_error

    def wait_for_lines(self, lines: int, timeout_s: float) -> bool:
        """Block until `lines` lines (parsed or rejected) have been read in all; False on timeout or failure."""
        deadline = time.monotonic() + timeout_s
        while self.stats.lines < lines:
            if self._done.is_set() or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def _describe(self) -> str:
        return f"NMEA reader on {self._port_name}"

    def _work(self) -> None:
        if isinstance(self._port_arg, str):
            port = _open_serial(self._port_arg, self._baudrate, self._read_timeout_s, None)
        else:
            port = self._port_arg
        try:
            while not self._stop_requested.is_set():
                chunk = port.read(max(1, port.in_waiting))
                if chunk:
                    self._accept(chunk)
        finally:
            if self._owns_port:
                port.close()

    def _accept(self, chunk: bytes) -> None:
        with self._lock:
            fixes = self._stream.feed(chunk)
            if self._keep_fixes:
                self._fixes.extend(fixes)
        if self._on_fix is not None:
            for fix in fixes:
                self._on_fix(fix)
