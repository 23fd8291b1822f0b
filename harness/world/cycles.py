"""Speed profiles: the bundled real drive cycles, and a seeded generator of realistic trips.

A speed profile is the driver's intent: vehicle speed against time at 1 Hz. The plant (`harness.world.vehicle`)
turns it into signals. The generator is not a traffic model: it strings together urban, rural, highway and
stop-and-go segments (cruise with speed fluctuation, stops at junctions, idling) with driver-typical
accelerations, either as trip-gen/2 did ("classic") or with a drawn driver, S-curve speed changes and wider ranges
("varied", what the models are trained on); it does not model other vehicles, curves limiting speed, or
gear-shift pauses in the speed trace. `drive_statistics` summarises a trace the way drive cycles are compared.
"""
from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from harness.core.datafile import DataFileError, FileTooLarge, decode_text, read_limited
from harness.core.errors import DtgHilError
from harness.wire.behaviour import STYLES
from harness.wire.signals import PHYSICAL_RANGE

#: Bumped whenever the generator's output for a given seed changes (recorded in dataset manifests).
GENERATOR_VERSION = "trip-gen/3"

BUNDLED_CYCLES: tuple[str, ...] = ("udds", "wltc_class1", "wltc_class3b")
#: The longest drive a cycle file may hold (and a scenario's route, `harness.world.scenario.MAX_ROUTE_S`): three
#: days, far past a tachograph's daily limits; checked row by row, before the route's arrays are made.
MAX_CYCLE_S = 72 * 3600.0

#: How a style changes a segment's driving: scale on the kind's accelerations and cruise speed, speed wander,
#: and on the engine speeds the driver shifts at (`harness.world.vehicle`: eco drivers change up early and hold a
#: high gear, aggressive ones rev each gear out and change down early). With these values an intended style's
#: driving earns that style (`harness.world.driving_style`) in 0.87-0.96 of its seconds (docs/models.md, "Driving
#: styles"); a steadier eco (wander 0.2, accel 0.5, decel 0.55) earned eco in 0.95 but made the shipped anomaly
#: model raise 1.7 false alarms per hour on the tests' held-out trips instead of at most 1.
STYLE_EFFECTS: dict[str, dict[str, float]] = {
    "normal": {"accel": 1.0, "decel": 1.0, "cruise": 1.0, "wander": 0.6, "shift": 1.0},
    "eco": {"accel": 0.55, "decel": 0.6, "cruise": 0.88, "wander": 0.3, "shift": 0.8},
    # Brisk but within what drivers do every day: below the 3.5 m/s^2 / 4 m/s^2 harsh-event limits of the app.
    "aggressive": {"accel": 1.8, "decel": 1.7, "cruise": 1.15, "wander": 1.5, "shift": 1.35},
}
#: The shift-speed scale per style index (STYLES order).
SHIFT_SCALE = np.array([STYLE_EFFECTS[s]["shift"] for s in STYLES])

