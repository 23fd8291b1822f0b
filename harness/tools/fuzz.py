"""Fuzzing the harness's parsers: every input either parses or is rejected with the parser's documented error.

A HIL harness reads bytes and text it does not control: the UART link, NMEA from a GNSS feed, logcat lines
from the app, scenario and rig files. Each parser documents what it does with bad input; this module holds one
`FuzzTarget` per parser (what it runs, which exceptions are its documented rejections) and a runner that
feeds each target N inputs and reports everything else it does as a finding.

Targets (`TARGETS`; `target_names()`), each with what it runs and its documented rejection:

- ``link-raw-can-v1``: the streaming decoder, whole and in random chunks (raises nothing: it counts), and
  ``RawCanV1Codec.decode`` (`LinkFrameError`);
- ``link-dtg-link-v2``: the same for dtg-link-v2;
- ``nmea``: ``parse_sentence`` on bytes and on str, and `NmeaStream` in chunks (`NmeaError`);
- ``events``: ``parse_event_line`` (raises nothing: None, an event, or a `ParseProblem`) and `EventCollector`
  fed in chunks;
- ``scenario``: ``load_scenario`` on the input written to a file (`ScenarioError`);
- ``scenario-data``: ``parse_scenario`` on what ``yaml.safe_load`` makes of the input (`ScenarioError`);
- ``rig``: ``load_rig`` on the input written to a file (`RigError`).

Beside "no other exception", the targets check what the modules promise (an `OracleError` is a finding too):
a link decoder's output and counters do not depend on how the stream is chunked, and every frame it yields
is one that was in the stream with a good CRC; ``parse_sentence`` gives the same answer for bytes and str;
the event collector fed bytes in chunks yields what ``parse_event_line`` gives line by line, and no problem it
reports is the parser's catch-all "unexpected parser error"; the NMEA stream's counters add up.

Inputs (`draw_input`), from one seeded generator per target, so a run is reproducible from its seed:
pure random bytes (or printable text for the text parsers), mutations of the target's valid examples (bit
flips, interesting bytes, truncation, deletion, insertion, repeated chunks, splicing two examples, the
format's own tokens), and structure-aware inputs: valid link frames and frames with a corrupted CRC, a wrong
length, reserved bits or an unknown record type under a *good* CRC; NMEA sentences with a field replaced and
the checksum re-computed; EdgeAI lines with fields of the wrong type; scenario and rig YAML with wrong types,
unknown keys, boundary numbers, tags, anchors and aliases, and non-string keys.

Each input runs under a per-input time limit (SIGALRM; `InputTimeout` derives from BaseException so a
parser's ``except Exception`` cannot swallow it): a hang is reported with its input, like a crash. An input
that returned but took longer than the limit (a long C call cannot be interrupted) is reported as a timeout
too. `run_fuzz` may also cap the process's address space (`memory_limit_mb`), so an input that makes a parser
allocate gigabytes is a `MemoryError` finding instead of a machine brought to its knees, and may arm a
backstop (`backstop_s`, Python's faulthandler): a hang inside C code that ignores signals kills the process
after dumping every thread's traceback, leaving the input in flight on disk.

Findings are grouped by signature (the exception type and the innermost frame in this project's code; for a hang,
the function that entered the module it hung in); the first input of each is shrunk (`minimize`: delete lines,
then chunks, while the same signature still fails, bounded in time) and saved with its traceback. Minimal, not
minimum: the shrinker is greedy.

What it does not do: no coverage guidance (atheris could add it: the targets are plain ``run(data)`` functions
an atheris ``TestOneInput`` can call), no parallel workers, no fuzzing of the Android driver or the slcan and
adb stand-ins (their own tests cover their protocols).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import faulthandler
import hashlib
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import string
import sys
import tempfile
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import DtgHilError
from harness.rig.rigfile import RigError, load_rig
from harness.wire.behaviour import STYLES
from harness.wire.events import (
    BEHAVIOUR_CLASSES,
    EVENT_KINDS,
    FEATURE_COUNT,
    RULE_EVENT_TYPES,
    EventCollector,
    ParseProblem,
    parse_event_line,
)
from harness.wire.link import (
    SAMPLE_FIELDS,
    CanFrame,
    LinkFrameError,
    SampleRecord,
    StatusRecord,
    crc16_modbus,
    get_codec,
)
from harness.wire.nmea import gga_sentence, nmea_checksum, rmc_sentence
from harness.wire.nmea_parser import NmeaError, NmeaStream, parse_sentence
from harness.wire.signals import SIGNALS
from harness.world.anomalies import ANOMALY_TYPES, SENSOR_FAULT_TYPES
from harness.world.cycles import BUNDLED_CYCLES, SEGMENT_KINDS
from harness.world.scenario import EXPECT_KEYS, ScenarioError, load_scenario, parse_scenario
from harness.world.vehicle import VEHICLES

__all__ = [
    "REJECTED",
    "TARGETS",
    "Finding",
    "FuzzReport",
    "FuzzTarget",
    "InputTimeout",
    "OracleError",
    "Outcome",
    "TargetReport",
    "add_fuzz_arguments",
    "cmd_bench_fuzz",
    "draw_input",
    "get_target",
    "minimize",
    "run_fuzz",
    "run_one",
    "target_names",
]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
ROOT = Path(__file__).resolve().parents[2]
#: How a run draws its inputs: (source, weight).
SOURCES = (("random", 0.2), ("mutation", 0.45), ("structured", 0.35))
#: Wall seconds between progress lines of a long target.
PROGRESS_EVERY_S = 60.0


class InputTimeout(BaseException):
    """An input ran past the per-input time limit (a BaseException, so no ``except Exception`` swallows it)."""


class OracleError(DtgHilError, AssertionError):
    """A parser broke one of its documented promises without raising (e.g. its output depends on chunking)."""


#: What a target's `run` returns when the parser rejected the input by value, as documented (the event parser's
#: `ParseProblem`, a line that is not an EdgeAI line), rather than by raising.
REJECTED = object()


# ------------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class FuzzTarget:
    """One parser under fuzz.

    `run(data, workdir)` feeds `data` to the parser and returns when it accepted it (`REJECTED` when the parser
    rejected it by value, as documented); it raises one of `accepted` (the parser's documented rejection) or
    `OracleError`, and anything else it raises is a finding.
    `workdir` is a private scratch folder (file-based loaders write the input there), prepared once per run by
    `prepare`. `examples()` are valid inputs, the mutation corpus; `structured(rng)` draws a structure-aware
    input; `tokens` are the format's own byte strings that mutations insert; `suffix` names reproducer files.
    """

    name: str
    parser: str
    accepted: tuple[type[BaseException], ...]
    run: Callable[[bytes, Path], object]
    examples: Callable[[], list[bytes]]
    structured: Callable[[random.Random], bytes]
    max_size: int = 1024
    text: bool = False  # the parser reads text: random inputs are printable text half the time
    tokens: tuple[bytes, ...] = ()
    suffix: str = ".bin"
    prepare: Callable[[Path], None] | None = None


def _chunks(data: bytes) -> list[bytes]:
    """`data` cut into pieces of random sizes (1 to 40 bytes), the same cut for the same data."""
    rng = random.Random(zlib.crc32(data))
    out, pos = [], 0
    while pos < len(data):
        size = rng.choice((1, 1, 2, 3, 5, 8, 13, 21, 40)) if rng.random() < 0.7 else rng.randint(1, 40)
        out.append(data[pos:pos + size])
        pos += size
    return out


# --- link ------------------------------------------------------------------------------------------------


def _decode_stream(codec_name: str, pieces: Sequence[bytes]) -> tuple[list, Any]:
    decoder = get_codec(codec_name).decoder()
    got = []
    for piece in pieces:
        got.extend(decoder.feed(piece))
    got.extend(decoder.finish())
    return got, decoder.stats


def _run_link(codec_name: str) -> Callable[[bytes, Path], object]:
    codec = get_codec(codec_name)
    has_sequence = codec.capabilities.has_sequence

    def run(data: bytes, workdir: Path) -> object:
        whole, whole_stats = _decode_stream(codec_name, [data])
        split, split_stats = _decode_stream(codec_name, _chunks(data))
        if whole != split or whole_stats != split_stats:
            raise OracleError(f"{codec_name}: chunking changed the result: {len(whole)} frames {whole_stats} "
                              f"whole, {len(split)} frames {split_stats} in chunks")
        if whole_stats.frames_decoded != len(whole) or not 0 <= whole_stats.bytes_skipped <= len(data):
            raise OracleError(f"{codec_name}: counters do not add up: {whole_stats} for {len(whole)} frames "
                              f"from {len(data)} bytes")
        for received in whole:
            if has_sequence:
                frame = codec.encode(received.record, received.seq)  # the exact frame, CRC and all
            else:  # raw-can-v1 pads data with anything under a good CRC: the bytes up to the data must be there
                frame = codec.encode(received.record)[:4 + received.record.dlc]
            if frame not in data:
                raise OracleError(f"{codec_name}: yielded {received} whose frame {frame.hex()} is not in the "
                                  f"stream")
        if not has_sequence and whole_stats.bytes_skipped + 15 * (whole_stats.frames_decoded
                                                                 + whole_stats.malformed_frames) != len(data):
            raise OracleError(f"{codec_name}: {whole_stats} does not account for all {len(data)} bytes")
        return codec.decode(data)  # exactly one frame: LinkFrameError says what is wrong

    return run


def _v1_frame(can_id: int, dlc: int, data8: bytes, crc_ok: bool = True, end: int = 0x55) -> bytes:
    body = bytes((can_id >> 8 & 0xFF, can_id & 0xFF, dlc)) + data8
    crc = crc16_modbus(body) ^ (0 if crc_ok else 1 << random.Random(body).randrange(16))
    return bytes((0xAA,)) + body + bytes((crc >> 8, crc & 0xFF, end))


def _link_examples(codec_name: str) -> Callable[[], list[bytes]]:
    def examples() -> list[bytes]:
        rng = random.Random(7)
        codec = get_codec(codec_name)
        out = []
        for count in (1, 2, 5):
            encoder = codec.encoder(rng.getrandbits(32) if codec.capabilities.has_sequence else 0)
            frames = [encoder.encode(_random_record(rng, codec_name)) for _ in range(count)]
            out.append(b"".join(frames))
        return out

    return examples


def _random_record(rng: random.Random, codec_name: str) -> CanFrame | SampleRecord | StatusRecord:
    roll = rng.random()
    if codec_name == "raw-can-v1" or roll < 0.6:
        extended = codec_name != "raw-can-v1" and rng.random() < 0.4
        can_id = rng.randrange(0x20000000 if extended else 0x800)
        timestamp = None if codec_name == "raw-can-v1" or rng.random() < 0.1 else rng.randrange(2**32 - 1) / 1000
        return CanFrame(can_id, rng.randbytes(rng.randint(0, 8)), extended, timestamp)
    if roll < 0.85:
        values = []
        for spec in SAMPLE_FIELDS:
            lo, hi = spec.value_range
            pick = rng.random()
            values.append(None if pick < 0.1 else rng.choice((lo, hi)) if pick < 0.2 else rng.uniform(lo, hi))
        return SampleRecord(rng.randrange(2**32 - 1), tuple(values))
    return StatusRecord(rng.randrange(2**32), *(rng.randrange(2**32) for _ in range(4)))


def _v1_structured(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 12)):
        can_id, dlc = rng.randrange(0x800), rng.randint(0, 8)
        data8 = rng.randbytes(dlc) + bytes(8 - dlc)
        roll = rng.random()
        if roll < 0.4:
            frame = _v1_frame(can_id, dlc, data8)
        elif roll < 0.5:
            frame = _v1_frame(can_id, dlc, data8, crc_ok=False)
        elif roll < 0.57:  # padding that is not zero, under a good CRC: a valid frame
            frame = _v1_frame(can_id, dlc, data8[:dlc] + rng.randbytes(8 - dlc))
        elif roll < 0.64:  # DLC 9..255 under a good CRC: malformed
            frame = _v1_frame(can_id, rng.randint(9, 255), rng.randbytes(8))
        elif roll < 0.71:  # ID field above 0x7FF under a good CRC
            frame = _v1_frame(rng.randint(0x800, 0xFFFF), dlc, data8)
        elif roll < 0.77:
            frame = _v1_frame(can_id, dlc, data8, end=rng.randrange(256))
        elif roll < 0.84:
            frame = _v1_frame(can_id, dlc, data8)[:rng.randint(1, 14)]
        elif roll < 0.92:
            frame = rng.choice((b"\xaa", b"\x55", b"\xaa\x55", rng.randbytes(1))) * rng.randint(1, 40)
        else:
            frame = rng.randbytes(rng.randint(1, 30))
        parts.append(frame)
    return b"".join(parts)


_V2_SOF = b"\xd7\x47"


def _v2_frame(version: int, record_type: int, payload: bytes, seq: int, t_ms: int, length: int | None = None,
              crc_ok: bool = True) -> bytes:
    body = bytes((version, record_type, len(payload) if length is None else length)) + \
        (seq % 2**32).to_bytes(4, "big") + (t_ms % 2**32).to_bytes(4, "big") + payload
    crc = zlib.crc32(body) ^ (0 if crc_ok else 1 << random.Random(body).randrange(32))
    return _V2_SOF + body + crc.to_bytes(4, "big")


def _v2_structured(rng: random.Random) -> bytes:
    codec = get_codec("dtg-link-v2")
    seq = rng.choice((0, rng.getrandbits(32), 2**32 - rng.randint(1, 5)))
    parts = []
    for _ in range(rng.randint(1, 10)):
        step = rng.random()
        seq = (seq + (1 if step < 0.7 else rng.randint(2, 1000) if step < 0.8 else 0 if step < 0.85
                      else -rng.randint(1, 100) if step < 0.9 else rng.getrandbits(32))) % 2**32
        t_ms = rng.choice((0, 0xFFFFFFFF, rng.getrandbits(32)))
        roll = rng.random()
        if roll < 0.4:
            parts.append(codec.encode(_random_record(rng, "dtg-link-v2"), seq))
            continue
        if roll < 0.5:
            frame = bytearray(codec.encode(_random_record(rng, "dtg-link-v2"), seq))
            frame[rng.randrange(2, len(frame))] ^= 1 << rng.randrange(8)  # CRC now wrong
        elif roll < 0.58:  # unknown record type, any length, good CRC: skipped by length
            frame = _v2_frame(2, rng.randint(4, 255), rng.randbytes(rng.randint(0, 60)), seq, t_ms)
        elif roll < 0.64:  # a known type with a length outside its range, good CRC
            record_type = rng.randint(1, 3)
            frame = _v2_frame(2, record_type, rng.randbytes(rng.choice((0, 1, 4, 14, 15, 25, 27, 100))), seq, t_ms)
        elif roll < 0.70:  # CAN payloads under a good CRC: reserved bits, 11-bit ID above 0x7FF, DLC mismatch
            id_flags = rng.choice((0x20000000 | rng.getrandbits(29), 0x40000000, rng.randint(0x800, 0x1FFFFFFF),
                                   rng.getrandbits(32)))
            dlc = rng.randint(0, 15)
            data = rng.randbytes(rng.choice((dlc, max(0, dlc - 1), min(8, dlc + 1))))
            frame = _v2_frame(2, 1, id_flags.to_bytes(4, "big") + bytes((dlc,)) + data, seq, t_ms)
        elif roll < 0.75:  # wrong version
            frame = _v2_frame(rng.choice((0, 1, 3, 0xFF)), 1, bytes(5), seq, t_ms)
        elif roll < 0.80:  # a length byte promising more than ever comes: the decoder must not stall
            frame = _v2_frame(2, rng.randint(4, 255), b"", seq, t_ms, length=255)[:13 + rng.randint(0, 20)]
        elif roll < 0.86:
            frame = codec.encode(_random_record(rng, "dtg-link-v2"), seq)[:rng.randint(1, 29)]
        elif roll < 0.94:
            frame = rng.choice((b"\xd7", b"\xd7\x47", b"\xd7\x47\x02", rng.randbytes(1))) * rng.randint(1, 30)
        else:
            frame = rng.randbytes(rng.randint(1, 40))
        parts.append(bytes(frame))
    return b"".join(parts)


# --- NMEA ------------------------------------------------------------------------------------------------


def _run_nmea(data: bytes, workdir: Path) -> object:
    stream = NmeaStream()
    fixes = [fix for piece in _chunks(data) for fix in stream.feed(piece)]
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


# --- EdgeAI events ----------------------------------------------------------------------------------------


def _run_events(data: bytes, workdir: Path) -> object:
    line = data.decode("utf-8", "surrogateescape")  # any str at all, lone surrogates included
    results = [parse_event_line(line)]
    text = data.decode("utf-8", "replace")  # what the collector makes of the bytes
    lines = text.split("\n")
    expected = [parse_event_line(item) for item in (lines if lines[-1] else lines[:-1])]
    collector = EventCollector(clock=lambda: 0.0)
    for piece in _chunks(data):
        collector.feed(piece)
    collector.flush()
    results += expected
    for result in results:
        if not (result is None or isinstance(result, ParseProblem) or getattr(result, "kind", None) in EVENT_KINDS):
            raise OracleError(f"parse_event_line returned {type(result).__name__}: {result!r}")
        if isinstance(result, ParseProblem) and result.reason.startswith("unexpected parser error"):
            raise OracleError(f"the parser's catch-all fired: {result.reason}")
    want_events = [r for r in expected if r is not None and not isinstance(r, ParseProblem)]
    want_problems = [(r.reason, r.field) for r in expected if isinstance(r, ParseProblem)]
    got_problems = [(p.reason, p.field) for p in collector.problems]
    stats = collector.stats()
    if collector.events != want_events or got_problems != want_problems or stats.lines != len(expected):
        raise OracleError(f"the collector fed in chunks gave {stats}, line by line parsing gave "
                          f"{len(want_events)} events and {len(want_problems)} problems in {len(expected)} lines")
    return REJECTED if results[0] is None or isinstance(results[0], ParseProblem) else results[0]


_HEADS = (
    "01-15 10:23:45.123  4321  4350 I EdgeAI  : ",
    "2024-01-15 10:23:45.123  4321  4350 I EdgeAI  : ",
    "01-15 10:23:45.123 +0100  4321  4350 I EdgeAI  : ",
    "01-15 10:23:45.123 u0_a123  4321  4350 I EdgeAI  : ",
    "1705310625.123  4321  4350 I EdgeAI  : ",
    "I/EdgeAI( 4321): ",
    "I/EdgeAI: ",
    "01-15 10:23:45.123  4321  4350 D Zygote  : ",
    "01-15 10:23:45.123  4321  4350 I EdgeAI:",
    "01-15 10:23:45.123  4321  4350 X EdgeAI  : ",
    "--------- beginning of main ",
    "EdgeAI ",
    "",
)
_JSON_ODD = (None, True, False, 0, -1, 1, 2, 0.5, -0.0, 1e308, -1e308, 10**30, "", "x", "anomaly", "0123abcd",
             [], [1.0], {}, {"name": "x"}, "NaN", [None], 2**64)


def _pick(rng: random.Random, pool: Sequence[Any]) -> Any:
    """A value from `pool`; a fresh copy when it is a list or a dict, which the mutations then change in place."""
    return copy.deepcopy(rng.choice(pool))


def _model_ref(rng: random.Random) -> dict:
    ref = {"name": rng.choice(("anomaly", "fuel", "behaviour")), "sha256": f"{rng.getrandbits(64):016x}"}
    if rng.random() < 0.3:
        ref["version"] = f"1.{rng.randrange(10)}"
    return ref


def _event_payload(rng: random.Random) -> dict:
    kind = rng.choice(EVENT_KINDS)
    t = round(rng.uniform(0.0, 20000.0), 3)
    infer = round(rng.uniform(0.0, 50.0), 3)
    payload: dict[str, Any] = {"v": 1, "kind": kind}
    if rng.random() < 0.7:
        payload["seq"] = rng.randrange(2**32)
    if kind == "status":
        payload.update(t=rng.choice((None, t)), samples_received=rng.randrange(10**6),
                       windows_scored=rng.randrange(10**6),
                       link={name: rng.randrange(10**6) for name in ("frames_decoded", "crc_errors", "frames_lost")})
    elif kind == "event":
        payload.update(t=t, type=rng.choice(RULE_EVENT_TYPES), value=rng.uniform(-50, 8000), limit=rng.uniform(0, 8000))
        if rng.random() < 0.3:
            payload["signal"] = rng.choice(SIGNALS)
    elif kind == "features":
        payload.update(t=t, infer_ms=infer, window_start_t=t - 59,
                       features=[rng.uniform(-10, 100) for _ in range(FEATURE_COUNT)])
        if rng.random() < 0.5:
            payload["n_samples"] = rng.randint(0, 60)
    else:
        payload.update(t=t, infer_ms=infer, model=_model_ref(rng))
        if kind == "anomaly":
            payload.update(score=rng.uniform(0, 5), threshold=rng.uniform(0, 5), alarm=rng.random() < 0.5)
            if rng.random() < 0.3:
                payload["signal_scores"] = [rng.uniform(0, 5) for _ in SIGNALS]
        elif kind == "fuel":
            payload["fuel_rate_lph"] = rng.uniform(0, 60)
        else:
            label = rng.randrange(len(BEHAVIOUR_CLASSES))
            payload.update(label=label, **{"class": BEHAVIOUR_CLASSES[label]},
                           probabilities=[rng.random() for _ in BEHAVIOUR_CLASSES])
    return payload


def _json_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_paths(item, path + (index,))


def _events_structured(rng: random.Random) -> bytes:
    payload = _event_payload(rng)
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        paths = [p for p in _json_paths(payload) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        roll = rng.random()
        if roll < 0.6:
            parent[path[-1]] = _pick(rng, _JSON_ODD)
        elif roll < 0.75 and isinstance(parent, dict):
            del parent[path[-1]]
        elif roll < 0.85 and isinstance(parent, dict):
            parent[rng.choice(("extra", "kind", "v", "t", "model", "link", "x" * 40))] = _pick(rng, _JSON_ODD)
        elif isinstance(parent[path[-1]], (int, float)) and not isinstance(parent[path[-1]], bool):
            parent[path[-1]] = rng.choice((math.nan, math.inf, -math.inf, -parent[path[-1]]))
    text = json.dumps(payload, allow_nan=True, separators=rng.choice(((",", ":"), (", ", ": "))))
    roll = rng.random()
    if roll < 0.05:  # a duplicated key
        text = text.replace('"kind":', '"kind":"fuel","kind":', 1)
    elif roll < 0.09:  # an integer literal longer than Python converts by default
        text = text.replace('"t":', '"t":' + "9" * rng.choice((10, 4301, 5000)) + ',"t0":', 1)
    elif roll < 0.12:  # nested deeper than the JSON decoder recurses
        depth = rng.choice((50, 5000))
        text = text[:-1] + ',"deep":' + "[" * depth + "]" * depth + "}"
    elif roll < 0.17:  # cut short, as logcat cuts a payload over its limit
        text = text[:rng.randrange(len(text))]
    elif roll < 0.20:
        text = text + rng.choice((" trailing", "}", "\x00", "\ufeff", " " * 300))
    elif roll < 0.22:  # a very long line: the line regexes must stay linear
        text = " " * rng.choice((100, 3000)) + text
    head = rng.choice(_HEADS)
    ending = rng.choice(("", "", "\n", "\r\n", "\r"))
    lines = [head + text + ending]
    if rng.random() < 0.1:  # several lines, for the collector
        lines.append(rng.choice(_HEADS) + json.dumps(_event_payload(rng)) + "\n")
    return "".join(lines).encode("utf-8", "surrogatepass")


def _events_examples() -> list[bytes]:
    rng = random.Random(5)
    return [(_HEADS[i % 7] + json.dumps(_event_payload(rng), separators=(",", ":"))).encode() + b"\n"
            for i in range(12)]


# --- YAML data files (scenario, rig) ------------------------------------------------------------------------


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return json.dumps(str(value))  # a YAML double-quoted scalar: JSON escapes are YAML escapes


def _yaml_flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml_flow(k)}: {_yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_flow(v) for v in value) + "]"
    return _yaml_scalar(value)


def _yaml_block(value: Any, rng: random.Random, indent: int = 0) -> list[str]:
    """`value` as YAML lines, nested mappings in block or flow style at random (as scenario files mix them)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = _yaml_flow(key) if isinstance(key, str) else (
                f"? {_yaml_flow(key)}\n{pad}" if isinstance(key, (list, dict)) else _yaml_scalar(key))
            if isinstance(item, (dict, list)) and item and rng.random() < 0.7:
                lines.append(f"{pad}{key_text}:")
                lines.extend(_yaml_block(item, rng, indent + 2))
            else:
                lines.append(f"{pad}{key_text}: {_yaml_flow(item)}")
    elif isinstance(value, list):
        for item in value:
            lines.append(f"{pad}- {_yaml_flow(item)}")
    else:
        lines.append(pad + _yaml_flow(value))
    return lines


#: Values a wrong-typed or out-of-range field gets: other types, boundaries, non-finite and absurd numbers.
_YAML_ODD = (None, True, False, "", "x", "udds", "urban", "overheating", "1e3", "a\x00b.csv", "\u00e9\u20ac", 0, -1, 1,
             0.5, -0.0, 119, 120, 2**31, 2**63, -2**63, 1e9, 1e308, -1e308, math.inf, -math.inf, math.nan, [], [1, "a"],
             {}, {"a": 1}, dt.date(2024, 1, 15), "x" * 300 + ".csv", 10**400, "virtual", "simulated", "obd2",
             "dtg-link-v2", "raw-can-v1", 500000, 250000)
#: Boundary numbers (and non-finite) only: each has some probability of being far out of range.
_YAML_NUMBERS = (0, -1, 1, 0.5, 1e-9, 59.9, 60, 119.9, 120, 121, 3.0, 3.01, 100, 100.01, 1e6, 1e9, 1e308, 10**400,
                 math.inf, -math.inf, math.nan, 2**64)


def _yaml_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _yaml_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield path + (index,)
            yield from _yaml_paths(item, path + (index,))


def _nudged(rng: random.Random, old: Any) -> Any:
    """A number near `old` (negated, scaled, off by a little), or a boundary number."""
    if isinstance(old, bool) or not isinstance(old, (int, float)) or rng.random() < 0.3:
        return rng.choice(_YAML_NUMBERS)
    try:
        return rng.choice((-old, old * 10, old + 0.5, old - 1, int(old)))
    except (OverflowError, ValueError):  # inf, nan, or an int too large for a float
        return 0


def _mutate_tree(rng: random.Random, tree: dict, unknown_keys: tuple[str, ...]) -> None:
    """Wrong types, boundary numbers, unknown and missing keys, at random places in the tree."""
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3, 5))):
        paths = list(_yaml_paths(tree))
        if not paths:
            return
        path = rng.choice(paths)
        parent: Any = tree
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        roll = rng.random()
        if roll < 0.35:
            parent[key] = _pick(rng, _YAML_ODD)
        elif roll < 0.6:
            parent[key] = _nudged(rng, parent[key])
        elif roll < 0.72 and isinstance(parent, dict):
            del parent[key]
        elif roll < 0.84 and isinstance(parent, dict):
            parent[rng.choice(unknown_keys + (1, None, True, 2.5))] = _pick(rng, _YAML_ODD)
        elif roll < 0.92:
            parent[key] = [parent[key]]
        elif isinstance(parent, list):
            parent.append(rng.choice(parent) if parent else None)
        else:
            parent[key] = {"nested": parent[key]}


