"""Tests for harness.judge.metrics on hand-made cases whose numbers are worked out in the comments, plus properties.

Conventions in the comments: an event is written type[start_s, end_s]; with max_delay_s = D its detection
window is [start_s, end_s + D]; an episode is written (start_s..end_s).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.stats import Percentiles, percentile, percentiles
from harness.judge.metrics import (
    MODEL_SOURCE,
    AlarmEpisode,
    FalseAlarmRate,
    FuelAccuracy,
    ScenarioMetrics,
    alarm_episodes,
    auprc,
    auroc,
    default_sources_for_type,
    detect_events,
    end_to_end_latency,
    episodes_from_events,
    evaluate_detection,
    false_alarm_rate,
    fuel_accuracy,
    judge,
    mean_absolute_error,
    normal_driving_s,
    observed_span_s,
    r_squared,
    recall_by_type,
    rule_source,
    scenario_metrics,
    score_labels,
    threshold_free_by_type,
)
from harness.wire.events import AnomalyResult, AppStatus, FuelResult, ModelRef, RuleEvent
from harness.wire.signals import LabelledEvent
from harness.world.scenario import Expectations

MODEL = ModelRef("anomaly", "3fa9c1d2e4b5")


def ev(anomaly_type: str, start_s: float, end_s: float) -> LabelledEvent:
    return LabelledEvent(anomaly_type, start_s, end_s, 0.7)


def ep(start_s: float, end_s: float, source: str = MODEL_SOURCE) -> AlarmEpisode:
    return AlarmEpisode(source, start_s, end_s, int(end_s - start_s) + 1)


def series(alarm_from_s: float, alarm_to_s: float, t_end_s: float = 600.0) -> tuple[np.ndarray, np.ndarray]:
    """Results every second from t=0 to t_end_s; alarm on within [alarm_from_s, alarm_to_s]."""
    t = np.arange(0.0, t_end_s + 1.0)
    return t, (t >= alarm_from_s) & (t <= alarm_to_s)


def detection(labels, episodes, max_delay_s=60.0, span=(0.0, 3600.0), sources=None):
    return evaluate_detection(episodes, labels, observed_span=span, max_delay_s=max_delay_s,
                              sources_for_type=sources)


# --- episodes ------------------------------------------------------------------------------------------------

def test_consecutive_alarms_merge_into_episodes():
    # t:     1 2 3 4 5 6 7 8 9 10
    # alarm: . A A A . A A . . A   → (2..4) 3 alarms, (6..7) 2 alarms, (10..10) 1 alarm
    episodes = alarm_episodes(range(1, 11), [0, 1, 1, 1, 0, 1, 1, 0, 0, 1])
    assert episodes == [AlarmEpisode("anomaly", 2.0, 4.0, 3), AlarmEpisode("anomaly", 6.0, 7.0, 2),
                        AlarmEpisode("anomaly", 10.0, 10.0, 1)]


def test_unsorted_results_are_sorted_first():
    assert alarm_episodes([3, 1, 2], [1, 0, 1]) == [AlarmEpisode("anomaly", 2.0, 3.0, 2)]


def test_a_gap_in_results_breaks_an_episode_only_with_max_gap():
    # Alarms at 1, 2, 3, then no results at all until 10, 11 (lines lost, or the app stalled).
    t, alarm = [1, 2, 3, 10, 11], [1, 1, 1, 1, 1]
    # Default: an absent result is no evidence the alarm stopped → one episode (1..11).
    assert alarm_episodes(t, alarm) == [AlarmEpisode("anomaly", 1.0, 11.0, 5)]
    # max_gap_s = 3 (e.g. 3 × a 1 s stride): 3 → 10 is a 7 s gap → (1..3) and (10..11).
    assert alarm_episodes(t, alarm, max_gap_s=3.0) == [AlarmEpisode("anomaly", 1.0, 3.0, 3),
                                                       AlarmEpisode("anomaly", 10.0, 11.0, 2)]


def test_rule_events_merge_within_the_rule_gap():
    # harsh_braking fires at 100, 125, 150 (every 25 s < 30 s gap) → one episode (100..150); again at 300.
    events = [RuleEvent(t, "harsh_braking", -4.5, -3.0) for t in (100.0, 125.0, 150.0, 300.0)]
    events += [AppStatus(200.0, 200, 140)]  # other kinds carry no alarms
    assert episodes_from_events(events) == [AlarmEpisode("event:harsh_braking", 100.0, 150.0, 3),
                                            AlarmEpisode("event:harsh_braking", 300.0, 300.0, 1)]


# --- recall and delay ------------------------------------------------------------------------------------------

def test_alarm_before_onset_does_not_count():
    # overheating[100, 160], D = 60 → window [100, 220]. The alarm is on from 95 to 130: the episode (95..130)
    # started 5 s before the onset, so it was not caused by the event → missed, recall 0.
    t, alarm = series(95, 130)
    report = detection([ev("overheating", 100, 160)], alarm_episodes(t, alarm))
    assert report.recall_by_type["overheating"].recall == 0.0
    assert report.delay == Percentiles(0, None, None, None)
    # It overlaps the event's window, so it is not a false alarm either.
    assert report.false_alarms.n_false_alarms == 0


def test_alarm_that_drops_and_restarts_after_onset_counts():
    # Same event; alarm on 95..97, off 98..104, on again from 105: the second episode (105..130) starts inside
    # the window → detected, delay 105 − 100 = 5 s. The first (95..97) ended before the window opened at 100:
    # it overlaps no window, so it is a false alarm.
    t = np.arange(0.0, 601.0)
    alarm = ((t >= 95) & (t <= 97)) | ((t >= 105) & (t <= 130))
    report = detection([ev("overheating", 100, 160)], alarm_episodes(t, alarm))
    assert report.recall_by_type["overheating"].recall == 1.0
    assert report.detections[0].detection_delay_s == 5.0
    assert report.false_alarm_episodes == (AlarmEpisode("anomaly", 95.0, 97.0, 3),)


def test_detection_window_is_closed_at_both_ends():
    # harsh_braking[100, 160], D = 60 → window [100, 220]: starts at exactly 100 and exactly 220 count, 220.5 not.
    labels = [ev("harsh_braking", 100, 160)]
    for start, detected in ((100.0, True), (220.0, True), (220.5, False), (99.5, False)):
        [d] = detect_events(labels, [ep(start, start + 5)], max_delay_s=60.0)
        assert d.detected is detected, start


def test_two_events_one_episode():
    # harsh_braking[100, 160] → window [100, 220]; over_revving[200, 260] → window [200, 320].
    labels = [ev("harsh_braking", 100, 160), ev("over_revving", 200, 260)]
    # Episode (150..250) starts at 150: inside the first window only → first detected (delay 50), second
    # missed (the episode was already on at its onset) → recall 1/2.
    report = detection(labels, [ep(150, 250)])
    assert [d.detected for d in report.detections] == [True, False]
    assert report.detections[0].detection_delay_s == 50.0
    assert report.overall.recall == 0.5
    # Episode (205..250) starts inside both windows → detects both: delays 105 and 5 s → p50 = 55.
    report = detection(labels, [ep(205, 250)])
    assert [d.detection_delay_s for d in report.detections] == [105.0, 5.0]
    assert report.overall.recall == 1.0 and report.delay.p50 == 55.0


def test_per_type_recall_ignores_a_rule_event_of_the_wrong_type():
    # overheating[100, 400], D = 60. A harsh_braking rule fires at 150: its source event:harsh_braking counts
    # for harsh_braking only → overheating missed (recall 0). It overlaps the window → no false alarm.
    labels = [ev("overheating", 100, 400)]
    events = [RuleEvent(150.0, "harsh_braking", -4.0, -3.0)]
    report = detection(labels, episodes_from_events(events))
    assert report.recall_by_type["overheating"].recall == 0.0
    assert report.false_alarms.n_false_alarms == 0
    # An overheating rule firing at 200 counts: detected, delay 200 − 100 = 100 s.
    report = detection(labels, episodes_from_events(events + [RuleEvent(200.0, "overheating", 121.0, 110.0)]))
    assert report.recall_by_type["overheating"].recall == 1.0
    assert report.detections[0].detection_delay_s == 100.0
    assert report.detections[0].episode.source == rule_source("overheating") == "event:overheating"


def test_model_alarms_count_only_for_the_types_the_model_covers():
    # The model covers overheating only: a model alarm inside a gps_jump window does not detect it (recall 0),
    # a gps_jump rule episode does; drift has neither a model nor a rule source left → undetectable.
    sources = default_sources_for_type(model_types=["overheating"])
    assert sources["overheating"] == ("anomaly", "event:overheating")
    assert sources["gps_jump"] == ("event:gps_jump",)
    assert sources["drift"] == ()
    labels = [ev("gps_jump", 100, 130)]
    assert detection(labels, [ep(110, 120)], sources=sources).overall.recall == 0.0
    assert detection(labels, [ep(110, 120, "event:gps_jump")], sources=sources).overall.recall == 1.0
    assert detection([ev("drift", 100, 130)], [ep(110, 120)], sources=sources).overall.recall == 0.0


def test_unknown_or_unmapped_types_fail_fast_with_the_choices():
    with pytest.raises(ValueError, match="unknown anomaly type 'overheat' in sources_for_type; expected one of: "
                                         "overheating, over_revving"):
        detect_events([], [], max_delay_s=60.0, sources_for_type={"overheat": ("anomaly",)})
    with pytest.raises(ValueError, match="no alarm sources mapped for anomaly type 'drift'"):
        detect_events([ev("drift", 1, 2)], [], max_delay_s=60.0, sources_for_type={"overheating": ("anomaly",)})


def test_delay_median_and_p90_with_known_values():
    # Five events, each detected with a known delay: 10, 20, 30, 40, 50 s.
    # p50 = 30 (the middle value). p90 with linear interpolation: rank (5 − 1) × 0.9 = 3.6 → 40 + 0.6 × 10 = 46.
    labels = [ev("harsh_braking", 1000.0 * i, 1000.0 * i + 60) for i in range(1, 6)]
    episodes = [ep(1000.0 * i + d, 1000.0 * i + d + 5) for i, d in zip(range(1, 6), (10, 20, 30, 40, 50), strict=False)]
    report = detection(labels, episodes, span=(0.0, 7200.0))
    assert (report.delay.n, report.delay.p50, report.delay.p90) == (5, 30.0, pytest.approx(46.0))
    assert percentiles([]) == Percentiles(0, None, None, None)


# --- false alarms ----------------------------------------------------------------------------------------------

def test_false_alarms_per_hour_with_known_normal_hours():
    # Observed span [0, 7200] s = 2 h. overheating[1000, 1540], D = 60 → window [1000, 1600], 600 s.
    # Normal driving = 7200 − 600 = 6600 s = 1.8333 h.
    # Episodes: (300..310), (2000..2005), (5000..5100) overlap no window → 3 false alarms;
    # (1590..1700) overlaps the window's tail → not a false alarm; (1100..1200) is a detection.
    # FA/h = 3 / 1.8333 = 1.6364.
    labels = [ev("overheating", 1000, 1540)]
    episodes = [ep(300, 310), ep(1100, 1200), ep(1590, 1700), ep(2000, 2005), ep(5000, 5100)]
    rate = false_alarm_rate(episodes, labels, start_s=0.0, end_s=7200.0, max_delay_s=60.0)
    assert rate.n_false_alarms == 3
    assert rate.normal_driving_h == pytest.approx(6600 / 3600)
    assert rate.per_h == pytest.approx(3 / (6600 / 3600))  # 1.6364


def test_overlapping_windows_are_not_subtracted_twice():
    # Windows [100, 220] and [200, 320] overlap: union [100, 320] = 220 s; span [0, 1000] → normal 780 s.
    labels = [ev("harsh_braking", 100, 160), ev("over_revving", 200, 260)]
    assert normal_driving_s(labels, start_s=0.0, end_s=1000.0, max_delay_s=60.0) == 780.0


def test_event_at_trip_end_has_its_window_clipped():
    # Span [0, 3600]. overheating[3000, 3600] ends with the trip; its window [3000, 3660] is clipped to
    # [3000, 3600] → normal driving 3000 s = 0.8333 h, not 3600 − 660 = 2940 s.
    # One false alarm (1000..1010) → 1 / 0.8333 = 1.2 /h. An alarm starting at 3599 still detects (delay 599).
    labels = [ev("overheating", 3000, 3600)]
    report = detection(labels, [ep(1000, 1010), ep(3599, 3600)], span=(0.0, 3600.0))
    assert report.false_alarms.normal_driving_h == pytest.approx(3000 / 3600)
    assert report.false_alarms.per_h == pytest.approx(1.2)
    assert report.detections[0].detection_delay_s == 599.0


def test_no_events_at_all():
    # Span [0, 1800] = 0.5 h of normal driving; two alarm episodes → both false → 4 /h. Nothing to recall.
    report = detection([], [ep(100, 110), ep(900, 950)], span=(0.0, 1800.0))
    assert report.recall_by_type == {}
    assert report.overall.recall is None
    assert report.false_alarms.per_h == pytest.approx(4.0)
    assert report.delay.n == 0


def test_no_alarms_at_all():
    # overheating[100, 400]: nothing fired → recall 0, no delay; 0 false alarms in (3600 − 360) s → 0 /h.
    report = detection([ev("overheating", 100, 400)], [])
    assert report.recall_by_type["overheating"].recall == 0.0
    assert report.delay == Percentiles(0, None, None, None)
    assert report.false_alarms.n_false_alarms == 0 and report.false_alarms.per_h == 0.0


def test_no_results_at_all_means_false_alarms_are_not_measured():
    report = detection([ev("overheating", 100, 400)], [], span=None)
    assert report.false_alarms.per_h is None
    assert observed_span_s([]) is None
    # status heartbeats extend nothing: the span is that of the results (here one rule event)
    assert observed_span_s([AppStatus(None, 0, 0), AppStatus(30.0, 30, 0), RuleEvent(12.0, "low_fuel", 5, 10)]) \
        == (12.0, 12.0)
    assert observed_span_s([AppStatus(10.0, 10, 0), AppStatus(600.0, 600, 0)]) is None


def test_unjudged_rule_sources_raise_no_false_alarms():
    # low_fuel is no anomaly type: its rule events are not judged for false alarms by default.
    episodes = episodes_from_events([RuleEvent(500.0, "low_fuel", 8.0, 10.0)])
    assert detection([], episodes).false_alarms.n_false_alarms == 0


# --- threshold-free --------------------------------------------------------------------------------------------

def brute_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=False) if y]
    neg = [s for s, y in zip(scores, labels, strict=False) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def brute_auprc(scores, labels):
    n_pos, ap, last_recall = sum(labels), 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        predicted = [s >= threshold for s in scores]
        tp = sum(p and y for p, y in zip(predicted, labels, strict=False))
        precision, recall = tp / sum(predicted), tp / n_pos
        ap += (recall - last_recall) * precision
        last_recall = recall
    return ap


def test_auroc_and_auprc_by_hand_with_ties():
    # scores 0.2 0.5 0.5 0.9, labels 0 0 1 1. Pairs (pos, neg): (0.5, 0.2) 1, (0.5, 0.5) ½, (0.9, 0.2) 1,
    # (0.9, 0.5) 1 → AUROC 3.5 / 4 = 0.875.
    # AP: threshold 0.9 → P 1/1, R 1/2; threshold 0.5 (both tied 0.5s at once) → P 2/3, R 2/2.
    # AP = ½·1 + ½·⅔ = 0.8333.
    scores, labels = [0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]
    assert auroc(scores, labels) == 0.875
    assert auprc(scores, labels) == pytest.approx(5 / 6)


def test_constant_scores_give_chance_level():
    # Every pair ties → AUROC ½. AP of one threshold holding everything = share of positives = 2/5.
    labels = [0, 1, 0, 1, 0]
    assert auroc([0.3] * 5, labels) == 0.5
    assert auprc([0.3] * 5, labels) == pytest.approx(0.4)


def test_threshold_free_is_undefined_without_both_classes():
    assert auroc([1, 2], [1, 1]) is None and auroc([1, 2], [0, 0]) is None
    assert auprc([1, 2], [0, 0]) is None and auprc([1, 2], [1, 1]) == 1.0
    with pytest.raises(ValueError, match="finite"):
        auroc([float("nan"), 1.0], [0, 1])


def test_score_labels_per_type():
    # Results at t = 0, 10, ..., 90. overheating[20, 40) and gps_jump[60, 70).
    # For overheating: positives t = 20, 30; negatives: t in no event = 0, 10, 40, 50, 70, 80, 90;
    # t = 60 (in the gps_jump event) is left out.
    t = np.arange(0.0, 100.0, 10.0)
    labels = [ev("overheating", 20, 40), ev("gps_jump", 60, 70)]
    included, positive = score_labels(t, labels, "overheating")
    assert t[included & positive].tolist() == [20.0, 30.0]
    assert t[included & ~positive].tolist() == [0.0, 10.0, 40.0, 50.0, 70.0, 80.0, 90.0]
    # exclude_after_s = 15 also keeps [40, 55) after overheating (t = 40, 50) and [70, 85) after gps_jump
    # (t = 70, 80) out of the negatives → 0, 10, 90 remain.
    included, positive = score_labels(t, labels, "overheating", exclude_after_s=15.0)
    assert t[included & ~positive].tolist() == [0.0, 10.0, 90.0]
    # A score of 1 exactly inside overheating, 0 elsewhere: AUROC 1 for overheating. For gps_jump the positive
    # (t = 60) and all its negatives score 0 (the overheating results are left out) → every pair ties → ½.
    scores = np.where((t >= 20) & (t < 40), 1.0, 0.0)
    result = threshold_free_by_type(t, scores, labels)
    assert list(result) == ["overheating", "gps_jump"]
    assert result["overheating"].auroc == 1.0 and result["overheating"].auprc == 1.0
    assert (result["overheating"].n_positive, result["overheating"].n_negative) == (2, 7)
    assert result["gps_jump"].auroc == 0.5  # its positive (t = 60) ties with every negative at 0


@settings(max_examples=150)
@given(data=st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auroc_and_auprc_match_brute_force_with_ties(data):
    scores = [float(s) for s, _ in data]
    labels = [y for _, y in data]
    if any(labels) and not all(labels):
        assert auroc(scores, labels) == pytest.approx(brute_auroc(scores, labels))
    if any(labels):
        assert auprc(scores, labels) == pytest.approx(brute_auprc(scores, labels))


@given(data=st.lists(st.tuples(st.floats(-1e6, 1e6), st.booleans()), min_size=2, max_size=40,
                     unique_by=lambda x: x[0]))
def test_auroc_of_negated_scores_is_one_minus(data):
    scores = np.array([s for s, _ in data])
    labels = [y for _, y in data]
    if any(labels) and not all(labels):
        assert auroc(-scores, labels) == pytest.approx(1.0 - auroc(scores, labels))


# --- fuel and latency ------------------------------------------------------------------------------------------

def test_r_squared_and_mae():
    true = [2.0, 4.0, 6.0, 8.0]
    assert r_squared(true, true) == 1.0                      # perfect prediction
    assert r_squared([5.0] * 4, true) == 0.0                 # predicting the mean (5) explains nothing
    assert r_squared([8.0, 6.0, 4.0, 2.0], true) == -3.0     # SS_res 36+4+4+36 = 80, SS_tot 9+1+1+9 = 20
    assert mean_absolute_error([3.0, 4.0, 5.0, 9.0], true) == 0.75  # (1 + 0 + 1 + 1) / 4
    assert r_squared([1.0, 2.0], [3.0, 3.0]) is None         # constant truth: undefined
    assert fuel_accuracy([], []) == FuelAccuracy(0, None, None)


def test_latency_percentiles():
    # 1..100 ms. p50 = 50.5 (between 50 and 51). p99: rank 99 × 0.99 = 98.01 → 99 + 0.01 × 1 = 99.01.
    stats = percentiles(range(1, 101))
    assert (stats.n, stats.p50, stats.p99) == (100, 50.5, pytest.approx(99.01))
    assert percentiles([]) == Percentiles(0, None, None, None)
    assert percentile([7.0], 99) == 7.0


def test_end_to_end_pairs_each_event_with_the_sample_it_names():
    # Samples 59, 60, 61 s went on the bus at wall 100.0, 101.0, 102.0 s. Events for t = 60 and 61 arrive
    # at 101.05 and 102.2 → 50 ms and 200 ms; an event for t = 75 names no sent sample → unmatched.
    result = end_to_end_latency([59.0, 60.0, 61.0], [100.0, 101.0, 102.0], [60.0, 61.0, 75.0],
                                [101.05, 102.2, 120.0])
    assert result.latencies_ms == pytest.approx((50.0, 200.0))
    assert result.n_unmatched == 1
    assert end_to_end_latency([], [], [1.0], [2.0]).n_unmatched == 1


# --- the verdict -----------------------------------------------------------------------------------------------

def metrics_of(report, fuel=None, latency=None) -> ScenarioMetrics:
    return ScenarioMetrics(report, fuel, latency)


def test_judge_per_type_recall_message():
    # Two overheating events, one detected → 0.50; harsh_braking detected → 1.00.
    labels = [ev("overheating", 100, 200), ev("overheating", 1000, 1100), ev("harsh_braking", 2000, 2060)]
    report = detection(labels, [ep(150, 160), ep(2010, 2020)])
    verdict = judge(Expectations(recall_min={"overheating": 1.0, "harsh_braking": 1.0}), metrics_of(report))
    assert not verdict.passed
    assert [c.name for c in verdict.failures] == ["recall (overheating)"]
    assert verdict.message.startswith("recall (overheating) 0.50 < required 1.00")
    assert "missed: overheating at 1000 s" in verdict.message
    assert "PASS  recall (harsh_braking) 1.00 >= required 1.00" in verdict.summary()


def test_judge_reports_every_failing_criterion_and_unmeasured_ones_fail():
    report = detection([ev("overheating", 100, 200)], [ep(10, 20), ep(150, 160)], span=(0.0, 1800.0))
    # One false alarm (10..20) in 1800 − 160 = 1640 s → 2.195 /h. Delay 50 s. No fuel results.
    expect = Expectations(recall_min=1.0, false_alarms_per_h_max=2.0, detection_delay_s_p90_max=40.0,
                          fuel_r2_min=0.8, latency_ms_p99_max=50.0)
    verdict = judge(expect, metrics_of(report, latency=Percentiles(10, 12.0, 50.0, 61.5)))
    lines = verdict.message.splitlines()
    assert lines == [
        "false_alarms_per_h 2.20 > required 2.00 (1 in 0.46 h)",
        "detection_delay_s_p90 50.00 > required 40.00 (n=1)",
        "fuel_r2 not measured (no fuel results or no ground truth); required >= 0.80",
        "latency_ms_p99 (app-reported inference) 61.50 > required 50.00 (n=10)",
    ]
    assert [c.status for c in verdict.criteria] == ["pass", "fail", "fail", "not measured", "fail"]


def test_judge_recall_in_a_scenario_without_events_does_not_apply():
    report = detection([], [], span=(0.0, 1800.0))
    verdict = judge(Expectations(recall_min=1.0, false_alarms_per_h_max=2.0), metrics_of(report))
    assert verdict.passed
    [recall, fa] = verdict.criteria
    assert recall.status == "not applicable"
    assert recall.describe() == "recall (all types) not applicable (the scenario injects no events); required >= 1.00"
    assert fa.measured == 0.0


def test_judge_a_listed_type_without_events_is_not_measured_and_fails():
    report = detection([ev("harsh_braking", 100, 160)], [ep(110, 120)])
    verdict = judge(Expectations(recall_min={"harsh_braking": 1.0, "overheating": 1.0}), metrics_of(report))
    assert verdict.message == ("recall (overheating) not measured (no overheating events in the scenario); "
                               "required >= 1.00")


def test_judge_delay_without_any_detection_is_not_measured():
    report = detection([ev("harsh_braking", 100, 160)], [])
    verdict = judge(Expectations(detection_delay_s_p50_max=30.0), metrics_of(report))
    assert verdict.message == "detection_delay_s_p50 not measured (no event was detected); required <= 30.00"


def test_judge_shows_enough_digits_to_tell_a_failure_apart():
    report = detection([], [], span=(0.0, 3600.0))
    verdict = judge(Expectations(fuel_r2_min=0.85), metrics_of(report, fuel=FuelAccuracy(100, 0.8496, 0.4)))
    # At 2 and at 3 decimals both read 0.85 / 0.850, which would hide why it failed → 4 decimals.
    assert verdict.message == "fuel_r2 0.8496 < required 0.8500 (n=100)"


def test_judge_all_pass():
    report = detection([ev("harsh_braking", 100, 160)], [ep(110, 120)])
    verdict = judge(Expectations(recall_min=1.0, fuel_r2_min=0.8, fuel_mae_lph_max=1.0),
                    metrics_of(report, fuel=FuelAccuracy(50, 0.93, 0.4)))
    assert verdict.passed and verdict.message == "all 3 criteria passed"


# --- from collected events to a verdict --------------------------------------------------------------------------

def test_scenario_metrics_from_events():
    # 1 Hz results from t = 60 to 600. Anomaly alarms 305..340 (overheating[300, 400] → delay 5 s) and a
    # false alarm 500..502. Span [60, 600] minus window [300, 460] → 380 s normal → 1 / (380/3600) = 9.47 /h.
    # Fuel predicted = truth + 0.5 everywhere → MAE 0.5. Inference times 2 and 4 ms alternate → p50 3 ms.
    labels = [ev("overheating", 300, 400)]
    events = []
    for i, t in enumerate(np.arange(60.0, 601.0)):
        alarm = bool(305 <= t <= 340 or 500 <= t <= 502)
        events.append(AnomalyResult(float(t), 2.0 if i % 2 else 4.0, MODEL, 1.0 if alarm else 0.1, 0.5, alarm))
        events.append(FuelResult(float(t), 3.0, ModelRef("fuel", "a71c09be"), 5.5 + t / 100))
    metrics = scenario_metrics(events, labels, max_delay_s=60.0, fuel_true_lph=lambda t: 5.0 + t / 100)
    d = metrics.detection
    assert d.detections[0].detection_delay_s == 5.0
    assert d.false_alarms == FalseAlarmRate(1, 380 / 3600)
    assert metrics.fuel.mae_lph == pytest.approx(0.5) and metrics.fuel.r2 < 1.0
    assert metrics.latency.p50 == 3.0 and metrics.latency.n == 2 * 541
    assert metrics.threshold_free["overheating"].n_positive == 100
    verdict = judge(Expectations(recall_min=1.0, false_alarms_per_h_max=2.0), metrics)
    assert verdict.message == "false_alarms_per_h 9.47 > required 2.00 (1 in 0.11 h)"
    # Without fuel truth, fuel is not measured.
    assert scenario_metrics(events, labels, max_delay_s=60.0).fuel is None


def test_doctests():
    import doctest
    import importlib
    import pkgutil

    import harness.judge.metrics
    for module in pkgutil.iter_modules(harness.judge.metrics.__path__, "harness.judge.metrics."):
        assert doctest.testmod(importlib.import_module(module.name)).failed == 0


# --- properties ----------------------------------------------------------------------------------------------

anomaly_types = st.sampled_from(["overheating", "harsh_braking", "gps_jump"])


@st.composite
def scenarios(draw):
    """Non-overlapping events on a 0..2000 s trip, 1 Hz alarm flags, and a few rule episodes."""
    labels, cursor = [], 0.0
    for _ in range(draw(st.integers(0, 4))):
        start = cursor + draw(st.integers(10, 300))
        end = start + draw(st.integers(1, 200))
        if end > 2000:
            break
        labels.append(ev(draw(anomaly_types), float(start), float(end)))
        cursor = end
    t = np.arange(0.0, 2001.0, 10.0)
    # Drawing one big integer as a bit mask is much faster than a list of 201 booleans.
    bits = draw(st.integers(0, 2 ** len(t) - 1))
    alarm = np.array([(bits >> i) & 1 == 1 for i in range(len(t))])
    return labels, t, alarm


def recall_of(labels, episodes):
    return detection(labels, episodes, span=(0.0, 2000.0)).overall.recall


@settings(max_examples=100, deadline=None)
@given(case=scenarios(), max_delay_s=st.floats(0.0, 300.0))
def test_recall_is_a_fraction(case, max_delay_s):
    labels, t, alarm = case
    report = detection(labels, alarm_episodes(t, alarm), max_delay_s=max_delay_s, span=(0.0, 2000.0))
    for r in list(report.recall_by_type.values()) + [report.overall]:
        assert r.recall is None or 0.0 <= r.recall <= 1.0
    assert 0.0 <= report.false_alarms.normal_driving_h <= 2000 / 3600
    assert report.false_alarms.n_false_alarms <= len(alarm_episodes(t, alarm))


@settings(max_examples=100, deadline=None)
@given(case=scenarios(), extra=st.tuples(st.floats(0.0, 2000.0), st.floats(0.0, 100.0)),
       source=st.sampled_from([MODEL_SOURCE, "event:overheating", "event:gps_jump"]))
def test_adding_an_alarm_episode_never_decreases_recall(case, extra, source):
    labels, t, alarm = case
    episodes = alarm_episodes(t, alarm)
    added = episodes + [AlarmEpisode(source, extra[0], extra[0] + extra[1], 1)]
    before, after = recall_of(labels, episodes), recall_of(labels, added)
    assert before is None or after >= before
    for anomaly_type, r in recall_by_type(detect_events(labels, added, max_delay_s=60.0)).items():
        assert r.recall >= recall_by_type(detect_events(labels, episodes, max_delay_s=60.0))[anomaly_type].recall


@settings(max_examples=100, deadline=None)
@given(case=scenarios(), index=st.integers(0, 200))
def test_adding_an_isolated_alarm_result_never_decreases_recall(case, index):
    # Turning a result into an alarm while both neighbours are non-alarms adds a new one-result episode and
    # leaves every other episode as it was.
    labels, t, alarm = case
    if alarm[index] or (index > 0 and alarm[index - 1]) or (index + 1 < len(alarm) and alarm[index + 1]):
        return
    flipped = alarm.copy()
    flipped[index] = True
    before, after = recall_of(labels, alarm_episodes(t, alarm)), recall_of(labels, alarm_episodes(t, flipped))
    assert before is None or after >= before


def test_an_alarm_joining_an_episode_begun_before_onset_lowers_recall():
    # Documented consequence of "an episode must START in the window": overheating[100, 160]; alarms at
    # 90 and 110 with a non-alarm at 100 between them → (110..110) starts in the window → detected. Turning
    # the result at 100 into an alarm joins them into (90..110), which began before the onset → missed.
    labels = [ev("overheating", 100, 160)]
    t = [80.0, 90.0, 100.0, 110.0, 120.0]
    assert recall_of(labels, alarm_episodes(t, [0, 1, 0, 1, 0])) == 1.0
    assert recall_of(labels, alarm_episodes(t, [0, 1, 1, 1, 0])) == 0.0


def test_empty_inputs_and_mismatched_lengths():
    assert alarm_episodes([], []) == []
    with pytest.raises(ValueError, match="3 times but 2 alarm flags"):
        alarm_episodes([1, 2, 3], [True, False])
    with pytest.raises(ValueError, match="finite"):
        alarm_episodes([math.inf], [True])


# --- the criteria judged on every run (harness.judge.metrics.evidence) ------------------------------------------

def _results(times, label: int = 0) -> list:
    from harness.wire.events import BehaviourResult

    fuel, anomaly, behaviour = (ModelRef(n, "ab", "1") for n in ("fuel", "anomaly", "behaviour"))
    out = []
    for t in times:
        out += [FuelResult(float(t), 0.1, fuel, 3.0), AnomalyResult(float(t), 0.1, anomaly, 0.5, 2.0, False),
                BehaviourResult(float(t), 0.1, behaviour, label, ("normal", "eco", "aggressive")[label],
                                (0.8, 0.1, 0.1))]
    return out


def test_coverage_counts_model_results_not_heartbeats_and_leaves_out_fault_windows():
    from harness.judge.metrics.evidence import coverage_criterion

    heartbeats = [AppStatus(float(t), t, t) for t in range(59, 600)]
    stopped = coverage_criterion(_results(range(59, 300)) + heartbeats, 59, 600, 0.99)
    assert not stopped.passed and "no fuel result after t=299 s" in stopped.note
    gap = coverage_criterion(_results([t for t in range(59, 600) if not 200 <= t < 260]), 59, 600, 0.99)
    assert not gap.passed and "missing for 60 s" in gap.note
    assert coverage_criterion(_results([t for t in range(59, 600) if not 200 <= t < 260]), 59, 600, 0.99,
                              [(195.0, 265.0)]).passed


def test_timing_finds_results_late_or_stamped_in_the_future():
    from harness.judge.metrics.evidence import timing_criterion

    events = _results(range(59, 70))
    on_time = timing_criterion(events, [e.t_s + 0.2 for e in events], 1.5)
    assert on_time.passed and on_time.measured == pytest.approx(0.2)
    late = timing_criterion(events, [e.t_s + 3.0 for e in events], 1.5)
    assert not late.passed and "3.00 s after the sample time" in late.note
    future = timing_criterion(events, [e.t_s - 2.0 for e in events], 1.5)
    assert not future.passed and "a time in the future" in future.note


def test_behaviour_accuracy_judges_stable_windows_outside_anomalies():
    from harness.judge.metrics.evidence import behaviour_criterion

    style = np.zeros(400, dtype=np.int64)
    style[200:] = 2  # aggressive from 200 s
    events = _results(range(59, 400), label=0)  # the app always says normal
    got = behaviour_criterion(events, style, [ev("harsh_braking", 100, 140)], 0.85)
    # a window's style is its last second's; judged when >= 80 % of its seconds (48 of 60) carry it and it
    # overlaps no anomaly (those ending 100..199 do): ends 59..99 (normal: right), 247..399 (aggressive: wrong)
    assert got.measured == pytest.approx(41 / (41 + 153)) and not got.passed
    assert "aggressive reported as normal (153)" in got.note
    assert behaviour_criterion(events, None, [], 0.85).status == "not applicable"


def _said(times_labels) -> list:
    """Behaviour results: (t_s, class index) each."""
    from harness.wire.events import BehaviourResult

    ref = ModelRef("behaviour", "ab", "1")
    return [BehaviourResult(float(t), 0.1, ref, label, str(label), (0.8, 0.1, 0.1)) for t, label in times_labels]


def test_behaviour_confusion_and_macro_f1_over_the_classes_in_labels_or_predictions():
    from harness.judge.metrics.behaviour import behaviour_score

    style = np.zeros(400, dtype=np.int64)
    style[200:] = 2  # aggressive from 200 s
    # The app says normal until 299 s, then eco for 300..349 and an invalid class 7 for 350..399.
    events = _said([(t, 0) for t in range(59, 300)] + [(t, 1) for t in range(300, 350)]
                   + [(t, 7) for t in range(350, 400)])
    score = behaviour_score(events, style, [])
    # judged windows: ends 59..199 (normal), 247..399 (aggressive); 200..246 end in aggressive seconds but have
    # fewer than 80 % of them
    assert score.confusion == ((141, 0, 0, 0), (0, 0, 0, 0), (53, 50, 0, 50))
    assert score.n == 294 and score.accuracy == pytest.approx(141 / 294)
    # normal F1 2*141/(141+194); eco F1 0 (reported, never driven); aggressive 0 (driven, never reported)
    f1 = score.f1_by_class
    assert f1 == pytest.approx({"normal": 282 / 335, "eco": 0.0, "aggressive": 0.0})
    assert score.macro_f1 == pytest.approx(282 / 335 / 3)
    assert score.most_confused() == ("aggressive", "normal", 53)
    assert score.to_json()["confusion"][2] == [53, 50, 0, 50]
    # a style neither driven nor reported does not count: all normal, all right is macro-F1 1
    assert behaviour_score(_said([(t, 0) for t in range(59, 200)]), np.zeros(200, dtype=np.int64), []).macro_f1 == 1.0


def test_a_planted_behaviour_confusion_fails_the_expected_macro_f1_and_no_labels_is_not_applicable():
    from harness.judge.metrics.behaviour import behaviour_score

    style = np.repeat(np.array([1, 0, 2], dtype=np.int64), 200)  # eco, normal, aggressive: 200 s each
    pure = [t for t in range(59, 600) if style[t - 59:t + 1].max() == style[t - 59:t + 1].min()]
    right = _said([(t, int(style[t])) for t in pure])
    planted = _said([(t, 0 if style[t] == 1 else int(style[t])) for t in pure])  # eco reported as normal
    expect = Expectations(behaviour_macro_f1_min=0.9)
    report = detection([], [])
    good = judge(expect, ScenarioMetrics(report, behaviour=behaviour_score(right, style, [])))
    assert good.passed and good.criteria[0].measured == 1.0
    bad = judge(expect, ScenarioMetrics(report, behaviour=behaviour_score(planted, style, [])))
    (c,) = bad.criteria
    assert not bad.passed and c.name == "behaviour_macro_f1" and c.measured == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert "most often eco reported as normal" in c.note
    # no behaviour labels (a replayed recording): not applicable, which passes, and never a 0
    replay = judge(expect, ScenarioMetrics(report, behaviour_not_judged="a recording is replayed"))
    assert replay.passed and replay.criteria[0].status == "not applicable" and replay.criteria[0].measured is None
    assert replay.criteria[0].note == "a recording is replayed"


def test_model_identity_names_another_hash_and_another_threshold():
    from harness.judge.metrics.evidence import model_identity_criterion

    events = _results(range(59, 62))
    ok = model_identity_criterion(events, {"fuel": "ab12", "anomaly": "ab34", "behaviour": "ab56"}, "1", 2.0)
    assert ok.passed
    wrong = model_identity_criterion(events, {"fuel": "cd12", "anomaly": "ab34", "behaviour": "ab56"}, "1", 2.5)
    assert not wrong.passed and "stale or different model file" in wrong.note and "wrong or stale threshold" in \
        wrong.note
