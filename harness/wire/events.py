"""Detection events, app → harness: the EdgeAI logcat contract, its parser and a streaming collector.

The DTG app logs one logcat line per result, tag ``EdgeAI``, message one JSON object (docs/events.md is the
contract a real app implements; this module is its executable form). A line as ``adb logcat -v threadtime``
prints it::

    01-15 10:23:45.123  4321  4350 I EdgeAI  : {"v":1,"kind":"anomaly","t":512.0,"infer_ms":7.9,...}

What this module does:
- the event dataclasses, one per ``kind`` (`AnomalyResult`, `FuelResult`, `BehaviourResult`, `RuleEvent`,
  `FeatureDebug`, `AppStatus`), with `ModelRef` naming the model file a result came from;
- `format_event_line` writes a line exactly as logcat prints it (the app simulator uses it), and
  `parse_event_line` reads it back: ``format → parse`` is the identity for every valid event;
- `parse_event_line` returns None for lines that are not EdgeAI lines (other tags, logcat banners, blank
  lines), an event for a valid EdgeAI line, and a `ParseProblem` (the reason, naming the field and the valid
  choices) for an EdgeAI line it cannot read. It never raises on any input;
- `EventCollector` takes text in arbitrary chunks (or whole lines), keeps events in arrival order with the
  harness's receive time (for end-to-end latency), keeps every problem with its reason, and counts lines lost
  according to the app's ``seq`` numbers.

What it checks: JSON syntax, the schema version, the kind, required fields, types, lengths, finiteness and
enumerations (behaviour class names, rule event types, signal names). What it does not check: semantics —
whether ``alarm`` agrees with ``score >= threshold``, whether probabilities sum to 1, whether a result matches
the model it names. Those are findings about the app, made by the contract tests, and a line that breaks them
is still a well-formed line. It does no I/O and starts no threads (running ``adb logcat`` is the device
driver's job); ``python -m harness.wire.events FILE`` checks a saved log from the command line.
"""
from __future__ import annotations

import codecs
import json
import math
import os
import re
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from harness.core.errors import DtgHilError
from harness.wire.behaviour import STYLES
from harness.wire.signals import SIGNALS

__all__ = [
    "BEHAVIOUR_CLASSES",
    "EVENT_KINDS",
    "FEATURE_COUNT",
    "LOGCAT_MAX_PAYLOAD_BYTES",
    "MODEL_KINDS",
    "RULE_EVENT_TYPES",
    "RULE_EVENT_UNITS",
    "SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "TAG",
    "AnomalyResult",
    "AppStatus",
    "BehaviourResult",
    "CollectorStats",
    "Event",
    "EventCollector",
    "EventFormatError",
    "FeatureDebug",
    "FuelResult",
    "ModelRef",
    "ParseProblem",
    "ReceivedEvent",
    "RuleEvent",
    "event_from_payload",
    "event_to_json",
    "event_to_payload",
    "format_event_line",
    "main",
    "parse_event_line",
    "parse_payload",
]

TAG = "EdgeAI"
SCHEMA_VERSION = 1
#: Schema versions this harness reads; lines of any other version are reported, never guessed at.
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
#: Behaviour classes by label index (the training labels' order).
BEHAVIOUR_CLASSES: tuple[str, ...] = STYLES
#: How many window statistics the behaviour model reads.
FEATURE_COUNT = 18
#: Android's logger truncates a message beyond about this many bytes (LOGGER_ENTRY_MAX_PAYLOAD 4068 minus the
#: tag and priority); a truncated JSON object is then reported as malformed. `format_event_line` refuses more.
LOGCAT_MAX_PAYLOAD_BYTES = 4000

#: What the rule-based detector can report, and the unit of its `value` and `limit`.
RULE_EVENT_UNITS: dict[str, str] = {
    "harsh_braking": "m/s^2 (acceleration_x: braking is negative, the rule fires at value <= limit)",
    "aggressive_acceleration": "m/s^2 (acceleration_x)",
    "erratic_driving": "count (acceleration/braking swings within the rule's time span)",
    "overheating": "degC (coolant)",
    "over_revving": "rpm",
    "excessive_idling": "s (engine running at standstill)",
    "low_fuel": "% (fuel level; value below limit)",
    "fuel_leak": "L/h (level drop not explained by consumption)",
    "gps_jump": "m (distance between consecutive fixes)",
    "out_of_range": "the signal's own unit (see harness.wire.signals.UNITS)",
    "stale_data": "s (age of the newest reading)",
}
RULE_EVENT_TYPES: tuple[str, ...] = tuple(RULE_EVENT_UNITS)