#: Segment kinds of a generated trip and their driving character, each a (low, high) range: cruise speed (km/h),
#: segment length (s), the chance of stopping at the end of a leg (drawn per segment), leg length (s, drawn
#: log-uniformly per leg: short bursts and long steady cruises), peak acceleration and deceleration (m/s^2, per
#: leg) and the time stood at a stop (s, log-uniform). `stop_go` is congested traffic: creeping at walking to
#: cycling pace, stopping every 80-200 m (6-13 stops per km over a 30-min trip of it alone).
SEGMENT_KINDS: dict[str, dict[str, tuple[float, float]]] = {
    "urban": {"cruise_kmh": (20.0, 60.0), "length_s": (180.0, 900.0), "stop_p": (0.3, 0.85), "leg_s": (6.0, 90.0),
              "accel": (0.8, 1.8), "decel": (0.9, 2.2), "stop_s": (3.0, 75.0)},
    "rural": {"cruise_kmh": (50.0, 95.0), "length_s": (300.0, 1200.0), "stop_p": (0.0, 0.3),
              "leg_s": (15.0, 300.0), "accel": (0.6, 1.4), "decel": (0.6, 1.7), "stop_s": (5.0, 60.0)},
    "highway": {"cruise_kmh": (80.0, 122.0), "length_s": (300.0, 1800.0), "stop_p": (0.0, 0.0),
                "leg_s": (30.0, 900.0), "accel": (0.4, 1.1), "decel": (0.4, 1.3), "stop_s": (0.0, 0.0)},
    "stop_go": {"cruise_kmh": (8.0, 25.0), "length_s": (120.0, 600.0), "stop_p": (0.4, 0.9), "leg_s": (5.0, 40.0),
                "accel": (0.5, 1.4), "decel": (0.6, 1.6), "stop_s": (1.0, 25.0)},
}
#: The same kinds as trip-gen/2 drove them, for `driving="classic"`: fixed ranges drawn uniformly, a fixed stop
#: chance, acceleration drawn per segment (`stop_go` is new, with the classic form of its varied values).
CLASSIC_KINDS: dict[str, dict[str, tuple[float, float] | float]] = {
    "urban": {"cruise_kmh": (25.0, 55.0), "length_s": (240.0, 600.0), "stop_p": 0.6, "leg_s": (15.0, 60.0),
              "accel": (0.9, 1.6), "decel": (1.0, 2.0), "stop_s": (8.0, 60.0)},
    "rural": {"cruise_kmh": (55.0, 90.0), "length_s": (300.0, 900.0), "stop_p": 0.15, "leg_s": (40.0, 150.0),
              "accel": (0.7, 1.3), "decel": (0.8, 1.6), "stop_s": (10.0, 40.0)},
    "highway": {"cruise_kmh": (90.0, 125.0), "length_s": (600.0, 1500.0), "stop_p": 0.0, "leg_s": (60.0, 300.0),
                "accel": (0.5, 1.0), "decel": (0.5, 1.2), "stop_s": (0.0, 0.0)},
    "stop_go": {"cruise_kmh": (8.0, 25.0), "length_s": (120.0, 600.0), "stop_p": 0.65, "leg_s": (5.0, 40.0),
                "accel": (0.5, 1.4), "decel": (0.6, 1.6), "stop_s": (1.0, 25.0)},
}
#: The mix of a generated route that names none (a scenario's `route.generated` without `mix`).
DEFAULT_MIX = {"urban": 0.5, "rural": 0.3, "highway": 0.2}
#: How a generated trip is driven: "classic" as trip-gen/2 did (constant accelerations, one driver; what
#: scenarios drive unless they ask, so that their traces stay those the shipped models were judged on), or
#: "varied" (a `Driver` per trip, S-curves, wider ranges: what the training data and evaluation sets drive).
DRIVING = ("classic", "varied")


class CycleError(DtgHilError, ValueError):
    """A drive cycle could not be found or read."""


@dataclass(frozen=True)
class SpeedProfile:
    """Vehicle speed (km/h) at 1 Hz, starting at t = 0, with where it came from.

    `style` is the driving style the generator intended per second, as indices into `STYLES` (None: "normal",
    as for the regulatory cycles). It sets how the driver shifts gear; the style LABEL of a drive is the one its
    driving earns (`harness.world.driving_style`, applied by `harness.world.vehicle.simulate`).
    """

    name: str
    speed_kmh: np.ndarray
    provenance: str
    style: np.ndarray | None = None

    def style_at(self) -> np.ndarray:
        """Style index per second (0 = normal where the profile has none)."""
        return np.zeros(len(self.speed_kmh), dtype=np.int64) if self.style is None else self.style

    @property
    def duration_s(self) -> float:
        return float(len(self.speed_kmh))

    @property
    def distance_km(self) -> float:
        return float(np.sum(self.speed_kmh) / 3600.0)

    def digest(self) -> str:
        """Content hash of the speed trace (used to prove that dataset splits share no trace)."""
        return hashlib.sha256(np.round(self.speed_kmh, 3).astype("<f8").tobytes()).hexdigest()[:16]

    def repeated(self, times: int) -> SpeedProfile:
        if times <= 1:
            return self
        style = None if self.style is None else np.tile(self.style, times)
        return SpeedProfile(f"{self.name}x{times}", np.tile(self.speed_kmh, times), self.provenance, style)


