"""``dtg-link-v2``: this project's UART frame. All multi-byte fields are big-endian::

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
  `harness.wire.link.sample_fields.SAMPLE_FIELDS` for type, resolution and the reserved "not available" code.
* Status (type 3, L = 16): four uint32 counters: OBD requests sent, requests unanswered, CAN frames
  received, CAN frames dropped by the firmware's receive queue.

Why CRC-32 rather than CRC-16: the Android side gets a correct implementation for free
(java.util.zip.CRC32; the reference system shipped with mismatched CRC-16s); its Hamming distance is 5
or more at these frame lengths against 4 for CRC-16; and a decoder resynchronising after corruption
tests the CRC at many false start positions, where 2**-32 false accepts per candidate instead of 2**-16
keeps foreign frames out (docs/link.md has the full rationale). Why a 32-bit sequence number: a 16-bit
one wraps after ~21 s of outage at full link load, and a longer outage would then be under-counted.

Loss counting: each CRC-valid frame's seq is compared with the previous one, modulo 2**32; the gap minus one
is added to ``frames_lost``. Frames lost after the last received frame cannot be seen from sequence numbers;
frames lost before the first one can only be counted when the decoder is told the first sequence number the
sender used (``decoder(first_seq=...)``).
"""
from __future__ import annotations

import math
import struct
import zlib
from enum import IntEnum

from harness.wire.link.base import (
    V2_NAME,
    WAIT,
    LinkCapabilities,
    LinkCapabilityError,
    LinkEncoder,
    LinkFrameError,
    Received,
    StreamDecoder,
)
from harness.wire.link.crc import describe_crc_mismatch
from harness.wire.link.records import MAX_EXT_ID, MAX_STD_ID, UINT32_MAX, CanFrame, Record, SampleRecord, StatusRecord
from harness.wire.link.sample_fields import SAMPLE_FIELDS, SAMPLE_STRUCT

__all__ = ["DtgLinkV2Codec", "DtgLinkV2Decoder", "RecordType"]


class RecordType(IntEnum):
    """The type byte of a dtg-link-v2 frame."""

    CAN = 0x01
    SAMPLE = 0x02
    STATUS = 0x03


_V2_SOF = b"\xd7\x47"
_V2_SOF1 = _V2_SOF[1]
_V2_VERSION = 0x02
_V2_HEADER = struct.Struct(">2sBBBII")  # SOF, version, type, length, seq, t_ms
_V2_HEADER_LEN = _V2_HEADER.size  # 13
_V2_CRC_LEN = 4
_V2_NO_TIME = UINT32_MAX
_V2_EXT_FLAG = 1 << 31
_V2_RESERVED_ID_BITS = 0x60000000
_V2_STATUS_STRUCT = struct.Struct(">IIII")
# A CAN record's header and payload up to its data bytes in one go: version, type, length, seq, t_ms, id_flags, DLC.
_V2_CAN_BODY = struct.Struct(">BBBIIIB")
_V2_CAN_TYPE = int(RecordType.CAN)
#: Payload lengths each known record type may have; checked before waiting for the rest of the frame,
#: so a corrupted length byte on a known type is rejected at once instead of stalling the decoder.
_V2_PAYLOAD_LENGTHS: dict[int, tuple[int, int]] = {
    RecordType.CAN: (5, 13),
    RecordType.SAMPLE: (SAMPLE_STRUCT.size, SAMPLE_STRUCT.size),
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
        return RecordType.SAMPLE, SAMPLE_STRUCT.pack(*raws)
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
        can_id = id_flags & MAX_EXT_ID
        if not extended and can_id > MAX_STD_ID:
            return None, f"standard frame with ID 0x{can_id:X} > 0x7FF"
        timestamp_s = None if t_ms == _V2_NO_TIME else t_ms / 1000.0
        return CanFrame(can_id, payload[5:], extended, timestamp_s), ""
    if record_type == RecordType.SAMPLE:
        if len(payload) != SAMPLE_STRUCT.size:
            return None, f"sample payload of {len(payload)} bytes, expected {SAMPLE_STRUCT.size}"
        raws = SAMPLE_STRUCT.unpack(payload)
        return SampleRecord(t_ms, tuple(f.from_raw(r) for f, r in zip(SAMPLE_FIELDS, raws, strict=False))), ""
    if record_type == RecordType.STATUS:
        if len(payload) != _V2_STATUS_STRUCT.size:
            return None, f"status payload of {len(payload)} bytes, expected {_V2_STATUS_STRUCT.size}"
        return StatusRecord(t_ms, *_V2_STATUS_STRUCT.unpack(payload)), ""
    return None, f"unknown record type 0x{record_type:02X}"


class DtgLinkV2Decoder(StreamDecoder):
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
        available = end - pos
        seq = t_ms = None
        if available >= _V2_HEADER_LEN + _V2_CRC_LEN:  # most calls: a whole header at once, the same checks
            _, version, record_type, length, seq, t_ms = _V2_HEADER.unpack_from(buf, pos)
            if buf[pos + 1] != _V2_SOF1 or version != _V2_VERSION:
                return (0, None)
        else:  # check each header byte as soon as it is there: a false start is rejected without waiting
            if available < 2:
                return WAIT
            if buf[pos + 1] != _V2_SOF1:
                return (0, None)
            if available < 3:
                return WAIT
            if buf[pos + 2] != _V2_VERSION:
                return (0, None)
            if available < 5:
                return WAIT
            record_type, length = buf[pos + 3], buf[pos + 4]
        allowed = _V2_PAYLOAD_LENGTHS.get(record_type)
        if allowed is not None and not allowed[0] <= length <= allowed[1]:
            return (0, None)
        total = _V2_HEADER_LEN + length + _V2_CRC_LEN
        if available < total:
            return WAIT
        crc_end = pos + _V2_HEADER_LEN + length
        carried = int.from_bytes(buf[crc_end : crc_end + _V2_CRC_LEN], "big")
        if zlib.crc32(memoryview(buf)[pos + 2 : crc_end]) != carried:
            self.stats.crc_errors += 1
            return (0, None)
        if seq is None:
            _, _, _, _, seq, t_ms = _V2_HEADER.unpack_from(buf, pos)
        self._track(seq)
        record, _ = _v2_parse_payload(record_type, t_ms, bytes(memoryview(buf)[pos + _V2_HEADER_LEN : crc_end]))
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
    crc_variant = "crc32-iso-hdlc"  # the key of its CRC in CRC_VARIANTS
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
        if not 0 <= seq <= UINT32_MAX:
            raise ValueError(f"{V2_NAME} sequence numbers are uint32, got {seq}")
        if type(record) is CanFrame:  # most of the traffic: the same bytes as below, packed at once
            data = record.data
            body = _V2_CAN_BODY.pack(_V2_VERSION, _V2_CAN_TYPE, 5 + len(data), seq, _v2_time_ms(record),
                                     record.can_id | (_V2_EXT_FLAG if record.is_extended else 0), len(data)) + data
            return _V2_SOF + body + zlib.crc32(body).to_bytes(_V2_CRC_LEN, "big")
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