def _yaml_text_mutation(rng: random.Random, text: str) -> str:
    """YAML-level attacks on the text: tags, anchors and aliases, complex keys, nesting, odd documents."""
    roll = rng.random()
    if roll < 0.25:
        return text
    if roll < 0.33:  # a tag on a value: python object tags must be refused, plain ones may pass
        tag = rng.choice(("!!python/object/apply:os.system [\"echo owned\"]", "!!python/name:os.system",
                          "!!binary aGVsbG8=", "!!timestamp 2024-01-15", "!!str 5", "!!int \"7\"", "!!float \"1e3\"",
                          "!custom x", "!!set {a, b}", "!!omap [{a: 1}]", "!!null ''", "!!bool yes", "!!merge <<"))
        lines = text.splitlines()
        index = rng.randrange(len(lines))
        if ":" in lines[index]:
            head = lines[index].split(":", 1)[0]
            lines[index] = f"{head}: {tag}"
        return "\n".join(lines) + "\n"
    if roll < 0.38:  # anchors and aliases, merged mappings
        return "base: &b {vehicle: passenger_car, seed: 1}\n" + text + rng.choice(
            ("extra: *b\n", "<<: *b\n", "copy: [*b, *b]\n", "missing: *nope\n"))
    if roll < 0.39:  # an alias that expands exponentially: must not take exponential time
        depth, fan = (3, 4) if rng.random() < 0.9 else (9, 9)
        bomb = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
        for level in range(1, depth + 1):
            bomb.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan) + "]")
        return "\n".join(bomb) + "\n" + text
    if roll < 0.42:  # a node that contains itself
        return text + rng.choice(("loop: &r [*r]\n", "loop: &r {self: *r}\n", "anomalies: &r [*r]\n"))
    if roll < 0.47:  # a key that is not a string: a sequence or a mapping as a key
        return text + rng.choice(("? [a, b]\n: 1\n", "{[1]: 2}: 3\n", "? {a: 1}\n: x\n", "1: one\n", "~: null\n",
                                  "2024-01-15: date\n", "[x]: y\n"))
    if roll < 0.50:  # deep nesting (600 is past the recursion limit; PyYAML takes ~1 s to fail at 3000)
        depth = rng.choice((50, 600))
        return text + "deep: " + "[" * depth + "]" * depth + "\n"
    if roll < 0.53:  # an integer literal longer than Python converts by default
        lines = text.splitlines()
        index = rng.randrange(len(lines))
        if ":" in lines[index]:
            lines[index] = lines[index].split(":", 1)[0] + ": " + "9" * rng.choice((400, 4301, 6000))
        return "\n".join(lines) + "\n"
    if roll < 0.58:  # several documents, a byte-order mark, tabs, a document end, CR LF, flow noise
        return rng.choice(("---\n" + text + "---\nname: two\n", "\ufeff" + text, text.replace("  ", "\t", 1),
                           text + "...\n", text.replace("\n", "\r\n"), "%YAML 1.1\n---\n" + text, text + "}\n",
                           "- " + text, text + "name: dup\nname: dup2\n"))
    if roll < 0.62:  # a very long scalar
        return text + "description: " + json.dumps("x" * rng.choice((1000, 10_000))) + "\n"
    return text


