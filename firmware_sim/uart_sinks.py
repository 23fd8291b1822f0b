"""Sinks between the firmware and its UART: a tee that feeds the same bytes to several sinks (the app's pty and a UART
tap), and a sink that corrupts whole link frames on purpose (bit flips, line noise) and counts what it did. What
they do not model: electrical faults, framing errors below the byte, flow control."""
from __future__ import annotations

import bisect
import math
import random
import threading
from dataclasses import dataclass, replace

import serial


@dataclass
class TeeBranchStats:
    """What one branch of a `TeeSink` was given: batches and bytes written, and the writes that timed out
    (`bytes_lost` is the size of those batches; part of one may have got through before the timeout)."""

    name: str
    batches_written: int = 0
    bytes_written: int = 0
    write_timeouts: int = 0
    bytes_lost: int = 0


class TeeSink:
    """One UART line with several receivers: every batch written goes to every sink, in order.

    The first sink is the line's own receiver (the app's pty); the others observe the same line (a UART tap's
    pty), so the tap sees exactly the bytes the phone sees. `Stm32Sim` takes a `TeeSink` as it takes any sink.

    Timeouts (`serial.SerialTimeoutException`) are counted per sink (`stats`) and never keep a batch from the
    other sinks. An observer's timeout goes no further: a passive tap cannot slow the line. The primary's
    timeout is raised to the writer after every observer has been given the batch, so the firmware counts that
    batch as dropped (`FirmwareStats.frames_dropped_uart`) exactly as it would without the tee. Any other
    error is raised at once.

    What it does not model: independent timing of the receivers. Writes are sequential, so a stalled
    observer delays the writer (and the next batch to the primary) by its own write timeout; give observer
    ptys a short one (``PtyPair(write_timeout_s=...)``).
    """

    def __init__(self, primary: object, *observers: object, names: tuple[str, ...] | None = None) -> None:
        sinks = (primary, *observers)
        if names is None:
            names = tuple(f"{i}:{getattr(s, 'port', None) or getattr(s, '_port', None) or type(s).__name__}"
                          for i, s in enumerate(sinks))
        if len(names) != len(sinks):
            raise ValueError(f"TeeSink got {len(sinks)} sinks but {len(names)} names: {names!r}")
        for name, sink in zip(names, sinks, strict=False):
            if not callable(getattr(sink, "write", None)):
                raise TypeError(f"TeeSink sink {name!r} has no write(bytes) method: {sink!r}")
        self._sinks = sinks
        self._stats = [TeeBranchStats(name) for name in names]
        self._lock = threading.Lock()

    @property
    def stats(self) -> list[TeeBranchStats]:
        """Per sink, in the order given (primary first)."""
        with self._lock:
            return [replace(s) for s in self._stats]

    def write(self, data: bytes | bytearray | memoryview) -> int:
        data = bytes(data)
        primary_timeout: serial.SerialTimeoutException | None = None
        for i, sink in enumerate(self._sinks):
            try:
                sink.write(data)  # type: ignore[attr-defined]
            except serial.SerialTimeoutException as error:
                with self._lock:
                    self._stats[i].write_timeouts += 1
                    self._stats[i].bytes_lost += len(data)
                if i == 0:
                    primary_timeout = error
                continue
            with self._lock:
                self._stats[i].batches_written += 1
                self._stats[i].bytes_written += len(data)
        if primary_timeout is not None:
            raise primary_timeout
        return len(data)

    def flush(self) -> None:
        """Flush every sink that has a `flush()`."""
        for sink in self._sinks:
            flush = getattr(sink, "flush", None)
            if callable(flush):
                flush()


@dataclass
class CorruptionStats:
    """What a `CorruptingSink` did.

    `frames_seen`: whole frames written through it (the index of the next one). `frames_corrupted`: frames it
    sent with flipped bits; in the frame modes each is one the decoder rejects with exactly one CRC error.
    `frames_passed_over`: frames picked for corruption but sent intact because the decoder's count would have
    been ambiguous (see `CorruptingSink`); the corruption goes to a later frame. `bits_flipped`: in all.
    `bytes_unframed`: bytes that did not split into whole frames, passed through untouched (frame modes).
    """

    frames_seen: int = 0
    frames_corrupted: int = 0
    frames_passed_over: int = 0
    bits_flipped: int = 0
    bytes_unframed: int = 0