def read_cycle_csv(path: Path, name: str | None = None) -> SpeedProfile:
    """Read a `time_s,speed_kmh` CSV (1 Hz, `#` comment lines carry provenance).

    Every value is checked before anything is allocated for the route: times finite, increasing and within
    `MAX_CYCLE_S` of the first, speeds finite within the plant's range; a problem is one `CycleError` line
    `file:line: column: message`, the line counted in the file as it is (blank and comment lines included)."""
    try:
        text = decode_text(read_limited(path, "drive cycle"), str(path))
    except (FileTooLarge, DataFileError) as exc:
        raise CycleError(str(exc)) from None
    except OSError as exc:
        raise CycleError(f"cannot read drive cycle {path}: {exc.strerror}") from exc
    comments, rows = [], []  # rows: (line number in the file, text)
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            comments.append(line[1:].strip())
        elif line.strip():
            rows.append((line_no, line))
    header = next(csv.reader([rows[0][1]])) if rows else None
    if header is None or not {"time_s", "speed_kmh"} <= {name.strip() for name in header}:
        where = f"{path}:{rows[0][0]}" if rows else str(path)
        raise CycleError(f"{where}: expected columns time_s,speed_kmh; got {header}")
    columns = {name.strip(): i for i, name in enumerate(header)}
    low_kmh, high_kmh = PHYSICAL_RANGE["vehicle_speed"]
    times, speeds = [], []
    for line_no, line in rows[1:]:
        fields = next(csv.reader([line]), [])
        values = []
        for column, low, high in (("time_s", None, None), ("speed_kmh", low_kmh, high_kmh)):
            raw = fields[columns[column]].strip() if columns[column] < len(fields) else ""
            try:
                value = float(raw)
            except ValueError:
                raise CycleError(f"{path}:{line_no}: {column}: not a number: {raw[:40]!r}") from None
            if not math.isfinite(value):
                raise CycleError(f"{path}:{line_no}: {column}: not a finite number: {raw[:40]!r}")
            if low is not None and not low <= value <= high:
                raise CycleError(f"{path}:{line_no}: {column}: {value:g} is outside {low:g}..{high:g} km/h")
            values.append(value)
        t, v = values
        if times and t <= times[-1]:
            raise CycleError(f"{path}:{line_no}: time_s: {t:g} does not increase (the row before: {times[-1]:g})")
        if times and t - times[0] > MAX_CYCLE_S:
            raise CycleError(f"{path}:{line_no}: time_s: {t:g} is {(t - times[0]) / 3600:.4g} h after the first "
                             f"row; a drive cycle lasts at most {MAX_CYCLE_S / 3600:g} h")
        times.append(t)
        speeds.append(v)
    if len(times) < 2:
        raise CycleError(f"{path}: a drive cycle needs at least two rows")
    t = np.asarray(times)
    grid = np.arange(0.0, t[-1] - t[0] + 1.0, 1.0)
    speed = np.interp(grid, t - t[0], np.asarray(speeds))
    return SpeedProfile(name or path.stem, speed, "; ".join(comments) or str(path))


def load_cycle(name_or_path: str, base_dir: Path | None = None) -> SpeedProfile:
    """A bundled cycle by name (see `BUNDLED_CYCLES`) or a CSV file path (relative to `base_dir`)."""
    if name_or_path in BUNDLED_CYCLES:
        with resources.as_file(resources.files("harness.world") / "cycles" / f"{name_or_path}.csv") as path:
            return read_cycle_csv(Path(path), name_or_path)
    path = Path(name_or_path)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        exists = path.suffix == ".csv" and path.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows
        shown = str(path) if len(str(path)) <= 120 else str(path)[:100] + "..."
        raise CycleError(f"cannot read drive cycle {shown}: {exc.strerror}") from None
    if exists:
        return read_cycle_csv(path)
    raise CycleError(
        f"unknown drive cycle '{name_or_path}'; expected one of: {', '.join(BUNDLED_CYCLES)}, or a path to a "
        f"time_s,speed_kmh CSV file"
    )


#: The fastest cruise speed a generated driver aims at (km/h; the speed wanders around it).
MAX_CRUISE_KMH = 140.0
#: The briskest acceleration and braking a varied driver aims at (m/s^2): trip-gen/2's highest, under the app's
#: harsh-acceleration and harsh-braking limits (3.5 and 4 m/s^2, `firmware_sim.phone.rules.RuleLimits`) with room
#: for the grade the accelerometer also reads (up to 0.6 m/s^2 at `harness.world.route.MAX_GRADE`).
MAX_ACCEL_MS2, MAX_DECEL_MS2 = 2.8, 3.3
#: The longest a generated driver stands with the engine running (s): under the app's excessive-idling limit
#: (`firmware_sim.phone.rules`, 300 s), so a generated trip's normal driving never shows that anomaly.
MAX_IDLE_S = 240.0


