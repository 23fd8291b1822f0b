"""Every metric of one run, from its collected events and ground-truth labels: what `judge` reads."""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.core.stats import Percentiles, percentiles
from harness.judge.metrics.behaviour import NO_STYLE, BehaviourScore, behaviour_score
from harness.judge.metrics.detection import DetectionReport, evaluate_detection, observed_span_s
from harness.judge.metrics.episodes import RULE_EPISODE_GAP_S, episodes_from_events
from harness.judge.metrics.fuel import FuelAccuracy, fuel_accuracy
from harness.judge.metrics.latency import inference_times_ms
from harness.judge.metrics.threshold_free import ThresholdFree, threshold_free_by_type
from harness.wire.events import AnomalyResult, Event, FuelResult
from harness.wire.signals import LabelledEvent

__all__ = ["ScenarioMetrics", "scenario_metrics"]


@dataclass(frozen=True)
class ScenarioMetrics:
    """What a run measured, as `judge` reads it. `latency` is what the latency criteria judge."""

    detection: DetectionReport
    fuel: FuelAccuracy | None = None
    latency: Percentiles | None = None  # ms
    latency_label: str = "app-reported inference"
    threshold_free: Mapping[str, ThresholdFree] = field(default_factory=dict)
    end_to_end: Percentiles | None = None  # ms
    behaviour: BehaviourScore | None = None  # None: the run has no behaviour labels, `behaviour_not_judged` says why
    behaviour_not_judged: str = NO_STYLE


def scenario_metrics(events: Sequence[Event], labels: Sequence[LabelledEvent], *, max_delay_s: float,
                     sources_for_type: Mapping[str, Collection[str]] | None = None,
                     max_gap_s: float | None = None, rule_gap_s: float = RULE_EPISODE_GAP_S,
                     fuel_true_lph: Callable[[float], float] | None = None,
                     end_to_end: Percentiles | None = None, exclude_after_s: float = 0.0,
                     style_by_second: np.ndarray | None = None, behaviour_not_judged: str = NO_STYLE
                     ) -> ScenarioMetrics:
    """Every metric of one run from its collected events and ground-truth labels.

    `fuel_true_lph(t_s)` gives the true fuel rate a fuel result at `t_s` should be compared with (the rig
    decides: e.g. the mean over the window); without it, or without fuel results, fuel is not measured.
    Latency criteria judge the app-reported inference time of all model results pooled. `style_by_second` holds
    the run's behaviour labels (`harness.judge.metrics.behaviour.behaviour_labels`); None: `behaviour_not_judged`
    says why there are none.
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
    return ScenarioMetrics(detection, fuel, percentiles(infer) if infer else None,
                           threshold_free=threshold_free, end_to_end=end_to_end,
                           behaviour=behaviour_score(events, style_by_second, labels),
                           behaviour_not_judged="" if style_by_second is not None else behaviour_not_judged)
