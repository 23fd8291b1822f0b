"""Anomaly injection: each anomaly does what it says, labels equal the schedule, signals stay physical."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.wire.signals import PHYSICAL_RANGE, SIGNALS
from harness.world.anomalies import ANOMALY_TYPES, DRIFT_SPAN, READING_TYPES, SENSOR_FAULT_TYPES, Anomaly
from harness.world.cycles import generate_trip, load_cycle
from harness.world.route import EARTH_RADIUS_M
from harness.world.vehicle import get_vehicle, simulate

CAR = get_vehicle("passenger_car")
TRIP = generate_trip(5, 1500, {"urban": 0.5, "rural": 0.5})


def run(*anomalies, profile=TRIP, seed=5):
    return simulate(profile, CAR, list(anomalies), seed)


@pytest.fixture(scope="module")
def clean():
    return run()


def window(trace, a):
    return (trace.t_s >= a.at_s) & (trace.t_s < a.end_s)


def test_overheating_heats_the_coolant(clean):
    a = Anomaly("overheating", 500, 0.9, 30, 400, 60)
    trace = run(a)
    assert trace.truth["coolant_temp"][window(trace, a)].max() > 110.0
    assert clean.truth["coolant_temp"].max() < 100.0


def test_over_revving_holds_low_gears_and_costs_fuel(clean):
    a = Anomaly("over_revving", 600, 0.8, 5, 120, 5)
    trace = run(a)
    w = window(trace, a)
    assert trace.truth["engine_rpm"][w].max() > 0.75 * CAR.redline_rpm
    assert clean.truth["engine_rpm"].max() < 0.6 * CAR.redline_rpm
    assert trace.aux["fuel_rate"][w].sum() > 1.2 * clean.aux["fuel_rate"][w].sum()


def test_harsh_braking_decelerates_hard():
    a = Anomaly("harsh_braking", 600, 0.8, 5, 60, 10)
    trace = run(a)
    decel = -np.gradient(trace.truth["vehicle_speed"] / 3.6, 0.1)
    w = window(trace, a)
    assert decel[w].max() > 6.5 and decel[~w].max() < 3.5
    assert trace.truth["brake_pressure"][w].max() > 60.0


def test_aggressive_acceleration_accelerates_hard():
    a = Anomaly("aggressive_acceleration", 600, 0.8, 5, 90, 10)
    trace = run(a)
    accel = np.gradient(trace.truth["vehicle_speed"] / 3.6, 0.1)
    w = window(trace, a)
    assert accel[w].max() > 4.0 and accel[~w].max() < 3.0
    assert trace.truth["throttle_position"][w].max() > 90.0


def test_erratic_driving_weaves_speed(clean):
    a = Anomaly("erratic_driving", 600, 0.8, 10, 120, 10)
    trace = run(a)
    w = window(trace, a)
    accel, accel_clean = (np.gradient(t.truth["vehicle_speed"] / 3.6, 0.1) for t in (trace, clean))
    assert accel[w].std() > 2.5 * accel_clean[w].std()


def test_fuel_leak_drains_the_tank_past_the_engine(clean):
    a = Anomaly("fuel_leak", 400, 1.0, 30, 600)
    trace = run(a)
    drop = trace.truth["fuel_level"][0] - trace.truth["fuel_level"][-1]
    drop_clean = clean.truth["fuel_level"][0] - clean.truth["fuel_level"][-1]
    leaked_l = (drop - drop_clean) / 100.0 * CAR.tank_l
    assert leaked_l == pytest.approx(15.0 * (600 + 15) / 3600.0, rel=0.02)  # 15 L/h over sustain + half the ramp
    np.testing.assert_allclose(trace.aux["fuel_rate"], clean.aux["fuel_rate"])  # the engine burns the same


def test_excessive_idling_parks_with_the_engine_running():
    a = Anomaly("excessive_idling", 400, 0.6, 20, 600, 20)
    trace = run(a)
    sustained = (trace.t_s >= 421) & (trace.t_s < 1020)
    assert np.all(trace.truth["vehicle_speed"][sustained] == 0.0)
    assert np.all(trace.truth["engine_rpm"][sustained] == pytest.approx(CAR.idle_rpm + 350 * 0.6))
    assert np.all(trace.aux["fuel_rate"][sustained] > 1.9)  # fast idle burns more than plain idle (1.72 L/h)


@pytest.mark.parametrize("kind", READING_TYPES)
def test_reading_faults_change_only_the_reading(clean, kind):
    signal = "coolant_temp" if kind in SENSOR_FAULT_TYPES else None
    a = Anomaly(kind, 600, 0.8, 0, 120, 0, signal)
    trace = run(a)
    for name in SIGNALS:
        np.testing.assert_array_equal(trace.truth[name], clean.truth[name])
    w = window(trace, a)
    changed = {name for name in SIGNALS
               if not np.array_equal(trace.signals[name], clean.signals[name], equal_nan=True)}
    assert changed == ({"latitude", "longitude"} if kind == "gps_jump" else {signal})
    for name in changed:  # and only inside the window
        np.testing.assert_array_equal(trace.signals[name][~w], clean.signals[name][~w])


def test_each_reading_fault_has_its_signature(clean):
    w = (clean.t_s >= 600) & (clean.t_s < 720)
    stuck = run(Anomaly("stuck_value", 600, 0.8, 0, 120, 0, "vehicle_speed")).signals["vehicle_speed"][w]
    assert np.ptp(stuck) == 0.0 and np.ptp(clean.truth["vehicle_speed"][w]) > 5.0
    drift = run(Anomaly("drift", 600, 1.0, 0, 120, 0, "coolant_temp")).signals["coolant_temp"][w]
    assert np.abs(drift - clean.signals["coolant_temp"][w]).min() > 25.0
    spikes = run(Anomaly("spike_noise", 600, 1.0, 0, 120, 0, "engine_rpm")).signals["engine_rpm"][w]
    assert np.sum(np.abs(spikes - clean.signals["engine_rpm"][w]) > 500) > 50
    dropped = run(Anomaly("dropout", 600, 1.0, 0, 120, 0, "throttle_position")).signals["throttle_position"][w]
    assert np.isnan(dropped).all()
    jumped = run(Anomaly("gps_jump", 600, 0.5, 0, 120))
    d_lat = np.radians(jumped.signals["latitude"][w] - clean.signals["latitude"][w]) * EARTH_RADIUS_M
    d_lon = (np.radians(jumped.signals["longitude"][w] - clean.signals["longitude"][w]) * EARTH_RADIUS_M
             * np.cos(np.radians(clean.signals["latitude"][w])))
    np.testing.assert_allclose(np.hypot(d_lat, d_lon), 300 + 4700 * 0.5, rtol=1e-3)


def test_stuck_value_freezes_severity_spans_off_its_reading(clean):
    """A stuck reading is flat, and frozen `severity` x the signal's drift span off where it was at the start."""
    w = (clean.t_s >= 600) & (clean.t_s < 720)
    start = clean.signals["coolant_temp"][np.argmax(w)]
    offsets = []
    for severity in (0.1, 0.3, 0.6, 0.9):
        stuck = run(Anomaly("stuck_value", 600, severity, 0, 120, 0, "coolant_temp")).signals["coolant_temp"][w]
        assert np.ptp(stuck) == 0.0
        offsets.append(abs(stuck[0] - start))
    np.testing.assert_allclose(offsets, np.array([0.1, 0.3, 0.6, 0.9]) * DRIFT_SPAN["coolant_temp"], atol=1e-6)
    # At the bottom of its range the reading freezes above it, not out of range.
    parked = Anomaly("stuck_value", 0, 1.0, 0, 30, 0, "vehicle_speed")
    assert run(parked).signals["vehicle_speed"][1] == pytest.approx(DRIFT_SPAN["vehicle_speed"])