def _run_load(loader: Callable[[Path], object], filename: str) -> Callable[[bytes, Path], object]:
    def run(data: bytes, workdir: Path) -> object:
        path = workdir / filename
        path.write_bytes(data)
        return loader(path)

    return run


def _run_scenario_data(data: bytes, workdir: Path) -> object:
    try:
        loaded = yaml.safe_load(data)  # PyYAML's own loader builds the data: sets, timestamps, binary, shared nodes
    except Exception:  # noqa: BLE001 - not loadable (PyYAML has its own bugs): nothing for parse_scenario to see
        return REJECTED
    return parse_scenario(loaded, {}, "<fuzz>", workdir, "fuzz")


#: Drive cycle files beside the fuzzed scenario (`prepare`), so `route.cycle` paths reach the CSV reader.
_CYCLE_FILES = {
    "ok.csv": "# a short valid cycle\ntime_s,speed_kmh\n0,0\n1,5\n2,10\n3,12\n4,0\n",
    "bad.csv": "time_s,speed_kmh\n0,0\n1,fast\n",
    "columns.csv": "t,v\n0,0\n1,1\n",
    "one.csv": "time_s,speed_kmh\n0,0\n",
    "back.csv": "time_s,speed_kmh\n0,0\n2,5\n1,4\n",
}


