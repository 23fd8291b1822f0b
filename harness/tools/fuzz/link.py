"""The shared base of the two link targets (``link-raw-can-v1``, ``link-dtg-link-v2``): the oracle and the examples.

`run_link(codec)` runs the codec's streaming decoder on the input whole and in random chunks, then
``Codec.decode`` on it (documented rejection: `LinkFrameError`; the stream decoder raises nothing, it counts).
Beside "no other exception" it checks what `harness.wire.link` promises: the output and the counters do not
depend on the chunking, every frame yielded is one that was in the stream with a good CRC, and on raw-can-v1
(fixed 15-byte frames) the skipped bytes and the frames account for every byte. `link_examples(codec)` are a
few valid frame streams; `random_record` draws a record the codec can carry. The structure-aware inputs are
each codec's own (`link_raw_can_v1`, `link_dtg_link_v2`).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.tools.fuzz.target import OracleError, chunks
from harness.wire.link import SAMPLE_FIELDS, CanFrame, SampleRecord, StatusRecord, get_codec

__all__ = ["link_examples", "random_record", "run_link"]


def _decode_stream(codec_name: str, pieces: Sequence[bytes]) -> tuple[list, Any]:
    decoder = get_codec(codec_name).decoder()
    got = []
    for piece in pieces:
        got.extend(decoder.feed(piece))
    got.extend(decoder.finish())
    return got, decoder.stats


def run_link(codec_name: str) -> Callable[[bytes, Path], object]:
    """The target's `run` for `codec_name`: the stream decoder whole and chunked (checked), then ``decode``."""
    codec = get_codec(codec_name)
    has_sequence = codec.capabilities.has_sequence

    def run(data: bytes, workdir: Path) -> object:
        whole, whole_stats = _decode_stream(codec_name, [data])
        split, split_stats = _decode_stream(codec_name, chunks(data))
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


def link_examples(codec_name: str) -> Callable[[], list[bytes]]:
    """The target's `examples` for `codec_name`: streams of 1, 2 and 5 valid frames."""
    def examples() -> list[bytes]:
        rng = random.Random(7)
        codec = get_codec(codec_name)
        out = []
        for count in (1, 2, 5):
            encoder = codec.encoder(rng.getrandbits(32) if codec.capabilities.has_sequence else 0)
            frames = [encoder.encode(random_record(rng, codec_name)) for _ in range(count)]
            out.append(b"".join(frames))
        return out

    return examples


def random_record(rng: random.Random, codec_name: str) -> CanFrame | SampleRecord | StatusRecord:
    """A record `codec_name` carries: a CAN frame (raw-can-v1: 11-bit only), else also a sample or a status."""
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
