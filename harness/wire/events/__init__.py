"""Detection events, app → harness: the EdgeAI logcat contract, its parser and a streaming collector.

The DTG app logs one logcat line per result, tag ``EdgeAI``, message one JSON object (docs/events.md is the
contract a real app implements; this package is its executable form). One module per concept:

- `harness.wire.events.schema` — the event dataclasses, one per ``kind`` (`AnomalyResult`, `FuelResult`,
  `BehaviourResult`, `RuleEvent`, `FeatureDebug`, `AppStatus`), `ModelRef`, and the contract's constants;
- `harness.wire.events.payload` — JSON payload ⇄ event, validated field by field (`EventFormatError` names
  the field and the valid choices);
- `harness.wire.events.logcat` — the logcat line: `format_event_line` writes one exactly as logcat prints
  it, `parse_event_line` reads it back (None, an event, or a `ParseProblem`; it never raises);
- `harness.wire.events.collector` — `EventCollector`, fed logcat text in any chunking, with its compact
  store (`harness.wire.events.store`), and ``python -m harness.wire.events FILE`` to check a saved log.

This ``__init__`` deliberately presents the package's public API: import the names below from
``harness.wire.events``; the submodules are where each one is defined and documented.

What it checks: JSON syntax, the schema version, the kind, required fields, types, lengths, finiteness and
enumerations. What it does not check: semantics (whether ``alarm`` agrees with ``score >= threshold``, whether a
result matches the model it names): those are findings about the app, made by the contract checks. It does no
I/O and starts no threads (running ``adb logcat`` is the device driver's job).
"""
from __future__ import annotations

from harness.wire.events.collector import CollectorStats, EventCollector, main
from harness.wire.events.logcat import ParseProblem, format_event_line, parse_event_line
from harness.wire.events.payload import event_from_payload, event_to_json, event_to_payload, parse_payload
from harness.wire.events.schema import (
    BEHAVIOUR_CLASSES,
    EVENT_CLASSES,
    EVENT_KINDS,
    FEATURE_COUNT,
    LOGCAT_MAX_PAYLOAD_BYTES,
    MODEL_KINDS,
    RULE_EVENT_TYPES,
    RULE_EVENT_UNITS,
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    TAG,
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
from harness.wire.events.store import ReceivedEvent

__all__ = [
    "BEHAVIOUR_CLASSES",
    "EVENT_CLASSES",
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
