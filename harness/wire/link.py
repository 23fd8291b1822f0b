"""UART link codecs between the STM32 and the Android app: CRCs, frame encoders, streaming decoders.

This module is the contract for the bytes on the UART (921600 8N1, STM32 → Android). It holds two codecs
behind one interface (`get_codec(name)`):

``raw-can-v1`` — the reference firmware's frame, byte-exact (DESIGN.md, "Interfaces and contracts")::

    offset  0     1      2      3     4 … 11       12      13      14
            0xAA  ID_H   ID_L   DLC   D0 … D7      CRC_H   CRC_L   0x55

  15 bytes; data zero-padded to 8; CRC-16/MODBUS over bytes 1–11, sent HIGH byte first (Modbus itself sends
  the low byte first; the reference firmware does not). 11-bit IDs only, no sequence number, no timestamp:
  encoding an extended (29-bit) frame raises `LinkCapabilityError` rather than truncating the ID.

``dtg-link-v2`` — this project's successor. All multi-byte fields are big-endian::

    offset  size  field
    0       2     SOF         0xD7 0x47 ("D7 G": DTG); differs from raw-can-v1's 0xAA so captures never mix up
    2       1     version     0x02
    3       1     type        0x01 CAN frame, 0x02 1 Hz sample, 0x03 status (see RecordType)
    4       1     length      payload length in bytes, L (0–255; each known type has a fixed range)
    5       4     seq         uint32, +1 per frame of any type, wraps 2**32-1 → 0
    9       4     t_ms        uint32 ms since start of run; 0xFFFFFFFF = "no timestamp"
    13      L     payload
    13+L    4     CRC-32/ISO-HDLC (the zlib / java.util.zip.CRC32 one) over bytes 2 … 12+L (all after SOF)

  Header 13 + CRC 4 = 17 bytes of overhead: an 8-byte CAN frame is 30 bytes, so 921600 baud carries
  3072 of them per second (all of a fully loaded 250 kbit/s J1939 bus; ~2/3 of a full 500 kbit/s bus).

  Payloads:

  * CAN (type 1, L = 5 + DLC): ``id_flags`` uint32 (bit 31 = extended, bits 30–29 reserved 0, bits 28–0 the
    ID), ``dlc`` uint8 (0–8), then DLC data bytes (no padding: the length says where it ends).
  * Sample (type 2, L = 26): the ten signals in `harness.wire.signals.SIGNALS` order, fixed-point; see
    `SAMPLE_FIELDS` for type, resolution and the reserved "not available" code of each.
  * Status (type 3, L = 16): four uint32 counters: OBD requests sent, requests unanswered, CAN frames
    received, CAN frames dropped by the firmware's receive queue.

  Why CRC-32 rather than CRC-16: the Android side gets a correct implementation for free
  (java.util.zip.CRC32; the reference system shipped with mismatched CRC-16s); its Hamming distance is 5
  or more at these frame lengths against 4 for CRC-16; and a decoder resynchronising after corruption
  tests the CRC at many false start positions, where 2**-32 false accepts per candidate instead of 2**-16
  keeps foreign frames out (docs/link.md has the full rationale). Why a 32-bit sequence number: a 16-bit
  one wraps after ~21 s of outage at full link load, and a longer outage would then be under-counted.

Resynchronisation (both decoders): keep the unconsumed bytes; find the next start marker; check each header
field as it arrives; wait until the whole frame is there; check the CRC (and raw-can-v1's end marker). On
any failure skip ONE byte and rescan — the rejected bytes are rescanned, so a frame that follows a corrupted
one is never lost (short of a CRC collision). A decoder never raises on byte input and never yields a frame
whose CRC is wrong. Call ``finish()`` at end of stream: it stops waiting for the partial frame at the tail
(a corrupted length can make the decoder wait for bytes that never come) and decodes what lies behind it.

Loss counting (dtg-link-v2 only): each CRC-valid frame's seq is compared with the previous one, modulo
2**32; the gap minus one is added to ``frames_lost``. Frames lost after the last received frame cannot be
seen from sequence numbers; frames lost before the first one can only be counted when the decoder is told
the first sequence number the sender used (``decoder(first_seq=...)``).

What this module does not do: no I/O, no threads, no clocks (raw-can-v1 frames come out with
``timestamp_s=None``; stamping arrival times is the rig's job). It does not model RTR, error or CAN FD
frames, UART framing/parity errors, or flow control.
"""
from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from harness.core.errors import DtgHilError
from harness.wire.signals import SIGNALS, UNITS

__all__ = [
    "CRC_VARIANTS",
    "CanFrame",
    "CrcVariant",
    "DecoderStats",
    "DtgLinkV2Codec",
    "DtgLinkV2Decoder",
    "LinkCapabilities",
    "LinkCapabilityError",
    "LinkCodec",
    "LinkDecoder",
    "LinkEncoder",
    "LinkError",
    "LinkFrameError",
    "RawCanV1Codec",
    "RawCanV1Decoder",
    "Received",
    "Record",
    "RecordType",
    "SAMPLE_FIELDS",
    "SampleField",
    "SampleRecord",
    "StatusRecord",
    "codec_names",
    "crc16_ccitt_false",
    "crc16_modbus",
    "crc32_iso_hdlc",
    "describe_crc_mismatch",
    "get_codec",
    "identify_crc",
]