def drive_statistics(speed_kmh: np.ndarray) -> dict[str, float]:
    """Summary statistics of a 1-Hz speed trace, the figures drive cycles are compared by.

    A sample is moving above 0.5 km/h; acceleration is the speed's one-second difference (m/s^2), jerk the
    acceleration's (m/s^3, absolute, while moving). `stops_per_km`: moving-to-rest transitions per km driven;
    `idle_share`: the share of seconds at rest; `speed_p50_kmh` / `speed_p95_kmh`: percentiles of the moving
    speed; `accel_p95_ms2` / `decel_p95_ms2`: the 95th percentile of the positive accelerations and of the
    decelerations' magnitudes; `jerk_p95_ms3`; `rpa_ms2`: relative positive acceleration, the sum of speed times
    positive acceleration over the distance (m/s^2)."""
    v = np.asarray(speed_kmh, dtype=float)
    ms = v / 3.6
    accel = np.diff(ms)
    moving = v > 0.5
    distance_km = max(float(v.sum()) / 3600.0, 1e-9)
    stops = int(np.count_nonzero(moving[:-1] & ~moving[1:]))
    jerk = np.abs(np.diff(accel))[moving[1:-1] | moving[2:]]
    pos, neg = accel[accel > 0], -accel[accel < 0]

    def p95(x: np.ndarray) -> float:
        return float(np.percentile(x, 95)) if len(x) else 0.0

    return {
        "stops_per_km": stops / distance_km, "idle_share": 1.0 - float(moving.mean()),
        "speed_p50_kmh": float(np.percentile(v[moving], 50)) if moving.any() else 0.0,
        "speed_p95_kmh": p95(v[moving]), "accel_p95_ms2": p95(pos), "decel_p95_ms2": p95(neg),
        "jerk_p95_ms3": p95(jerk), "rpa_ms2": float(np.sum(ms[1:] * np.maximum(accel, 0.0))) / (distance_km * 1000.0),
    }


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw spread evenly over the orders of magnitude between `low` and `high` (> 0)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


@dataclass(frozen=True)
class Driver:
    """What one generated trip's driver does whatever the segment and style: drawn once per trip.

    `accel_scale` scales every peak acceleration and deceleration; `jerk_ms3` is the rate (m/s^3) at which the
    driver builds up and releases acceleration, so speed changes are S-curves rather than ramps; `gain` (1/s) is
    how briskly the remaining speed difference is closed (the driver eases off as the target speed nears);
    `cruise_scale` scales cruise speeds; `long_stop_p` is the chance that a stop is a long one (a delivery, a
    long light: 1-4 min)."""

    accel_scale: float
    jerk_ms3: float
    gain: float
    cruise_scale: float
    long_stop_p: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Driver:
        return cls(accel_scale=float(np.clip(np.exp(rng.normal(0.0, 0.18)), 0.7, 1.4)),
                   jerk_ms3=_log_uniform(rng, 0.4, 1.8), gain=float(rng.uniform(0.3, 0.7)),
                   cruise_scale=float(rng.uniform(0.92, 1.08)), long_stop_p=float(rng.uniform(0.0, 0.12)))


def _drive_step(v: float, a: float, target: float, accel: float, decel: float, jerk: float,
                gain: float) -> tuple[float, float]:
    """One 1-second step of a driver closing on a target speed (km/h): the wanted acceleration (m/s^2) is the
    remaining difference times `gain`, within `accel` / `decel`, and the acceleration moves towards it by at most
    `jerk` per second. A car creeping to a stop (under 1 km/h) is at rest."""
    wanted = min(max(gain * (target - v) / 3.6, -decel), accel)
    a += min(max(wanted - a, -jerk), jerk)
    v += a * 3.6
    if v <= 0.0 or (target <= 0.0 and v < 1.0):
        return 0.0, 0.0
    return v, a


def _approach(v: float, target: float, accel: float, decel: float) -> float:
    """One 1-second step of a driver closing on a target speed with a comfortable acceleration."""
    dv = target - v
    step = accel * 3.6 if dv > 0 else decel * 3.6
    return target if abs(dv) <= step else v + np.sign(dv) * step


