"""Metrics: what the unit detected against the injected ground truth, and the verdict on a scenario's `expect:`.

Pure functions on plain sequences and the contracts' dataclasses (`LabelledEvent` from the plant, events from
`harness.wire.events`), implementing DESIGN.md's "Metrics (honest definitions)". Times are scenario seconds.

Definitions used throughout:

- Alarm source: who raised an alarm. ``"anomaly"`` (`MODEL_SOURCE`) is the anomaly model's ``alarm`` flag;
  ``"event:<type>"`` (`rule_source`) is the app's rule-based detector firing a rule of that type.
- Alarm episode: consecutive alarms of one source merged — two alarms are consecutive if no non-alarm result
  of that source lies between them. Gaps in the results (lost lines, a stalled app) do not end an episode
  unless `max_gap_s` is given: an absent result is no evidence that the alarm stopped. The rule detector
  reports only when a rule fires (there are no "non-alarm" rule results), so rule episodes are always split
  at gaps longer than `rule_gap_s` (default `RULE_EPISODE_GAP_S`).
- Detection window of an injected event: [start_s, end_s + max_delay_s], closed at both ends.
- Detected: an episode of a source that counts for the event's type (`sources_for_type`) STARTS inside the
  event's detection window. An episode that started before the onset and is still on does not count: it was
  not caused by the event ("alarm before onset"). A consequence worth knowing: turning a non-alarm result into
  an alarm can lower recall, when it joins an episode that began inside the window to one that began before
  the onset. Adding an alarm episode (e.g. another source's) never lowers recall.
- Detection delay: start of the first qualifying episode − start_s. Median and p90, with numpy's default
  ("linear") interpolation between order statistics.
- False alarm: an episode (of a source judged for some type) that overlaps no event's detection window, of any
  type. An episode that overlaps a window is neither a false alarm nor, if it started before the onset, a
  detection. False alarms per hour = false alarms / hours of normal driving, where normal driving is the
  observed span minus the union of all detection windows (clipped to the span, so an event at the end of the
  trip removes only the part of its window inside the trip).
- AUROC / AUPRC per anomaly type (threshold-free): positives are results whose time lies in an event of that
  type ([start_s, end_s), as `LabelledEvent.active`); negatives are results in no event at all (and outside
  `exclude_after_s` after any event's end; 0 by default); results in events of other types are left out.
  AUROC is the Mann-Whitney statistic with tied scores counted one half; AUPRC is average precision (the
  step-wise sum over distinct thresholds, tied scores forming one threshold, no interpolation).
- Fuel: R² = 1 − SS_res/SS_tot and MAE of predicted vs true fuel rate (L/h).
- Latency: p50/p99 of ms values (the app-reported inference time, or end-to-end wall time from a window's last
  sample on the bus to its event at the harness).

What this module does not do: collect or parse events (`harness.wire.events`), pair a fuel result with its ground
truth (the rig holds the trace and decides what the truth of a window is; it passes a function), choose or
tune thresholds (thresholds come from normal validation data, never from test labels), or report
point-adjusted F1 (never alone; not at all here).
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.core.stats import DelayStats, LatencyStats, delay_stats, latency_stats
from harness.wire.events import MODEL_KINDS, RULE_EVENT_TYPES, AnomalyResult, Event, FuelResult, RuleEvent
from harness.wire.signals import LabelledEvent
from harness.world.anomalies import ANOMALY_TYPES
from harness.world.scenario import Expectations

__all__ = [
    "MODEL_SOURCE",
    "RULE_EPISODE_GAP_S",
    "AlarmEpisode",
    "Criterion",
    "DetectionReport",
    "EndToEndLatency",
    "EventDetection",
    "FalseAlarmRate",
    "FuelAccuracy",
    "Judgement",
    "ScenarioMetrics",
    "ThresholdFree",
    "TypeRecall",
    "alarm_episodes",
    "auprc",
    "auroc",
    "default_sources_for_type",
    "detect_events",
    "end_to_end_latency",
    "episodes_from_events",
    "evaluate_detection",
    "false_alarm_episodes",
    "false_alarm_rate",
    "fuel_accuracy",
    "inference_times_ms",
    "judge",
    "mean_absolute_error",
    "normal_driving_s",
    "observed_span_s",
    "r_squared",
    "recall_by_type",
    "rule_source",
    "scenario_metrics",
    "score_labels",
    "stale_data_criterion",
    "threshold_free_by_type",
]

#: The anomaly model's alarm flag, as an alarm source.
MODEL_SOURCE = "anomaly"
#: Rule events of one type further apart than this start a new episode (a rule fires at most once a sample
#: while its condition holds, or once per violation: either way a burst within this gap is one alarm).
RULE_EPISODE_GAP_S = 30.0


def rule_source(rule_type: str) -> str:
    """The alarm source name of a rule event type: ``rule_source("overheating") == "event:overheating"``."""
    return f"event:{rule_type}"


def default_sources_for_type(model_types: Iterable[str] = ANOMALY_TYPES) -> dict[str, tuple[str, ...]]:
    """Which alarm sources count for which anomaly type, by default.

    The anomaly model's alarms count for every type in `model_types` (the types the model is meant to cover;
    all of them by default); a rule event counts for the anomaly type of the same name only (a harsh-braking
    rule does not detect overheating). Types with no source left are mapped to an empty tuple: their events
    can never be detected, which shows as recall 0, never as a pass.
    """
    covered = set(_check_types(model_types, "model_types"))
    return {t: ((MODEL_SOURCE,) if t in covered else ()) + ((rule_source(t),) if t in RULE_EVENT_TYPES else ())
            for t in ANOMALY_TYPES}


def _check_types(types: Iterable[str], where: str) -> list[str]:
    out = list(types)
    for t in out:
        if t not in ANOMALY_TYPES:
            raise ValueError(f"unknown anomaly type {t!r} in {where}; expected one of: {', '.join(ANOMALY_TYPES)}")
    return out


# --- alarm episodes ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlarmEpisode:
    """Consecutive alarms of one source: the first and last alarm's result times and how many alarms."""

    source: str
    start_s: float
    end_s: float
    n_alarms: int


