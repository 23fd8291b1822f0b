"""Threshold calibration on normal validation driving (`training.evaluate.calibrate_threshold`), on hand-made
scores whose false alarms are known."""
from __future__ import annotations

import numpy as np

from harness.wire.signals import LabelledEvent
from training.data import Trip
from training.evaluate import MAX_DELAY_S, ScoredTrip, _false_alarms, calibrate_threshold


def scored(scores: np.ndarray, events: list[LabelledEvent]) -> ScoredTrip:
    n = len(scores)
    trip = Trip("hand-made", np.zeros((n, 10), np.float32), np.zeros(n), np.zeros(n, np.int64),
                np.array([""] * n), events)
    return ScoredTrip(trip, np.arange(n, dtype=np.float64), np.asarray(scores, dtype=np.float64))


def test_the_threshold_keeps_false_alarms_within_the_rate():
    rng = np.random.default_rng(0)
    score = rng.uniform(0.0, 1.0, 36_000)  # 10 h of normal driving
    score[[5_000, 12_000, 20_000]] = [5.0, 4.0, 3.0]  # three isolated peaks
    st = scored(score, [])
    # 0.25 per hour over 10 h allows 2: the threshold sits just under the third-highest peak's neighbour
    threshold = calibrate_threshold([st], 0.25)
    assert 3.0 <= threshold < 4.0
    assert _false_alarms(st, st.score > threshold) == 2


def test_a_long_alarm_split_near_its_peak_does_not_lift_the_threshold():
    """After an event, a score that stays high for minutes and wobbles near its peak: a threshold near the peak
    cuts it into many short episodes past the event (each a false alarm), a lower one keeps it one episode that
    overlaps the event (not false). The search must not stop at the first threshold over the limit."""
    n = 7_200
    score = np.full(n, 0.5)
    event = LabelledEvent("drift", 1_000.0, 1_100.0, 0.7, "fuel_level")
    tail = np.arange(1_000, 1_600)
    late = tail >= 1_100 + MAX_DELAY_S + 20
    score[tail] = np.where(late, 10.0 + (tail % 7 == 0), 4.0)  # 4 from the onset, then 10 with 11 every 7 s
    st = scored(score, [event])
    assert _false_alarms(st, st.score > 10.5) > 10  # a threshold in the wobble: many short false episodes
    assert _false_alarms(st, st.score > 3.0) == 0  # one episode from the event's onset: not false
    threshold = calibrate_threshold([st], 0.5)
    assert threshold < 4.0, threshold
    assert _false_alarms(st, st.score > threshold) == 0


def test_an_event_counts_as_visible_once_the_reading_is_two_bus_steps_off_its_healthy_twin():
    from harness.wire.signals import LabelledEvent
    from training.heldout import signal_steps, visible_after

    steps = signal_steps()
    assert steps["vehicle_speed"] == 1.0 and steps["coolant_temp"] == 1.0
    assert abs(steps["fuel_level"] - 100 / 255) < 1e-9  # OBD-II's tank level: 0.39 % per step
    healthy = np.tile(np.array([50, 2000, 20, 0, 88, 60, 0, 37.5, 127.0, 100], dtype=np.float32), (100, 1))
    leak = LabelledEvent("fuel_leak", 20.0, 80.0, 0.3, None)
    faulty = healthy.copy()
    faulty[20:, 5] -= np.linspace(0.0, 0.7, 80)  # 0.7 % in a minute: under two steps (0.78 %)
    assert visible_after(faulty, healthy, leak, ("fuel_level",), steps) is None
    faulty[20:, 5] = healthy[20:, 5] - np.linspace(0.0, 1.6, 80)  # two steps after about 39 s
    assert visible_after(faulty, healthy, leak, ("fuel_level",), steps) == 39.0
    gap = LabelledEvent("dropout", 30.0, 40.0, 0.5, "engine_rpm")
    faulty = healthy.copy()
    faulty[31, 1] = np.nan
    assert visible_after(faulty, healthy, gap, ("engine_rpm",), steps) == 1.0


def test_an_overheating_counts_as_visible_once_the_coolant_leaves_the_healthy_engines_range():
    from harness.wire.signals import LabelledEvent
    from training.heldout import signal_steps, visible_after

    steps = signal_steps()
    healthy = np.tile(np.array([50, 2000, 20, 0, 88, 60, 0, 37.5, 127.0, 100], dtype=np.float32), (200, 1))
    healthy[150:160, 4] = 93.0  # the healthy engine under load, later in the drive
    hot = LabelledEvent("overheating", 20.0, 190.0, 0.5, None)
    faulty = healthy.copy()
    faulty[20:, 4] = 88.0 + np.linspace(0.0, 8.0, 180)  # 2 degC over the twin after 45 s, over 93 + 2 after 157 s
    assert visible_after(faulty, healthy, hot, ("coolant_temp",), steps) == 157.0
    stuck = LabelledEvent("stuck_value", 20.0, 190.0, 0.5, "coolant_temp")  # a sensor fault: against the twin
    assert visible_after(faulty, healthy, stuck, ("coolant_temp",), steps) == 45.0
