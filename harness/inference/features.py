"""Window features shared by training and the (simulated) app: one function each, so they cannot drift apart.

The unit's models look at windows of `WINDOW_S` samples (1 Hz) of the ten signals in `harness.wire.signals.SIGNALS`
order, in the units the unit reads (km/h, rpm, %, bar, degC, %, m/s^2, deg, deg, m); NaN means "no reading".

- `sliding_windows` cuts a trip into such windows; `context_windows` into the anomaly model's longer inputs.
- `behaviour_features` computes the 18 statistics the behaviour model takes (`BEHAVIOUR_FEATURES` names them).
  Standard deviations are SAMPLE standard deviations (ddof=1); the reference app used the population one.
  Missing readings are ignored; a statistic with too few readings is NaN (the model treats NaN as missing).
- `gps_steps` turns consecutive fixes into step length and heading (flat-earth, fine over one second).

What this module does not do: any normalisation (the ONNX graphs carry their own) or any use of the absolute
position (routes start in different places; only differences between fixes are used).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from harness.wire.signals import SIGNALS

WINDOW_S = 60
#: The anomaly model's input: the last `CONTEXT_S` samples (NaN before the trip's first), of which the last
#: `WINDOW_S` are the window the other models see. Slow faults (a fuel leak of a few L/h against a tank level
#: sent in 0.4 % steps, a failing fan) only rise above the readings' noise over minutes.
CONTEXT_S = 300
EARTH_RADIUS_M = 6_371_000.0
#: Below this step length (m) between two fixes the heading is noise, so the heading rate is taken as 0.
MIN_STEP_FOR_HEADING_M = 2.0

_IDX = {name: i for i, name in enumerate(SIGNALS)}

BEHAVIOUR_FEATURES: tuple[str, ...] = (
    "speed_mean_kmh", "speed_std_kmh", "speed_max_kmh", "speed_min_kmh",
    "rpm_mean", "rpm_std",
    "throttle_mean_pct", "throttle_std_pct", "throttle_max_pct",
    "brake_mean_bar", "brake_std_bar", "brake_max_bar",
    "accel_mean_ms2", "accel_std_ms2", "accel_max_ms2",
    "lateral_mean_ms2", "lateral_std_ms2",
    "fuel_level_slope_pct_per_min",
)


def context_windows(samples: np.ndarray, context_s: int = CONTEXT_S, window_s: int = WINDOW_S,
                    stride_s: int = 1) -> np.ndarray:
    """Inputs [n, context_s, signals] ending where `sliding_windows(samples, window_s, stride_s)`'s windows end.

    The rows before the trip's first sample are NaN, as the app feeds them before it has `context_s` seconds.
    """
    pad = np.full((context_s - window_s, samples.shape[1]), np.nan, dtype=samples.dtype)
    return sliding_windows(np.concatenate([pad, samples]), context_s, stride_s)


def sliding_windows(samples: np.ndarray, window_s: int = WINDOW_S, stride_s: int = 1) -> np.ndarray:
    """Windows [n, window_s, signals] of a trip [T, signals] at 1 Hz; window k ends at sample k*stride+window_s-1.

    A view, not a copy: copy before writing into it.
    """
    if samples.shape[0] < window_s:
        return np.empty((0, window_s) + samples.shape[1:], dtype=samples.dtype)
    view = np.lib.stride_tricks.sliding_window_view(samples, window_s, axis=0)  # [n, signals, window]
    return np.moveaxis(view, -1, 1)[::stride_s]


def gps_steps(latitude: np.ndarray, longitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step length (m) and heading (rad, clockwise from north) between consecutive fixes; len-1 arrays."""
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    # a[1:] - a[:-1] is np.diff(a), without its argument handling
    north = np.radians(lat[1:] - lat[:-1]) * EARTH_RADIUS_M
    east = np.radians(lon[1:] - lon[:-1]) * EARTH_RADIUS_M * np.cos(np.radians(lat[1:]))
    return np.hypot(north, east), np.arctan2(east, north)


def lateral_proxy(window: np.ndarray) -> np.ndarray:
    """Lateral acceleration proxy (m/s^2) per second: speed (m/s) x heading rate (rad/s) from consecutive fixes.

    Length `len(window) - 2` (a heading rate needs two steps, a step two fixes). NaN where a fix or the speed
    is missing; 0 where either step is shorter than `MIN_STEP_FOR_HEADING_M` (heading undefined at a stop).
    """
    step_m, heading = gps_steps(window[:, _IDX["latitude"]], window[:, _IDX["longitude"]])
    turn = np.exp(1j * (heading[1:] - heading[:-1]))
    rate = np.arctan2(turn.imag, turn.real)  # np.angle: wrapped to (-pi, pi], per 1 s
    slow = (step_m[1:] < MIN_STEP_FOR_HEADING_M) | (step_m[:-1] < MIN_STEP_FOR_HEADING_M)
    rate = np.where(slow & ~np.isnan(rate), 0.0, rate)
    speed_ms = window[1:-1, _IDX["vehicle_speed"]] / 3.6
    return speed_ms * rate


