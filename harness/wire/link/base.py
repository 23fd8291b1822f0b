"""What every link codec shares: the codec names, errors, what a decoder yields and counts, the codec and
decoder Protocols, the numbering encoder, and the resynchronising stream decoder both codecs build on.

Resynchronisation (`StreamDecoder`, both codecs): keep the unconsumed bytes; find the next start marker; let the
codec check each header field as it arrives; wait until the whole frame is there; check the CRC (and
raw-can-v1's end marker). On any failure skip ONE byte and rescan: the rejected bytes are rescanned, so a frame
that follows a corrupted one is never lost (short of a CRC collision). A decoder never raises on byte input
and never yields a frame whose CRC is wrong. ``finish()`` at end of stream stops waiting for the partial frame
at the tail (a corrupted length can make the decoder wait for bytes that never come) and decodes what lies
behind it. No I/O, no threads, no clocks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from harness.core.errors import DtgHilError
from harness.wire.link.records import UINT32_MAX, Record

__all__ = [
    "V1_NAME",
    "V2_NAME",
    "WAIT",
    "DecoderStats",
    "LinkCapabilities",
    "LinkCapabilityError",
    "LinkCodec",
    "LinkDecoder",
    "LinkEncoder",
    "LinkError",
    "LinkFrameError",
    "Received",
    "StreamDecoder",
]

V1_NAME = "raw-can-v1"
V2_NAME = "dtg-link-v2"


class LinkError(DtgHilError):
    """Base of every error the link codecs raise about link content."""


class LinkCapabilityError(LinkError):
    """The codec cannot carry this record at all (e.g. a 29-bit ID on raw-can-v1); nothing is truncated."""


class LinkFrameError(LinkError):
    """One complete frame given to ``codec.decode`` is not a valid frame; the message says what is wrong."""

    def __init__(self, codec: str, frame: bytes, problem: str) -> None:
        self.codec = codec
        self.frame = bytes(frame)
        self.problem = problem
        super().__init__(f"{codec} frame {self.frame.hex()}: {problem}")


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
        if not 0 <= first_seq <= UINT32_MAX:
            raise ValueError(f"first_seq must be in 0..{UINT32_MAX}, got {first_seq}")
        self.codec = codec
        self.next_seq = first_seq

    def encode(self, record: Record) -> bytes:
        frame = self.codec.encode(record, seq=self.next_seq)
        if self.codec.capabilities.has_sequence:
            self.next_seq = (self.next_seq + 1) & UINT32_MAX
        return frame


WAIT = None  # _examine's verdict when the candidate frame is not complete yet


class StreamDecoder:
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
            if verdict is WAIT:
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
        """Judge the candidate at `pos`: WAIT, (0, None) to reject, or (frame length, item or None)."""
        raise NotImplementedError
