"""Detection, recall, detection delay and false alarms of one run, from its alarm episodes and ground truth.

- Detection window of an injected event: [start_s, end_s + max_delay_s], closed at both ends.
- Detected: an episode of a source that counts for the event's type (`default_sources_for_type`) STARTS inside
  the event's detection window. An episode that started before the onset and is still on does not count: it
  was not caused by the event ("alarm before onset"). A consequence worth knowing: turning a non-alarm result
  into an alarm can lower recall, when it joins an episode that began inside the window to one that began
  before the onset. Adding an alarm episode (e.g. another source's) never lowers recall.
- Detection delay: start of the first qualifying episode − start_s. Median and p90, with numpy's default
  ("linear") interpolation between order statistics (`harness.core.stats.percentiles`).
- False alarm: an episode (of a source judged for some type) that overlaps no event's detection window, of any
  type. An episode that overlaps a window is neither a false alarm nor, if it started before the onset, a
  detection. False alarms per hour = false alarms / hours of normal driving, where normal driving is the
  observed span minus the union of all detection windows (clipped to the span, so an event at the end of the
  trip removes only the part of its window inside the trip).

Times are scenario seconds. Thresholds are not tuned here: an alarm is what the app reported.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.core.stats import Percentiles, percentiles
from harness.judge.metrics.episodes import AlarmEpisode, default_sources_for_type
from harness.judge.metrics.series import check_types, in_type_order
from harness.wire.events import AnomalyResult, BehaviourResult, Event, FuelResult, RuleEvent
from harness.wire.signals import LabelledEvent

__all__ = [
    "DetectionReport",
    "EventDetection",
    "FalseAlarmRate",
    "TypeRecall",
    "detect_events",
    "evaluate_detection",
    "false_alarm_episodes",
    "false_alarm_rate",
    "normal_driving_s",
    "observed_span_s",
    "recall_by_type",
]


@dataclass(frozen=True)
class EventDetection:
    """One injected event and the first episode that detected it (None: missed)."""

    event: LabelledEvent
    episode: AlarmEpisode | None

    @property
    def detected(self) -> bool:
        return self.episode is not None

    @property
    def detection_delay_s(self) -> float | None:
        return None if self.episode is None else self.episode.start_s - self.event.start_s


def _resolve_sources(sources_for_type: Mapping[str, Collection[str]] | None) -> Mapping[str, Collection[str]]:
    if sources_for_type is None:
        return default_sources_for_type()
    check_types(sources_for_type, "sources_for_type")
    return sources_for_type


def detect_events(labels: Iterable[LabelledEvent], episodes: Iterable[AlarmEpisode], *, max_delay_s: float,
                  sources_for_type: Mapping[str, Collection[str]] | None = None) -> list[EventDetection]:
    """For each injected event, the earliest episode of a counting source that starts in its detection window.

    The window is [start_s, end_s + max_delay_s]; an episode that started before start_s does not count even if
    it is still on (see the module docstring). `sources_for_type` maps each anomaly type to the alarm sources
    that count for it (default: `default_sources_for_type()`); an event whose type it does not list raises.
    """
    sources = _resolve_sources(sources_for_type)
    by_start = sorted(episodes, key=lambda e: e.start_s)
    out = []
    for event in labels:
        if event.type not in sources:
            raise ValueError(f"no alarm sources mapped for anomaly type {event.type!r}; sources_for_type "
                             f"covers: {', '.join(sources) or 'nothing'}")
        counting = sources[event.type]
        first = next((e for e in by_start if e.source in counting
                      and event.start_s <= e.start_s <= event.end_s + max_delay_s), None)
        out.append(EventDetection(event, first))
    return out


@dataclass(frozen=True)
class TypeRecall:
    """Events of one type (or "all types"): how many were injected, how many detected."""

    anomaly_type: str
    n_events: int
    n_detected: int

    @property
    def recall(self) -> float | None:
        """Detected / injected; None when no event of this type was injected (not measurable)."""
        return self.n_detected / self.n_events if self.n_events else None


def recall_by_type(detections: Iterable[EventDetection]) -> dict[str, TypeRecall]:
    """Recall per anomaly type, for the types that had events (in ANOMALY_TYPES order, unknown types last)."""
    counts: dict[str, list[int]] = {}
    for d in detections:
        n = counts.setdefault(d.event.type, [0, 0])
        n[0] += 1
        n[1] += d.detected
    return {t: TypeRecall(t, counts[t][0], counts[t][1]) for t in in_type_order(counts)}


# --- false alarms --------------------------------------------------------------------------------------------

def _windows(labels: Iterable[LabelledEvent], max_delay_s: float) -> list[tuple[float, float]]:
    return [(e.start_s, e.end_s + max_delay_s) for e in labels]


def false_alarm_episodes(episodes: Iterable[AlarmEpisode], labels: Iterable[LabelledEvent], *,
                         max_delay_s: float) -> list[AlarmEpisode]:
    """Episodes that overlap no event's detection window [start_s, end_s + max_delay_s], of any type."""
    windows = _windows(labels, max_delay_s)
    return [e for e in episodes if not any(e.start_s <= hi and e.end_s >= lo for lo, hi in windows)]


