"""Route geometry: where the vehicle is, for a given distance travelled.

A route is a seeded road: heading wanders (curves and junction turns), grade follows a smooth random profile
bounded by typical road design limits, and altitude is the integral of grade. Positions use a local flat-earth
approximation around the start point (error well under a metre over the few hundred km of a trip), which is
plenty for a GNSS reading; the module does not model tunnels, multipath or map-matched roads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M = 6_371_000.0
#: Typical maximum grade of public roads (AASHTO guidance for arterials is 5-8 %).
MAX_GRADE = 0.06
STEP_M = 10.0


@dataclass(frozen=True)
class RouteStart:
    latitude: float = 37.5665  # Seoul; DTGs are mandatory on Korean commercial vehicles
    longitude: float = 126.9780
    altitude_m: float = 100.0
    heading_deg: float = 90.0


@dataclass(frozen=True)
class RoutePoints:
    latitude: np.ndarray
    longitude: np.ndarray
    altitude_m: np.ndarray
    grade: np.ndarray  # rise over run (0.05 = 5 %)


def route_along(distance_m: np.ndarray, seed: int, start: RouteStart = RouteStart(),
                hilliness: float = 1.0) -> RoutePoints:
    """Position, altitude and grade at each distance in `distance_m` (non-decreasing, metres from start)."""
    total = float(distance_m[-1]) if len(distance_m) else 0.0
    n = int(total // STEP_M) + 2
    rng = np.random.default_rng([seed, 0x70A7E])
    # Grade: an AR(1) process on a 10 m grid, then smoothed so vertical curves are gentle.
    raw = np.empty(n)
    g, rise = 0.0, 0.0
    shocks = rng.normal(0.0, 0.004 * hilliness, n).tolist()
    for i in range(n):
        # A weak pull back towards the start altitude keeps long trips in the same terrain band.
        g = 0.995 * g + shocks[i] - 2e-6 * rise
        raw[i] = g
        rise += g * STEP_M
    kernel = np.hanning(31)
    # (np.convolve's "same" output is as long as the longer input: trim it for routes shorter than the kernel)
    grade_grid = np.clip(np.convolve(raw, kernel / kernel.sum(), mode="same")[:n], -MAX_GRADE, MAX_GRADE)
    # Heading: mostly straight, with gentle curves and occasional 90-degree junction turns.
    turn_rate = np.convolve(rng.normal(0.0, 0.25, n), np.ones(20) / 20, mode="same")[:n]  # deg per 10 m
    junction = rng.random(n) < 1.0 / 150.0  # about one turn every 1.5 km
    turn_rate[junction] += rng.choice([-90.0, 90.0], junction.sum())
    heading = np.radians(start.heading_deg + np.cumsum(turn_rate))
    grid = np.arange(n) * STEP_M
    east = np.concatenate([[0.0], np.cumsum(np.sin(heading[:-1]) * STEP_M)])
    north = np.concatenate([[0.0], np.cumsum(np.cos(heading[:-1]) * STEP_M)])
    up = np.concatenate([[0.0], np.cumsum(grade_grid[:-1] * STEP_M)])
    e = np.interp(distance_m, grid, east)
    nth = np.interp(distance_m, grid, north)
    lat = start.latitude + np.degrees(nth / EARTH_RADIUS_M)
    lon = start.longitude + np.degrees(e / (EARTH_RADIUS_M * np.cos(np.radians(start.latitude))))
    return RoutePoints(lat, lon, start.altitude_m + np.interp(distance_m, grid, up),
                       np.interp(distance_m, grid, grade_grid))


def offset_position(latitude: np.ndarray, longitude: np.ndarray, north_m: float | np.ndarray,
                    east_m: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions moved by (north_m, east_m)."""
    lat = latitude + np.degrees(north_m / EARTH_RADIUS_M)
    lon = longitude + np.degrees(east_m / (EARTH_RADIUS_M * np.cos(np.radians(latitude))))
    return lat, lon
