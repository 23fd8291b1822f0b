"""The simulated Android device's log: `LogEntry` lines in one ring (`LogBuffer`), printed and filtered as logcat does.

One ring holds the buffers main, system and crash (`LOG_BUFFERS`); `format_log_entry` prints a line in the
formats brief, process, tag, raw, time and threadtime (the default); `LogFilter` reads filter specs
(``-s EdgeAI``, ``EdgeAI:I *:S``). The ``logcat`` command itself is in `firmware_sim.phone.android_commands`.

What it does NOT model: logcat's chatty and rate limits, per-buffer sizes, the binary (event) buffers, and time:
the device clock is the host clock.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "ACTIVITY_MANAGER_TID",
    "LOG_BUFFERS",
    "LOGCAT_FORMATS",
    "SYSTEM_SERVER_PID",
    "LogBuffer",
    "LogEntry",
    "LogFilter",
    "format_log_entry",
]


_PRIORITY_ORDER = "VDIWEFS"  # S (silent) only in filters
_PRIORITY_BY_NUMBER = {2: "V", 3: "D", 4: "I", 5: "W", 6: "E", 7: "F"}
LOGCAT_FORMATS: tuple[str, ...] = ("brief", "process", "tag", "raw", "time", "threadtime")
LOG_BUFFERS = ("main", "system", "crash")
#: system_server's pid/tid on this device (ActivityManager's lines).
SYSTEM_SERVER_PID = 1127
ACTIVITY_MANAGER_TID = 1154


def _priority_letter(priority: str | int) -> str:
    if isinstance(priority, int) and priority in _PRIORITY_BY_NUMBER:
        return _PRIORITY_BY_NUMBER[priority]
    if isinstance(priority, str) and len(priority) == 1 and priority.upper() in "VDIWEF":
        return priority.upper()
    raise ValueError(f"unknown log priority {priority!r}; expected one of V, D, I, W, E, F or 2..7")


@dataclass(frozen=True)
class LogEntry:
    """One logcat line: `seq` counts every line the device ever logged (it survives `-c`)."""

    seq: int
    wall_time_s: float
    pid: int
    tid: int
    priority: str
    tag: str
    message: str
    buffer: str = "main"


def _stamp(wall_time_s: float) -> str:
    moment = datetime.fromtimestamp(wall_time_s)
    return f"{moment:%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def format_log_entry(entry: LogEntry, fmt: str = "threadtime") -> str:
    """The entry as ``logcat -v <fmt>`` prints it, without the final newline (one printed line per message line).

    >>> e = LogEntry(1, 0.0, 4321, 4350, "I", "EdgeAI", "hello")
    >>> format_log_entry(e, "brief")
    'I/EdgeAI  ( 4321): hello'
    >>> format_log_entry(e, "threadtime")[18:]
    '  4321  4350 I EdgeAI  : hello'
    """
    if fmt not in LOGCAT_FORMATS:
        raise ValueError(f"unknown logcat format {fmt!r}; expected one of: {', '.join(LOGCAT_FORMATS)}")
    p, tag, pid = entry.priority, entry.tag, entry.pid
    lines = []
    for text in entry.message.split("\n"):
        if fmt == "brief":
            lines.append(f"{p}/{tag:<8s}({pid:5d}): {text}")
        elif fmt == "process":
            lines.append(f"{p}({pid:5d}) {text}  ({tag})")
        elif fmt == "tag":
            lines.append(f"{p}/{tag:<8s}: {text}")
        elif fmt == "raw":
            lines.append(text)
        elif fmt == "time":
            lines.append(f"{_stamp(entry.wall_time_s)} {p}/{tag:<8s}({pid:5d}): {text}")
        else:
            lines.append(f"{_stamp(entry.wall_time_s)} {pid:5d} {entry.tid:5d} {p} {tag:<8s}: {text}")
    return "\n".join(lines)


@dataclass(frozen=True)
class LogFilter:
    """logcat's filter specs: ``TAG:P`` shows TAG at priority P and above, ``*:P`` sets the default, S is silent.

    >>> f = LogFilter.parse(["EdgeAI:I", "*:S"])
    >>> f.allows("EdgeAI", "W"), f.allows("EdgeAI", "D"), f.allows("Zygote", "E")
    (True, False, False)
    """

    levels: Mapping[str, str] = field(default_factory=dict)
    default: str = "V"

    @classmethod
    def parse(cls, specs: Sequence[str], *, silent_default: bool = False) -> LogFilter:
        levels: dict[str, str] = {}
        default = "S" if silent_default else "V"
        for spec in specs:
            tag, _, level = spec.rpartition(":") if ":" in spec else (spec, ":", "V")
            level = level.upper() or "V"
            if not tag or level not in _PRIORITY_ORDER or len(level) != 1:
                raise ValueError(f"invalid filter expression {spec!r}; expected TAG[:P] with P one of "
                                 f"{', '.join(_PRIORITY_ORDER)}")
            if tag == "*":
                default = level
            else:
                levels[tag] = level
        return cls(levels, default)

    def allows(self, tag: str, priority: str) -> bool:
        level = self.levels.get(tag, self.default)
        return level != "S" and _PRIORITY_ORDER.index(priority) >= _PRIORITY_ORDER.index(level)


class LogBuffer:
    """The device's log: a ring of `LogEntry` (oldest lines fall out), waited on by streaming readers."""

    def __init__(self, capacity: int = 20000) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=capacity)
        self._seq = 0
        self._cond = threading.Condition()
        #: While True the log accepts no lines (`SimAndroidDevice.stop_logging`).
        self.silenced = False

    def append(self, pid: int, tid: int, priority: str | int, tag: str, message: str,
               buffer: str = "main") -> LogEntry | None:
        letter = _priority_letter(priority)
        with self._cond:
            if self.silenced:
                return None
            self._seq += 1
            entry = LogEntry(self._seq, time.time(), pid, tid, letter, tag, message, buffer)
            self._entries.append(entry)
            self._cond.notify_all()
        return entry

    def append_system(self, priority: str, tag: str, message: str) -> LogEntry | None:
        """Append a line as system_server logs it: its pid, ActivityManager's tid, buffer system."""
        return self.append(SYSTEM_SERVER_PID, ACTIVITY_MANAGER_TID, priority, tag, message, "system")

    def clear(self) -> None:
        with self._cond:
            self._entries.clear()

    def entries(self, after_seq: int = 0) -> list[LogEntry]:
        with self._cond:
            return self._newer(after_seq)

    def _newer(self, after_seq: int) -> list[LogEntry]:
        newer = []
        for entry in reversed(self._entries):
            if entry.seq <= after_seq:
                break
            newer.append(entry)
        newer.reverse()
        return newer

    def wait(self, after_seq: int, timeout_s: float) -> list[LogEntry]:
        """Entries after `after_seq`, waiting up to `timeout_s` for one to come."""
        with self._cond:
            newer = self._newer(after_seq)
            if not newer:
                self._cond.wait(timeout_s)
                newer = self._newer(after_seq)
            return newer
