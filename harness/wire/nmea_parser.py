"""The strict NMEA parser: any input, str or bytes, either gives an `NmeaFix` or raises `NmeaError`.

`parse_sentence` reads one GGA or RMC sentence (the forms `harness.wire.nmea` describes and builds) and
checks every field's form and range; `NmeaError` is a ValueError naming the field and its valid form.
`NmeaStream` splits a byte stream into lines and parses them, counting what it rejects. Both are pure (no I/O):
`harness.wire.nmea_reader.NmeaReader` runs them on a serial port.

Besides the forms the builders write it accepts what receivers commonly write: a time without hundredths, RMC of
NMEA 2.0 (no mode indicator) and 4.1 (with navigational status), a magnetic variation, a DGPS age and station.

What it does not model: other sentence types and talkers (rejected as unsupported, so a real receiver's GSV,
VTG, ... are counted, not parsed), proprietary ``$P...`` sentences, UBX binary messages, leap seconds
(``ss`` = 60 is rejected), and the firmware's own parser (a real firmware may accept sentences this rejects).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from datetime import time as time_of_day

from harness.core.errors import DtgHilError
from harness.wire.nmea import (
    ALTITUDE_RANGE_M,
    GEOID_SEPARATION_RANGE_M,
    KMH_PER_KNOT,
    LINE_END,
    MAX_HDOP,
    MAX_SPEED_KNOTS,
    NMEA_MAX_SENTENCE_CHARS,
    SENTENCE_TYPES,
    TALKERS,
    nmea_checksum,
)

__all__ = ["NmeaError", "NmeaFix", "NmeaStream", "NmeaStreamStats", "parse_sentence"]

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