def _prepare_cycles(workdir: Path) -> None:
    """The cycle files the structured inputs name, and the bundled scenarios' recordings (their routes name them
    relative to the scenario file)."""
    for name, text in _CYCLE_FILES.items():
        (workdir / name).write_text(text)
    recordings = ROOT / "scenarios" / "recordings"
    if recordings.is_dir():
        (workdir / "recordings").mkdir(exist_ok=True)
        for log in recordings.glob("*.blf"):
            shutil.copyfile(log, workdir / "recordings" / log.name)


def _scenario_tree(rng: random.Random) -> dict:
    tree: dict[str, Any] = {"name": rng.choice(("fuzz", "udds-overheating", "x" * 80))}
    if rng.random() < 0.5:
        tree["description"] = "a generated scenario"
    tree["vehicle"] = rng.choice(tuple(VEHICLES))
    tree["seed"] = rng.randrange(1000)
    if rng.random() < 0.5:
        route: dict[str, Any] = {"cycle": rng.choice(BUNDLED_CYCLES + tuple(_CYCLE_FILES) + ("missing.csv", "nedc"))}
        if rng.random() < 0.5:
            route["repeat"] = rng.randint(1, 3)
        duration = 1400.0
    else:
        duration = float(rng.choice((120, 150, 300, 600, 900)))
        generated: dict[str, Any] = {"duration_s": duration}
        if rng.random() < 0.6:
            generated["mix"] = {kind: round(rng.random(), 2) for kind in SEGMENT_KINDS if rng.random() < 0.7}
        if rng.random() < 0.4:
            generated["styles"] = {style: round(rng.random(), 2) for style in STYLES if rng.random() < 0.7}
        if rng.random() < 0.3:
            generated["seed"] = rng.randrange(100)
        route = {"generated": generated}
    if rng.random() < 0.3:
        route["start"] = {"latitude": rng.uniform(-80, 80), "longitude": rng.uniform(-180, 180),
                          "altitude_m": rng.uniform(-400, 4500), "heading_deg": rng.uniform(0, 360)}
    if rng.random() < 0.3:
        route["hilliness"] = round(rng.uniform(0, 3), 2)
    tree["route"] = route
    if rng.random() < 0.6:
        tree["conditions"] = {"ambient_c": rng.uniform(-40, 50), "start_fuel_pct": rng.uniform(1, 100)}
        if rng.random() < 0.5:
            tree["conditions"]["start_coolant_c"] = rng.uniform(-40, 110)
    anomalies = []
    at = 0.0
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        kind = rng.choice(ANOMALY_TYPES)
        at += rng.uniform(0, duration / 4)
        item: dict[str, Any] = {"type": kind, "at_s": round(at, 1)}
        for key, high in (("onset_s", 30), ("sustain_s", 120), ("recovery_s", 30)):
            if rng.random() < 0.6:
                item[key] = round(rng.uniform(0, high), 1) or 1.0
        if rng.random() < 0.5:
            item["severity"] = round(rng.uniform(0.05, 1.0), 2)
        if kind in SENSOR_FAULT_TYPES or rng.random() < 0.05:
            item["signal"] = rng.choice(SIGNALS)
        at += 200
        anomalies.append(item)
    if anomalies or rng.random() < 0.3:
        tree["anomalies"] = anomalies
    if rng.random() < 0.6:
        expect: dict[str, Any] = {}
        for key, (low, high) in EXPECT_KEYS.items():
            if rng.random() < 0.4:
                low, high = -1.0 if low is None else low, 300.0 if high is None else high
                expect[key] = round(rng.uniform(low, high), 2)
        if rng.random() < 0.2:
            expect["recall_min"] = {rng.choice(ANOMALY_TYPES): round(rng.random(), 2)}
        tree["expect"] = expect
    return tree


