"""`EventCollector`: EdgeAI events from logcat text fed in any chunking, in arrival order, with their problems.

It takes text in arbitrary chunks (or whole lines), keeps events in arrival order with the harness's receive
time (for end-to-end latency), keeps every problem with its reason, and counts lines lost according to the
app's ``seq`` numbers. A pure consumer of text: it starts no threads and reads no device (the rig streams
``adb logcat`` into it). ``python -m harness.wire.events FILE`` (`main`) checks a saved log from the command line.
"""
from __future__ import annotations

import codecs
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from harness.wire.events.logcat import ParseProblem, parse_event_line_stamped
from harness.wire.events.schema import EVENT_CLASSES, EVENT_KINDS, Event
from harness.wire.events.store import EventStore, ReceivedEvent

__all__ = ["CollectorStats", "EventCollector", "main"]


@dataclass(frozen=True)
class CollectorStats:
    lines: int  # every line fed, of any tag
    events: int
    problems: int
    by_kind: Mapping[str, int]
    lines_lost: int  # EdgeAI lines missing according to the app's seq numbers (between received lines)
    seq_restarts: int  # seq went backwards: the app restarted (not counted as loss)


class EventCollector:
    """Collects EdgeAI events from logcat text fed in any chunking; thread-safe (one feeder, many readers).

    `feed(chunk)` takes str or bytes (UTF-8, decoded incrementally so a character split across chunks is
    kept; invalid bytes become U+FFFD and the line is then reported by the parser) in chunks that may split
    lines anywhere; a trailing partial line waits for the next chunk, and `flush()` parses it at the end of a
    stream. Each event is stamped with `clock()` (default `time.monotonic`, the clock `ScenarioClock` uses) when
    its line completes. Malformed EdgeAI lines are kept in `problems` with their reasons; lines of other tags
    are only counted.

    Lines lost: when the app numbers its lines (``seq``, +1 per EdgeAI line of any kind), each forward jump of
    more than one adds the missing count to `lines_lost` (logcat drops lines under load: "chatty"). A jump
    backwards or a repeat counts as an app restart. Lines lost after the last one received cannot be seen.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._store = EventStore()  # compact: a long run's events cost a few bytes each
        self._events_cache: tuple[int, list] | None = None  # (events stored, the events rebuilt)
        self._problems: list[ParseProblem] = []
        self._lines = 0
        self._by_kind: dict[str, int] = {}
        self._last_seq: int | None = None
        self._lines_lost = 0
        self._seq_restarts = 0

    def __getstate__(self) -> dict:
        """A finished run's collector for another process (a pytest-xdist worker hands its results to the
        controller): its events and counts, without the lock, clock and decoder of the live stream."""
        state = self.__dict__.copy()
        for live in ("_lock", "_clock", "_utf8"):
            del state[live]
        state["_events_cache"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._clock = time.monotonic
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: str | bytes) -> list[ReceivedEvent]:
        """Add a chunk of logcat output; returns the events its complete lines carried."""
        with self._lock:
            text = self._pending + (self._utf8.decode(chunk) if isinstance(chunk, bytes) else chunk)
            *lines, self._pending = text.split("\n")
            out = []
            for line in lines:
                result = self._take(line, None)
                if isinstance(result, ReceivedEvent):
                    out.append(result)
            return out

    def feed_line(self, line: str, received_wall_s: float | None = None) -> Event | ParseProblem | None:
        """Add one complete line (a partial line pending from `feed` is flushed first); returns what it held."""
        if self._pending or self._utf8.getstate()[0]:  # nothing pending (a feeder of whole lines): nothing to flush
            self.flush()
        with self._lock:
            result = self._take(line, received_wall_s)
        return result.event if isinstance(result, ReceivedEvent) else result

    def flush(self) -> list[ReceivedEvent]:
        """Parse a trailing partial line (end of stream)."""
        with self._lock:
            tail = self._pending + self._utf8.decode(b"", final=True)
            self._pending = ""
            if not tail:
                return []
            result = self._take(tail, None)
            return [result] if isinstance(result, ReceivedEvent) else []

    def _take(self, line: str, received_wall_s: float | None) -> ReceivedEvent | ParseProblem | None:
        self._lines += 1
        result, stamp = parse_event_line_stamped(line)
        if result is None:
            return None
        if isinstance(result, ParseProblem):
            problem = ParseProblem(result.reason, result.line, result.field, self._lines)
            self._problems.append(problem)
            return problem
        if result.seq is not None:
            if self._last_seq is not None:
                if result.seq > self._last_seq + 1:
                    self._lines_lost += result.seq - self._last_seq - 1
                elif result.seq <= self._last_seq:
                    self._seq_restarts += 1
            self._last_seq = result.seq
        self._by_kind[result.kind] = self._by_kind.get(result.kind, 0) + 1
        received = ReceivedEvent(result, self._clock() if received_wall_s is None else received_wall_s,
                                 self._lines, stamp)
        self._store.append(result, received.received_wall_s, self._lines, stamp)
        return received

    @property
    def received(self) -> list[ReceivedEvent]:
        """Every event with its receive time, in arrival order (a copy)."""
        with self._lock:
            return self._store.received()

    @property
    def events(self) -> list[Event]:
        """Every event, in arrival order (a copy; rebuilt from the store once per new event count)."""
        with self._lock:
            cached = self._events_cache
            if cached is None or cached[0] != len(self._store):
                cached = self._events_cache = (len(self._store), self._store.events())
            return list(cached[1])

    @property
    def problems(self) -> list[ParseProblem]:
        """Every malformed EdgeAI line with its reason and line number, in arrival order (a copy)."""
        with self._lock:
            return list(self._problems)

    def of_kind(self, kind: str) -> list[Event]:
        """The events of one kind, in arrival order."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of: {', '.join(EVENT_KINDS)}")
        with self._lock:
            return self._store.of_class(EVENT_CLASSES[kind])

    def stats(self) -> CollectorStats:
        """Counts so far: lines, events (per kind), problems, lines lost by seq, app restarts."""
        with self._lock:
            return CollectorStats(self._lines, len(self._store), len(self._problems), dict(self._by_kind),
                                  self._lines_lost, self._seq_restarts)


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m harness.wire.events LOGFILE|-``: check a saved logcat; exit 1 if any EdgeAI line is malformed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m harness.wire.events LOGFILE|-   (output of adb logcat -v threadtime)", file=sys.stderr)
        return 2
    collector = EventCollector()
    stream = sys.stdin.buffer if args[0] == "-" else open(args[0], "rb")
    try:
        for block in iter(lambda: stream.read(1 << 16), b""):
            collector.feed(block)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    collector.flush()
    stats = collector.stats()
    kinds = ", ".join(f"{kind} {stats.by_kind.get(kind, 0)}" for kind in EVENT_KINDS)
    print(f"{stats.lines} lines, {stats.events} EdgeAI events ({kinds}), {stats.problems} malformed, "
          f"{stats.lines_lost} lost by seq, {stats.seq_restarts} seq restarts")
    for problem in collector.problems:
        print(f"line {problem.line_no}: {problem.reason}\n    {problem.line[:200]}")
    return 1 if stats.problems else 0