def _as_times(t_s: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    times = np.asarray(t_s, dtype=float).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{what}: times must be finite")
    return times


def alarm_episodes(t_s: Sequence[float] | np.ndarray, alarm: Sequence[bool] | np.ndarray, *,
                   source: str = MODEL_SOURCE, max_gap_s: float | None = None) -> list[AlarmEpisode]:
    """Merge a series of (time, alarm) results into episodes, in time order.

    Two alarms belong to one episode when no non-alarm result lies between them and, if `max_gap_s` is given,
    they are at most `max_gap_s` apart (pass e.g. 3 × the app's stride to split episodes across lost results).
    Results need not be sorted; equal times keep their given order.

    >>> [(e.start_s, e.end_s) for e in alarm_episodes([1, 2, 3, 4, 5, 6], [0, 1, 1, 0, 1, 1])]
    [(2.0, 3.0), (5.0, 6.0)]
    """
    times = _as_times(t_s, "alarm_episodes")
    flags = np.asarray(alarm, dtype=bool).reshape(-1)
    if len(flags) != len(times):
        raise ValueError(f"alarm_episodes: {len(times)} times but {len(flags)} alarm flags")
    order = np.argsort(times, kind="stable")
    episodes: list[AlarmEpisode] = []
    start = last = None
    count = 0
    for t, on in zip(times[order].tolist(), flags[order].tolist(), strict=False):
        if on and start is not None and (max_gap_s is None or t - last <= max_gap_s):
            last, count = t, count + 1
            continue
        if start is not None:
            episodes.append(AlarmEpisode(source, start, last, count))
            start = None
        if on:
            start, last, count = t, t, 1
    if start is not None:
        episodes.append(AlarmEpisode(source, start, last, count))
    return episodes


def episodes_from_events(events: Iterable[Event], *, max_gap_s: float | None = None,
                         rule_gap_s: float = RULE_EPISODE_GAP_S) -> list[AlarmEpisode]:
    """Alarm episodes from collected events: the anomaly model's (`MODEL_SOURCE`) and each rule type's.

    Other kinds carry no alarms and are ignored. Sorted by start time.
    """
    model_t: list[float] = []
    model_alarm: list[bool] = []
    rule_t: dict[str, list[float]] = {}
    for event in events:
        if isinstance(event, AnomalyResult):
            model_t.append(event.t_s)
            model_alarm.append(event.alarm)
        elif isinstance(event, RuleEvent):
            rule_t.setdefault(event.type, []).append(event.t_s)
    episodes = alarm_episodes(model_t, model_alarm, source=MODEL_SOURCE, max_gap_s=max_gap_s)
    for rule_type, times in rule_t.items():
        episodes += alarm_episodes(times, [True] * len(times), source=rule_source(rule_type), max_gap_s=rule_gap_s)
    return sorted(episodes, key=lambda e: (e.start_s, e.source))


# --- detection, recall, delay --------------------------------------------------------------------------------

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
    _check_types(sources_for_type, "sources_for_type")
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
    return {t: TypeRecall(t, counts[t][0], counts[t][1]) for t in _in_type_order(counts)}


def _in_type_order(types: Iterable[str]) -> list[str]:
    """Distinct types in ANOMALY_TYPES order, unknown ones last (alphabetically)."""
    order = {t: i for i, t in enumerate(ANOMALY_TYPES)}
    return sorted(set(types), key=lambda t: (order.get(t, len(order)), t))


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
    delay: DelayStats

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


def observed_span_s(events: Iterable[Event]) -> tuple[float, float] | None:
    """First and last result time the app reported (any kind; a status before the first sample is skipped)."""
    times = [e.t_s for e in events if e.t_s is not None]
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
                           delay_stats(delays))