def _structured_yaml(rng: random.Random, tree: dict, unknown_keys: tuple[str, ...]) -> bytes:
    """A valid data-file tree, mutated as a tree, written as YAML, then mutated as text."""
    _mutate_tree(rng, tree, unknown_keys)
    text = "\n".join(_yaml_block(tree, rng)) + "\n"
    return _yaml_text_mutation(rng, text).encode("utf-8", "surrogatepass")


def _scenario_structured(rng: random.Random) -> bytes:
    return _structured_yaml(rng, _scenario_tree(rng), ("names", "speed", "anomaly", "expected", "route2"))


def _bundled_examples(folder: str, limit: int = 64) -> Callable[[], list[bytes]]:
    def examples() -> list[bytes]:
        return [path.read_bytes() for path in sorted((ROOT / folder).glob("*.yaml"))[:limit]]

    return examples


def _scenario_examples() -> list[bytes]:
    rng = random.Random(11)
    return _bundled_examples("scenarios")() + [
        ("\n".join(_yaml_block(_scenario_tree(rng), rng)) + "\n").encode() for _ in range(8)]


def _rig_tree(rng: random.Random) -> dict:
    tree: dict[str, Any] = {"name": rng.choice(("bench-1", "loopback", "fuzz"))}
    profile = rng.choice(("obd2", "j1939"))
    if rng.random() < 0.8:
        tree["profile"] = profile
    if rng.random() < 0.8:
        interface = rng.choice(("virtual", "pcan", "slcan", "socketcan", "kvaser", "socketcand"))
        tree["can"] = {"interface": interface,
                       "channel": rng.choice(("simulated", "PCAN_USBBUS1", "can0", "vcan0", "/dev/ttyACM0"))}
        if rng.random() < 0.6:
            tree["can"]["bitrate"] = 500000 if profile == "obd2" else 250000
    stm32_kind = rng.choice(("simulated", "real"))
    tree["stm32"] = {"kind": stm32_kind, "codec": rng.choice(("dtg-link-v2", "raw-can-v1"))}
    if rng.random() < 0.5:
        tree["stm32"]["uart_tap"] = rng.choice(("simulated", "/dev/ttyUSB0"))
    if rng.random() < 0.3:
        tree["stm32"]["baudrate"] = rng.choice((921600, 115200))
    if rng.random() < 0.7:
        android_kind = rng.choice(("simulated", "adb"))
        tree["android"] = {"kind": android_kind}
        if android_kind == "adb":
            tree["android"].update(serial=rng.choice(("simulated", "R58M12345")), apk="dtg-app.apk",
                                   package="com.dtg.edgeai")
    if rng.random() < 0.7:
        gnss_kind = rng.choice(("none", "simulated", "nmea"))
        tree["gnss"] = {"kind": gnss_kind}
        if gnss_kind == "nmea":
            tree["gnss"].update(port=rng.choice(("simulated", "/dev/ttyUSB1")), baudrate=9600)
    if rng.random() < 0.3:
        tree["models"] = "models/manifest.json"
    if rng.random() < 0.5:
        tree["time_scale"] = 1 if stm32_kind == "real" else rng.choice((1, 20, 100))
    return tree


def _rig_structured(rng: random.Random) -> bytes:
    return _structured_yaml(rng, _rig_tree(rng), ("cans", "uart", "adb", "gps", "timescale"))


def _rig_examples() -> list[bytes]:
    rng = random.Random(13)
    return _bundled_examples("rigs")() + [
        ("\n".join(_yaml_block(_rig_tree(rng), rng)) + "\n").encode() for _ in range(8)]


_YAML_TOKENS = (b": ", b"- ", b"&a ", b"*a", b"!!python/object:os.system ", b"!!binary ", b"\t", b"{", b"}", b"[",
                b"]", b"? ", b"'", b'"', b".inf", b"-.inf", b".nan", b"~", b"\\0", b"\n", b"#", b"|", b">", b"%",
                b"@", b"`", b"---\n", b"...\n", b"<<: ", b"0x1F", b"0o17", b"1_000", b"2024-01-15", b"yes",
                b"\xef\xbb\xbf")