def _weights(mix: dict[str, float], choices: dict | tuple, what: str) -> tuple[list[str], np.ndarray]:
    unknown = sorted(set(mix) - set(choices))
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; expected one of: {', '.join(choices)}")
    names = list(mix)
    weights = np.array([mix[k] for k in names], dtype=float)
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"{what} weights must be >= 0 and not all 0")
    return names, weights / weights.sum()


def _varied_trip(rng: np.random.Generator, duration_s: float, kinds: list[str], kind_p: np.ndarray,
                 style_names: list[str], style_p: np.ndarray) -> tuple[list[float], list[int]]:
    """Speed and style per second of a "varied" trip (see `generate_trip`)."""
    driver = Driver.draw(rng)

    speed: list[float] = [0.0] * int(_log_uniform(rng, 5.0, MAX_IDLE_S))  # warm-up or loading before moving off
    style: list[int] = [0] * len(speed)
    v, a = 0.0, 0.0
    end_idle = int(_log_uniform(rng, 3.0, 150.0))
    while len(speed) < duration_s - end_idle:
        kind = SEGMENT_KINDS[kinds[rng.choice(len(kinds), p=kind_p)]]
        style_name = style_names[rng.choice(len(style_names), p=style_p)]
        effect, style_index = STYLE_EFFECTS[style_name], STYLES.index(style_name)
        seg_end = min(len(speed) + rng.uniform(*kind["length_s"]), duration_s - end_idle)
        stop_p = rng.uniform(*kind["stop_p"])
        while len(speed) < seg_end:
            cruise = min(rng.uniform(*kind["cruise_kmh"]) * effect["cruise"] * driver.cruise_scale, MAX_CRUISE_KMH)
            accel = float(np.clip(rng.uniform(*kind["accel"]) * effect["accel"] * driver.accel_scale, 0.3,
                                  MAX_ACCEL_MS2))
            decel = float(np.clip(rng.uniform(*kind["decel"]) * effect["decel"] * driver.accel_scale, 0.3,
                                  MAX_DECEL_MS2))
            jerk = driver.jerk_ms3 * effect["accel"] * rng.uniform(0.75, 1.33)
            leg_end = len(speed) + _log_uniform(rng, *kind["leg_s"])

            def step(target: float, accel: float = accel, decel: float = decel, jerk: float = jerk,
                     style_index: int = style_index) -> None:
                nonlocal v, a
                v, a = _drive_step(v, a, target, accel, decel, jerk, driver.gain)
                speed.append(v)
                style.append(style_index)

            wander = 0.0
            while len(speed) < min(leg_end, seg_end):
                # Ornstein-Uhlenbeck wander around the cruise speed: drivers do not hold speed exactly.
                wander += -0.05 * wander + rng.normal(0.0, effect["wander"])
                step(max(cruise + wander, 0.0))
            if kind["stop_s"][1] == 0:
                continue  # highway segments flow into the next segment without stopping
            if rng.random() < stop_p or len(speed) >= seg_end:
                long_stop = rng.random() < driver.long_stop_p
                stop_for = _log_uniform(rng, 60.0, MAX_IDLE_S) if long_stop else _log_uniform(rng, *kind["stop_s"])
                while v > 0:
                    step(0.0)
                stop_for = min(stop_for, max(duration_s - end_idle - len(speed), 0.0))  # the end idle follows
                speed.extend([0.0] * int(stop_for))
                style.extend([style_index] * int(stop_for))
    while v > 0:  # come to rest, then idle before switching off
        v, a = _drive_step(v, a, 0.0, 1.0, 1.5 * driver.accel_scale, driver.jerk_ms3, driver.gain)
        speed.append(v)
        style.append(0)
    speed.extend([0.0] * end_idle)
    style.extend([0] * end_idle)
    return speed, style


