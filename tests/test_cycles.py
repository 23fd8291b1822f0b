"""The trip generator varies what real driving varies (issue 21): the spread of its trips, congestion, S-curve
speed changes, and the terrain and engine start the dataset and the evaluation sets draw per trip."""
from __future__ import annotations

import numpy as np
import pytest

from harness.world.cycles import SEGMENT_KINDS, drive_statistics, generate_trip
from harness.world.dataset import WARM_START_C, draw_mix, plan_trips, run_trip
from training.evaluate import eval_plans


@pytest.fixture(scope="module")
def drawn_trips():
    """24 trips of 20 minutes with the mixes the dataset draws."""
    rng = np.random.default_rng(21)
    trips = []
    for seed in range(24):
        mix, styles = draw_mix(rng)
        trips.append(generate_trip(seed, 1200.0, mix, styles=styles, driving="varied"))
    return trips


def test_drawn_trips_spread_from_free_flowing_to_congested_and_from_gentle_to_brisk(drawn_trips):
    stats = [drive_statistics(trip.speed_kmh) for trip in drawn_trips]

    def spread(key):
        values = [s[key] for s in stats]
        return min(values), max(values)

    stops = spread("stops_per_km")
    assert stops[0] < 0.2 and stops[1] > 3.0, stops  # a motorway run to stop-and-go traffic
    idle = spread("idle_share")
    assert idle[0] < 0.06 and idle[1] > 0.3, idle
    speed = spread("speed_p50_kmh")
    assert speed[0] < 30.0 and speed[1] > 90.0, speed
    accel = spread("accel_p95_ms2")
    assert accel[0] < 0.6 and accel[1] > 1.5, accel
    jerk = spread("jerk_p95_ms3")
    assert jerk[0] < 0.2 and jerk[1] > 0.7, jerk


def test_generation_is_deterministic_per_seed():
    def trip(seed, driving="varied"):
        return generate_trip(seed, 900.0, {"urban": 1, "stop_go": 1}, driving=driving)

    a, b = trip(8), trip(8)
    assert np.array_equal(a.speed_kmh, b.speed_kmh) and np.array_equal(a.style_at(), b.style_at())
    assert not np.array_equal(a.speed_kmh, trip(9).speed_kmh)
    assert not np.array_equal(a.speed_kmh, trip(8, "classic").speed_kmh)
    with pytest.raises(ValueError, match="unknown driving 'wild'; expected one of: classic, varied"):
        trip(8, "wild")


@pytest.mark.parametrize("driving", ["varied", "classic"])
@pytest.mark.parametrize("seed", range(4))
def test_stop_go_creeps_and_stops_every_few_hundred_metres(seed, driving):
    trip = generate_trip(seed, 900.0, {"stop_go": 1.0}, styles={"normal": 1, "eco": 1, "aggressive": 1},
                         driving=driving)
    v = trip.speed_kmh
    stats = drive_statistics(v)
    assert stats["speed_p95_kmh"] <= 40.0, stats
    distance_m = np.cumsum(v) / 3.6
    moving = v > 0.5
    stops = np.flatnonzero(moving[:-1] & ~moving[1:])
    gaps = np.diff(distance_m[stops])
    assert len(stops) >= 10 and np.median(gaps) < 300.0 and gaps.max() < 1000.0, (len(stops), gaps)


def test_speed_changes_are_s_curves_not_ramps(drawn_trips):
    """A move-off builds its acceleration up: its first second accelerates less than the move-off's peak (with a
    constant acceleration it would be the peak), clearly less for gentler drivers."""
    below = ramped = total = 0
    for trip in drawn_trips:
        a = np.diff(trip.speed_kmh) / 3.6
        starts = np.flatnonzero((trip.speed_kmh[:-2] == 0) & (trip.speed_kmh[1:-1] > 0))
        for i in starts:
            first, peak = a[i], a[i:i + 15].max()
            total += 1
            below += first < peak - 1e-9
            ramped += first < 0.8 * peak
    assert total > 50 and below / total > 0.7 and ramped / total > 0.35, (below, ramped, total)


def test_the_dataset_draws_terrain_stop_go_and_warm_and_cold_starts():
    specs = plan_trips(3, 40, 6, 6, 600.0)
    generated = [s for s in specs if s.route == "generated"]
    assert all(set(s.mix) == set(SEGMENT_KINDS) for s in generated)
    assert max(s.mix["stop_go"] for s in generated) > 0.3
    hilliness = [s.hilliness for s in specs]
    assert min(hilliness) < 0.15 and max(hilliness) > 0.85
    warm = [s for s in specs if s.start_coolant_c is not None]
    cold = [s for s in specs if s.start_coolant_c is None]
    assert 0.2 < len(warm) / len(specs) < 0.6 and cold
    assert all(WARM_START_C[0] <= s.start_coolant_c <= WARM_START_C[1] for s in warm)

    warm_spec = min(warm, key=lambda s: s.ambient_c)
    _, trace = run_trip(warm_spec)
    coolant = trace.truth["coolant_temp"]
    assert coolant[0] == pytest.approx(warm_spec.start_coolant_c, abs=1.0)
    assert coolant[0] > warm_spec.ambient_c + 30.0
    _, trace = run_trip(cold[0])
    assert trace.truth["coolant_temp"][0] == pytest.approx(cold[0].ambient_c, abs=1.0)


def test_evaluation_trips_draw_terrain_and_engine_start():
    plans = eval_plans(5, 10, 300.0, cycles=("udds",), per_trip=1, types=("drift",))
    conditions = [plan.conditions for plan in plans]
    assert len({c.hilliness for c in conditions}) == len(conditions)
    assert any(c.start_coolant_c is None for c in conditions)
    assert any(c.start_coolant_c is not None for c in conditions)