# --- the events ---------------------------------------------------------------------------------------------

class EventFormatError(DtgHilError, ValueError):
    """A payload or an event breaks the contract; `field` names the offending field (None: the whole line)."""

    def __init__(self, reason: str, field: str | None = None):
        self.reason = reason
        self.field = field
        super().__init__(reason)


@dataclass(frozen=True)
class ModelRef:
    """Which model file produced a result: its manifest name, a prefix (>= 8 hex digits) of its sha256, a version."""

    name: str
    sha256: str
    version: str | None = None


@dataclass(frozen=True)
class AnomalyResult:
    """The anomaly model's verdict on one window: reconstruction-error score, the threshold it used, the alarm."""

    kind: ClassVar[str] = "anomaly"
    t_s: float  # scenario time of the window's last sample
    infer_ms: float
    model: ModelRef
    score: float
    threshold: float
    alarm: bool
    signal_scores: tuple[float, ...] | None = None  # per signal, in harness.wire.signals.SIGNALS order
    seq: int | None = None


@dataclass(frozen=True)
class FuelResult:
    """The fuel model's estimate for one window."""

    kind: ClassVar[str] = "fuel"
    t_s: float
    infer_ms: float
    model: ModelRef
    fuel_rate_lph: float
    seq: int | None = None


@dataclass(frozen=True)
class BehaviourResult:
    """The behaviour model's class for one window; `class_name` is `BEHAVIOUR_CLASSES[label]` (JSON ``class``)."""

    kind: ClassVar[str] = "behaviour"
    t_s: float
    infer_ms: float
    model: ModelRef
    label: int
    class_name: str
    probabilities: tuple[float, ...]  # one per class, in BEHAVIOUR_CLASSES order
    seq: int | None = None


@dataclass(frozen=True)
class RuleEvent:
    """A rule of the app's rule-based detector fired: `value` crossed `limit` (units in `RULE_EVENT_UNITS`)."""

    kind: ClassVar[str] = "event"
    t_s: float  # scenario time of the sample that fired the rule
    type: str
    value: float
    limit: float
    signal: str | None = None  # the signal concerned, for out_of_range / stale_data
    seq: int | None = None


@dataclass(frozen=True)
class FeatureDebug:
    """Debug: the behaviour features the app computed and the window it computed them on (for parity checks)."""

    kind: ClassVar[str] = "features"
    t_s: float  # the window's last sample
    infer_ms: float  # time spent computing the features
    window_start_t_s: float  # the window's first sample (JSON ``window_start_t``)
    features: tuple[float, ...]  # FEATURE_COUNT values, in the training feature order; NaN (JSON null): missing
    n_samples: int | None = None  # samples actually in the window (fewer than 60 after dropouts)
    seq: int | None = None


@dataclass(frozen=True)
class AppStatus:
    """The app's heartbeat: what it has received and scored so far, and its UART decoder's counters.

    `t_s` is the scenario time of the newest sample received, None before the first one. `link` holds
    non-negative integer counters named as in `harness.wire.link.DecoderStats` (frames_decoded, crc_errors, ...).
    """

    kind: ClassVar[str] = "status"
    t_s: float | None
    samples_received: int
    windows_scored: int
    link: Mapping[str, int] = field(default_factory=dict)
    seq: int | None = None


Event = AnomalyResult | FuelResult | BehaviourResult | RuleEvent | FeatureDebug | AppStatus
_CLASSES: dict[str, type] = {cls.kind: cls for cls in (AnomalyResult, FuelResult, BehaviourResult, RuleEvent,
                                                       FeatureDebug, AppStatus)}
EVENT_KINDS: tuple[str, ...] = tuple(_CLASSES)
#: Kinds that carry a model's output (and a `model` reference).
MODEL_KINDS: tuple[str, ...] = ("anomaly", "fuel", "behaviour")


# --- payload ⇄ event ------------------------------------------------------------------------------------------

