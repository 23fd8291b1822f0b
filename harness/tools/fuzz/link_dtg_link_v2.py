"""The ``link-dtg-link-v2`` fuzz target: the dtg-link-v2 stream decoder and ``DtgLinkV2Codec.decode``.

Runs and checks as every link target does (`harness.tools.fuzz.link`). Its structure-aware inputs are streams
of dtg-link-v2 frames (SOF D7 47, version, record type, length, sequence number, time, payload, CRC-32) whose
sequence numbers step, jump, repeat and wrap: valid frames, frames with a flipped bit, and frames with a *good*
CRC around bad content (unknown record types, payload lengths outside the type's range, reserved CAN ID bits,
an 11-bit ID above 0x7FF, a DLC that disagrees with the data, a wrong version, a length byte that promises more
than ever comes), frames cut short, and runs of start bytes.
"""
from __future__ import annotations

import random
import zlib

from harness.tools.fuzz.link import link_examples, random_record, run_link
from harness.tools.fuzz.target import FuzzTarget
from harness.wire.link import LinkFrameError, get_codec

__all__ = ["TARGET"]

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
            parts.append(codec.encode(random_record(rng, "dtg-link-v2"), seq))
            continue
        if roll < 0.5:
            frame = bytearray(codec.encode(random_record(rng, "dtg-link-v2"), seq))
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
            frame = codec.encode(random_record(rng, "dtg-link-v2"), seq)[:rng.randint(1, 29)]
        elif roll < 0.94:
            frame = rng.choice((b"\xd7", b"\xd7\x47", b"\xd7\x47\x02", rng.randbytes(1))) * rng.randint(1, 30)
        else:
            frame = rng.randbytes(rng.randint(1, 40))
        parts.append(bytes(frame))
    return b"".join(parts)


TARGET = FuzzTarget("link-dtg-link-v2", "DtgLinkV2Decoder.feed/finish (whole and chunked), DtgLinkV2Codec.decode",
                    (LinkFrameError,), run_link("dtg-link-v2"), link_examples("dtg-link-v2"), _v2_structured,
                    max_size=768, tokens=(b"\xd7\x47", b"\xd7\x47\x02", b"\xd7\x47\x02\x01\x0d", b"\xff" * 4,
                                          b"\x00" * 4))