@dataclass(frozen=True)
class CorruptedFrame:
    """One frame the sink corrupted: its index among the frames written through the sink, and both forms."""

    index: int
    original: bytes
    corrupted: bytes


class _Framing:
    """Where frames start and end in a clean stream of one codec, and what a resynchronising decoder does with a
    corrupted one. Restates the wire formats of docs/link.md; `harness.wire.link` stays free of test tools."""

    codec = ""
    #: First byte the decoder checks the CRC over, after the header fields it validates before the CRC.
    protected_from = 0

    def frame_length(self, data: bytes, start: int) -> int | None:
        """Length of the frame at `start`, None when `data` does not hold a whole frame there."""
        raise NotImplementedError

    def protected_to(self, length: int) -> int:
        """End (exclusive) of the bytes whose corruption the CRC must catch."""
        return length

    def false_start(self, corrupted: bytes, following: bytes | None) -> bool | None:
        """Whether the decoder, rescanning `corrupted` byte by byte after rejecting it, could meet a false frame
        start that gets as far as a CRC check (a second CRC error, or with odds 2**-16 / 2**-32 a forged frame
        that swallows the next one). `following` holds the bytes written after the frame, None when none are known
        yet; the answer is None when it depends on bytes not known yet."""
        raise NotImplementedError


class _RawCanV1Framing(_Framing):
    codec = "raw-can-v1"
    protected_from = 1  # 0xAA, then ID_H ... CRC_L are covered; the end marker 0x55 is checked, not CRC'd
    _SOF, _EOF, _LEN = 0xAA, 0x55, 15

    def frame_length(self, data: bytes, start: int) -> int | None:
        end = start + self._LEN
        if end <= len(data) and data[start] == self._SOF and data[end - 1] == self._EOF:
            return self._LEN
        return None

    def protected_to(self, length: int) -> int:
        return length - 1

    def false_start(self, corrupted: bytes, following: bytes | None) -> bool | None:
        # A candidate at k (0xAA) reaches the CRC check when the byte 14 further on is 0x55. raw-can-v1 pads OBD-II
        # data with 0xAA, so candidates are common; the byte that decides lies in the next frame.
        # Bytes not known yet leave the answer open (None), even at the end of a stream: the sink cannot know
        # that no write follows.
        stream = corrupted + (following or b"")
        for k in range(1, len(corrupted)):
            if stream[k] != self._SOF:
                continue
            if k + self._LEN - 1 >= len(stream):
                return None
            if stream[k + self._LEN - 1] == self._EOF:
                return True
        return False


class _DtgLinkV2Framing(_Framing):
    codec = "dtg-link-v2"
    protected_from = 5  # SOF, version, type and length are validated before the CRC; seq onwards is CRC-only
    _START = b"\xd7\x47\x02"  # SOF and version: what a candidate must show before its type and length are read
    _OVERHEAD = 17

    def frame_length(self, data: bytes, start: int) -> int | None:
        if start + 5 > len(data) or data[start:start + 3] != self._START:
            return None
        end = start + self._OVERHEAD + data[start + 4]
        return end - start if end <= len(data) else None

    def false_start(self, corrupted: bytes, following: bytes | None) -> bool | None:
        # A false start needs SOF and version in a row. Straddling the frame's end it would need the next frame to
        # start with anything but its own SOF, so the bytes of this frame decide (conservatively: type and length
        # plausibility is not checked, a candidate with the three bytes counts).
        return corrupted.find(self._START, 1) >= 0


_FRAMINGS: dict[str, _Framing] = {f.codec: f for f in (_RawCanV1Framing(), _DtgLinkV2Framing())}