def _finite(value: Any) -> float | None:
    """The value as a float if it is a finite JSON number (not a bool), else None."""
    if type(value) is float:
        return value if value - value == 0.0 else None  # inf - inf and nan - nan are nan
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def _number(data: Mapping[str, Any], key: str, *, where: str = "") -> float:
    name = f"{where}{key}"
    if key not in data:
        raise EventFormatError(f"missing field '{name}'", name)
    value = data[key]
    number = _finite(value)
    if number is None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise EventFormatError(f"field '{name}': expected a finite number; got {value!r}", name)
        raise EventFormatError(f"field '{name}': expected a number; got {_json_kind(value)} {value!r}", name)
    return number


def _integer(data: Mapping[str, Any], key: str, *, where: str = "") -> int:
    name = f"{where}{key}"
    if key not in data:
        raise EventFormatError(f"missing field '{name}'", name)
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EventFormatError(f"field '{name}': expected an integer >= 0; got {_json_kind(value)} {value!r}",
                               name)
    return value


def _text(data: Mapping[str, Any], key: str, *, where: str = "") -> str:
    name = f"{where}{key}"
    if key not in data:
        raise EventFormatError(f"missing field '{name}'", name)
    value = data[key]
    if not isinstance(value, str) or not value:
        raise EventFormatError(f"field '{name}': expected a non-empty string; got {_json_kind(value)} {value!r}",
                               name)
    return value


def _choice(data: Mapping[str, Any], key: str, choices: tuple[str, ...], what: str) -> str:
    value = data.get(key)
    if key not in data:
        raise EventFormatError(f"missing field '{key}'; expected one of: {', '.join(choices)}", key)
    if value not in choices:
        raise EventFormatError(f"unknown {what} {value!r}; expected one of: {', '.join(choices)}", key)
    return value


def _numbers(data: Mapping[str, Any], key: str, length: int, what: str,
             allow_null: bool = False) -> tuple[float, ...]:
    if key not in data:
        raise EventFormatError(f"missing field '{key}' ({what})", key)
    value = data[key]
    if not isinstance(value, (list, tuple)):
        raise EventFormatError(f"field '{key}': expected a list of {length} numbers ({what}); "
                               f"got {_json_kind(value)}", key)
    if len(value) != length:
        raise EventFormatError(f"field '{key}': expected {length} numbers ({what}); got {len(value)}", key)
    numbers = [math.nan if item is None and allow_null else _finite(item) for item in value]
    if None in numbers:
        i = numbers.index(None)
        raise EventFormatError(f"field '{key}[{i}]': expected a finite number; got {value[i]!r}", f"{key}[{i}]")
    return tuple(numbers)


