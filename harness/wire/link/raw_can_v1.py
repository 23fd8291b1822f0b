"""``raw-can-v1``: the reference firmware's UART frame, byte-exact (DESIGN.md, "Interfaces and contracts")::

    offset  0     1      2      3     4 … 11       12      13      14
            0xAA  ID_H   ID_L   DLC   D0 … D7      CRC_H   CRC_L   0x55

15 bytes; data zero-padded to 8; CRC-16/MODBUS over bytes 1–11, sent HIGH byte first (Modbus itself sends
the low byte first; the reference firmware does not). 11-bit IDs only, no sequence number, no timestamp:
encoding an extended (29-bit) frame raises `LinkCapabilityError` rather than truncating the ID, and frames
come out with ``timestamp_s=None`` (stamping arrival times is the rig's job). No loss counting: the format
has no sequence number to count with.
"""
from __future__ import annotations

from harness.wire.link.base import (
    V1_NAME,
    V2_NAME,
    WAIT,
    LinkCapabilities,
    LinkCapabilityError,
    LinkEncoder,
    LinkFrameError,
    Received,
    StreamDecoder,
)
from harness.wire.link.crc import crc16_modbus, describe_crc_mismatch
from harness.wire.link.records import MAX_STD_ID, CanFrame, Record

__all__ = ["RawCanV1Codec", "RawCanV1Decoder"]

_V1_SOF, _V1_EOF, _V1_LEN = 0xAA, 0x55, 15


def _v1_parse(frame: bytes | bytearray) -> tuple[CanFrame | None, str]:
    """(frame, "") or (None, problem) for 15 bytes whose markers and CRC are already known good."""
    can_id, dlc = (frame[1] << 8) | frame[2], frame[3]
    if dlc > 8:
        return None, f"DLC {dlc} > 8"
    if can_id > MAX_STD_ID:
        return None, f"ID field 0x{can_id:04X} > 0x7FF (a firmware that truncated a 29-bit ID?)"
    return CanFrame(can_id, bytes(frame[4 : 4 + dlc])), ""


class RawCanV1Decoder(StreamDecoder):
    """Streaming raw-can-v1 decoder. A frame is accepted only when 0xAA, the end 0x55 AND the CRC agree."""

    name = V1_NAME
    _sof = _V1_SOF

    def _examine(self, buf: bytearray, pos: int, end: int) -> tuple[int, Received | None] | None:
        if end - pos < _V1_LEN:
            return WAIT
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
    crc_variant = "crc16-modbus"  # the key of its CRC in CRC_VARIANTS
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
        if record.is_extended or record.can_id > MAX_STD_ID:
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