# --------------------------------------------------------------------------------------------- errors


class LinkError(DtgHilError):
    """Base of every error this module raises about link content."""


class LinkCapabilityError(LinkError):
    """The codec cannot carry this record at all (e.g. a 29-bit ID on raw-can-v1); nothing is truncated."""


class LinkFrameError(LinkError):
    """One complete frame given to ``codec.decode`` is not a valid frame; the message says what is wrong."""

    def __init__(self, codec: str, frame: bytes, problem: str) -> None:
        self.codec = codec
        self.frame = bytes(frame)
        self.problem = problem
        super().__init__(f"{codec} frame {self.frame.hex()}: {problem}")


# ----------------------------------------------------------------------------------------------- CRCs


@dataclass(frozen=True)
class CrcVariant:
    """One CRC algorithm in the Rocksoft/reveng parameter model (poly in normal, non-reflected form).

    >>> CRC_VARIANTS["crc16-modbus"].compute(b"123456789") == 0x4B37
    True
    """

    name: str
    title: str  # the reveng catalogue name, e.g. "CRC-16/MODBUS"
    width: int
    poly: int
    init: int
    reflected: bool  # refin = refout in every variant listed here
    xorout: int
    check: int  # the CRC of b"123456789", from the reveng catalogue
    _table: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", _crc_table(self.width, self.poly, self.reflected))

    def compute(self, data: bytes | bytearray | memoryview) -> int:
        """The CRC of `data`."""
        table, crc = self._table, self.init
        if self.reflected:
            for byte in data:
                crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
        else:
            shift, mask = self.width - 8, (1 << self.width) - 1
            for byte in data:
                crc = ((crc << 8) & mask) ^ table[((crc >> shift) ^ byte) & 0xFF]
        return crc ^ self.xorout


def _reflect(value: int, bits: int) -> int:
    return int(format(value, f"0{bits}b")[::-1], 2)


def _crc_table(width: int, poly: int, reflected: bool) -> tuple[int, ...]:
    table = []
    if reflected:
        rpoly = _reflect(poly, width)  # 0x8005 -> 0xA001, the form the MODBUS spec and the firmware quote
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ rpoly if crc & 1 else crc >> 1
            table.append(crc)
    else:
        top, mask = 1 << (width - 1), (1 << width) - 1
        for byte in range(256):
            crc = byte << (width - 8)
            for _ in range(8):
                crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
            table.append(crc)
    return tuple(table)


#: CRC variants a firmware might plausibly use. The conformance checks use the registry to *name* what a
#: broken firmware computes; the codecs use only crc16-modbus (raw-can-v1) and crc32-iso-hdlc (dtg-link-v2).
CRC_VARIANTS: dict[str, CrcVariant] = {
    v.name: v
    for v in (
        CrcVariant("crc16-modbus", "CRC-16/MODBUS", 16, 0x8005, 0xFFFF, True, 0x0000, 0x4B37),
        CrcVariant("crc16-arc", "CRC-16/ARC", 16, 0x8005, 0x0000, True, 0x0000, 0xBB3D),
        CrcVariant("crc16-ccitt-false", "CRC-16/CCITT-FALSE", 16, 0x1021, 0xFFFF, False, 0x0000, 0x29B1),
        CrcVariant("crc16-xmodem", "CRC-16/XMODEM", 16, 0x1021, 0x0000, False, 0x0000, 0x31C3),
        CrcVariant("crc16-kermit", "CRC-16/KERMIT", 16, 0x1021, 0x0000, True, 0x0000, 0x2189),
        CrcVariant("crc32-iso-hdlc", "CRC-32/ISO-HDLC", 32, 0x04C11DB7, 0xFFFFFFFF, True, 0xFFFFFFFF, 0xCBF43926),
        # the STM32 CRC peripheral's reset configuration: a firmware feeding it bytes unconfigured gets this one
        CrcVariant("crc32-mpeg2", "CRC-32/MPEG-2", 32, 0x04C11DB7, 0xFFFFFFFF, False, 0x00000000, 0x0376E6E7),
    )
}

_MODBUS = CRC_VARIANTS["crc16-modbus"]
_CCITT_FALSE = CRC_VARIANTS["crc16-ccitt-false"]


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS: reflected poly 0xA001 (0x8005 normal), init 0xFFFF, no final xor. raw-can-v1's CRC.

    >>> hex(crc16_modbus(b"123456789"))
    '0x4b37'
    """
    return _MODBUS.compute(data)


def crc16_ccitt_false(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final xor. Used by no codec here:
    it exists so a conformance check can say "this firmware sends CCITT-FALSE, not MODBUS".

    >>> hex(crc16_ccitt_false(b"123456789"))
    '0x29b1'
    """
    return _CCITT_FALSE.compute(data)


