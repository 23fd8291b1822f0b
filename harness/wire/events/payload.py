"""Payload ⇄ event: validate a decoded EdgeAI JSON object and build its event, and write an event's JSON.

What it checks: JSON syntax, the schema version, the kind, required fields, types, lengths, finiteness and
enumerations (behaviour class names, rule event types, signal names); each failure is an `EventFormatError`
naming the field and the valid choices. What it does not check: semantics — whether ``alarm`` agrees with
``score >= threshold``, whether probabilities sum to 1, whether a result matches the model it names. Those are
findings about the app, made by the contract checks, and a payload that breaks them is still well formed.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from harness.wire.events.schema import (
    BEHAVIOUR_CLASSES,
    EVENT_CLASSES,
    EVENT_KINDS,
    FEATURE_COUNT,
    MODEL_KINDS,
    RULE_EVENT_TYPES,
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    AnomalyResult,
    AppStatus,
    BehaviourResult,
    Event,
    EventFormatError,
    FeatureDebug,
    FuelResult,
    ModelRef,
    RuleEvent,
)
from harness.wire.signals import SIGNALS

__all__ = ["event_from_payload", "event_to_json", "event_to_payload", "parse_payload"]


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
    if all(type(item) is float for item in value) and math.isfinite(sum(value)):
        return tuple(value)  # all floats with a finite sum: all finite (an inf or NaN among them makes it not)
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
    return _validated(event)[0]


def _validated(event: Event) -> tuple[dict[str, Any], str]:
    """The event's payload as plain JSON types and as compact JSON text, validated through the parser itself, so
    nothing is written that the harness would reject. The text is what `json.dumps` of the plain payload gives, so
    `event_to_json` need not encode it a second time."""
    kind = getattr(event, "kind", None)
    if kind not in EVENT_CLASSES or not isinstance(event, EVENT_CLASSES[kind]):
        raise EventFormatError(f"not an event: {type(event).__name__}; expected one of: "
                               f"{', '.join(cls.__name__ for cls in EVENT_CLASSES.values())}")
    try:
        out = _payload_of(event, kind)
    except (AttributeError, TypeError) as exc:
        raise EventFormatError(f"{kind}: cannot write {event!r}: {exc}") from None
    # Plain JSON types (numpy scalars become Python numbers), then validate.
    try:
        text = json.dumps(out, default=_plain_scalar, separators=(",", ":"))
    except TypeError as exc:
        raise EventFormatError(f"{kind}: {exc}") from None
    plain = json.loads(text)
    event_from_payload(plain)
    return plain, text


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


def event_to_json(event: Event, validate: bool = True) -> str:
    """The event's payload as one line of compact JSON (no NaN, no newlines).

    `validate=False` skips reading the text back through the harness's own parser (the same text for a valid
    event): for a unit's writer, whose lines the harness's collector judges when it reads them."""
    if not validate:
        kind = getattr(event, "kind", None)
        try:
            return _COMPACT_JSON.encode(_payload_of(event, kind))
        except (AttributeError, TypeError, ValueError) as exc:
            raise EventFormatError(f"{kind}: cannot write {event!r}: {exc}") from None
    plain, text = _validated(event)
    if "NaN" in text or "Infinity" in text:  # a non-finite number the parser let through is refused here
        return json.dumps(plain, separators=(",", ":"), allow_nan=False)
    return text


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise EventFormatError(f"duplicate field '{duplicate}'", duplicate)
    return out


def _reject_constant(name: str) -> float:
    raise EventFormatError(f"not valid JSON: {name} is not a JSON number (log a finite number)")


# What `json.dumps(..., default=_plain_scalar, separators=(",", ":"), allow_nan=False)` and `json.loads(...,
# object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)` build on each call, built once (an app
# writes and the collector reads a line for each event).
_COMPACT_JSON = json.JSONEncoder(default=_plain_scalar, separators=(",", ":"), allow_nan=False)
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)


def parse_payload(text: str) -> Event:
    """Parse one JSON payload; raise `EventFormatError` with the reason."""
    try:
        # json.loads takes bytes too, and refuses a leading byte-order mark before it decodes: those go through it
        data = _STRICT_JSON.decode(text) if type(text) is str and not text.startswith("\ufeff") else \
            json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
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
