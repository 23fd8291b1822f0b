"""The ``link-raw-can-v1`` fuzz target: the raw-can-v1 stream decoder and ``RawCanV1Codec.decode``.

Runs and checks as every link target does (`harness.tools.fuzz.link`). Its structure-aware inputs are streams
of 15-byte frames (0xAA, ID, DLC, 8 data bytes, CRC-16/MODBUS, 0x55): valid ones, and ones with a corrupted
CRC, or with a *good* CRC around bad content (a DLC above 8, an ID above 0x7FF, a wrong end byte, padding
that is not zero), cut short, or runs of start and end bytes.
"""
from __future__ import annotations

import random

from harness.tools.fuzz.link import link_examples, run_link
from harness.tools.fuzz.target import FuzzTarget
from harness.wire.link import LinkFrameError, crc16_modbus

__all__ = ["TARGET"]


def _v1_frame(can_id: int, dlc: int, data8: bytes, crc_ok: bool = True, end: int = 0x55) -> bytes:
    body = bytes((can_id >> 8 & 0xFF, can_id & 0xFF, dlc)) + data8
    crc = crc16_modbus(body) ^ (0 if crc_ok else 1 << random.Random(body).randrange(16))
    return bytes((0xAA,)) + body + bytes((crc >> 8, crc & 0xFF, end))


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


TARGET = FuzzTarget("link-raw-can-v1", "RawCanV1Decoder.feed/finish (whole and chunked), RawCanV1Codec.decode",
                    (LinkFrameError,), run_link("raw-can-v1"), link_examples("raw-can-v1"), _v1_structured,
                    max_size=512, tokens=(b"\xaa", b"\x55", b"\xaa\x55", b"\x00" * 8, b"\xff" * 4))