def normal_driving_s(labels: Iterable[LabelledEvent], *, start_s: float, end_s: float, max_delay_s: float) -> float:
    """Seconds of [start_s, end_s] outside every event's detection window (windows clipped to the span)."""
    clipped = sorted((max(lo, start_s), min(hi, end_s)) for lo, hi in _windows(labels, max_delay_s))
    covered, reach = 0.0, start_s
    for lo, hi in clipped:
        lo = max(lo, reach)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return max(0.0, end_s - start_s - covered)


@dataclass(frozen=True)
class FalseAlarmRate:
    n_false_alarms: int
    normal_driving_h: float

    @property
    def per_h(self) -> float | None:
        """False alarms per hour of normal driving; None when no normal driving was observed."""
        return self.n_false_alarms / self.normal_driving_h if self.normal_driving_h > 0 else None


def false_alarm_rate(episodes: Iterable[AlarmEpisode], labels: Sequence[LabelledEvent], *, start_s: float,
                     end_s: float, max_delay_s: float) -> FalseAlarmRate:
    """False alarms per hour of normal driving within the observed span [start_s, end_s]."""
    false = false_alarm_episodes(episodes, labels, max_delay_s=max_delay_s)
    return FalseAlarmRate(len(false), normal_driving_s(labels, start_s=start_s, end_s=end_s,
                                                       max_delay_s=max_delay_s) / 3600.0)


# --- one scenario's detection --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DetectionReport:
    """Everything about detection in one run: per-event outcome, recall, delays and false alarms."""

    detections: tuple[EventDetection, ...]
    false_alarm_episodes: tuple[AlarmEpisode, ...]
    false_alarms: FalseAlarmRate
    delay: Percentiles  # detection delays, s

    @property
    def n_events(self) -> int:
        return len(self.detections)

    @property
    def recall_by_type(self) -> dict[str, TypeRecall]:
        return recall_by_type(self.detections)

    @property
    def overall(self) -> TypeRecall:
        """Recall over all events pooled."""
        return TypeRecall("all types", self.n_events, sum(d.detected for d in self.detections))


#: The events that are results: what makes a span of the drive observed.
_RESULT_KINDS = (FuelResult, AnomalyResult, BehaviourResult, RuleEvent)


def observed_span_s(events: Iterable[Event]) -> tuple[float, float] | None:
    """First and last time the app reported a result (a model's result or a rule event). Status heartbeats and
    `features` debug lines do not count: minutes with heartbeats but no result are minutes the unit did not watch,
    not clean driving."""
    times = [e.t_s for e in events if isinstance(e, _RESULT_KINDS) and e.t_s is not None]
    return (min(times), max(times)) if times else None


def evaluate_detection(episodes: Iterable[AlarmEpisode], labels: Sequence[LabelledEvent], *,
                       observed_span: tuple[float, float] | None, max_delay_s: float,
                       sources_for_type: Mapping[str, Collection[str]] | None = None) -> DetectionReport:
    """Recall, delays and false alarms of one run.

    Only episodes of sources that count for some anomaly type (the values of `sources_for_type`) are judged
    for false alarms: a rule no type maps to (e.g. low_fuel) raises no false alarm. `observed_span` is the span
    the unit was watched over, normally `observed_span_s(events)`: a unit cannot alarm before its first window
    is full, and time after it stopped reporting is not "normal driving without a false alarm". None (no
    results at all) means no normal driving was observed, so the false-alarm rate is not measured.
    """
    sources = _resolve_sources(sources_for_type)
    judged = {s for counting in sources.values() for s in counting}
    episodes = list(episodes)
    detections = detect_events(labels, episodes, max_delay_s=max_delay_s, sources_for_type=sources)
    false = false_alarm_episodes([e for e in episodes if e.source in judged], labels, max_delay_s=max_delay_s)
    normal_s = 0.0 if observed_span is None else normal_driving_s(
        labels, start_s=observed_span[0], end_s=observed_span[1], max_delay_s=max_delay_s)
    delays = [d.detection_delay_s for d in detections if d.detection_delay_s is not None]
    return DetectionReport(tuple(detections), tuple(false), FalseAlarmRate(len(false), normal_s / 3600.0),
                           percentiles(delays))