def crc32_iso_hdlc(data: bytes | bytearray | memoryview) -> int:
    """CRC-32/ISO-HDLC (zlib, java.util.zip.CRC32, Ethernet): dtg-link-v2's CRC.

    >>> hex(crc32_iso_hdlc(b"123456789"))
    '0xcbf43926'
    """
    return zlib.crc32(data)  # C speed; the registry's table version is checked against it in the tests


def _matching_variants(
    data: bytes | bytearray | memoryview, carried: int, width: int
) -> list[tuple[CrcVariant, bool]]:
    """(variant, byte_swapped) for every registered variant of `width` bits that yields `carried`."""
    n_bytes = width // 8
    swapped = int.from_bytes(carried.to_bytes(n_bytes, "big"), "little")
    matches = []
    for variant in CRC_VARIANTS.values():
        if variant.width == width:
            value = variant.compute(data)
            if value == carried:
                matches.append((variant, False))
            elif value == swapped:
                matches.append((variant, True))
    return matches


def identify_crc(data: bytes | bytearray | memoryview, carried: int, width: int = 16) -> list[str]:
    """Which registered variants of `width` bits, in which byte order, turn `data` into `carried`.

    Returns names like ``"crc16-modbus"`` or ``"crc16-modbus (byte-swapped)"``; empty if none matches.

    >>> identify_crc(b"123456789", 0x29B1)
    ['crc16-ccitt-false']
    >>> identify_crc(b"123456789", 0x374B)
    ['crc16-modbus (byte-swapped)']
    """
    matches = _matching_variants(data, carried, width)
    return [variant.name + (" (byte-swapped)" if swapped else "") for variant, swapped in matches]


def describe_crc_mismatch(data: bytes | bytearray | memoryview, carried: int, expected_variant: str) -> str:
    """A one-line diagnosis: what the frame carries, what it should carry, and which variant it matches."""
    variant = CRC_VARIANTS[expected_variant]
    digits = variant.width // 4
    text = (
        f"CRC mismatch: frame carries 0x{carried:0{digits}X}, "
        f"{variant.title} is 0x{variant.compute(data):0{digits}X}"
    )
    matches = _matching_variants(data, carried, variant.width)
    if matches:
        text += "; the carried value is " + " or ".join(
            m.title + (" sent byte-swapped" if swapped else "") for m, swapped in matches
        )
    else:
        text += "; no registered CRC variant gives the carried value (corruption?)"
    return text


# ------------------------------------------------------------------------------------------- records

