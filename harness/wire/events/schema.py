"""The EdgeAI events, one dataclass per ``kind``, and the contract's constants (docs/events.md).

`AnomalyResult`, `FuelResult`, `BehaviourResult`, `RuleEvent`, `FeatureDebug`, `AppStatus`, with `ModelRef`
naming the model file a result came from; the schema version, the tag, the behaviour classes and rule event
types a line may name. Plain frozen dataclasses: they are checked where a line is read or written
(`harness.wire.events.payload`), not on construction.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from harness.core.errors import DtgHilError
from harness.wire.behaviour import STYLES

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
    "Event",
    "EventFormatError",
    "FeatureDebug",
    "FuelResult",
    "ModelRef",
    "RuleEvent",
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
#: The event class of each kind.
EVENT_CLASSES: dict[str, type] = {cls.kind: cls for cls in (AnomalyResult, FuelResult, BehaviourResult, RuleEvent,
                                                            FeatureDebug, AppStatus)}
EVENT_KINDS: tuple[str, ...] = tuple(EVENT_CLASSES)
#: Kinds that carry a model's output (and a `model` reference).
MODEL_KINDS: tuple[str, ...] = ("anomaly", "fuel", "behaviour")
