"""The EdgeAI logcat line: `parse_event_line` reads one ("never raises"), `format_event_line` writes one.

A line as ``adb logcat -v threadtime`` prints it::

    01-15 10:23:45.123  4321  4350 I EdgeAI  : {"v":1,"kind":"anomaly","t":512.0,"infer_ms":7.9,...}

``format → parse`` is the identity for every valid event. `parse_event_line` returns None for lines that are
not EdgeAI lines (other tags, logcat banners, blank lines), an event for a valid EdgeAI line, and a
`ParseProblem` (the reason, naming the field and the valid choices) for an EdgeAI line it cannot read. It
never raises on any input. It does no I/O (running ``adb logcat`` is the device driver's job).
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime

from harness.wire.events.payload import event_to_json, parse_payload
from harness.wire.events.schema import LOGCAT_MAX_PAYLOAD_BYTES, TAG, Event, EventFormatError

__all__ = ["ParseProblem", "format_event_line", "parse_event_line", "parse_event_line_stamped"]


@dataclass(frozen=True)
class ParseProblem:
    """An EdgeAI line the harness could not read: why, the field at fault (if one), and the line itself."""

    reason: str
    line: str
    field: str | None = None
    line_no: int | None = None  # 1-based, counted by the collector; None from parse_event_line


# `-v threadtime` (optionally with year, zone, uid, or epoch/monotonic seconds instead of the date):
#   01-15 10:23:45.123  4321  4350 I EdgeAI  : {...}
_THREADTIME = re.compile(
    r"\s*(?P<stamp>(?:\d{4}-)?\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+|\d+\.\d+)(?:\s+[+-]\d{4})?"
    r"\s+(?:\S+\s+)??(?P<pid>\d+)\s+(?P<tid>\d+)\s+(?P<prio>[VDIWEFAS])\s(?P<tag>.*?)\s*:(?: |$)(?P<msg>.*)")
# `-v brief` / `-v tag`:  I/EdgeAI( 4321): {...}
_BRIEF = re.compile(r"(?P<prio>[VDIWEFAS])/(?P<tag>[^(:]*?)\s*(?:\(\s*(?P<pid>\d+)\))?:(?: |$)(?P<msg>.*)")


def _split_logcat(line: str) -> tuple[str, str, str | None] | None:
    """(tag, message, logcat timestamp) of a logcat line, or None if it is not one."""
    match = _THREADTIME.match(line) or _BRIEF.match(line)
    if match is None:
        return None
    return match["tag"].strip(), match["msg"], match.groupdict().get("stamp")


def parse_event_line_stamped(line: str) -> tuple[Event | ParseProblem | None, str | None]:
    """`parse_event_line`, plus the logcat timestamp of an EdgeAI line."""
    stamp = None
    try:
        line = line.rstrip("\r\n")
        parts = _split_logcat(line)
        if parts is None:
            if TAG in line:
                return ParseProblem(f"line mentions {TAG} but is not a logcat threadtime or brief line", line), None
            return None, None
        tag, message, stamp = parts
        if tag != TAG:
            return None, None
        if not message.strip():
            return ParseProblem("empty payload", line), stamp
        return parse_payload(message), stamp
    except EventFormatError as exc:
        return ParseProblem(exc.reason, line, exc.field), stamp
    except Exception as exc:  # noqa: BLE001 - the parser's promise is to never raise; keep the reason
        return ParseProblem(f"unexpected parser error {type(exc).__name__}: {exc}", str(line)), stamp


def parse_event_line(line: str) -> Event | ParseProblem | None:
    """Read one logcat line: an event, a `ParseProblem` for a bad EdgeAI line, None for anything else.

    Never raises. Lines of other tags, logcat's ``--------- beginning of main`` banners and blank lines are
    None. A line that is not in a logcat format but mentions the tag is a problem, not None: it is most
    likely an EdgeAI line mangled on the way, and the harness does not drop those silently.

    >>> parse_event_line('01-15 10:23:45.123  4321  4350 I EdgeAI  : {"v":1,"kind":"fuel","t":60.0,'
    ...                  '"infer_ms":3.2,"model":{"name":"fuel","sha256":"0123abcd"},"fuel_rate_lph":5.5}')
    ... # doctest: +NORMALIZE_WHITESPACE
    FuelResult(t_s=60.0, infer_ms=3.2, model=ModelRef(name='fuel', sha256='0123abcd', version=None),
               fuel_rate_lph=5.5, seq=None)
    >>> parse_event_line("01-15 10:23:45.125  1200  1200 D Zygote  : something else") is None
    True
    """
    return parse_event_line_stamped(line)[0]


_second_stamp: tuple[int, str] = (-1, "")  # (epoch second, its "MM-DD HH:MM:SS"): an app writes many a second


def _logcat_stamp(wall_time: datetime | float | None) -> str:
    global _second_stamp
    if wall_time is None or not isinstance(wall_time, datetime):
        epoch_s = time.time() if wall_time is None else wall_time
        second = math.floor(epoch_s)
        if _second_stamp[0] != second:
            _second_stamp = (second, f"{datetime.fromtimestamp(second):%m-%d %H:%M:%S}")
        return f"{_second_stamp[1]}.{int((epoch_s - second) * 1000):03d}"
    return f"{wall_time:%m-%d %H:%M:%S}.{wall_time.microsecond // 1000:03d}"


def format_event_line(event: Event, pid: int | None = None, tid: int | None = None,
                      wall_time: datetime | float | None = None, validate: bool = True) -> str:
    """One logcat line in ``-v threadtime`` format, without the newline; raises `EventFormatError` if invalid.

    `pid` defaults to this process, `tid` to `pid` (an app's main thread), `wall_time` (datetime or epoch
    seconds) to now, as the device's clock would stamp it. `validate` as in `event_to_json`.

    >>> from harness.wire.events.schema import RuleEvent
    >>> line = format_event_line(RuleEvent(512.0, "overheating", 118.5, 110.0), pid=4321, tid=4350,
    ...                          wall_time=datetime(2024, 1, 15, 10, 23, 45, 123000))
    >>> line[:43]
    '01-15 10:23:45.123  4321  4350 I EdgeAI  : '
    >>> line[43:]
    '{"v":1,"kind":"event","t":512.0,"type":"overheating","value":118.5,"limit":110.0}'
    """
    payload = event_to_json(event, validate)
    if len(payload.encode()) > LOGCAT_MAX_PAYLOAD_BYTES:
        raise EventFormatError(f"payload is {len(payload.encode())} bytes; logcat truncates beyond "
                               f"{LOGCAT_MAX_PAYLOAD_BYTES}")
    pid = os.getpid() if pid is None else pid
    tid = pid if tid is None else tid
    return f"{_logcat_stamp(wall_time)} {pid:5d} {tid:5d} I {TAG:<8s}: {payload}"
