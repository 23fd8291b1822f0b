"""The ``nmea`` fuzz target: ``parse_sentence`` on bytes and on str, and `NmeaStream` fed in chunks.

Documented rejection: `NmeaError`. Also checked: bytes and the same text (latin-1) give the same answer, a
parsed sentence is a GGA or an RMC, and the stream's counters add up (fixes, bad checksums, unsupported and
malformed lines are all the lines; every byte read is counted). Structure-aware inputs are sentences from the
builders (`gga_sentence`, `rmc_sentence`) with fields replaced and the checksum *re-computed*, so the field
checks are reached; a field too many or too few; other talkers and sentence types; a wrong, lower-case, short
or missing checksum; characters a line should not hold; sentences too long; one to four per input.
"""
from __future__ import annotations

import datetime as dt
import random
import string
from pathlib import Path

from harness.tools.fuzz.target import FuzzTarget, OracleError, chunks
from harness.wire.nmea import gga_sentence, nmea_checksum, rmc_sentence
from harness.wire.nmea_parser import NmeaError, NmeaStream, parse_sentence

__all__ = ["TARGET"]


def _run_nmea(data: bytes, workdir: Path) -> object:
    stream = NmeaStream()
    fixes = [fix for piece in chunks(data) for fix in stream.feed(piece)]
    stats = stream.stats
    if (stats.fixes != len(fixes) or stats.bytes_read != len(data)
            or stats.fixes + stats.bad_checksum + stats.unsupported + stats.malformed != stats.lines):
        raise OracleError(f"NmeaStream counters do not add up: {stats} for {len(fixes)} fixes, {len(data)} bytes")
    as_text = data.decode("latin-1")
    try:
        from_text: object = parse_sentence(as_text)
    except NmeaError as error:
        from_text = ("NmeaError", error.field)
    try:
        fix = parse_sentence(data)
    except NmeaError as error:
        if data.isascii() and from_text != ("NmeaError", error.field):
            raise OracleError(f"bytes rejected ({error}) but the same text gave {from_text!r}") from None
        raise
    if fix != from_text or fix.sentence_type not in ("GGA", "RMC"):
        raise OracleError(f"bytes gave {fix!r}, the same text gave {from_text!r}")
    return fix


_NMEA_VALUES = ("", "0", "-0", "00", "60", "61", "99", "9999", "99.99", "100", "180", "360", "1e5", "inf", "nan",
                "00.", ".5", "-1", "A", "V", "N", "S", "E", "W", "M", "X", "12345678901234567890", "0.000001",
                "235960", "240000", "310299", "290200", "9000.0000", "18000.0000", "8959.9999", "2", "8", "9")


def _resign(body: str) -> str:
    return f"${body}*{nmea_checksum(body)}"


def _nmea_valid(rng: random.Random) -> str:
    moment = dt.datetime(2000 + rng.randrange(100), rng.randint(1, 12), rng.randint(1, 28), rng.randrange(24),
                         rng.randrange(60), rng.randrange(60), rng.randrange(100) * 10_000)
    talker = rng.choice(("GP", "GN"))
    decimals = rng.choice((0, 2, 4, 4, 5))
    lat = None if rng.random() < 0.1 else rng.uniform(-90.0, 90.0)
    lon = None if lat is None else rng.uniform(-180.0, 180.0)
    try:
        if rng.random() < 0.5:
            return gga_sentence(moment, lat, lon, rng.uniform(-1000.0, 50000.0), talker=talker,
                                fix_quality=rng.randint(1, 8), satellites=rng.randrange(100),
                                hdop=round(rng.uniform(0.0, 99.99), 2), minute_decimals=decimals)
        return rmc_sentence(moment, lat, lon, rng.choice((None, rng.uniform(0.0, 1800.0))),
                            rng.choice((None, rng.uniform(-720.0, 720.0))), talker=talker, minute_decimals=decimals)
    except ValueError:  # a combination the builders refuse (e.g. too long): the published example instead
        return "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"


def _nmea_structured(rng: random.Random) -> bytes:
    lines = []
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
        sentence = _nmea_valid(rng)
        body = sentence[1:sentence.rindex("*")]
        fields = body.split(",")
        roll = rng.random()
        if roll < 0.45:  # one or more fields replaced, checksum re-computed: only the field checks remain
            for _ in range(rng.randint(1, 3)):
                index = rng.randrange(1, len(fields))
                fields[index] = rng.choice(_NMEA_VALUES) if rng.random() < 0.7 else "".join(
                    rng.choice(string.digits + ".-NSEWAV") for _ in range(rng.randint(1, 12)))
            sentence = _resign(",".join(fields))
        elif roll < 0.55:  # a field too many or too few
            if rng.random() < 0.5 and len(fields) > 2:
                del fields[rng.randrange(1, len(fields))]
            else:
                fields.insert(rng.randrange(1, len(fields) + 1), rng.choice(_NMEA_VALUES))
            sentence = _resign(",".join(fields))
        elif roll < 0.62:  # another talker or sentence type
            fields[0] = rng.choice(("GPGSV", "GLGGA", "GAGGA", "gpgga", "GPRMCX", "GPGG", "GNVTG", "BDRMC", ""))
            sentence = _resign(",".join(fields))
        elif roll < 0.70:  # a checksum that is wrong, lower-case, short or missing
            sentence = sentence[:-2] + rng.choice(("00", sentence[-2:].lower(), "G1", "", "0", "123"))
        elif roll < 0.76:  # characters a line should not hold, inside a valid checksum
            chars = rng.choice(("\t", "\x00", "\x7f", "\u00e9", "$", "*", " ", "\r"))
            position = rng.randrange(1, len(body) + 1)
            sentence = _resign(body[:position] + chars + body[position:])
        elif roll < 0.80:  # too long
            sentence = _resign(body + "," + "9" * rng.randint(1, 120))
        lines.append(sentence)
    ending = rng.choice(("", "\r\n", "\n", "\r", "\r\n"))
    text = "\r\n".join(lines) + ending
    return text.encode("utf-8")


def _nmea_examples() -> list[bytes]:
    rng = random.Random(3)
    return [_nmea_valid(rng).encode() + b"\r\n" for _ in range(8)] + [
        b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n",
        b"$GPRMC,083559.00,A,4717.1144,N,00833.9152,E,0.004,77.52,091202,,,A*55\r\n",
    ]


TARGET = FuzzTarget("nmea", "harness.wire.nmea_parser.parse_sentence (bytes and str), NmeaStream.feed (chunked)",
                    (NmeaError,), _run_nmea, _nmea_examples, _nmea_structured, max_size=300, text=True,
                    suffix=".nmea", tokens=(b"$", b"*", b",", b"\r\n", b"$GPGGA,", b"$GNRMC,", b",N,", b",E,",
                                            b"*00"))