_MAX_STD_ID = 0x7FF
_MAX_EXT_ID = 0x1FFFFFFF
_UINT32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class CanFrame:
    """One classic CAN data frame as the firmware saw it on the bus.

    `timestamp_s` is seconds since the start of the run (None when the link carries no time, as with
    raw-can-v1). RTR, error and CAN FD frames are not modelled.
    """

    can_id: int
    data: bytes
    is_extended: bool = False
    timestamp_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.data, (bytearray, memoryview)):
            object.__setattr__(self, "data", bytes(self.data))
        if not isinstance(self.data, bytes):
            raise ValueError(f"CAN data must be bytes, got {type(self.data).__name__}")
        if len(self.data) > 8:
            raise ValueError(f"CAN data is at most 8 bytes (classic CAN), got {len(self.data)}: {self.data.hex()}")
        if not isinstance(self.can_id, int) or isinstance(self.can_id, bool):
            raise ValueError(f"CAN id must be an int, got {self.can_id!r}")
        limit, width = (_MAX_EXT_ID, 29) if self.is_extended else (_MAX_STD_ID, 11)
        if not 0 <= self.can_id <= limit:
            kind = "extended" if self.is_extended else "standard"
            hint = "" if self.is_extended else " (set is_extended=True for a 29-bit ID)"
            raise ValueError(
                f"CAN id 0x{self.can_id:X} out of range for a {kind} frame: "
                f"{width}-bit IDs are 0x0..0x{limit:X}{hint}"
            )

    @property
    def dlc(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class SampleField:
    """How one signal is packed in a dtg-link-v2 sample record: ``raw = round(value * counts_per_unit)``."""

    name: str
    unit: str
    struct_code: str  # "H" uint16, "h" int16, "i" int32
    counts_per_unit: int

    @property
    def not_available(self) -> int:
        """The reserved raw code for "no reading" (NaN): the one value saturation never produces."""
        return {"H": 0xFFFF, "h": -0x8000, "i": -0x80000000}[self.struct_code]

    @property
    def raw_range(self) -> tuple[int, int]:
        return {"H": (0, 0xFFFE), "h": (-0x7FFF, 0x7FFF), "i": (-0x7FFFFFFF, 0x7FFFFFFF)}[self.struct_code]

    @property
    def value_range(self) -> tuple[float, float]:
        lo, hi = self.raw_range
        return lo / self.counts_per_unit, hi / self.counts_per_unit

    @property
    def resolution(self) -> float:
        return 1.0 / self.counts_per_unit

    def to_raw(self, value: float | None) -> int:
        """Fixed-point code of `value`; out-of-range values saturate (as a firmware's conversion would)."""
        if value is None or math.isnan(value):
            return self.not_available
        lo, hi = self.raw_range
        if math.isinf(value):
            return hi if value > 0 else lo
        return min(max(round(value * self.counts_per_unit), lo), hi)

    def from_raw(self, raw: int) -> float | None:
        return None if raw == self.not_available else raw / self.counts_per_unit


_SAMPLE_RESOLUTION: dict[str, tuple[str, int]] = {
    # signal: (struct code, counts per unit). Unsigned where the quantity cannot be negative.
    "vehicle_speed": ("H", 100),  # 0.01 km/h, 0..655.34
    "engine_rpm": ("H", 4),  # 0.25 rpm (OBD-II PID 0x0C's own resolution), 0..16383.5
    "throttle_position": ("H", 100),  # 0.01 %, 0..655.34
    "brake_pressure": ("H", 100),  # 0.01 bar, 0..655.34
    "coolant_temp": ("h", 100),  # 0.01 degC, ±327.67
    "fuel_level": ("H", 100),  # 0.01 %, 0..655.34
    "acceleration_x": ("h", 1000),  # 0.001 m/s², ±32.767 (±3.3 g, a usual accelerometer range)
    "latitude": ("i", 10_000_000),  # 1e-7 deg (~1.1 cm), ±214.7
    "longitude": ("i", 10_000_000),  # 1e-7 deg
    "altitude": ("i", 100),  # 0.01 m, ±21474836
}

#: The sample record's fields, in wire order (= `harness.wire.signals.SIGNALS`).
SAMPLE_FIELDS: tuple[SampleField, ...] = tuple(
    SampleField(name, UNITS[name], *_SAMPLE_RESOLUTION[name]) for name in SIGNALS
)
_SAMPLE_STRUCT = struct.Struct(">" + "".join(f.struct_code for f in SAMPLE_FIELDS))


@dataclass(frozen=True)
class SampleRecord:
    """The unit's 1 Hz sample of the ten signals, `values` in `SIGNALS` order; None means no reading.

    NaN is accepted and stored as None, so a record built from a NaN reading equals its decoded copy.
    """

    t_ms: int
    values: tuple[float | None, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.t_ms, int) or isinstance(self.t_ms, bool) or self.t_ms < 0:
            raise ValueError(f"sample t_ms must be a non-negative int (ms since start of run), got {self.t_ms!r}")
        values = tuple(self.values)
        if len(values) != len(SIGNALS):
            raise ValueError(
                f"a sample carries {len(SIGNALS)} values ({', '.join(SIGNALS)}), got {len(values)}"
            )
        normalised: list[float | None] = []
        for name, value in zip(SIGNALS, values, strict=False):
            if value is None:
                normalised.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                try:
                    value = float(value)  # numpy scalars
                except (TypeError, ValueError):
                    raise ValueError(f"sample value {name} must be a number or None, got {value!r}") from None
            normalised.append(None if math.isnan(value) else float(value))
        object.__setattr__(self, "values", tuple(normalised))

    @classmethod
    def from_signals(cls, t_ms: int, reading: dict[str, float]) -> SampleRecord:
        """Build from a name → value mapping (e.g. `Trace.reading_at`); extra keys are ignored."""
        missing = [name for name in SIGNALS if name not in reading]
        if missing:
            raise ValueError(f"reading lacks signals: {', '.join(missing)}")
        return cls(t_ms, tuple(reading[name] for name in SIGNALS))

    def to_signals(self) -> dict[str, float]:
        """Name → value, with NaN for no reading (the convention of `harness.wire.signals`)."""
        return {name: math.nan if v is None else v for name, v in zip(SIGNALS, self.values, strict=False)}


@dataclass(frozen=True)
class StatusRecord:
    """The firmware's heartbeat: its own counters, uint32 each (they wrap in the firmware, not here)."""

    t_ms: int
    requests_sent: int = 0
    requests_unanswered: int = 0
    can_frames_received: int = 0
    can_frames_dropped: int = 0  # lost in the firmware's receive queue, before the UART

    def __post_init__(self) -> None:
        for name in ("t_ms", "requests_sent", "requests_unanswered", "can_frames_received", "can_frames_dropped"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _UINT32_MAX:
                raise ValueError(f"status {name} must be an int in 0..{_UINT32_MAX}, got {value!r}")


Record = CanFrame | SampleRecord | StatusRecord


@dataclass(frozen=True)
class Received:
    """One frame a decoder accepted: the record and, where the codec has one, its sequence number."""

    record: Record
    seq: int | None = None


@dataclass
class DecoderStats:
    """What a streaming decoder has seen. Sequence fields are None for codecs without sequence numbers."""

    frames_decoded: int = 0  # frames yielded
    crc_errors: int = 0  # well-framed candidates whose CRC was wrong
    bytes_skipped: int = 0  # bytes that belonged to no CRC-valid frame (noise, corrupted frames, resync)
    malformed_frames: int = 0  # CRC-valid but impossible content (e.g. DLC 9); consumed, not yielded
    unknown_records: int = 0  # CRC-valid frames of a record type this decoder does not know; skipped by length
    frames_lost: int | None = None  # frames missing from the sequence numbers, between received frames
    sequence_gaps: int | None = None  # how many times the sequence jumped forward by more than one
    sequence_resets: int | None = None  # jumps backwards (e.g. firmware restart): not counted as loss
    duplicate_frames: int | None = None  # same sequence number twice in a row


@dataclass(frozen=True)
class LinkCapabilities:
    """What a codec can carry; tests that need more are skipped with the reason."""

    max_id_bits: int
    has_sequence: bool
    has_timestamp: bool
    record_types: tuple[str, ...]
    max_frame_bytes: int


class LinkDecoder(Protocol):
    name: str
    stats: DecoderStats

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Received]: ...

    def finish(self) -> list[Received]: ...


class LinkCodec(Protocol):
    name: str
    capabilities: LinkCapabilities

    def encode(self, record: Record, seq: int = 0) -> bytes: ...

    def decode(self, frame: bytes | bytearray | memoryview) -> Received: ...

    def decoder(self) -> LinkDecoder: ...

    def encoder(self, first_seq: int = 0) -> LinkEncoder: ...


class LinkEncoder:
    """The sender's side: numbers frames itself (for codecs with sequence numbers), wrapping at 2**32."""

    def __init__(self, codec: LinkCodec, first_seq: int = 0) -> None:
        if not 0 <= first_seq <= _UINT32_MAX:
            raise ValueError(f"first_seq must be in 0..{_UINT32_MAX}, got {first_seq}")
        self.codec = codec
        self.next_seq = first_seq

    def encode(self, record: Record) -> bytes:
        frame = self.codec.encode(record, seq=self.next_seq)
        if self.codec.capabilities.has_sequence:
            self.next_seq = (self.next_seq + 1) & _UINT32_MAX
        return frame


# ------------------------------------------------------------------------------------ stream decoding

_WAIT = None  # _examine's verdict when the candidate frame is not complete yet


class _StreamDecoder:
    """Buffer, find a start marker, let the subclass judge the candidate, skip one byte on rejection.

    The read position moves forward instead of deleting from the buffer each time, so a long run of
    marker bytes costs linear, not quadratic, time.
    """

    name = ""
    _sof = 0

    def __init__(self) -> None:
        self._buf = bytearray()
        self.stats = DecoderStats()

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Received]:
        """Decode what `chunk` completes; keep any partial frame for the next call. Never raises on bytes."""
        self._buf += chunk
        return self._drain(final=False)

    def finish(self) -> list[Received]:
        """End of stream: give up on the partial frame at the tail and decode whatever lies behind it."""
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[Received]:
        buf, out, stats = self._buf, [], self.stats
        pos, end = 0, len(buf)
        while pos < end:
            start = buf.find(self._sof, pos)
            if start < 0:
                stats.bytes_skipped += end - pos
                pos = end
                break
            stats.bytes_skipped += start - pos
            pos = start
            verdict = self._examine(buf, pos, end)
            if verdict is _WAIT:
                if not final:
                    break
                verdict = (0, None)  # no more bytes will come: this candidate can never complete
            consumed, item = verdict
            if consumed == 0:
                stats.bytes_skipped += 1  # reject: skip one byte only, the rest is rescanned
                pos += 1
                continue
            pos += consumed
            if item is not None:
                stats.frames_decoded += 1
                out.append(item)
        del buf[:pos]
        return out

    def _examine(self, buf: bytearray, pos: int, end: int) -> tuple[int, Received | None] | None:
        """Judge the candidate at `pos`: _WAIT, (0, None) to reject, or (frame length, item or None)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------ raw-can-v1

_V1_SOF, _V1_EOF, _V1_LEN = 0xAA, 0x55, 15
V1_NAME = "raw-can-v1"
V2_NAME = "dtg-link-v2"


def _v1_parse(frame: bytes | bytearray) -> tuple[CanFrame | None, str]:
    """(frame, "") or (None, problem) for 15 bytes whose markers and CRC are already known good."""
    can_id, dlc = (frame[1] << 8) | frame[2], frame[3]
    if dlc > 8:
        return None, f"DLC {dlc} > 8"
    if can_id > _MAX_STD_ID:
        return None, f"ID field 0x{can_id:04X} > 0x7FF (a firmware that truncated a 29-bit ID?)"
    return CanFrame(can_id, bytes(frame[4 : 4 + dlc])), ""


class RawCanV1Decoder(_StreamDecoder):
    """Streaming raw-can-v1 decoder. A frame is accepted only when 0xAA, the end 0x55 AND the CRC agree."""

    name = V1_NAME
    _sof = _V1_SOF

    def _examine(self, buf: bytearray, pos: int, end: int) -> tuple[int, Received | None] | None:
        if end - pos < _V1_LEN:
            return _WAIT
        if buf[pos + 14] != _V1_EOF:
            return (0, None)
        if crc16_modbus(memoryview(buf)[pos + 1 : pos + 12]) != (buf[pos + 12] << 8) | buf[pos + 13]:
            self.stats.crc_errors += 1
            return (0, None)
        frame, _ = _v1_parse(buf[pos : pos + _V1_LEN])
        if frame is None:
            self.stats.malformed_frames += 1
            return (_V1_LEN, None)
        return (_V1_LEN, Received(frame))


class RawCanV1Codec:
    """The reference firmware's 15-byte frame. 11-bit IDs only; no sequence number, no timestamp."""

    name = V1_NAME
    capabilities = LinkCapabilities(
        max_id_bits=11, has_sequence=False, has_timestamp=False, record_types=("can",), max_frame_bytes=_V1_LEN
    )

    def encode(self, record: Record, seq: int = 0) -> bytes:
        """The 15 bytes the reference firmware sends for `record`.

        `seq` and the frame's timestamp are dropped: this wire format has no place for them (see
        `capabilities`). What it cannot carry *faithfully* — a 29-bit ID, a sample — raises instead.

        >>> RawCanV1Codec().encode(CanFrame(0x7E8, bytes.fromhex("03410d3c"))).hex()
        'aa07e80403410d3c00000000e5eb55'
        """
        if not isinstance(record, CanFrame):
            raise LinkCapabilityError(
                f"{V1_NAME} carries CAN frames only, not {type(record).__name__}; use {V2_NAME}"
            )
        if record.is_extended or record.can_id > _MAX_STD_ID:
            raise LinkCapabilityError(
                f"{V1_NAME} cannot carry 29-bit (extended) CAN IDs: got 0x{record.can_id:X}"
                f"{' (extended)' if record.is_extended else ''}; its ID field holds 11-bit IDs only and "
                f"truncating would forge another ID. Use {V2_NAME}, which carries 29-bit IDs."
            )
        body = bytes((record.can_id >> 8, record.can_id & 0xFF, record.dlc)) + record.data.ljust(8, b"\x00")
        crc = crc16_modbus(body)
        return bytes((_V1_SOF,)) + body + bytes((crc >> 8, crc & 0xFF, _V1_EOF))

    def decode(self, frame: bytes | bytearray | memoryview) -> Received:
        """Decode exactly one 15-byte frame; `LinkFrameError` says precisely what is wrong with a bad one."""
        frame = bytes(frame)
        if len(frame) != _V1_LEN:
            raise LinkFrameError(V1_NAME, frame, f"length {len(frame)}, expected {_V1_LEN}")
        if frame[0] != _V1_SOF or frame[14] != _V1_EOF:
            raise LinkFrameError(
                V1_NAME, frame, f"markers 0x{frame[0]:02X}/0x{frame[14]:02X}, expected 0xAA/0x55"
            )
        carried = (frame[12] << 8) | frame[13]
        if crc16_modbus(frame[1:12]) != carried:
            raise LinkFrameError(V1_NAME, frame, describe_crc_mismatch(frame[1:12], carried, "crc16-modbus"))
        parsed, problem = _v1_parse(frame)
        if parsed is None:
            raise LinkFrameError(V1_NAME, frame, problem)
        return Received(parsed)

    def decoder(self) -> RawCanV1Decoder:
        return RawCanV1Decoder()

    def encoder(self, first_seq: int = 0) -> LinkEncoder:
        return LinkEncoder(self, first_seq)


