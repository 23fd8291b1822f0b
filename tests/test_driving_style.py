"""The driving-style definition (harness.world.driving_style): what makes a window eco, normal or aggressive, the
labels every plant drive carries (generated and drive cycles), and how windows take them."""
from __future__ import annotations

import numpy as np
import pytest

from harness.wire.behaviour import STYLES
from harness.wire.signals import PLANT_RATE_HZ
from harness.world import driving_style as ds
from harness.world.anomalies import Anomaly
from harness.world.cycles import generate_trip, load_cycle
from harness.world.vehicle import get_vehicle, simulate

NORMAL, ECO, AGGRESSIVE = (STYLES.index(s) for s in ("normal", "eco", "aggressive"))


def _ramp(v0: float, accel_ms2: float, seconds: int) -> np.ndarray:
    return v0 + accel_ms2 * 3.6 * np.arange(1, seconds + 1)


def _classes(speed_kmh: np.ndarray) -> np.ndarray:
    return ds.classify_windows(ds.window_quantities(np.asarray(speed_kmh, dtype=float)))


def test_a_steady_cruise_is_eco_and_a_wandering_one_normal():
    steady = 50.0 + 0.3 * np.sin(np.arange(60) / 10.0)  # +-0.3 km/h, slowly
    assert _classes(steady).tolist() == [ECO]
    # speed held less steadily: a step of 0.8 km/h every other second (jerk 0.22 m/s^3 half the time), gentle
    # otherwise
    wander = 60.0 + 0.8 * (np.arange(60) // 2 % 2)
    q = ds.window_quantities(wander)
    assert ds.ECO_JERK_MS3 < q.jerk_p75[0] < ds.AGGRESSIVE_JERK_MS3
    assert _classes(wander).tolist() == [NORMAL]


def test_a_hard_acceleration_or_braking_window_is_aggressive():
    pull_away = np.concatenate([np.zeros(30), _ramp(0.0, 2.5, 30)])  # 0 to 270 km/h is not the point: 2.5 m/s^2
    assert _classes(pull_away[:60]).tolist() == [AGGRESSIVE]
    brake = np.concatenate([np.full(40, 80.0), np.maximum(80.0 - 2.5 * 3.6 * np.arange(1, 21), 0.0)])
    q = ds.window_quantities(brake)
    assert q.decel_p95[0] >= ds.AGGRESSIVE_DECEL_MS2 and _classes(brake).tolist() == [AGGRESSIVE]
    # the same 1.0 m/s^2 is normal at town speed and aggressive at motorway speed (v * a, the power it asks)
    town = np.concatenate([np.full(50, 20.0), _ramp(20.0, 1.0, 10)])
    motorway = np.concatenate([np.full(50, 100.0), _ramp(100.0, 1.0, 10)])
    assert _classes(town).tolist() == [NORMAL]
    assert ds.window_quantities(motorway).power_p95[0] >= ds.AGGRESSIVE_POWER_M2S3
    assert _classes(motorway).tolist() == [AGGRESSIVE]


def test_a_standing_window_is_normal_whatever_came_before():
    hard = np.concatenate([np.zeros(20), _ramp(0.0, 2.5, 8), np.linspace(72.0, 0.0, 10)])
    drive = np.concatenate([hard, np.zeros(200)])
    style = ds.style_per_second(drive)
    assert style[len(hard) + 10] == AGGRESSIVE  # the window ending there holds the hard driving
    # a window with fewer than MIN_MOVING_S seconds of motion shows no style: normal
    assert (style[len(hard) + 59:] == NORMAL).all()
    assert ds.style_per_second(np.zeros(300)).tolist() == [NORMAL] * 300


def test_the_label_of_a_second_is_the_class_of_the_window_ending_there():
    rng = np.random.default_rng(3)
    speed = np.clip(np.cumsum(rng.normal(0.0, 2.0, 400)) + 50.0, 0.0, None)
    style = ds.style_per_second(speed)
    classes = _classes(speed)
    assert len(style) == 400 and (style[59:] == classes).all() and (style[:59] == classes[0]).all()
    assert ds.style_per_second(speed[:59]).tolist() == [NORMAL] * 59  # shorter than one window
    label, stability = ds.window_labels(style)
    assert (label == style[59:]).all()
    k = 123
    assert stability[k] == pytest.approx(np.mean(style[k:k + 60] == style[k + 59]))


def test_a_window_takes_the_style_of_its_last_second_and_its_stability():
    style = np.array([NORMAL] * 100 + [AGGRESSIVE] * 100)
    label, stability = ds.window_labels(style)
    # window k spans k..k+59: the one ending at 100 is aggressive with 1 of 60 seconds so
    assert label[100 - 59] == AGGRESSIVE and stability[100 - 59] == pytest.approx(1 / 60)
    assert label[0] == NORMAL and stability[0] == 1.0 and stability[-1] == 1.0


def test_every_bundled_cycle_earns_labels_and_they_say_what_its_driving_is():
    car = get_vehicle("passenger_car")
    shares = {}
    for name in ("udds", "wltc_class1"):
        trace = simulate(load_cycle(name), car).resample()
        assert trace.style is not None and len(trace.style) == len(trace.t_s)
        shares[name] = np.bincount(trace.style, minlength=3) / len(trace.style)
    # measured: UDDS 0.86 normal, 0.14 eco, no aggressive (its accelerations, up to 1.47 m/s^2 over 3 s, are brisk
    # but under 1.5; its speed hunts at 0.2-0.3 m/s^3, under the 0.4 the unit can see), WLTC class 1 (a low-power
    # cycle: at most 0.8 m/s^2, steadily held) 0.97 eco
    assert shares["udds"][NORMAL] >= 0.8 and shares["udds"][ECO] > 0.0 and shares["udds"][AGGRESSIVE] == 0.0
    assert shares["wltc_class1"][ECO] >= 0.9 and shares["wltc_class1"][AGGRESSIVE] == 0.0


def test_what_makes_a_window_aggressive_is_measurable_at_the_units_resolution():
    """The unit receives speed in whole km/h: accelerations over ACCEL_SPAN_S seconds, and the aggressive jerk above
    one step of the received 1-s jerk, come out (nearly) the same from the speed it receives as from the true one."""
    car = get_vehicle("passenger_car")
    for name, seed in (("aggressive", 7), ("normal", 8)):
        trace = simulate(generate_trip(seed, 1200, styles={name: 1.0}), car, seed=seed)
        speed = trace.truth["vehicle_speed"][::int(PLANT_RATE_HZ)]  # 1 Hz
        true, received = ds.window_quantities(speed), ds.window_quantities(np.round(speed))
        moving = true.moving_s >= ds.MIN_MOVING_S
        # one step of a 3-s difference is 1 / (3.6 * 3) = 0.093 m/s^2 (a 1-s one: 0.28)
        assert np.abs(true.accel_p95 - received.accel_p95)[moving].max() < 1 / (3.6 * ds.ACCEL_SPAN_S)
        assert np.abs(true.decel_p95 - received.decel_p95)[moving].max() < 1 / (3.6 * ds.ACCEL_SPAN_S)
        assert ds.AGGRESSIVE_JERK_MS3 > 1 / 3.6  # above one step of the received 1-s jerk
        aggressive_true = ds.classify_windows(true) == AGGRESSIVE
        aggressive_received = ds.classify_windows(received) == AGGRESSIVE
        assert np.mean(aggressive_true == aggressive_received) >= 0.95, name
        if name == "aggressive":
            assert aggressive_true.mean() > 0.5


def test_a_sensor_fault_changes_no_label_and_the_intent_only_shifts_gears():
    profile = generate_trip(5, 600, styles={"eco": 1.0})
    car = get_vehicle("passenger_car")
    clean = simulate(profile, car, seed=1)
    faulty = simulate(profile, car, [Anomaly("stuck_value", 200.0, sustain_s=200.0, signal="vehicle_speed")], seed=1)
    assert (clean.style == faulty.style).all()
    assert not (clean.signals["vehicle_speed"] == faulty.signals["vehicle_speed"]).all()  # the fault is there


#: Measured (docs/models.md, "Driving styles"): 20 trips of 30 min per intended style, seeds 2000-2019, passenger car,
#: share of seconds whose earned style is the intended one: normal 0.96, eco 0.91, aggressive 0.92 (on the five
#: trips here normal 0.97, eco 0.86, aggressive 0.91).
INTENT_AGREEMENT_FLOOR = 0.8


def test_the_generators_intended_styles_mostly_earn_their_label():
    car = get_vehicle("passenger_car")
    for name in STYLES:
        intended = earned = 0
        for seed in range(2000, 2005):
            profile = generate_trip(seed, 1800, styles={name: 1.0})
            style = simulate(profile, car, seed=seed).resample().style
            moving_or_styled = profile.style_at()[:len(style)] == STYLES.index(name)
            intended += int(moving_or_styled.sum())
            earned += int((style[moving_or_styled] == STYLES.index(name)).sum())
        assert earned / intended >= INTENT_AGREEMENT_FLOOR, (name, earned / intended)


def test_the_judge_has_labels_for_a_drive_cycle_and_none_for_a_recording():
    from pathlib import Path

    from harness.judge.metrics.behaviour import NO_STYLE, behaviour_labels
    from harness.wire.link.base import V2_NAME
    from harness.world.scenario import load_scenario

    scenarios = Path(__file__).resolve().parent.parent / "scenarios"
    cycle = load_scenario(scenarios / "clean_udds_car.yaml")
    style, why = behaviour_labels(V2_NAME, cycle.run_plant())
    assert why == "" and style is not None and len(style) >= cycle.profile().duration_s
    replay = load_scenario(scenarios / "replay_stuck_speed_city.yaml")
    assert behaviour_labels(V2_NAME, replay.run_plant()) == (None, NO_STYLE)