class CorruptingSink:
    """A byte sink that flips bits in what it passes on, in a controlled, seeded way, and counts what it broke.

    For link-corruption tests: put it between the firmware and the line (``Stm32Sim(bus, CorruptingSink(tee,
    ...))``) and check that the receivers' counts match the firmware's and the corruptor's. The writer must
    write whole frames of `codec`, as `Stm32Sim` does. Exactly one mode:

    - ``every_nth_frame=n`` (n >= 2): a corruption falls due every n frames;
    - ``frame_error_rate=p``: a corruption falls due after each frame with probability p (seeded);
    - ``bit_error_rate=p``: line noise, each bit of the stream flipped with probability p, headers and markers
      included. `frames_corrupted` then counts frames with any bit flipped. Frames the noise hits are lost, but
      how many CRC errors the decoder counts depends on which byte was hit (a flipped marker or length is
      rejected before the CRC check), so only loss is exact in this mode.

    In the frame modes a due corruption flips `bits_per_frame` (1-3: both CRCs detect up to three flipped bits
    at these frame lengths) distinct bits of the frame's CRC-protected bytes, never its start marker, version,
    type or length fields (raw-can-v1: ID to CRC; dtg-link-v2: sequence number to CRC), so the decoder must
    catch it by its CRC. It is applied only when the decoder's count is certain to be exactly one CRC error:
    a frame whose rescan could meet a false frame start that reaches a CRC check is sent intact (counted in
    `frames_passed_over`) and the corruption goes to the next frame that qualifies. The frame after a corrupted
    one is never corrupted. Hence, per corrupted frame: one CRC error, one frame missing, and for
    dtg-link-v2 one sequence number lost (unless it was the stream's last frame).

    raw-can-v1 needs the next frame's bytes to tell (the decisive byte lies 14 bytes on), and the simulated
    firmware writes one frame per batch on OBD-II: a corrupted frame that ends a batch is held back and sent with
    the next batch, and **`flush()` must be called when the writer has stopped** to send one still held (intact,
    as nothing follows to decide with). With a sink that times out, a held frame is lost with the batch after it.
    """

    def __init__(
        self,
        sink: object,
        codec: str,
        *,
        rng_seed: int = 0,
        every_nth_frame: int | None = None,
        frame_error_rate: float | None = None,
        bit_error_rate: float | None = None,
        bits_per_frame: int = 1,
        keep_frames: bool = True,
    ) -> None:
        if codec not in _FRAMINGS:
            raise ValueError(f"unknown link codec {codec!r}; expected one of: {', '.join(sorted(_FRAMINGS))}")
        modes = {"every_nth_frame": every_nth_frame, "frame_error_rate": frame_error_rate,
                 "bit_error_rate": bit_error_rate}
        chosen = [name for name, value in modes.items() if value is not None]
        if len(chosen) != 1:
            raise ValueError(f"give exactly one of: {', '.join(modes)}; got {', '.join(chosen) or 'none'}")
        if every_nth_frame is not None and (not isinstance(every_nth_frame, int) or every_nth_frame < 2):
            raise ValueError(f"every_nth_frame must be an int >= 2 (the frame after a corrupted one is never "
                             f"corrupted), got {every_nth_frame!r}")
        for name in ("frame_error_rate", "bit_error_rate"):
            rate = modes[name]
            if rate is not None and not 0.0 < rate < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {rate!r}")
        if bits_per_frame not in (1, 2, 3):
            raise ValueError(f"bits_per_frame must be 1, 2 or 3 (what both link CRCs are sure to detect), "
                             f"got {bits_per_frame!r}")
        if not callable(getattr(sink, "write", None)):
            raise TypeError(f"CorruptingSink needs a sink with write(bytes), got {sink!r}")
        self._sink = sink
        self._framing = _FRAMINGS[codec]
        self._rng = random.Random(rng_seed)
        self._every_nth = every_nth_frame
        self._frame_rate = frame_error_rate
        self._bit_rate = bit_error_rate
        self._bits_per_frame = bits_per_frame
        self._keep_frames = keep_frames
        self._stats = CorruptionStats()
        self._corrupted: list[CorruptedFrame] = []
        self._due = False
        self._exempt_next = False
        self._held: tuple[int, bytes, bytes] | None = None  # (index, original, corrupted) awaiting the next bytes
        self._bits_to_next_flip = self._draw_gap() if bit_error_rate is not None else 0
        self._lock = threading.Lock()

    @property
    def codec(self) -> str:
        return self._framing.codec

    @property
    def stats(self) -> CorruptionStats:
        with self._lock:
            return replace(self._stats)

    @property
    def corrupted_frames(self) -> list[CorruptedFrame]:
        """Every frame corrupted so far (empty when `keep_frames` is false)."""
        with self._lock:
            return list(self._corrupted)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        data = bytes(data)
        with self._lock:
            out = self._noise(data) if self._bit_rate is not None else self._corrupt_frames(data)
        if out:
            self._sink.write(out)  # type: ignore[attr-defined]
        return len(data)

    def flush(self) -> None:
        """Send a held frame (intact: nothing follows to decide with), then flush the sink if it can."""
        with self._lock:
            out = self._settle_held(None) if self._held is not None else b""
        if out:
            self._sink.write(out)  # type: ignore[attr-defined]
        flush = getattr(self._sink, "flush", None)
        if callable(flush):
            flush()

    # -- frame modes --------------------------------------------------------------------------------

    def _split(self, data: bytes) -> tuple[list[bytes], bytes]:
        frames, pos = [], 0
        while pos < len(data):
            length = self._framing.frame_length(data, pos)
            if length is None:
                break
            frames.append(data[pos:pos + length])
            pos += length
        return frames, data[pos:]

    def _fall_due(self, index: int) -> None:
        if self._every_nth is not None:
            if (index + 1) % self._every_nth == 0:
                self._due = True
        elif self._rng.random() < self._frame_rate:  # type: ignore[operator]
            self._due = True

    def _flip(self, frame: bytes) -> tuple[bytes, int]:
        lo, hi = self._framing.protected_from, self._framing.protected_to(len(frame))
        bits = self._rng.sample(range(lo * 8, hi * 8), self._bits_per_frame)
        out = bytearray(frame)
        for bit in bits:
            out[bit // 8] ^= 0x80 >> (bit % 8)
        return bytes(out), len(bits)

    def _apply(self, index: int, original: bytes, corrupted: bytes) -> bytes:
        self._stats.frames_corrupted += 1
        self._stats.bits_flipped += self._bits_per_frame
        if self._keep_frames:
            self._corrupted.append(CorruptedFrame(index, original, corrupted))
        self._due = False
        self._exempt_next = True
        return corrupted

    def _settle_held(self, following: bytes | None) -> bytes:
        assert self._held is not None
        index, original, corrupted = self._held
        self._held = None
        if self._framing.false_start(corrupted, following) is False:
            return self._apply(index, original, corrupted)
        self._stats.frames_passed_over += 1  # still due: the next frame that qualifies takes it
        return original

    def _corrupt_frames(self, data: bytes) -> bytes:
        frames, rest = self._split(data)
        out = bytearray()
        if self._held is not None and data:
            out += self._settle_held(data)
        for i, frame in enumerate(frames):
            index = self._stats.frames_seen
            self._stats.frames_seen += 1
            self._fall_due(index)
            if not self._due or self._exempt_next:
                self._exempt_next = False
                out += frame
                continue
            corrupted, _ = self._flip(frame)
            following = b"".join(frames[i + 1:]) + rest if i + 1 < len(frames) or rest else None
            verdict = self._framing.false_start(corrupted, following)
            if verdict is None:
                self._held = (index, frame, corrupted)  # the last frame of the batch: decide with the next one
            elif verdict:
                self._stats.frames_passed_over += 1
                out += frame
            else:
                out += self._apply(index, frame, corrupted)
        self._stats.bytes_unframed += len(rest)
        out += rest
        return bytes(out)

    # -- line noise ---------------------------------------------------------------------------------

    def _draw_gap(self) -> int:
        """Bits passed intact before the next flip: geometric with success probability `bit_error_rate`."""
        u = self._rng.random()
        return int(math.log1p(-u) / math.log1p(-self._bit_rate))  # type: ignore[arg-type]

    def _noise(self, data: bytes) -> bytes:
        frames, rest = self._split(data)
        starts, pos = [], 0
        for frame in frames:
            starts.append(pos)
            pos += len(frame)
        out = bytearray(data)
        touched: set[int] = set()
        bit, total_bits = self._bits_to_next_flip, len(data) * 8
        while bit < total_bits:
            out[bit // 8] ^= 0x80 >> (bit % 8)
            self._stats.bits_flipped += 1
            frame_no = bisect.bisect_right(starts, bit // 8) - 1
            if 0 <= frame_no < len(frames) and bit // 8 < starts[frame_no] + len(frames[frame_no]):
                touched.add(frame_no)
            bit += 1 + self._draw_gap()
        self._bits_to_next_flip = bit - total_bits
        first_index = self._stats.frames_seen
        for frame_no in sorted(touched):
            self._stats.frames_corrupted += 1
            if self._keep_frames:
                start = starts[frame_no]
                end = start + len(frames[frame_no])
                self._corrupted.append(CorruptedFrame(first_index + frame_no, frames[frame_no], bytes(out[start:end])))
        self._stats.frames_seen += len(frames)
        self._stats.bytes_unframed += len(rest)
        return bytes(out)