# ----------------------------------------------------------------------------------------- dtg-link-v2


class RecordType(IntEnum):
    CAN = 0x01
    SAMPLE = 0x02
    STATUS = 0x03


_V2_SOF = b"\xd7\x47"
_V2_VERSION = 0x02
_V2_HEADER = struct.Struct(">2sBBBII")  # SOF, version, type, length, seq, t_ms
_V2_HEADER_LEN = _V2_HEADER.size  # 13
_V2_CRC_LEN = 4
_V2_NO_TIME = _UINT32_MAX
_V2_EXT_FLAG = 1 << 31
_V2_RESERVED_ID_BITS = 0x60000000
_V2_STATUS_STRUCT = struct.Struct(">IIII")
#: Payload lengths each known record type may have; checked before waiting for the rest of the frame,
#: so a corrupted length byte on a known type is rejected at once instead of stalling the decoder.
_V2_PAYLOAD_LENGTHS: dict[int, tuple[int, int]] = {
    RecordType.CAN: (5, 13),
    RecordType.SAMPLE: (_SAMPLE_STRUCT.size, _SAMPLE_STRUCT.size),
    RecordType.STATUS: (_V2_STATUS_STRUCT.size, _V2_STATUS_STRUCT.size),
}
_SEQ_MOD = 1 << 32


