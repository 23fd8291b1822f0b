"""Physics sanity of the vehicle plant (issue 2, acceptance 4)."""
import numpy as np
import pytest

from harness.world.cycles import load_cycle
from harness.world.vehicle import VEHICLES, PlantConditions, get_vehicle, simulate, summarize

FLAT = PlantConditions(hilliness=0.0)  # type-approval cycles are driven on a flat dynamometer


@pytest.fixture(scope="module")
def car_udds():
    car = get_vehicle("passenger_car")
    return car, simulate(load_cycle("udds"), car, seed=0, conditions=FLAT)


def test_passenger_car_udds_fuel_economy(car_udds):
    car, trace = car_udds
    s = summarize(trace, car)
    assert 6.0 <= s.fuel_l_per_100km <= 11.0
    assert 11.9 < s.distance_km < 12.1  # UDDS is 11.99 km


def test_passenger_car_wltc_class3b_fuel_economy():
    car = get_vehicle("passenger_car")
    s = summarize(simulate(load_cycle("wltc_class3b"), car, seed=0, conditions=FLAT), car)
    assert 4.5 <= s.fuel_l_per_100km <= 8.5
    assert 23.1 < s.distance_km < 23.4  # WLTC class 3b is 23.27 km


@pytest.mark.parametrize("vehicle", sorted(VEHICLES))
def test_idle_fuel_rate(vehicle):
    params = get_vehicle(vehicle)
    s = summarize(simulate(load_cycle("udds"), params, seed=0, conditions=FLAT), params)
    assert 0.6 <= s.idle_l_per_h <= 2.0


@pytest.mark.parametrize("vehicle", sorted(VEHICLES))
def test_coolant_warms_up_and_settles(vehicle):
    params = get_vehicle(vehicle)
    trace = simulate(load_cycle("wltc_class3b").repeated(2), params, seed=1)
    coolant = trace.truth["coolant_temp"]
    assert coolant[0] == pytest.approx(20.0)  # cold start at ambient
    settled = coolant[len(coolant) // 2:]
    assert 85.0 <= np.median(settled) <= 100.0
    assert settled.min() > 80.0 and settled.max() < 105.0


def test_fuel_level_drop_matches_integrated_consumption(car_udds):
    car, trace = car_udds
    s = summarize(trace, car)
    assert s.fuel_level_error < 0.02
    # and in litres, from the readings at rest at both ends (the sender's small noise averaged out)
    level, at_rest = trace.signals["fuel_level"], trace.truth["vehicle_speed"] == 0
    first, last = at_rest & (trace.t_s < 15), at_rest & (trace.t_s > trace.t_s[-1] - 4)
    drop_l = (np.mean(level[first]) - np.mean(level[last])) / 100.0 * car.tank_l
    assert drop_l == pytest.approx(s.fuel_used_l, rel=0.05)


@pytest.mark.parametrize("vehicle", sorted(VEHICLES))
def test_rpm_consistent_with_speed_and_gear(vehicle):
    params = get_vehicle(vehicle)
    trace = simulate(load_cycle("wltc_class3b"), params, seed=0)
    speed, rpm, gear = trace.truth["vehicle_speed"], trace.truth["engine_rpm"], trace.aux["gear"].astype(int)
    assert np.all(rpm[gear == 0] == pytest.approx(params.idle_rpm))  # neutral at rest: idle
    coupled = (gear > 0) & (speed > 20.0)  # clutch closed
    expected = np.array([params.rpm_in_gear(v, g) for v, g in zip(speed[coupled], gear[coupled], strict=False)])
    np.testing.assert_allclose(rpm[coupled], expected, rtol=1e-9)
    assert rpm.max() <= params.redline_rpm
    assert rpm[speed > 1].min() >= params.idle_rpm * 0.99
    # the shift schedule uses the gears: top gear on the extra-high phase
    assert gear.max() == len(params.gear_ratios)


def test_throttle_and_brake_follow_power_demand(car_udds):
    _, trace = car_udds
    accel = np.gradient(trace.truth["vehicle_speed"] / 3.6, 0.1)
    throttle, brake = trace.truth["throttle_position"], trace.truth["brake_pressure"]
    assert throttle[accel > 1.0].mean() > 20.0 and brake[accel > 1.0].max() == 0.0
    hard = accel < -1.2
    assert brake[hard].min() > 0.0 and throttle[hard].max() == 0.0
    # brake pressure rises with deceleration
    assert np.corrcoef(-accel[accel < -0.5], brake[accel < -0.5])[0, 1] > 0.8


def test_heavier_vehicle_uses_more_fuel_on_the_same_cycle():
    cycle = load_cycle("wltc_class3b")
    car, truck = (summarize(simulate(cycle, get_vehicle(v), conditions=FLAT), get_vehicle(v))
                  for v in ("passenger_car", "light_truck"))
    assert truck.fuel_l_per_100km > car.fuel_l_per_100km


def test_position_moves_with_distance_and_grade_sets_altitude(car_udds):
    _, trace = car_udds
    lat, lon = np.radians(trace.truth["latitude"]), np.radians(trace.truth["longitude"])
    step = np.hypot(np.diff(lat), np.diff(lon) * np.cos(lat[:-1])) * 6_371_000.0
    travelled = np.sum(trace.truth["vehicle_speed"][:-1] / 3.6 * 0.1)
    assert np.sum(step) == pytest.approx(travelled, rel=0.01)
    hilly = simulate(load_cycle("udds"), get_vehicle("passenger_car"), seed=3)
    assert np.ptp(hilly.truth["altitude"]) > 5.0 and np.ptp(trace.truth["altitude"]) == 0.0