TARGETS: dict[str, FuzzTarget] = {
    t.name: t
    for t in (
        FuzzTarget("link-raw-can-v1", "RawCanV1Decoder.feed/finish (whole and chunked), RawCanV1Codec.decode",
                   (LinkFrameError,), _run_link("raw-can-v1"), _link_examples("raw-can-v1"), _v1_structured,
                   max_size=512, tokens=(b"\xaa", b"\x55", b"\xaa\x55", b"\x00" * 8, b"\xff" * 4)),
        FuzzTarget("link-dtg-link-v2", "DtgLinkV2Decoder.feed/finish (whole and chunked), DtgLinkV2Codec.decode",
                   (LinkFrameError,), _run_link("dtg-link-v2"), _link_examples("dtg-link-v2"), _v2_structured,
                   max_size=768, tokens=(b"\xd7\x47", b"\xd7\x47\x02", b"\xd7\x47\x02\x01\x0d", b"\xff" * 4,
                                         b"\x00" * 4)),
        FuzzTarget("nmea", "harness.wire.nmea_parser.parse_sentence (bytes and str), NmeaStream.feed (chunked)",
                   (NmeaError,), _run_nmea, _nmea_examples, _nmea_structured, max_size=300, text=True, suffix=".nmea",
                   tokens=(b"$", b"*", b",", b"\r\n", b"$GPGGA,", b"$GNRMC,", b",N,", b",E,", b"*00")),
        FuzzTarget("events", "harness.wire.events.parse_event_line, EventCollector.feed (chunked)", (),
                   _run_events, _events_examples, _events_structured, max_size=4096, text=True, suffix=".log",
                   tokens=(b'"', b":", b",", b"{", b"}", b"[", b"]", b"\n", b"I/EdgeAI: ", b" EdgeAI  : ",
                           b'"kind":', b'"v":1', b"NaN", b"Infinity", b"1e999", b"\\u0000", b"\\ud800", b"\xff")),
        FuzzTarget("scenario", "harness.world.scenario.load_scenario on a file", (ScenarioError,),
                   _run_load(load_scenario, "fuzz.yaml"), _scenario_examples, _scenario_structured, max_size=4096,
                   text=True, tokens=_YAML_TOKENS, suffix=".yaml", prepare=_prepare_cycles),
        FuzzTarget("scenario-data", "harness.world.scenario.parse_scenario on yaml.safe_load data", (ScenarioError,),
                   _run_scenario_data, _scenario_examples, _scenario_structured, max_size=4096, text=True,
                   tokens=_YAML_TOKENS, suffix=".yaml", prepare=_prepare_cycles),
        FuzzTarget("rig", "harness.rig.rigfile.load_rig on a file", (RigError,), _run_load(load_rig, "fuzz-rig.yaml"),
                   _rig_examples, _rig_structured, max_size=4096, text=True, tokens=_YAML_TOKENS, suffix=".yaml"),
    )
}


def target_names() -> list[str]:
    """The fuzz targets, in run order."""
    return list(TARGETS)