# --- threshold-free ------------------------------------------------------------------------------------------

def _scores_labels(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting one half.

    None when there are no positives or no negatives (undefined).

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> auroc([1, 1, 1, 1], [0, 1, 0, 1])
    0.5
    """
    s, y = _scores_labels(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = float(_midranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auprc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision: Σ (R_k − R_{k−1}) · P_k over distinct
    thresholds, highest first, tied scores forming one threshold. None when there are no positives.

    Its chance level is the share of positives (a constant score gets exactly that), not 0.5.

    >>> auprc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.8333333333333333
    """
    s, y = _scores_labels(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    seen = np.arange(1, len(s) + 1)
    # The last index of each group of tied scores is where that threshold's counts are complete.
    last_of_group = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s) - 1]
    tp_at, seen_at = tp[last_of_group], seen[last_of_group]
    recall_steps = np.diff(np.r_[0, tp_at]) / n_pos
    return float(np.sum(recall_steps * tp_at / seen_at))


def score_labels(t_s: Sequence[float] | np.ndarray, labels: Iterable[LabelledEvent], anomaly_type: str, *,
                 exclude_after_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(included, positive) masks over result times for one anomaly type.

    Positive: inside an event of `anomaly_type`. Negative (included, not positive): inside no event at all and
    not within `exclude_after_s` after any event's end (pass the window length to keep windows that still hold
    anomalous samples out of the negatives). Everything else is excluded.
    """
    times = _as_times(t_s, "score_labels")
    positive = np.zeros(len(times), dtype=bool)
    in_any = np.zeros(len(times), dtype=bool)
    for event in labels:
        inside = event.active(times)
        if event.type == anomaly_type:
            positive |= inside
        in_any |= inside | ((times >= event.end_s) & (times < event.end_s + exclude_after_s))
    included = positive | ~in_any
    return included, positive


@dataclass(frozen=True)
class ThresholdFree:
    anomaly_type: str
    n_positive: int
    n_negative: int
    auroc: float | None
    auprc: float | None


def threshold_free_by_type(t_s: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                           labels: Sequence[LabelledEvent], *, exclude_after_s: float = 0.0
                           ) -> dict[str, ThresholdFree]:
    """AUROC and AUPRC of a score series per anomaly type that has events (see `score_labels`)."""
    times = _as_times(t_s, "threshold_free_by_type")
    s = np.asarray(scores, dtype=float).reshape(-1)
    if len(s) != len(times):
        raise ValueError(f"threshold_free_by_type: {len(times)} times but {len(s)} scores")
    out = {}
    for anomaly_type in _in_type_order(e.type for e in labels):
        included, positive = score_labels(times, labels, anomaly_type, exclude_after_s=exclude_after_s)
        y = positive[included]
        out[anomaly_type] = ThresholdFree(anomaly_type, int(y.sum()), int((~y).sum()),
                                          auroc(s[included], y), auprc(s[included], y))
    return out


# --- fuel and latency ----------------------------------------------------------------------------------------

def _pairs(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=float).reshape(-1)
    t = np.asarray(true, dtype=float).reshape(-1)
    if len(p) != len(t):
        raise ValueError(f"{len(p)} predictions but {len(t)} true values")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise ValueError("predicted and true values must be finite")
    return p, t


def r_squared(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float | None:
    """Coefficient of determination 1 − SS_res/SS_tot; None for no values or a constant truth (undefined).

    >>> r_squared([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), r_squared([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    (1.0, 0.0)
    """
    p, t = _pairs(predicted, true)
    ss_tot = float(np.sum((t - t.mean()) ** 2)) if len(t) else 0.0
    if ss_tot == 0.0:
        return None
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot


def mean_absolute_error(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float | None:
    """Mean |predicted − true|; None for no values."""
    p, t = _pairs(predicted, true)
    return float(np.mean(np.abs(p - t))) if len(p) else None


@dataclass(frozen=True)
class FuelAccuracy:
    n: int
    r2: float | None
    mae_lph: float | None


def fuel_accuracy(predicted_lph: Sequence[float] | np.ndarray, true_lph: Sequence[float] | np.ndarray
                  ) -> FuelAccuracy:
    """R² and MAE (L/h) of fuel-rate predictions against the truth."""
    p, t = _pairs(predicted_lph, true_lph)
    return FuelAccuracy(len(p), r_squared(p, t), mean_absolute_error(p, t))


def inference_times_ms(events: Iterable[Event], kinds: Collection[str] = MODEL_KINDS) -> list[float]:
    """The app's own reported inference times (``infer_ms``) of the results of the given kinds."""
    return [e.infer_ms for e in events if e.kind in kinds and getattr(e, "infer_ms", None) is not None]


@dataclass(frozen=True)
class EndToEndLatency:
    """Per event: wall ms from its window's last sample on the bus to its line at the harness."""

    latencies_ms: tuple[float, ...]
    n_unmatched: int  # events whose t matched no sent sample within the tolerance

    def stats(self) -> LatencyStats:
        return latency_stats(self.latencies_ms)


def end_to_end_latency(sent_t_s: Sequence[float] | np.ndarray, sent_wall_s: Sequence[float] | np.ndarray,
                       event_t_s: Sequence[float] | np.ndarray, received_wall_s: Sequence[float] | np.ndarray,
                       *, tolerance_s: float = 0.5) -> EndToEndLatency:
    """Pair each event with the sample it names and return received − sent wall time, in ms.

    `sent_t_s`/`sent_wall_s`: each sample's scenario time and the wall time (the collector's clock,
    time.monotonic) its last CAN frame went on the bus. `event_t_s`/`received_wall_s`: each event's ``t`` and
    `ReceivedEvent.received_wall_s`. An event pairs with the sample nearest its ``t`` if within `tolerance_s`.
    Negative latencies (clock or pairing trouble) are kept, not hidden. Latency is wall time whatever the
    rig's time scale.
    """
    sent_t = _as_times(sent_t_s, "end_to_end_latency")
    sent_wall = np.asarray(sent_wall_s, dtype=float).reshape(-1)
    event_t = _as_times(event_t_s, "end_to_end_latency")
    received_wall = np.asarray(received_wall_s, dtype=float).reshape(-1)
    if len(sent_t) != len(sent_wall) or len(event_t) != len(received_wall):
        raise ValueError("end_to_end_latency: each time series needs its wall times, one for one")
    if len(sent_t) == 0:
        return EndToEndLatency((), len(event_t))
    order = np.argsort(sent_t, kind="stable")
    sent_t, sent_wall = sent_t[order], sent_wall[order]
    if len(sent_t) > 1:
        right = np.clip(np.searchsorted(sent_t, event_t), 1, len(sent_t) - 1)
    else:
        right = np.zeros(len(event_t), dtype=int)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(sent_t[left] - event_t) <= np.abs(sent_t[right] - event_t), left, right)
    matched = np.abs(sent_t[nearest] - event_t) <= tolerance_s
    latencies = (received_wall[matched] - sent_wall[nearest[matched]]) * 1000.0
    return EndToEndLatency(tuple(latencies.tolist()), int((~matched).sum()))


# --- the verdict ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScenarioMetrics:
    """What a run measured, as `judge` reads it. `latency` is what the latency criteria judge."""

    detection: DetectionReport
    fuel: FuelAccuracy | None = None
    latency: LatencyStats | None = None
    latency_label: str = "app-reported inference"
    threshold_free: Mapping[str, ThresholdFree] = field(default_factory=dict)
    end_to_end: LatencyStats | None = None


def scenario_metrics(events: Sequence[Event], labels: Sequence[LabelledEvent], *, max_delay_s: float,
                     sources_for_type: Mapping[str, Collection[str]] | None = None,
                     max_gap_s: float | None = None, rule_gap_s: float = RULE_EPISODE_GAP_S,
                     fuel_true_lph: Callable[[float], float] | None = None,
                     end_to_end: LatencyStats | None = None, exclude_after_s: float = 0.0) -> ScenarioMetrics:
    """Every metric of one run from its collected events and ground-truth labels.

    `fuel_true_lph(t_s)` gives the true fuel rate a fuel result at `t_s` should be compared with (the rig
    decides: e.g. the mean over the window); without it, or without fuel results, fuel is not measured.
    Latency criteria judge the app-reported inference time of all model results pooled.
    """
    episodes = episodes_from_events(events, max_gap_s=max_gap_s, rule_gap_s=rule_gap_s)
    detection = evaluate_detection(episodes, labels, observed_span=observed_span_s(events),
                                   max_delay_s=max_delay_s, sources_for_type=sources_for_type)
    fuel = None
    fuel_results = [e for e in events if isinstance(e, FuelResult)]
    if fuel_true_lph is not None and fuel_results:
        fuel = fuel_accuracy([e.fuel_rate_lph for e in fuel_results], [fuel_true_lph(e.t_s) for e in fuel_results])
    infer = inference_times_ms(events)
    anomalies = [e for e in events if isinstance(e, AnomalyResult)]
    threshold_free = threshold_free_by_type([e.t_s for e in anomalies], [e.score for e in anomalies], labels,
                                            exclude_after_s=exclude_after_s) if anomalies else {}
    return ScenarioMetrics(detection, fuel, latency_stats(infer) if infer else None,
                           threshold_free=threshold_free, end_to_end=end_to_end)


@dataclass(frozen=True)
class Criterion:
    """One `expect:` criterion: measured vs required.

    `status` is "pass", "fail", "not measured" (fails: a required metric that could not be measured is never
    a pass) or "not applicable" (passes; only recall in a scenario without events).
    """

    name: str
    measured: float | None
    required: float
    comparison: str  # ">=" for *_min criteria, "<=" for *_max
    status: str
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "not applicable")

    def describe(self) -> str:
        """E.g. "recall (overheating) 0.50 < required 1.00"."""
        note = f" ({self.note})" if self.note else ""
        if self.measured is None:
            return f"{self.name} {self.status}{note}; required {self.comparison} {_fmt(self.required)}"
        shown, required = _fmt_pair(self.measured, self.required)
        op = self.comparison if self.passed else {">=": "<", "<=": ">"}[self.comparison]
        return f"{self.name} {shown} {op} required {required}{note}"


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _fmt_pair(measured: float, required: float) -> tuple[str, str]:
    """Both at 2 decimals, or more when 2 would show a failing pair as equal (0.849 vs 0.85)."""
    for digits in range(2, 8):
        a, b = f"{measured:.{digits}f}", f"{required:.{digits}f}"
        if a != b or measured == required:
            return a, b
    return repr(measured), repr(required)


@dataclass(frozen=True)
class Judgement:
    """The verdict on a scenario's `expect:`: every criterion, passed overall only if each one passed."""

    criteria: tuple[Criterion, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def failures(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.passed)

    @property
    def message(self) -> str:
        """Every failing criterion, one per line; or a one-line pass summary."""
        if self.passed:
            return f"all {len(self.criteria)} criteria passed"
        return "\n".join(c.describe() for c in self.failures)

    def summary(self) -> str:
        """Every criterion, one per line, with its status."""
        return "\n".join(f"{'PASS' if c.passed else 'FAIL'}  {c.describe()}" for c in self.criteria)


def _criterion(name: str, measured: float | None, required: float, comparison: str, missing_note: str = "",
               note: str = "") -> Criterion:
    if measured is None:
        return Criterion(name, None, required, comparison, "not measured", missing_note)
    ok = measured >= required if comparison == ">=" else measured <= required
    return Criterion(name, measured, required, comparison, "pass" if ok else "fail", note)


def _missed_note(detections: Iterable[EventDetection]) -> str:
    missed = [f"{d.event.type} at {d.event.start_s:g} s" for d in detections if not d.detected]
    return f"missed: {', '.join(missed)}" if missed else ""


def judge(expect: Expectations, metrics: ScenarioMetrics) -> Judgement:
    """Evaluate each criterion `expect` sets against what was measured.

    recall_min: a number judges recall over all events pooled; a mapping judges each listed type. A scenario
    with no events makes recall "not applicable" (nothing to detect); a listed type with no events in a
    scenario that has others is "not measured" and fails. Every other criterion that could not be measured
    (no detections for a delay, no normal driving for false alarms, no fuel results or truth, no latencies)
    fails as "not measured". Comparisons are exact: a min is met by measured >= required, a max by <=.
    """
    d = metrics.detection
    out: list[Criterion] = []
    if expect.recall_min is not None:
        if d.n_events == 0:
            required_by_name = {f"recall ({t})": r for t, r in expect.recall_min.items()} \
                if isinstance(expect.recall_min, Mapping) else {"recall (all types)": expect.recall_min}
            out += [Criterion(name, None, float(required), ">=", "not applicable", "the scenario injects no events")
                    for name, required in required_by_name.items()]
        elif isinstance(expect.recall_min, Mapping):
            by_type = d.recall_by_type
            for anomaly_type, required in expect.recall_min.items():
                got = by_type.get(anomaly_type)
                detections = [x for x in d.detections if x.event.type == anomaly_type]
                out.append(_criterion(f"recall ({anomaly_type})", got.recall if got else None, float(required),
                                      ">=", f"no {anomaly_type} events in the scenario",
                                      f"{got.n_detected}/{got.n_events}; {_missed_note(detections)}".rstrip("; ")
                                      if got else ""))
        else:
            overall = d.overall
            out.append(_criterion("recall (all types)", overall.recall, float(expect.recall_min), ">=",
                                  note=f"{overall.n_detected}/{overall.n_events}; {_missed_note(d.detections)}"
                                  .rstrip("; ")))
    if expect.false_alarms_per_h_max is not None:
        fa = d.false_alarms
        out.append(_criterion("false_alarms_per_h", fa.per_h, expect.false_alarms_per_h_max, "<=",
                              "no normal driving observed: no results outside event windows",
                              f"{fa.n_false_alarms} in {fa.normal_driving_h:.2f} h"))
    no_delay = "the scenario injects no events" if d.n_events == 0 else "no event was detected"
    if expect.detection_delay_s_p50_max is not None:
        out.append(_criterion("detection_delay_s_p50", d.delay.p50_s, expect.detection_delay_s_p50_max, "<=",
                              no_delay, f"n={d.delay.n}"))
    if expect.detection_delay_s_p90_max is not None:
        out.append(_criterion("detection_delay_s_p90", d.delay.p90_s, expect.detection_delay_s_p90_max, "<=",
                              no_delay, f"n={d.delay.n}"))
    fuel = metrics.fuel
    no_fuel = "no fuel results or no ground truth" if fuel is None or fuel.n == 0 else \
        "the true fuel rate is constant, R² undefined"
    if expect.fuel_r2_min is not None:
        out.append(_criterion("fuel_r2", fuel.r2 if fuel else None, expect.fuel_r2_min, ">=", no_fuel,
                              f"n={fuel.n}" if fuel else ""))
    if expect.fuel_mae_lph_max is not None:
        out.append(_criterion("fuel_mae_lph", fuel.mae_lph if fuel else None, expect.fuel_mae_lph_max, "<=",
                              "no fuel results or no ground truth", f"n={fuel.n}" if fuel else ""))
    latency = metrics.latency
    for key, attr, label in (("latency_ms_p50_max", "p50_ms", "latency_ms_p50"),
                             ("latency_ms_p99_max", "p99_ms", "latency_ms_p99")):
        required = getattr(expect, key)
        if required is not None:
            out.append(_criterion(f"{label} ({metrics.latency_label})",
                                  getattr(latency, attr) if latency else None, required, "<=",
                                  "no latencies reported", f"n={latency.n}" if latency else ""))
    return Judgement(tuple(out))


def stale_data_criterion(flagged: bool, events: Iterable[Event], windows: Sequence[tuple[float, float]], *,
                         max_delay_s: float) -> Criterion:
    """`expect: stale_data_flagged`, judged on the app's `stale_data` rule events.

    True: every window of `windows` ([start_s, end_s] of a bus fault that silences data) must see a stale_data
    event in [start_s, end_s + max_delay_s]; measured is the fraction of windows flagged, required 1. A scenario
    that silences nothing is "not measured" (fails: nothing could show the flag works). False: the app must
    report no stale_data at all; measured is how many it reported, required 0.

    >>> stale_data_criterion(True, [RuleEvent(107.0, "stale_data", 6.0, 5.0, "coolant_temp")], [(100.0, 160.0)],
    ...                      max_delay_s=60).describe()
    'stale_data_flagged 1.00 >= required 1.00 (1/1 faults flagged)'
    """
    stale = sorted(e.t_s for e in events if isinstance(e, RuleEvent) and e.type == "stale_data")
    if not flagged:
        first = f"first at {stale[0]:g} s" if stale else ""
        return _criterion("stale_data_flagged (none expected)", float(len(stale)), 0.0, "<=", note=first)
    if not windows:
        return Criterion("stale_data_flagged", None, 1.0, ">=", "not measured",
                         "the scenario silences no data: no id_silent or bus_off fault")
    flagged_windows = [any(lo <= t <= hi + max_delay_s for t in stale) for lo, hi in windows]
    missed = [f"{lo:g}-{hi:g} s" for (lo, hi), hit in zip(windows, flagged_windows, strict=False) if not hit]
    note = f"{sum(flagged_windows)}/{len(windows)} faults flagged" + (f"; missed: {', '.join(missed)}" if missed
                                                                      else "")
    return _criterion("stale_data_flagged", sum(flagged_windows) / len(windows), 1.0, ">=", note=note)