def _optional_int(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _integer(data, key)


def _model(data: Mapping[str, Any]) -> ModelRef:
    if "model" not in data:
        raise EventFormatError("missing field 'model' (an object: name, sha256, optional version)", "model")
    raw = data["model"]
    if not isinstance(raw, dict):
        raise EventFormatError(f"field 'model': expected an object with name, sha256, optional version; "
                               f"got {_json_kind(raw)}", "model")
    name = _text(raw, "name", where="model.")
    digest = _text(raw, "sha256", where="model.")
    if not _SHA_PREFIX.fullmatch(digest):
        raise EventFormatError(f"field 'model.sha256': expected 8 to 64 lowercase hex digits of the model "
                               f"file's sha256; got {digest!r}", "model.sha256")
    version = raw.get("version")
    if version is not None and not isinstance(version, str):
        raise EventFormatError(f"field 'model.version': expected a string; got {_json_kind(version)}",
                               "model.version")
    return ModelRef(name, digest, version)


_SHA_PREFIX = re.compile(r"[0-9a-f]{8,64}")


def event_from_payload(data: Any) -> Event:
    """Validate a decoded JSON payload and build its event; raise `EventFormatError` naming the field."""
    if not isinstance(data, dict):
        raise EventFormatError(f"payload: expected a JSON object; got {_json_kind(data)}")
    if "v" not in data:
        raise EventFormatError("missing field 'v' (schema version)", "v")
    version = data["v"]
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
        raise EventFormatError(f"unsupported schema version {version!r}; this harness reads: "
                               f"{', '.join(map(str, SUPPORTED_VERSIONS))}", "v")
    kind = _choice(data, "kind", EVENT_KINDS, "kind")
    seq = _optional_int(data, "seq")
    if kind == "status":
        t_s = None if "t" in data and data["t"] is None else _number(data, "t")
        link = data.get("link", {})
        if not isinstance(link, dict):
            raise EventFormatError(f"field 'link': expected an object of counters; got {_json_kind(link)}", "link")
        counters = {key: _integer(link, key, where="link.") for key in link}
        return AppStatus(t_s, _integer(data, "samples_received"), _integer(data, "windows_scored"), counters, seq)
    t_s = _number(data, "t")
    if kind == "event":
        signal = data.get("signal")
        if signal is not None and signal not in SIGNALS:
            raise EventFormatError(f"unknown signal {signal!r}; expected one of: {', '.join(SIGNALS)}", "signal")
        return RuleEvent(t_s, _choice(data, "type", RULE_EVENT_TYPES, "rule event type"),
                         _number(data, "value"), _number(data, "limit"), signal, seq)
    infer_ms = _number(data, "infer_ms")
    if infer_ms < 0:
        raise EventFormatError(f"field 'infer_ms': expected a duration >= 0; got {infer_ms}", "infer_ms")
    if kind == "features":
        return FeatureDebug(t_s, infer_ms, _number(data, "window_start_t"),
                            _numbers(data, "features", FEATURE_COUNT, "behaviour features", allow_null=True),
                            _optional_int(data, "n_samples"), seq)
    model = _model(data)
    if kind == "anomaly":
        alarm = data.get("alarm")
        if not isinstance(alarm, bool):
            raise EventFormatError("missing field 'alarm'" if "alarm" not in data else
                                   f"field 'alarm': expected true or false; got {alarm!r}", "alarm")
        signal_scores = None
        if data.get("signal_scores") is not None:
            signal_scores = _numbers(data, "signal_scores", len(SIGNALS), "one per signal")
        return AnomalyResult(t_s, infer_ms, model, _number(data, "score"), _number(data, "threshold"), alarm,
                             signal_scores, seq)
    if kind == "fuel":
        return FuelResult(t_s, infer_ms, model, _number(data, "fuel_rate_lph"), seq)
    label = _integer(data, "label")
    if label >= len(BEHAVIOUR_CLASSES):
        raise EventFormatError(f"field 'label': expected 0..{len(BEHAVIOUR_CLASSES) - 1} "
                               f"({', '.join(BEHAVIOUR_CLASSES)}); got {label}", "label")
    class_name = _choice(data, "class", BEHAVIOUR_CLASSES, "behaviour class")
    if class_name != BEHAVIOUR_CLASSES[label]:
        raise EventFormatError(f"field 'class': {class_name!r} contradicts label {label} "
                               f"({BEHAVIOUR_CLASSES[label]!r})", "class")
    probabilities = _numbers(data, "probabilities", len(BEHAVIOUR_CLASSES), ", ".join(BEHAVIOUR_CLASSES))
    return BehaviourResult(t_s, infer_ms, model, label, class_name, probabilities, seq)


def event_to_payload(event: Event) -> dict[str, Any]:
    """The JSON object for an event (key order as in docs/events.md), validated: a bad event raises."""
    kind = getattr(event, "kind", None)
    if kind not in _CLASSES or not isinstance(event, _CLASSES[kind]):
        raise EventFormatError(f"not an event: {type(event).__name__}; expected one of: "
                               f"{', '.join(cls.__name__ for cls in _CLASSES.values())}")
    try:
        out = _payload_of(event, kind)
    except (AttributeError, TypeError) as exc:
        raise EventFormatError(f"{kind}: cannot write {event!r}: {exc}") from None
    # Plain JSON types (numpy scalars become Python numbers), then validate through the parser itself, so
    # nothing is written that the harness would reject.
    try:
        plain = json.loads(json.dumps(out, default=_plain_scalar))
    except TypeError as exc:
        raise EventFormatError(f"{kind}: {exc}") from None
    event_from_payload(plain)
    return plain


def _payload_of(event: Event, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": kind}
    if event.seq is not None:
        out["seq"] = event.seq
    out["t"] = event.t_s
    if kind in MODEL_KINDS or kind == "features":
        out["infer_ms"] = event.infer_ms
    if kind in MODEL_KINDS:
        model = {"name": event.model.name, "sha256": event.model.sha256}
        if event.model.version is not None:
            model["version"] = event.model.version
        out["model"] = model
    if isinstance(event, AnomalyResult):
        out.update(score=event.score, threshold=event.threshold, alarm=event.alarm)
        if event.signal_scores is not None:
            out["signal_scores"] = list(event.signal_scores)
    elif isinstance(event, FuelResult):
        out["fuel_rate_lph"] = event.fuel_rate_lph
    elif isinstance(event, BehaviourResult):
        out.update({"label": event.label, "class": event.class_name, "probabilities": list(event.probabilities)})
    elif isinstance(event, RuleEvent):
        out.update(type=event.type, value=event.value, limit=event.limit)
        if event.signal is not None:
            out["signal"] = event.signal
    elif isinstance(event, FeatureDebug):
        # a statistic without enough readings (a signal the link does not carry) is NaN: JSON null
        out.update(window_start_t=event.window_start_t_s,
                   features=[None if value != value else value for value in event.features])
        if event.n_samples is not None:
            out["n_samples"] = event.n_samples
    else:
        out.update(samples_received=event.samples_received, windows_scored=event.windows_scored,
                   link=dict(event.link))
    return out


def _plain_scalar(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars: float32, int64, bool_
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not a JSON number, string or boolean")


def event_to_json(event: Event) -> str:
    """The event's payload as one line of compact JSON (no NaN, no newlines)."""
    return json.dumps(event_to_payload(event), separators=(",", ":"), allow_nan=False)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise EventFormatError(f"duplicate field '{duplicate}'", duplicate)
    return out


def _reject_constant(name: str) -> float:
    raise EventFormatError(f"not valid JSON: {name} is not a JSON number (log a finite number)")


def parse_payload(text: str) -> Event:
    """Parse one JSON payload; raise `EventFormatError` with the reason."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        where = f"{exc.msg} column {exc.colno}" if exc.msg.endswith(" at") else f"{exc.msg} at column {exc.colno}"
        raise EventFormatError(f"not valid JSON ({where}): {shown!r}") from None
    except RecursionError:
        raise EventFormatError("not valid JSON: nested too deeply") from None
    except EventFormatError:
        raise
    except ValueError as exc:  # e.g. an integer literal longer than Python's int conversion limit
        raise EventFormatError(f"not valid JSON: {exc}") from None
    return event_from_payload(data)


# --- logcat lines ------------------------------------------------------------------------------------------

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


def _parse_line(line: str) -> tuple[Event | ParseProblem | None, str | None]:
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
    FuelResult(t_s=60.0, infer_ms=3.2, model=ModelRef(name='fuel', sha256='0123abcd', version=None), fuel_rate_lph=5.5, seq=None)
    >>> parse_event_line("01-15 10:23:45.125  1200  1200 D Zygote  : something else") is None
    True
    """
    return _parse_line(line)[0]


def _logcat_stamp(wall_time: datetime | float | None) -> str:
    if wall_time is None:
        moment = datetime.now()
    elif isinstance(wall_time, datetime):
        moment = wall_time
    else:
        moment = datetime.fromtimestamp(wall_time)
    return f"{moment:%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def format_event_line(event: Event, pid: int | None = None, tid: int | None = None,
                      wall_time: datetime | float | None = None) -> str:
    """One logcat line in ``-v threadtime`` format, without the newline; raises `EventFormatError` if invalid.

    `pid` defaults to this process, `tid` to `pid` (an app's main thread), `wall_time` (datetime or epoch
    seconds) to now, as the device's clock would stamp it.

    >>> format_event_line(RuleEvent(512.0, "overheating", 118.5, 110.0), pid=4321, tid=4350,
    ...                   wall_time=datetime(2024, 1, 15, 10, 23, 45, 123000))
    '01-15 10:23:45.123  4321  4350 I EdgeAI  : {"v":1,"kind":"event","t":512.0,"type":"overheating","value":118.5,"limit":110.0}'
    """
    payload = event_to_json(event)
    if len(payload.encode()) > LOGCAT_MAX_PAYLOAD_BYTES:
        raise EventFormatError(f"payload is {len(payload.encode())} bytes; logcat truncates beyond "
                               f"{LOGCAT_MAX_PAYLOAD_BYTES}")
    pid = os.getpid() if pid is None else pid
    tid = pid if tid is None else tid
    return f"{_logcat_stamp(wall_time)} {pid:5d} {tid:5d} I {TAG:<8s}: {payload}"


# --- the collector -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceivedEvent:
    """An event as the harness received it: `received_wall_s` on the collector's clock (time.monotonic)."""

    event: Event
    received_wall_s: float
    line_no: int
    logcat_time: str | None = None  # the device's own stamp, as printed (device clock; no year)


@dataclass(frozen=True)
class CollectorStats:
    lines: int  # every line fed, of any tag
    events: int
    problems: int
    by_kind: Mapping[str, int]
    lines_lost: int  # EdgeAI lines missing according to the app's seq numbers (between received lines)
    seq_restarts: int  # seq went backwards: the app restarted (not counted as loss)


# --- the collector's compact store -------------------------------------------------------------------------

# How each field of a frequent event is stored, one column per field: "f" a float (array 'd'), "b" a bool
# (array 'b'), "i" an int >= 0 or None (array 'q', None as -1), "m" a ModelRef and "s" a str or None (both as
# an index into a table of the distinct values), "v" a tuple of floats or None (flat in one array 'd', its
# length in another, -1 for None). A row is checked whole before it is stored, so the columns never disagree.
_COLUMNS: dict[type, tuple[tuple[str, str], ...]] = {
    AnomalyResult: (("t_s", "f"), ("infer_ms", "f"), ("model", "m"), ("score", "f"), ("threshold", "f"),
                    ("alarm", "b"), ("signal_scores", "v"), ("seq", "i")),
    FuelResult: (("t_s", "f"), ("infer_ms", "f"), ("model", "m"), ("fuel_rate_lph", "f"), ("seq", "i")),
    BehaviourResult: (("t_s", "f"), ("infer_ms", "f"), ("model", "m"), ("label", "i"), ("class_name", "s"),
                      ("probabilities", "v"), ("seq", "i")),
    RuleEvent: (("t_s", "f"), ("type", "s"), ("value", "f"), ("limit", "f"), ("signal", "s"), ("seq", "i")),
    FeatureDebug: (("t_s", "f"), ("infer_ms", "f"), ("window_start_t_s", "f"), ("features", "v"),
                   ("n_samples", "i"), ("seq", "i")),
}
_INT64_MAX = 2 ** 63 - 1


class _Table:
    """Distinct values (model references, class names, rule types) by index: each is stored once."""

    def __init__(self) -> None:
        self.values: list = []
        self._index: dict = {}

    def index(self, value: object) -> int:
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.values)
            self.values.append(value)
        return found


class _Columns:
    """The events of one class, a column per field (see `_COLUMNS`)."""

    def __init__(self, cls: type, tables: _Table) -> None:
        self.cls = cls
        self.fields = _COLUMNS[cls]
        self._tables = tables
        self._columns: list[array] = []
        for _, code in self.fields:
            if code == "v":
                self._columns.append(array("h"))  # lengths
                self._columns.append(array("d"))  # the values, all rows flat
            else:
                self._columns.append(array({"f": "d", "b": "b", "i": "q", "m": "l", "s": "l"}[code]))

    def cells(self, event: object) -> list | None:
        """The row's cells, or None when a value does not fit a column (the store keeps that event whole)."""
        try:
            return self._cells(event)
        except TypeError:  # an unhashable value for a table
            return None

    def _cells(self, event: object) -> list | None:
        cells: list = []
        for name, code in self.fields:
            value = getattr(event, name)
            if code == "f":
                if type(value) is not float:
                    return None
                cells.append(value)
            elif code == "b":
                if type(value) is not bool:
                    return None
                cells.append(value)
            elif code == "i":
                if value is None:
                    cells.append(-1)
                elif type(value) is int and 0 <= value <= _INT64_MAX:
                    cells.append(value)
                else:
                    return None
            elif code in "ms":
                if code == "s" and value is not None and type(value) is not str:
                    return None
                cells.append(self._tables.index(value))
            else:
                if value is None:
                    cells += [-1, ()]
                elif type(value) is tuple and len(value) < 2 ** 15 and all(type(v) is float for v in value):
                    cells += [len(value), value]
                else:
                    return None
        return cells

    def append(self, cells: list) -> None:
        for column, cell in zip(self._columns, cells, strict=False):
            if type(cell) is tuple:
                column.extend(cell)
            else:
                column.append(cell)

    def rows(self) -> Iterable[object]:
        """Every stored event, rebuilt, in the order stored."""
        cls, fields, table = self.cls, self.fields, self._tables.values
        columns = self._columns
        n_rows = len(columns[0])
        offsets = {}  # column index of a "v" field's values -> next offset
        for row in range(n_rows):
            values = []
            c = 0
            for _, code in fields:
                if code == "v":
                    length, flat = columns[c][row], columns[c + 1]
                    if length < 0:
                        values.append(None)
                    else:
                        start = offsets.get(c, 0)
                        values.append(tuple(flat[start:start + length]))
                        offsets[c] = start + length
                    c += 2
                    continue
                cell = columns[c][row]
                if code == "b":
                    cell = bool(cell)
                elif code == "i":
                    cell = None if cell < 0 else cell
                elif code in "ms":
                    cell = table[cell]
                values.append(cell)
                c += 1
            yield cls(*values)


class _EventStore:
    """The collector's events in columns instead of objects: a soak's 40,000 events and more take a few MiB.

    Frequent kinds are stored field by field (`_COLUMNS`): floats in arrays, model references, class names and
    rule types once each, the logcat stamp as UTF-8 in one byte array. Status lines (one a minute, with their
    counters) and any event whose values do not fit the columns are kept as objects. Events are rebuilt on
    reading: equal to the ones stored, not the same objects.
    """

    def __init__(self) -> None:
        self._tables = _Table()
        self._by_class = {cls: _Columns(cls, self._tables) for cls in _COLUMNS}
        self._classes: list[type | None] = list(_COLUMNS)  # index = code in `_codes`; None: kept whole
        self._code = {cls: i for i, cls in enumerate(self._classes)}
        self._codes = array("b")
        self._whole: list[object] = []
        self._received_wall_s = array("d")
        self._line_no = array("q")
        self._stamps = bytearray()
        self._stamp_ends = array("q")

    def __len__(self) -> int:
        return len(self._codes)

    def append(self, event: object, received_wall_s: float, line_no: int, stamp: str | None) -> None:
        columns = self._by_class.get(type(event))
        cells = columns.cells(event) if columns is not None else None
        if cells is None:
            self._whole.append(event)
            self._codes.append(-1)
        else:
            columns.append(cells)
            self._codes.append(self._code[type(event)])
        self._received_wall_s.append(received_wall_s)
        self._line_no.append(line_no)
        self._stamps += (stamp or "").encode("utf-8", "surrogatepass")  # a stamp is never empty: "" is None
        self._stamp_ends.append(len(self._stamps))

    def events(self) -> list:
        """Every event, in arrival order."""
        rows = {cls: iter(columns.rows()) for cls, columns in self._by_class.items()}
        whole = iter(self._whole)
        classes = self._classes
        return [next(whole) if code < 0 else next(rows[classes[code]]) for code in self._codes]

    def received(self) -> list[ReceivedEvent]:
        """Every event with its receive time, line number and logcat stamp, in arrival order."""
        out = []
        start = 0
        stamps = self._stamps
        for event, wall_s, line_no, end in zip(self.events(), self._received_wall_s, self._line_no,
                                               self._stamp_ends, strict=False):
            stamp = stamps[start:end].decode("utf-8", "surrogatepass") if end > start else None
            start = end
            out.append(ReceivedEvent(event, wall_s, line_no, stamp))
        return out

    def of_class(self, cls: type) -> list:
        """The events of one class, in arrival order."""
        columns = self._by_class.get(cls)
        if columns is None:
            return [event for event in self._whole if type(event) is cls]
        if any(type(event) is cls for event in self._whole):  # rare: put them back in arrival order
            return [event for event in self.events() if type(event) is cls]
        return list(columns.rows())


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
        self._store = _EventStore()  # compact: a long run's events cost a few bytes each
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
        result, stamp = _parse_line(line)
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
        """Every event, in arrival order (a copy)."""
        with self._lock:
            return self._store.events()

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
            return self._store.of_class(_CLASSES[kind])

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


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


if __name__ == "__main__":
    sys.exit(main())
