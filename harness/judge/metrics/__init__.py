"""Metrics: what the unit detected against the injected ground truth, and the verdict on a scenario's `expect:`.

Pure functions on plain sequences and the contracts' dataclasses (`LabelledEvent` from the plant, events from
`harness.wire.events`), implementing DESIGN.md's "Metrics (honest definitions)". Times are scenario seconds.
One module per concept, each stating its definitions:

- `harness.judge.metrics.episodes` — alarm sources and alarm episodes;
- `harness.judge.metrics.detection` — detection windows, recall, detection delay, false alarms per hour;
- `harness.judge.metrics.threshold_free` — AUROC and AUPRC of the anomaly score per anomaly type;
- `harness.judge.metrics.fuel` — fuel-rate R² and MAE;
- `harness.judge.metrics.behaviour` — the behaviour class against the style driven: confusion matrix, macro-F1;
- `harness.judge.metrics.latency` — app-reported inference time and end-to-end latency;
- `harness.judge.metrics.scenario` — every metric of one run (`scenario_metrics`);
- `harness.judge.metrics.expect` — the `expect:` criteria, `judge` and its `Judgement`;
- `harness.judge.metrics.series` — the input checks they share.

This ``__init__`` deliberately presents the package's public API: import the names below from
``harness.judge.metrics``; the submodules are where each one is defined and documented.

What the metrics do not do: collect or parse events (`harness.wire.events`), pair a fuel result with its ground
truth (the rig holds the trace and decides what the truth of a window is; it passes a function), choose or
tune thresholds (thresholds come from normal validation data, never from test labels), or report
point-adjusted F1 (never alone; not at all here).
"""
from __future__ import annotations

from harness.judge.metrics.detection import (
    DetectionReport,
    EventDetection,
    FalseAlarmRate,
    TypeRecall,
    detect_events,
    evaluate_detection,
    false_alarm_episodes,
    false_alarm_rate,
    normal_driving_s,
    observed_span_s,
    recall_by_type,
)
from harness.judge.metrics.episodes import (
    MODEL_SOURCE,
    RULE_EPISODE_GAP_S,
    AlarmEpisode,
    alarm_episodes,
    default_sources_for_type,
    episodes_from_events,
    rule_source,
)
from harness.judge.metrics.expect import Criterion, Judgement, judge, stale_data_criterion
from harness.judge.metrics.fuel import FuelAccuracy, fuel_accuracy, mean_absolute_error, r_squared
from harness.judge.metrics.latency import EndToEndLatency, end_to_end_latency, inference_times_ms
from harness.judge.metrics.scenario import ScenarioMetrics, scenario_metrics
from harness.judge.metrics.threshold_free import ThresholdFree, auprc, auroc, score_labels, threshold_free_by_type

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
