"""NMEA 0183 GGA and RMC as a GNSS receiver (a u-blox module) writes them: the sentence format and the builders.

Pure: `nmea_checksum`, `gga_sentence`, `rmc_sentence` (the builders), `scenario_utc` (scenario time as UTC) and
`as_received_nmea` (readings at the resolution the sentences carry). The strict parser is
`harness.wire.nmea_parser`, the serial reader thread `harness.wire.nmea_reader`, and the feed that writes a
drive's position onto a serial line on the scenario clock `harness.rig.gnss_feed`.

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

What it does not model: satellite geometry and a varying HDOP or satellite count, time to first fix, the
receiver's position noise, leap seconds (``ss`` = 60 is rejected by the parser), the other sentences a
receiver writes (GSA, GSV, VTG, GLL, TXT: the parser rejects them as unsupported types), UBX binary messages
and the receiver's configuration protocol.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np

__all__ = [
    "ALTITUDE_RANGE_M",
    "KMH_PER_KNOT",
    "LINE_END",
    "MAX_HDOP",
    "MAX_SPEED_KNOTS",
    "MINUTE_DECIMALS",
    "NMEA_MAX_SENTENCE_CHARS",
    "SENTENCE_TYPES",
    "TALKERS",
    "as_received_nmea",
    "gga_sentence",
    "nmea_checksum",
    "rmc_sentence",
    "scenario_utc",
]

#: Talkers the builders write and the parser accepts: GPS only, or combined GNSS (a multi-constellation u-blox).
TALKERS = ("GP", "GN")
SENTENCE_TYPES = ("GGA", "RMC")
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

#: Ranges the builders write and the parser accepts: altitude as u-blox receivers' operational limit (50 km),
#: geoid undulation (within about +-110 m on Earth), speed (u-blox limit 500 m/s = 972 knots).
ALTITUDE_RANGE_M = (-1000.0, 50000.0)
GEOID_SEPARATION_RANGE_M = (-200.0, 200.0)
MAX_SPEED_KNOTS = 1000.0
MAX_HDOP = 99.99

#: What the unit's position readings keep of a fix: GGA/RMC as the feed writes them (4 decimals of minutes,
#: altitude in 0.1 m).
MINUTE_DECIMALS = 4
ALTITUDE_RESOLUTION_M = 0.1


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
            value = readings[name]
            out[name] = _rounded(value, counts) if type(value) is float else \
                np.round(np.asarray(value, dtype=float) * counts) / counts
    return out


def _rounded(value: float, counts: float) -> np.float64:
    """`np.round(value * counts) / counts` for one float, bit for bit, without numpy's per-call cost (a simulated
    unit reads its position once a second): Python's `round` is numpy's round half to even, and `copysign` keeps the
    sign numpy gives a zero (-0.3 rounds to -0.0)."""
    scaled = value * counts
    if not math.isfinite(scaled):
        return np.float64(scaled / counts)  # NaN and infinities round to themselves
    return np.float64(math.copysign(float(round(scaled)), scaled) / counts)