def fuel_level_slope_pct_per_min(fuel_level: np.ndarray) -> float:
    """Least-squares slope of the fuel level over the window (%/min, negative while consuming); NaN if < 2 readings."""
    level = np.asarray(fuel_level, dtype=np.float64)
    ok = ~np.isnan(level)
    n = int(np.count_nonzero(ok))
    if n < 2:
        return float("nan")
    t, level = np.arange(len(level), dtype=np.float64)[ok], level[ok]
    # np.mean and np.sum bit for bit, as in `_stats`: the same pairwise sums, without their per-call handling
    tc = t - float(np.add.reduce(t)) / n
    return float(np.add.reduce(tc * (level - float(np.add.reduce(level)) / n)) / np.add.reduce(tc * tc) * 60.0)


def _stats(x: np.ndarray, *which: str, ddof: int = 1) -> list[float]:
    """`which` of mean, std, max, min of the float64 readings `x` without its NaNs (NaN when too few).

    The same figures as `np.mean`, `np.std(ddof=ddof)`, `np.max` and `np.min`, bit for bit: the same reductions
    in the same order (`np.add.reduce` is the pairwise sum both use), without their per-call argument handling,
    which on a 60-reading window costs more than the arithmetic.
    """
    n = len(x)
    total = float(np.add.reduce(x)) if n else math.nan
    if total != total:  # a NaN among the readings (or none at all): sum the readings only (most windows have none)
        x = x[~np.isnan(x)]
        n = len(x)
        total = float(np.add.reduce(x)) if n else math.nan
    out = []
    for kind in which:
        if kind == "std":
            if n >= 2:
                deviation = x - total / n
                out.append(math.sqrt(float(np.add.reduce(deviation * deviation)) / (n - ddof)))
            else:
                out.append(math.nan)
        elif n == 0:
            out.append(math.nan)
        elif kind == "mean":
            out.append(total / n)
        else:
            out.append(float({"max": np.maximum, "min": np.minimum}[kind].reduce(x)))
    return out


def behaviour_features(window: np.ndarray, ddof: int = 1) -> np.ndarray:
    """The 18 window statistics of `BEHAVIOUR_FEATURES` (float32) from one raw window [60, 10].

    Sample std (ddof=1). Acceleration is the speed's derivative, (v[t] - v[t-1]) / 3.6 in m/s^2 over the 59
    steps of the window: the accelerometer's `acceleration_x` also carries the road grade, which says nothing
    about the driver (in a 60-trip trial: validation macro-F1 0.78 with the accelerometer, 0.82 with the
    speed derivative). The lateral proxy is
    speed x heading rate from consecutive GPS fixes (`lateral_proxy`); fuel is the fuel-level slope in %/min
    (`fuel_level_slope_pct_per_min`). Missing readings (NaN) are skipped; a statistic without enough readings
    is NaN. `ddof=0` gives the population standard deviations the reference app computed: the contract
    checks (`harness.judge.contract`) use it to name that mistake, never to score.
    """
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(SIGNALS):
        raise ValueError(f"behaviour_features expects a window [n, {len(SIGNALS)}], got shape {w.shape}")
    col = lambda name: w[:, _IDX[name]]  # noqa: E731
    speed = col("vehicle_speed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = (
            _stats(speed, "mean", "std", "max", "min", ddof=ddof)
            + _stats(col("engine_rpm"), "mean", "std", ddof=ddof)
            + _stats(col("throttle_position"), "mean", "std", "max", ddof=ddof)
            + _stats(col("brake_pressure"), "mean", "std", "max", ddof=ddof)
            + _stats((speed[1:] - speed[:-1]) / 3.6, "mean", "std", "max", ddof=ddof)  # np.diff, without its cost
            + _stats(lateral_proxy(w), "mean", "std", ddof=ddof)
            + [fuel_level_slope_pct_per_min(col("fuel_level"))]
        )
    return np.asarray(values, dtype=np.float32)


def behaviour_features_batch(windows: np.ndarray) -> np.ndarray:
    """`behaviour_features` of each window in [n, 60, 10] → [n, 18] (same function, looped)."""
    return np.stack([behaviour_features(w) for w in windows]) if len(windows) else np.empty((0, 18), np.float32)