def _v2_time_ms(record: Record) -> int:
    if isinstance(record, CanFrame):
        if record.timestamp_s is None:
            return _V2_NO_TIME
        t_s = record.timestamp_s
        t_ms = round(t_s * 1000.0) if math.isfinite(t_s) else -1
    else:
        t_ms = record.t_ms
    if not 0 <= t_ms < _V2_NO_TIME:
        raise LinkCapabilityError(
            f"{V2_NAME} timestamps are uint32 ms since start of run (0..{_V2_NO_TIME - 1} ms, ~49.7 days); "
            f"got {record!r}"
        )
    return t_ms


def _v2_payload(record: Record) -> tuple[int, bytes]:
    if isinstance(record, CanFrame):
        id_flags = record.can_id | (_V2_EXT_FLAG if record.is_extended else 0)
        return RecordType.CAN, struct.pack(">IB", id_flags, record.dlc) + record.data
    if isinstance(record, SampleRecord):
        raws = [f.to_raw(v) for f, v in zip(SAMPLE_FIELDS, record.values, strict=False)]
        return RecordType.SAMPLE, _SAMPLE_STRUCT.pack(*raws)
    if isinstance(record, StatusRecord):
        return RecordType.STATUS, _V2_STATUS_STRUCT.pack(
            record.requests_sent, record.requests_unanswered, record.can_frames_received, record.can_frames_dropped
        )
    raise LinkCapabilityError(f"{V2_NAME} has no record type for {type(record).__name__}")