def test_dropout_loses_the_share_of_readings_its_severity_says(clean):
    w = (clean.t_s >= 600) & (clean.t_s < 900)
    lost = []
    for severity in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        values = run(Anomaly("dropout", 600, severity, 0, 300, 0, "engine_rpm")).signals["engine_rpm"]
        lost.append(np.isnan(values[w]))
        assert not np.isnan(values[~w]).any()
        assert lost[-1].mean() == pytest.approx(severity, abs=0.03)
    for less, more in zip(lost, lost[1:], strict=False):  # the same draws: a higher severity loses a superset
        assert (more | ~less).all()
    assert lost[-1].all()


def test_onset_and_recovery_ramp_the_strength():
    a = Anomaly("drift", 100, 1.0, 50, 100, 50, "coolant_temp")
    t = np.array([99.9, 100.0, 125.0, 150.0, 250.0, 275.0, 300.0])
    np.testing.assert_allclose(a.envelope(t), [0, 0, 0.5, 1, 1, 0.5, 0], atol=1e-6)


# --- properties ---------------------------------------------------------------------------------------------

SHORT = load_cycle("wltc_class1")  # 1023 s


@st.composite
def schedules(draw):
    """Non-overlapping anomalies of any type on the short cycle."""
    anomalies, t = [], draw(st.floats(0, 200))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(ANOMALY_TYPES))
        onset, sustain, recovery = (draw(st.floats(0, 60)), draw(st.floats(1, 200)), draw(st.floats(0, 60)))
        anomaly = Anomaly(kind, round(t, 1), draw(st.floats(0.01, 1.0)), onset, sustain, recovery,
                          draw(st.sampled_from(SIGNALS)) if kind in SENSOR_FAULT_TYPES else None)
        if anomaly.end_s > SHORT.duration_s:
            break
        anomalies.append(anomaly)
        t = anomaly.end_s + draw(st.floats(0, 150))
    return anomalies


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=schedules(), seed=st.integers(0, 2**16), vehicle=st.sampled_from(["passenger_car", "light_truck"]))
def test_labels_equal_the_schedule_and_signals_stay_physical(schedule, seed, vehicle):
    trace = simulate(SHORT, get_vehicle(vehicle), schedule, seed)
    # labels: exactly the schedule, sample for sample
    assert [(e.type, e.start_s, e.end_s, e.severity, e.signal) for e in trace.events] == \
           [(a.type, a.at_s, a.end_s, a.severity, a.signal) for a in schedule]
    for kind in ANOMALY_TYPES:
        expected = np.zeros(len(trace.t_s), dtype=bool)
        for a in schedule:
            if a.type == kind:
                expected |= (trace.t_s >= a.at_s) & (trace.t_s < a.at_s + a.onset_s + a.sustain_s + a.recovery_s)
        np.testing.assert_array_equal(trace.label_mask(kind), expected)
    # physics: the true vehicle never leaves its physical range, whatever the driver or the faults do
    for name in SIGNALS:
        lo, hi = PHYSICAL_RANGE[name]
        assert np.all((trace.truth[name] >= lo) & (trace.truth[name] <= hi)), name
    for name in ("fuel_rate", "engine_load", "maf", "battery_voltage", "intake_air_temp"):
        lo, hi = PHYSICAL_RANGE[name]
        assert np.all((trace.aux[name] >= lo) & (trace.aux[name] <= hi)), name
    # readings stay in range, except the signal a reading fault is about, inside its window
    for name in SIGNALS:
        excused = np.zeros(len(trace.t_s), dtype=bool)
        for a in schedule:
            if a.signal == name or (a.type == "gps_jump" and name in ("latitude", "longitude")):
                excused |= a.envelope(trace.t_s) > 0
        lo, hi = PHYSICAL_RANGE[name]
        values = trace.signals[name][~excused]
        assert not np.isnan(values).any(), name
        assert np.all((values >= lo) & (values <= hi)), name
