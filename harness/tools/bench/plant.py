"""`dtg-hil bench plant`: how fast the vehicle plant generates driving.

Generates `--hours` of 30-minute trips (each with three random anomalies, the vehicles in turn), times
`simulate` over them, and prints hours of driving per second of CPU. Only the plant: no bus, firmware or app.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from harness.tools.exits import EXIT_OK
from harness.world.anomalies import random_schedule
from harness.world.cycles import generate_trip
from harness.world.vehicle import VEHICLES, get_vehicle, simulate

__all__ = ["cmd_bench_plant"]


def cmd_bench_plant(args: argparse.Namespace) -> int:
    """Time the plant over generated trips with anomalies; prints hours of driving per second of CPU."""
    trip_s = 1800.0
    trips = int(np.ceil(args.hours * 3600.0 / trip_s))
    rng = np.random.default_rng(args.seed)
    profiles = [generate_trip(args.seed + i, trip_s) for i in range(trips)]
    schedules = [random_schedule(rng, p.duration_s, 3) for p in profiles]
    started = time.perf_counter()
    driven_s = 0.0
    for i, (profile, schedule) in enumerate(zip(profiles, schedules, strict=False)):
        trace = simulate(profile, get_vehicle(list(VEHICLES)[i % len(VEHICLES)]), schedule, args.seed + i)
        driven_s += trace.duration_s
    elapsed = time.perf_counter() - started
    anomalies = sum(len(s) for s in schedules)
    print(f"plant: {driven_s / 3600:.2f} h of driving ({trips} trips, {anomalies} anomalies, 10 Hz) in "
          f"{elapsed:.2f} s = {driven_s / elapsed:.0f}x real time")
    return EXIT_OK