def get_target(name: str) -> FuzzTarget:
    """The target called `name`; ValueError listing the choices otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown fuzz target {name!r}; expected one of: {', '.join(TARGETS)}") from None


# ------------------------------------------------------------------------------------------------ inputs

_INTERESTING = b"\x00\x01\x7f\x80\xff\xaa\x55\xd7\x47\x02\n\r$*,:{}[]\"\\ -.09eE"


def _random_input(rng: random.Random, target: FuzzTarget) -> bytes:
    size = int(min(target.max_size, rng.expovariate(1.0 / rng.choice((8, 40, 200)))))
    if target.text and rng.random() < 0.5:
        return "".join(rng.choice(string.printable) for _ in range(size)).encode()
    return rng.randbytes(size)


def _mutate(rng: random.Random, data: bytes, corpus: Sequence[bytes], target: FuzzTarget) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        n = len(out)
        op = rng.randrange(11)
        if op == 0 and n:  # bit flips
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(n)
                out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            out[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2 and n:
            out[rng.randrange(n)] = rng.randrange(256)
        elif op == 3 and n:  # truncation, at either end
            cut = rng.randrange(n)
            out = out[:cut] if rng.random() < 0.7 else out[cut:]
        elif op == 4 and n:
            i = rng.randrange(n)
            del out[i:i + rng.randint(1, 16)]
        elif op == 5:
            i = rng.randint(0, n)
            out[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 6 and n:  # a chunk repeated
            i = rng.randrange(n)
            chunk = out[i:i + rng.randint(1, 32)]
            out[i:i] = chunk * rng.randint(1, 64)
        elif op == 7 and corpus:  # splice with another example
            other = rng.choice(corpus)
            out = out[:rng.randint(0, n)] + other[rng.randint(0, len(other)):]
        elif op == 8 and n > 1:  # a chunk copied over another place
            i, j = rng.randrange(n), rng.randrange(n)
            length = rng.randint(1, 32)
            out[j:j + length] = out[i:i + length]
        elif op == 9 and target.tokens:
            i = rng.randint(0, n)
            out[i:i] = rng.choice(target.tokens)
        elif op == 10 and n:  # a byte range swapped for interesting bytes
            i = rng.randrange(n)
            out[i:i + 4] = bytes(rng.choice(_INTERESTING) for _ in range(rng.randint(0, 4)))
    return bytes(out[:target.max_size])


def draw_input(rng: random.Random, target: FuzzTarget, corpus: Sequence[bytes]) -> tuple[str, bytes]:
    """(source, input): pure random, a mutation of an example, or structure-aware (sometimes mutated too)."""
    roll = rng.random()
    if roll < SOURCES[0][1]:
        return "random", _random_input(rng, target)
    if roll < SOURCES[0][1] + SOURCES[1][1] and corpus:
        return "mutation", _mutate(rng, rng.choice(corpus), corpus, target)
    data = target.structured(rng)  # not cut to max_size: a structure may legitimately be longer
    if rng.random() < 0.2:
        data = _mutate(rng, data, corpus, target)
    return "structured", data


# ------------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Outcome:
    """What one input did: ``ok`` (parsed), ``rejected`` (the documented error or `REJECTED`), ``unexpected``
    (anything else raised, or a broken promise), ``timeout`` (over the time limit)."""

    kind: str
    elapsed_s: float
    error: BaseException | None = None
    signature: str = ""
    traceback: str = ""

    @property
    def failed(self) -> bool:
        return self.kind in ("unexpected", "timeout")


def _on_alarm(signum: int, frame: object) -> None:
    raise InputTimeout()


def _location(tb: traceback.StackSummary, hang: bool = False) -> str:
    """The innermost frame in this project's code, the fuzz targets' own code last (else the innermost frame):
    'harness/x.py:12 (function)'.

    For a `hang`, the outermost frame of the innermost run of frames in that frame's module, without the line:
    where a hang was interrupted varies within a loop and its helpers, the function that entered the module does
    not ('harness/x.py (function)').
    """
    ours = [f for f in tb if f.filename.startswith(str(ROOT)) and "site-packages" not in f.filename
            and f.name != "_on_alarm"]
    frames = [f for f in ours if not f.filename.endswith("harness/tools/fuzz.py")] or ours  # else the target's own code
    if frames and hang:
        index = len(frames) - 1
        while index > 0 and frames[index - 1].filename == frames[-1].filename:
            index -= 1
        frames = frames[:index + 1]
    frame = (frames or list(tb) or [None])[-1]
    if frame is None:
        return "?"
    name = frame.filename[len(str(ROOT)) + 1:] if frame.filename.startswith(str(ROOT)) else frame.filename
    return f"{name} ({frame.name})" if hang else f"{name}:{frame.lineno} ({frame.name})"


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def run_one(target: FuzzTarget, data: bytes, workdir: Path, time_limit_s: float | None = 1.0) -> Outcome:
    """Run one input through `target` under the time limit (SIGALRM, main thread only; elsewhere the limit is
    only checked afterwards) and classify what happened."""
    alarm = time_limit_s is not None and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _on_alarm) if alarm else None
    started = time.perf_counter()
    try:
        try:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, time_limit_s)
            try:
                result = target.run(data, workdir)
            finally:
                if alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except InputTimeout as timeout:
            elapsed = time.perf_counter() - started
            stack = traceback.extract_tb(timeout.__traceback__)
            return Outcome("timeout", elapsed, timeout, f"timeout at {_location(stack, hang=True)}",
                           "".join(traceback.format_list(stack)))
        except target.accepted as rejected:
            elapsed = time.perf_counter() - started
            if time_limit_s is not None and elapsed > time_limit_s:
                return Outcome("timeout", elapsed, rejected, "timeout (returned late)")
            return Outcome("rejected", elapsed, rejected)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - anything else is what the fuzzer is looking for
            elapsed = time.perf_counter() - started
            stack = traceback.extract_tb(error.__traceback__)
            return Outcome("unexpected", elapsed, error, f"{type(error).__name__} at {_location(stack)}",
                           "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        elapsed = time.perf_counter() - started
        if time_limit_s is not None and elapsed > time_limit_s:
            return Outcome("timeout", elapsed, None, "timeout (returned late)")
        return Outcome("rejected" if result is REJECTED else "ok", elapsed)
    finally:
        if alarm:
            signal.signal(signal.SIGALRM, previous)


def minimize(target: FuzzTarget, data: bytes, signature: str, workdir: Path, time_limit_s: float | None,
             budget_s: float = 10.0) -> bytes:
    """A smaller input that fails with the same signature: greedily delete lines, then chunks (halves down to
    single bytes), then simplify bytes to '0' or NUL, for at most `budget_s` of wall time. Greedy: minimal, not
    minimum."""
    deadline = time.monotonic() + budget_s

    def still_fails(candidate: bytes) -> bool:
        return run_one(target, candidate, workdir, time_limit_s).signature == signature

    best = data
    lines = best.split(b"\n")  # whole lines first: text formats break less when cut at line ends
    index = 0
    while len(lines) > 1 and index < len(lines) and time.monotonic() < deadline:
        candidate = b"\n".join(lines[:index] + lines[index + 1:])
        if still_fails(candidate):
            del lines[index]
            best = candidate
        else:
            index += 1
    size = max(1, len(best) // 2)
    while size >= 1 and time.monotonic() < deadline:
        start, shrunk = 0, False
        while start < len(best) and time.monotonic() < deadline:
            candidate = best[:start] + best[start + size:]
            if still_fails(candidate):
                best, shrunk = candidate, True
            else:
                start += size
        if not shrunk:
            size //= 2
    for i in range(len(best)):
        if time.monotonic() >= deadline:
            break
        for simple in (b"0", b"\x00"):
            if best[i:i + 1] != simple:
                candidate = best[:i] + simple + best[i + 1:]
                if still_fails(candidate):
                    best = candidate
                    break
    return best


@dataclass
class Finding:
    """Every input that failed the same way: the first one, shrunk, and where it is saved."""

    target: str
    signature: str
    description: str
    traceback: str
    first_input: bytes
    count: int = 1
    source: str = ""
    minimized: bytes | None = None
    path: Path | None = None


@dataclass
class TargetReport:
    target: str
    parser: str
    inputs: int = 0
    ok: int = 0
    rejected: int = 0
    unexpected: int = 0  # inputs that raised something undocumented or broke a promise
    timeouts: int = 0
    wall_s: float = 0.0
    run_s: float = 0.0  # time inside the parser (the rest is drawing inputs and bookkeeping)
    slowest_s: float = 0.0
    slowest_input: bytes = b""
    slowest_path: Path | None = None
    by_source: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def inputs_per_s(self) -> float:
        return self.inputs / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def failed(self) -> int:
        return self.unexpected + self.timeouts


@dataclass
class FuzzReport:
    seed: int
    inputs_per_target: int
    time_limit_s: float | None
    targets: list[TargetReport] = field(default_factory=list)
    out: Path | None = None

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.targets)

    def format(self) -> str:
        limit = "none" if self.time_limit_s is None else f"{self.time_limit_s:g} s"
        lines = [f"fuzz: {self.inputs_per_target} inputs per target, seed {self.seed}, time limit {limit} per input",
                 f"  {'target':<18}{'inputs':>8}{'parsed':>8}{'rejected':>9}{'unexpected':>11}{'hangs':>6}"
                 f"{'slowest ms':>11}{'inputs/s':>10}{'wall s':>8}"]
        for t in self.targets:
            lines.append(f"  {t.target:<18}{t.inputs:>8}{t.ok:>8}{t.rejected:>9}{t.unexpected:>11}{t.timeouts:>6}"
                         f"{1000 * t.slowest_s:>11.1f}{t.inputs_per_s:>10.0f}{t.wall_s:>8.1f}")
        total_inputs = sum(t.inputs for t in self.targets)
        total_wall = sum(t.wall_s for t in self.targets)
        lines.append(f"  {'total':<18}{total_inputs:>8}{sum(t.ok for t in self.targets):>8}"
                     f"{sum(t.rejected for t in self.targets):>9}{sum(t.unexpected for t in self.targets):>11}"
                     f"{sum(t.timeouts for t in self.targets):>6}{'':>11}"
                     f"{(total_inputs / total_wall if total_wall else 0):>10.0f}{total_wall:>8.1f}")
        findings = [f for t in self.targets for f in t.findings]
        if findings:
            lines.append(f"findings ({len(findings)} distinct, {self.failed} inputs):")
            for f in findings:
                shown = f.minimized if f.minimized is not None else f.first_input
                where = f" -> {f.path}" if f.path else ""
                lines.append(f"  {f.target}: {f.description} [{f.signature}] x{f.count}; reproducer "
                             f"{len(shown)} bytes {_preview(shown)}{where}")
        else:
            lines.append("no unexpected exception, no hang")
        return "\n".join(lines)


def _preview(data: bytes, limit: int = 60) -> str:
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")


def _vm_size_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def _memory_limit(extra_mb: int | None) -> Iterator[None]:
    """Cap the address space at its current size plus `extra_mb` for the block (None: no cap)."""
    size = _vm_size_bytes() if extra_mb else None
    if size is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + extra_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class _Backstop:
    """For a hang in C code that no signal interrupts: faulthandler kills the process after `timeout_s` without
    progress, dumping every thread's stack to `fatal.txt`; `in-flight.bin` then holds the input that hung."""

    def __init__(self, out: Path, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.fatal_path, self.inflight_path = out / "fatal.txt", out / "in-flight.bin"
        self._fatal = self.fatal_path.open("w")
        self._inflight = os.open(self.inflight_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._armed_at = -math.inf

    def record(self, target: str, data: bytes) -> None:
        now = time.monotonic()
        if now - self._armed_at > 1.0:  # re-arming costs ~50 us: once a second is enough
            self._fatal.seek(0)
            self._fatal.write(f"fuzz target {target}: no progress for {self.timeout_s:g} s; the input is in "
                              f"{self.inflight_path}\n")
            self._fatal.flush()
            faulthandler.dump_traceback_later(self.timeout_s, exit=True, file=self._fatal)
            self._armed_at = now
        os.ftruncate(self._inflight, 0)
        os.pwrite(self._inflight, data, 0)

    def pause(self) -> None:
        """Disarm until the next `record` (shrinking findings is not fuzzing, and takes its own bounded time)."""
        faulthandler.cancel_dump_traceback_later()
        self._armed_at = -math.inf

    def close(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        self._fatal.close()
        os.close(self._inflight)
        self.fatal_path.unlink(missing_ok=True)
        self.inflight_path.unlink(missing_ok=True)


def _slug(signature: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "-", signature.split(" (")[0]).strip("-").lower()[:60]
    return f"{words}-{hashlib.sha256(signature.encode()).hexdigest()[:8]}"


def _save(out: Path, target: FuzzTarget, name: str, data: bytes, note: str) -> Path:
    folder = out / target.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{target.suffix}"
    path.write_bytes(data)
    path.with_name(path.name + ".txt").write_text(note)
    return path


def _fuzz_target(target: FuzzTarget, inputs: int, seed: int, workdir: Path, out: Path | None,
                 time_limit_s: float | None, minimize_s: float, backstop: _Backstop | None,
                 echo: Callable[[str], None] | None) -> TargetReport:
    report = TargetReport(target.name, target.parser)
    rng = random.Random(f"{seed}:{target.name}")
    corpus = target.examples()
    findings: dict[str, Finding] = {}
    started = time.perf_counter()
    next_progress_s = started + PROGRESS_EVERY_S
    for index in range(inputs):
        if echo is not None and index % 256 == 0 and time.perf_counter() >= next_progress_s:
            next_progress_s += PROGRESS_EVERY_S
            echo(f"  {target.name}: {index}/{inputs} inputs after {time.perf_counter() - started:.0f} s, "
                 f"{report.unexpected} unexpected, {report.timeouts} hangs")
        source, data = draw_input(rng, target, corpus)
        if backstop is not None:
            backstop.record(target.name, data)
        outcome = run_one(target, data, workdir, time_limit_s)
        report.inputs += 1
        report.run_s += outcome.elapsed_s
        report.by_source[source] = report.by_source.get(source, 0) + 1
        if outcome.elapsed_s > report.slowest_s:
            report.slowest_s, report.slowest_input = outcome.elapsed_s, data
        if outcome.kind == "ok":
            report.ok += 1
        elif outcome.kind == "rejected":
            report.rejected += 1
        else:
            if outcome.kind == "timeout":
                report.timeouts += 1
            else:
                report.unexpected += 1
            finding = findings.get(outcome.signature)
            if finding is None:
                description = (f"hang: no result within {time_limit_s:g} s" if outcome.kind == "timeout"
                               else _describe(outcome.error))
                innermost = traceback.extract_tb(outcome.error.__traceback__)[-1:] if outcome.kind != "timeout" \
                    and outcome.error is not None else []
                if innermost and _location(innermost) not in outcome.signature:
                    description += f" (raised in {_location(innermost)})"
                findings[outcome.signature] = Finding(target.name, outcome.signature, description, outcome.traceback,
                                                      data, source=source)
            else:
                finding.count += 1
    report.wall_s = time.perf_counter() - started
    if backstop is not None:
        backstop.pause()
    for finding in findings.values():
        finding.minimized = minimize(target, finding.first_input, finding.signature, workdir, time_limit_s,
                                     minimize_s)
        if out is not None:
            note = (f"fuzz target {target.name} ({target.parser}); documented rejections: "
                    f"{', '.join(e.__name__ for e in target.accepted) or 'none'}\n"
                    f"{finding.description}\nsignature: {finding.signature}\ninputs that hit it: {finding.count} "
                    f"(first from the {finding.source} source, {len(finding.first_input)} bytes; this one shrunk "
                    f"to {len(finding.minimized)})\nreplay: dtg-hil bench fuzz --target {target.name} --replay "
                    f"FILE\n\n{finding.traceback}")
            finding.path = _save(out, target, _slug(finding.signature), finding.minimized, note)
            _save(out, target, _slug(finding.signature) + "-original", finding.first_input, note)
    report.findings = list(findings.values())
    if out is not None and report.inputs:
        report.slowest_path = _save(out, target, "slowest", report.slowest_input,
                                    f"the slowest input of {target.name}: {1000 * report.slowest_s:.1f} ms\n")
    if echo is not None:
        echo(f"  {target.name}: {report.inputs} inputs in {report.wall_s:.1f} s ({report.inputs_per_s:.0f}/s), "
             f"{report.unexpected} unexpected, {report.timeouts} hangs, slowest {1000 * report.slowest_s:.1f} ms")
    return report


def run_fuzz(targets: Sequence[FuzzTarget], inputs: int = 100_000, seed: int = 0, out: Path | None = None,
             time_limit_s: float | None = 1.0, minimize_s: float = 10.0, memory_limit_mb: int | None = None,
             backstop_s: float | None = None, echo: Callable[[str], None] | None = None) -> FuzzReport:
    """Feed `inputs` inputs to each target; findings (and each target's slowest input) are saved under `out`.

    `memory_limit_mb` caps the address space at its size now plus that much for the run; `backstop_s` arms the
    faulthandler backstop (needs `out`). Both change process-wide state and are meant for the command line.
    """
    if inputs < 0:
        raise ValueError(f"inputs must be >= 0, got {inputs}")
    if time_limit_s is not None and not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise ValueError(f"time_limit_s must be a finite number > 0 or None, got {time_limit_s!r}")
    report = FuzzReport(seed, inputs, time_limit_s, out=out)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    backstop = _Backstop(out, backstop_s) if backstop_s is not None and out is not None else None
    try:
        with _memory_limit(memory_limit_mb), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's RuntimeWarnings on odd numbers: what counts is what is raised
            for target in targets:
                with tempfile.TemporaryDirectory(prefix=f"fuzz-{target.name}-") as scratch:
                    workdir = Path(scratch)
                    if target.prepare is not None:
                        target.prepare(workdir)
                    report.targets.append(_fuzz_target(target, inputs, seed, workdir, out, time_limit_s,
                                                       minimize_s, backstop, echo))
    finally:
        if backstop is not None:
            backstop.close()
    if out is not None:
        (out / "report.txt").write_text(report.format() + "\n")
    return report


# ------------------------------------------------------------------------------------------ command line


def add_fuzz_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dtg-hil bench fuzz`."""
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per target (default: 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input generator (default: 0)")
    parser.add_argument("--target", action="extend", nargs="+", choices=target_names(), metavar="NAME",
                        help=f"targets to fuzz, one or more of: {', '.join(target_names())} (default: all)")
    parser.add_argument("--out", default="reports/fuzz", metavar="DIR",
                        help="folder for reproducers, the slowest inputs and report.txt (default: reports/fuzz)")
    parser.add_argument("--time-limit-s", type=float, default=1.0,
                        help="wall seconds one input may take before it counts as a hang (default: 1)")
    parser.add_argument("--minimize-s", type=float, default=10.0,
                        help="wall seconds spent shrinking each finding's input (default: 10)")
    parser.add_argument("--memory-limit-mb", type=int, default=2048,
                        help="address space the run may grow by before allocations fail; 0 for no cap "
                             "(default: 2048)")
    parser.add_argument("--replay", metavar="FILE",
                        help="run one saved input through the --target (exactly one) and print what it did")


def _replay(target: FuzzTarget, path: Path, time_limit_s: float) -> int:
    data = path.read_bytes()
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target.name}-") as scratch:
        if target.prepare is not None:
            target.prepare(Path(scratch))
        outcome = run_one(target, data, Path(scratch), time_limit_s)
    print(f"{target.name} on {path} ({len(data)} bytes): {outcome.kind} in {1000 * outcome.elapsed_s:.1f} ms")
    if outcome.error is not None:
        print(outcome.traceback or _describe(outcome.error))
    return EXIT_FAILED if outcome.failed else EXIT_OK


def cmd_bench_fuzz(args: argparse.Namespace) -> int:
    """Fuzz the chosen targets; exit 1 if any input raised an undocumented exception or hung."""
    names = list(dict.fromkeys(args.target or target_names()))
    if args.inputs < 0 or not (math.isfinite(args.time_limit_s) and args.time_limit_s > 0) or args.minimize_s < 0:
        print("--inputs and --minimize-s must be >= 0, --time-limit-s a number > 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.replay:
        if len(names) != 1:
            print(f"--replay needs exactly one --target; expected one of: {', '.join(target_names())}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            return _replay(get_target(names[0]), Path(args.replay), args.time_limit_s)
        except OSError as exc:
            print(f"cannot read {args.replay}: {exc.strerror}", file=sys.stderr)
            return EXIT_BAD_INPUT
    out = Path(args.out)
    print(f"fuzzing {', '.join(names)}: {args.inputs} inputs each, seed {args.seed}; findings go to {out}/",
          flush=True)
    report = run_fuzz([get_target(name) for name in names], args.inputs, args.seed, out, args.time_limit_s,
                      minimize_s=args.minimize_s, memory_limit_mb=args.memory_limit_mb or None,
                      backstop_s=max(30.0, 10 * args.time_limit_s),
                      echo=lambda line: print(line, flush=True))
    print(report.format(), flush=True)
    return EXIT_FAILED if report.failed else EXIT_OK