def _v2_parse_payload(record_type: int, t_ms: int, payload: bytes) -> tuple[Record | None, str]:
    """(record, "") or (None, problem) for a payload whose CRC is already known good."""
    if record_type == RecordType.CAN:
        if len(payload) < 5:
            return None, f"CAN payload of {len(payload)} bytes, need at least 5"
        id_flags, dlc = struct.unpack_from(">IB", payload)
        if dlc > 8 or len(payload) != 5 + dlc:
            return None, f"CAN record with DLC {dlc} in a {len(payload)}-byte payload"
        if id_flags & _V2_RESERVED_ID_BITS:
            return None, f"reserved id_flags bits set: 0x{id_flags:08X}"
        extended = bool(id_flags & _V2_EXT_FLAG)
        can_id = id_flags & _MAX_EXT_ID
        if not extended and can_id > _MAX_STD_ID:
            return None, f"standard frame with ID 0x{can_id:X} > 0x7FF"
        timestamp_s = None if t_ms == _V2_NO_TIME else t_ms / 1000.0
        return CanFrame(can_id, payload[5:], extended, timestamp_s), ""
    if record_type == RecordType.SAMPLE:
        if len(payload) != _SAMPLE_STRUCT.size:
            return None, f"sample payload of {len(payload)} bytes, expected {_SAMPLE_STRUCT.size}"
        raws = _SAMPLE_STRUCT.unpack(payload)
        return SampleRecord(t_ms, tuple(f.from_raw(r) for f, r in zip(SAMPLE_FIELDS, raws, strict=False))), ""
    if record_type == RecordType.STATUS:
        if len(payload) != _V2_STATUS_STRUCT.size:
            return None, f"status payload of {len(payload)} bytes, expected {_V2_STATUS_STRUCT.size}"
        return StatusRecord(t_ms, *_V2_STATUS_STRUCT.unpack(payload)), ""
    return None, f"unknown record type 0x{record_type:02X}"


class DtgLinkV2Decoder(_StreamDecoder):
    """Streaming dtg-link-v2 decoder with loss counting from sequence numbers.

    `first_seq`, if given, is the sequence number the sender started at, so frames lost before the first
    received one are counted too. Frames lost after the last received one are never counted.
    """

    name = V2_NAME
    _sof = _V2_SOF[0]

    def __init__(self, first_seq: int | None = None) -> None:
        super().__init__()
        self.stats.frames_lost = 0
        self.stats.sequence_gaps = 0
        self.stats.sequence_resets = 0
        self.stats.duplicate_frames = 0
        # the seq the next frame should carry; None until the first frame when the start is unknown
        self._expected_seq = None if first_seq is None else first_seq % _SEQ_MOD
        self._last_seq: int | None = None

    def _track(self, seq: int) -> None:
        stats = self.stats
        if self._last_seq is not None and seq == self._last_seq:
            stats.duplicate_frames += 1
            return
        if self._expected_seq is not None:
            gap = (seq - self._expected_seq) % _SEQ_MOD
            if gap >= _SEQ_MOD // 2:
                stats.sequence_resets += 1  # backwards: a restarted sender, not 4 billion lost frames
            elif gap:
                stats.frames_lost += gap
                stats.sequence_gaps += 1
        self._last_seq = seq
        self._expected_seq = (seq + 1) % _SEQ_MOD

    def _examine(self, buf: bytearray, pos: int, end: int) -> tuple[int, Received | None] | None:
        # check each header byte as soon as it is there: a false start is rejected without waiting
        available = end - pos
        if available < 2:
            return _WAIT
        if buf[pos + 1] != _V2_SOF[1]:
            return (0, None)
        if available < 3:
            return _WAIT
        if buf[pos + 2] != _V2_VERSION:
            return (0, None)
        if available < 5:
            return _WAIT
        record_type, length = buf[pos + 3], buf[pos + 4]
        allowed = _V2_PAYLOAD_LENGTHS.get(record_type)
        if allowed is not None and not allowed[0] <= length <= allowed[1]:
            return (0, None)
        total = _V2_HEADER_LEN + length + _V2_CRC_LEN
        if available < total:
            return _WAIT
        crc_end = pos + _V2_HEADER_LEN + length
        carried = int.from_bytes(buf[crc_end : crc_end + _V2_CRC_LEN], "big")
        if zlib.crc32(memoryview(buf)[pos + 2 : crc_end]) != carried:
            self.stats.crc_errors += 1
            return (0, None)
        _, _, _, _, seq, t_ms = _V2_HEADER.unpack_from(buf, pos)
        self._track(seq)
        record, _ = _v2_parse_payload(record_type, t_ms, bytes(buf[pos + _V2_HEADER_LEN : crc_end]))
        if record is None:
            if allowed is None:
                self.stats.unknown_records += 1
            else:
                self.stats.malformed_frames += 1
            return (total, None)
        return (total, Received(record, seq))


