"""The app simulator's pure parts: sample assembly, windowing, and the rule-based event detector."""
import math

import numpy as np

from firmware_sim.phone.app import SampleAssembler, WindowBuffer
from firmware_sim.phone.rules import RuleDetector, RuleLimits
from firmware_sim.stm32 import obd_request_data
from harness.wire.link import CanFrame, SampleRecord
from harness.wire.signals import SIGNALS

NAN = float("nan")


def sample(**values):
    return [values.get(name, NAN) for name in SIGNALS]


def test_window_every_stride_once_60_seconds_are_covered_and_gaps_are_nan():
    buffer = WindowBuffer(60, stride_s=2)
    windows = {}
    for t in range(1, 130):
        if t == 100:
            continue  # a second the link lost
        window = buffer.add(float(t), np.full(len(SIGNALS), float(t)))
        if window is not None:
            windows[t] = window
    assert min(windows) == 60 and all((t - 60) % 2 == 0 for t in windows)
    w = windows[120]
    assert w.shape == (60, 10) and w[0, 0] == 61.0 and w[-1, 0] == 120.0
    assert np.isnan(w[100 - 61]).all() and not np.isnan(np.delete(w, 100 - 61, axis=0)).any()


def test_context_holds_the_last_seconds_with_nan_before_the_first_sample():
    buffer = WindowBuffer(60, stride_s=1, context_s=300)
    out = {}
    for t in range(10, 400):
        context = buffer.add(float(t), np.full(len(SIGNALS), float(t)))
        if context is not None:
            out[t] = context
    assert min(out) == 69  # 60 seconds covered
    first = out[69]
    assert first.shape == (300, 10) and np.isnan(first[:240]).all() and first[240, 0] == 10.0
    assert first[-1, 0] == 69.0
    late = out[399]
    assert not np.isnan(late).any() and late[0, 0] == 100.0 and late[-1, 0] == 399.0


def test_context_equals_the_rows_by_second_across_gaps_and_wrap_arounds():
    # The ring is read as two slices; the context must be exactly each second's row (NaN without one), oldest first.
    rng = np.random.default_rng(4)
    for stride, context_s in ((1, 300), (4, 97)):
        buffer, rows, t = WindowBuffer(60, stride_s=stride, context_s=context_s), {}, 5
        for k in range(1500):
            t += int(rng.choice([1, 1, 1, 2, 5, 120, 700])) if k % 7 == 0 else 1
            row = rng.normal(0.0, 50.0, len(SIGNALS)).astype(np.float32)
            rows[t] = row
            context = buffer.add(float(t), row)
            if context is None:
                continue
            expected = np.array([rows.get(second, np.full(len(SIGNALS), np.nan, np.float32))
                                 for second in range(t - context_s + 1, t + 1)], dtype=np.float32)
            assert context.tobytes() == expected.tobytes() and context.dtype == np.float32, (stride, t)


def test_dtg_link_v2_samples_pass_through_with_their_time():
    values = tuple(float(i) for i in range(10))[:9] + (None,)
    out = SampleAssembler("dtg-link-v2").feed(SampleRecord(42_000, values))
    assert out[0][0] == 42.0 and out[0][1][:9].tolist() == list(range(9)) and math.isnan(out[0][1][9])


def test_raw_can_v1_samples_are_rebuilt_per_poll_cycle():
    assembler = SampleAssembler("raw-can-v1")
    speed_87 = CanFrame(0x7E8, bytes([0x03, 0x41, 0x0D, 87, 0xAA, 0xAA, 0xAA, 0xAA]))
    rpm_1726 = CanFrame(0x7E8, bytes([0x04, 0x41, 0x0C, 0x1A, 0xF8, 0xAA, 0xAA, 0xAA]))
    out = []
    for frame in (CanFrame(0x7DF, obd_request_data(0x0D)), speed_87, CanFrame(0x7DF, obd_request_data(0x0C)),
                  rpm_1726, CanFrame(0x7DF, obd_request_data(0x0D))):  # the next cycle closes the first
        out += assembler.feed(frame)
    assert len(out) == 1
    t_s, row = out[0]
    assert t_s == 0.0 and row[0] == 87.0 and row[1] == 1726.0
    assert np.isnan(row[SIGNALS.index("brake_pressure")])  # not on OBD-II, and raw-can-v1 has no samples


def test_rules_fire_once_per_episode():
    rules = RuleDetector(RuleLimits.for_redline(6500))
    hits = []
    accel = [0.0, -5.0, -6.0, 0.0, -4.5, 0.0]
    for t, a in enumerate(accel):
        hits += rules.feed(float(t), sample(vehicle_speed=50, engine_rpm=2000, coolant_temp=90, fuel_level=50,
                                            acceleration_x=a))
    assert [(h.type, h.t_s) for h in hits] == [("harsh_braking", 1.0), ("harsh_braking", 4.0)]


def test_idling_rule_fires_after_the_limit_and_other_rules_use_their_limits():
    rules = RuleDetector(RuleLimits.for_redline(4200))
    hits = []
    for t in range(400):
        hits += rules.feed(float(t), sample(vehicle_speed=0, engine_rpm=750, coolant_temp=90, fuel_level=50,
                                            acceleration_x=0.0))
    assert [(h.type, h.t_s) for h in hits] == [("excessive_idling", 300.0)]
    hot = rules.feed(400.0, sample(vehicle_speed=60, engine_rpm=3700, coolant_temp=106, fuel_level=8,
                                   acceleration_x=0.0))
    assert sorted(h.type for h in hot) == ["low_fuel", "over_revving", "overheating"]  # 3700 >= 0.87 * 4200


def test_missing_readings_never_fire_a_rule():
    rules = RuleDetector()
    assert rules.feed(0.0, sample()) == []