def _classic_trip(rng: np.random.Generator, duration_s: float, kinds: list[str], kind_p: np.ndarray,
                  style_names: list[str], style_p: np.ndarray) -> tuple[list[float], list[int]]:
    """Speed and style per second of a "classic" trip: trip-gen/2's driving, draw for draw."""
    speed: list[float] = [0.0] * int(rng.uniform(20, 90))  # warm-up idle before moving off
    style: list[int] = [0] * len(speed)
    v = 0.0
    end_idle = int(rng.uniform(10, 40))
    while len(speed) < duration_s - end_idle:
        kind = CLASSIC_KINDS[kinds[rng.choice(len(kinds), p=kind_p)]]
        style_name = style_names[rng.choice(len(style_names), p=style_p)]
        effect, style_index = STYLE_EFFECTS[style_name], STYLES.index(style_name)
        seg_end = min(len(speed) + rng.uniform(*kind["length_s"]), duration_s - end_idle)
        accel = rng.uniform(*kind["accel"]) * effect["accel"]
        decel = rng.uniform(*kind["decel"]) * effect["decel"]

        def step(target: float, accel: float = accel, decel: float = decel, style_index: int = style_index) -> None:
            nonlocal v
            v = _approach(v, target, accel, decel)
            speed.append(v)
            style.append(style_index)

        while len(speed) < seg_end:
            cruise = rng.uniform(*kind["cruise_kmh"]) * effect["cruise"]
            leg_end = len(speed) + rng.uniform(*kind["leg_s"])
            wander = 0.0
            while len(speed) < min(leg_end, seg_end):
                # Ornstein-Uhlenbeck wander around the cruise speed: drivers do not hold speed exactly.
                wander += -0.05 * wander + rng.normal(0.0, effect["wander"])
                step(max(cruise + wander, 0.0))
            if rng.random() < kind["stop_p"] or len(speed) >= seg_end:
                stop_for = rng.uniform(*kind["stop_s"]) if kind["stop_s"][1] > 0 else 0.0
                if len(speed) >= seg_end and kind["stop_s"][1] == 0:
                    continue  # highway segments flow into the next segment without stopping
                while v > 0:
                    step(0.0)
                speed.extend([0.0] * int(stop_for))
                style.extend([style_index] * int(stop_for))
    while v > 0:  # come to rest, then idle before switching off
        v = _approach(v, 0.0, 1.0, 1.5)
        speed.append(v)
        style.append(0)
    speed.extend([0.0] * end_idle)
    style.extend([0] * end_idle)
    return speed, style


def generate_trip(seed: int, duration_s: float = 1800.0, mix: dict[str, float] | None = None,
                  name: str | None = None, styles: dict[str, float] | None = None,
                  driving: str = "classic") -> SpeedProfile:
    """A realistic trip of about `duration_s` seconds, starting and ending at rest with the engine idling.

    `mix` weights the segment kinds (`SEGMENT_KINDS`; default `DEFAULT_MIX`); `styles` weights the driving styles
    (normal / eco / aggressive; default all normal), drawn per segment. Each segment is a series of legs:
    close on a cruise speed, hold it with a slowly wandering speed, then stop (idling at a junction) or change
    speed. `driving` (`DRIVING`) says how. "classic": trip-gen/2's driving (`CLASSIC_KINDS`), a constant
    acceleration per segment. "varied": the trip's `Driver` (drawn first) and each leg's draws (`SEGMENT_KINDS`)
    set it: peak accelerations per leg, a jerk limit (speed changes are S-curves), stop chances per segment, leg
    lengths and stop times log-uniform (short bursts and long cruises, a few seconds' halt and a minutes-long
    one), start and end idles up to `MAX_IDLE_S`. Deterministic for `seed` and `driving`.
    """
    kinds, kind_p = _weights(dict(mix or DEFAULT_MIX), SEGMENT_KINDS, "segment kind")
    style_names, style_p = _weights(dict(styles or {"normal": 1.0}), STYLES, "driving style")
    if driving not in DRIVING:
        raise ValueError(f"unknown driving {driving!r}; expected one of: {', '.join(DRIVING)}")
    if duration_s < 120:
        raise ValueError("a generated trip needs duration_s >= 120")
    rng = np.random.default_rng([seed, 0xC7C1E])
    trip = _varied_trip if driving == "varied" else _classic_trip
    speed, style = trip(rng, duration_s, kinds, kind_p, style_names, style_p)
    label = name or f"generated-{seed}"
    kind_mix = dict(zip(kinds, kind_p.round(3).tolist(), strict=False))
    provenance = f"dtg-hil {GENERATOR_VERSION} ({driving} driving), seed {seed}, mix {kind_mix}"
    if styles:
        provenance += f", styles {dict(zip(style_names, style_p.round(3).tolist(), strict=False))}"
    return SpeedProfile(label, np.round(np.asarray(speed, dtype=float), 3), provenance,
                        np.asarray(style, dtype=np.int64))