class DtgLinkV2Codec:
    """This project's link: 29-bit IDs, sequence numbers, timestamps, samples and status records."""

    name = V2_NAME
    capabilities = LinkCapabilities(
        max_id_bits=29,
        has_sequence=True,
        has_timestamp=True,
        record_types=("can", "sample", "status"),
        max_frame_bytes=_V2_HEADER_LEN + 255 + _V2_CRC_LEN,
    )

    def encode(self, record: Record, seq: int = 0) -> bytes:
        """One frame carrying `record` with sequence number `seq` (use `encoder()` to number frames).

        The timestamp comes from the record (`CanFrame.timestamp_s` rounded to 1 ms; None is sent as
        0xFFFFFFFF and decodes back to None).
        """
        if not 0 <= seq <= _UINT32_MAX:
            raise ValueError(f"{V2_NAME} sequence numbers are uint32, got {seq}")
        record_type, payload = _v2_payload(record)
        body = struct.pack(">BBBII", _V2_VERSION, record_type, len(payload), seq, _v2_time_ms(record)) + payload
        return _V2_SOF + body + zlib.crc32(body).to_bytes(_V2_CRC_LEN, "big")

    def decode(self, frame: bytes | bytearray | memoryview) -> Received:
        """Decode exactly one frame; `LinkFrameError` says precisely what is wrong with a bad one."""
        frame = bytes(frame)
        if len(frame) < _V2_HEADER_LEN + _V2_CRC_LEN:
            raise LinkFrameError(V2_NAME, frame, f"{len(frame)} bytes, shorter than header + CRC (17)")
        sof, version, record_type, length, seq, t_ms = _V2_HEADER.unpack_from(frame)
        if sof != _V2_SOF:
            raise LinkFrameError(V2_NAME, frame, f"start marker {sof.hex()}, expected {_V2_SOF.hex()}")
        if version != _V2_VERSION:
            raise LinkFrameError(V2_NAME, frame, f"version {version}, expected {_V2_VERSION}")
        if len(frame) != _V2_HEADER_LEN + length + _V2_CRC_LEN:
            raise LinkFrameError(
                V2_NAME, frame, f"length field says {length} payload bytes, frame holds {len(frame) - 17}"
            )
        carried = int.from_bytes(frame[-_V2_CRC_LEN:], "big")
        if zlib.crc32(frame[2:-_V2_CRC_LEN]) != carried:
            raise LinkFrameError(
                V2_NAME, frame, describe_crc_mismatch(frame[2:-_V2_CRC_LEN], carried, "crc32-iso-hdlc")
            )
        record, problem = _v2_parse_payload(record_type, t_ms, frame[_V2_HEADER_LEN:-_V2_CRC_LEN])
        if record is None:
            raise LinkFrameError(V2_NAME, frame, problem)
        return Received(record, seq)

    def decoder(self, first_seq: int | None = None) -> DtgLinkV2Decoder:
        return DtgLinkV2Decoder(first_seq)

    def encoder(self, first_seq: int = 0) -> LinkEncoder:
        return LinkEncoder(self, first_seq)


# ------------------------------------------------------------------------------------------- registry

_CODECS: dict[str, Callable[[], LinkCodec]] = {V1_NAME: RawCanV1Codec, V2_NAME: DtgLinkV2Codec}


def codec_names() -> list[str]:
    """The valid codec names, sorted."""
    return sorted(_CODECS)


def get_codec(name: str) -> LinkCodec:
    """The codec called `name`.

    >>> get_codec("raw-can-v1").capabilities.max_id_bits
    11
    >>> get_codec("x")
    Traceback (most recent call last):
    ...
    ValueError: unknown link codec 'x'; expected one of: dtg-link-v2, raw-can-v1
    """
    try:
        return _CODECS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown link codec {name!r}; expected one of: {', '.join(codec_names())}") from None


def as_sampled(readings: dict) -> dict:
    """Readings as a dtg-link-v2 sample record delivers them to the app: each of the ten signals rounded to
    its field's resolution and saturated to its range; NaN stays NaN. Training data goes through this (after
    `harness.wire.dbc.as_received`) so that models see the values the app sees.
    """
    import numpy as np

    out = dict(readings)
    for spec in SAMPLE_FIELDS:
        if spec.name in readings:
            lo, hi = spec.value_range
            values = np.asarray(readings[spec.name], dtype=float)
            out[spec.name] = np.clip(np.round(values * spec.counts_per_unit), lo * spec.counts_per_unit,
                                     hi * spec.counts_per_unit) / spec.counts_per_unit
    return out

