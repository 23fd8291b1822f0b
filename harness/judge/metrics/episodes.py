"""Alarm sources and alarm episodes: who raised an alarm, and consecutive alarms merged into one.

- Alarm source: ``"anomaly"`` (`MODEL_SOURCE`) is the anomaly model's ``alarm`` flag; ``"event:<type>"``
  (`rule_source`) is the app's rule-based detector firing a rule of that type.
- Alarm episode: consecutive alarms of one source merged — two alarms are consecutive if no non-alarm result
  of that source lies between them. Gaps in the results (lost lines, a stalled app) do not end an episode
  unless `max_gap_s` is given: an absent result is no evidence that the alarm stopped. The rule detector
  reports only when a rule fires (there are no "non-alarm" rule results), so rule episodes are always split
  at gaps longer than `rule_gap_s` (default `RULE_EPISODE_GAP_S`).

Times are scenario seconds. Judging episodes against the injected events is `harness.judge.metrics.detection`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.judge.metrics.series import as_times, check_types
from harness.wire.events import RULE_EVENT_TYPES, AnomalyResult, Event, RuleEvent
from harness.world.anomalies import ANOMALY_TYPES

__all__ = [
    "MODEL_SOURCE",
    "RULE_EPISODE_GAP_S",
    "AlarmEpisode",
    "alarm_episodes",
    "default_sources_for_type",
    "episodes_from_events",
    "rule_source",
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
    covered = set(check_types(model_types, "model_types"))
    return {t: ((MODEL_SOURCE,) if t in covered else ()) + ((rule_source(t),) if t in RULE_EVENT_TYPES else ())
            for t in ANOMALY_TYPES}


# --- alarm episodes ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlarmEpisode:
    """Consecutive alarms of one source: the first and last alarm's result times and how many alarms."""

    source: str
    start_s: float
    end_s: float
    n_alarms: int


def alarm_episodes(t_s: Sequence[float] | np.ndarray, alarm: Sequence[bool] | np.ndarray, *,
                   source: str = MODEL_SOURCE, max_gap_s: float | None = None) -> list[AlarmEpisode]:
    """Merge a series of (time, alarm) results into episodes, in time order.

    Two alarms belong to one episode when no non-alarm result lies between them and, if `max_gap_s` is given,
    they are at most `max_gap_s` apart (pass e.g. 3 × the app's stride to split episodes across lost results).
    Results need not be sorted; equal times keep their given order.

    >>> [(e.start_s, e.end_s) for e in alarm_episodes([1, 2, 3, 4, 5, 6], [0, 1, 1, 0, 1, 1])]
    [(2.0, 3.0), (5.0, 6.0)]
    """
    times = as_times(t_s, "alarm_episodes")
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
