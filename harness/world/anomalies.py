"""Anomaly injection with ground-truth labels.

Each anomaly has a start time `at_s`, an `onset_s` ramp in, a `sustain_s` at full strength and a
`recovery_s` ramp out, and a `severity` in (0, 1]. Its label covers [at_s, at_s + onset + sustain + recovery).

Two families, with different reach:
- behavioural anomalies change the vehicle or the driving, and the plant responds (speed, rpm, fuel, heat all
  follow): harsh braking, aggressive acceleration, erratic driving and excessive idling reshape the driver's
  speed profile; over-revving changes the gear the driver holds; overheating degrades the cooling system; a fuel
  leak drains the tank past the engine;
- reading faults change only what a sensor reports: GPS jump, stuck value (frozen `severity` x the signal's drift
  span off its reading), drift, spike noise, dropout (`severity` the share of readings lost).

Bus faults (frame loss, silent IDs, flooding, bus-off) act on the CAN bus, not on the vehicle, and are not
modelled here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.wire.signals import PHYSICAL_RANGE, SIGNALS, LabelledEvent
from harness.world.route import offset_position

SPEED_PROFILE_TYPES = ("harsh_braking", "aggressive_acceleration", "erratic_driving", "excessive_idling")
VEHICLE_TYPES = ("overheating", "over_revving", "fuel_leak")
BEHAVIOURAL_TYPES = SPEED_PROFILE_TYPES + VEHICLE_TYPES
SENSOR_FAULT_TYPES = ("stuck_value", "drift", "spike_noise", "dropout")
READING_TYPES = ("gps_jump",) + SENSOR_FAULT_TYPES
#: The reference system's eight, then the sensor faults.
ANOMALY_TYPES = ("overheating", "over_revving", "harsh_braking", "aggressive_acceleration", "erratic_driving",
                 "fuel_leak", "excessive_idling", "gps_jump") + SENSOR_FAULT_TYPES

#: How far a drift at severity 1 moves each signal's reading.
DRIFT_SPAN: dict[str, float] = {
    "vehicle_speed": 25.0, "engine_rpm": 1200.0, "throttle_position": 25.0, "brake_pressure": 25.0,
    "coolant_temp": 30.0, "fuel_level": 20.0, "acceleration_x": 2.0, "latitude": 0.005, "longitude": 0.005,
    "altitude": 250.0,
}


@dataclass(frozen=True)
class Anomaly:
    """One scheduled anomaly. Times are scenario seconds."""

    type: str
    at_s: float
    severity: float = 0.7
    onset_s: float = 0.0
    sustain_s: float = 60.0
    recovery_s: float = 0.0
    signal: str | None = None  # required for sensor faults: which of the ten signals misreads

    @property
    def end_s(self) -> float:
        return self.at_s + self.onset_s + self.sustain_s + self.recovery_s

    def envelope(self, t_s: np.ndarray) -> np.ndarray:
        """Strength over time: 0 outside the window, ramps over onset/recovery, 1 while sustained."""
        rel = t_s - self.at_s
        up = np.ones_like(rel) if self.onset_s < 1e-3 else np.clip((rel + 1e-9) / self.onset_s, 0.0, 1.0)
        rel_end = self.end_s - t_s
        down = np.ones_like(rel) if self.recovery_s < 1e-3 else np.clip(rel_end / self.recovery_s, 0.0, 1.0)
        return np.where((t_s >= self.at_s) & (t_s < self.end_s), np.minimum(up, down), 0.0)

    def label(self) -> LabelledEvent:
        return LabelledEvent(self.type, self.at_s, self.end_s, self.severity, self.signal)


def _rng(seed: int, anomaly_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0xA40, anomaly_index])


def _brake_pattern(t: np.ndarray, base: np.ndarray, a: Anomaly) -> np.ndarray:
    """Cruise at a brisk speed, brake hard every ~25 s, pull away again (driver speed target, km/h)."""
    decel_kmh_s = (3.5 + 4.5 * a.severity) * 3.6  # 3.5..8 m/s^2; harsh-braking rules trigger near 3 m/s^2
    cruise = max(float(np.max(base)), 45.0 + 25.0 * a.severity)
    out = np.empty_like(base)
    v, phase, dt = float(base[0]), "accel", float(t[1] - t[0]) if len(t) > 1 else 0.1
    floor = cruise * (0.35 - 0.3 * a.severity)
    hold = 0.0
    for i in range(len(t)):
        if phase == "accel":
            v = min(cruise, v + 2.0 * 3.6 * dt)
            hold = hold + dt if v >= cruise else 0.0
            if hold >= 8.0:
                phase = "brake"
        elif phase == "brake":
            v = max(floor, v - decel_kmh_s * dt)
            if v <= floor:
                phase, hold = "accel", 0.0
        out[i] = v
    return out


def _accel_pattern(t: np.ndarray, base: np.ndarray, a: Anomaly) -> np.ndarray:
    """Repeated hard pull-aways: ease off to a low speed, then floor it (driver speed target, km/h)."""
    accel_kmh_s = (2.8 + 2.7 * a.severity) * 3.6  # the plant caps this at what the engine can deliver
    low, high = 10.0, 60.0 + 40.0 * a.severity
    out = np.empty_like(base)
    v, phase, dt = float(base[0]), "slow", float(t[1] - t[0]) if len(t) > 1 else 0.1
    for i in range(len(t)):
        if phase == "slow":
            v = max(low, v - 2.0 * 3.6 * dt)
            phase = "launch" if v <= low else phase
        else:
            v = min(high, v + accel_kmh_s * dt)
            phase = "slow" if v >= high else phase
        out[i] = v
    return out


def _erratic_pattern(t: np.ndarray, base: np.ndarray, a: Anomaly, rng: np.random.Generator) -> np.ndarray:
    """Speed weaving: bursts of acceleration and braking switching every 1.5-5 s around the base speed."""
    amp = 2.0 + 2.5 * a.severity  # m/s^2
    limit = 10.0 + 20.0 * a.severity  # km/h either side of the base speed
    out = np.empty_like(base)
    offset, dt = 0.0, float(t[1] - t[0]) if len(t) > 1 else 0.1
    accel, switch_at = amp, 0.0
    for i in range(len(t)):
        if t[i] >= switch_at:
            accel = -np.sign(accel) * amp * rng.uniform(0.6, 1.0)
            switch_at = t[i] + rng.uniform(1.5, 5.0)
        offset = float(np.clip(offset + accel * 3.6 * dt, -limit, limit))
        if base[i] + offset < 0:
            offset = -base[i]
        out[i] = base[i] + offset
    return out


def apply_speed_anomalies(t_s: np.ndarray, speed_kmh: np.ndarray, anomalies: list[Anomaly],
                          seed: int) -> np.ndarray:
    """The driver's speed target with speed-profile anomalies blended in by their envelopes."""
    speed = speed_kmh.astype(float).copy()
    for index, a in enumerate(anomalies):
        if a.type not in SPEED_PROFILE_TYPES:
            continue
        env = a.envelope(t_s)
        window = env > 0
        if not window.any():
            continue
        t, base = t_s[window], speed[window]
        if a.type == "excessive_idling":
            pattern = np.zeros_like(base)
        elif a.type == "harsh_braking":
            pattern = _brake_pattern(t, base, a)
        elif a.type == "aggressive_acceleration":
            pattern = _accel_pattern(t, base, a)
        else:
            pattern = _erratic_pattern(t, base, a, _rng(seed, index))
        speed[window] = base + env[window] * (pattern - base)
    return speed


@dataclass(frozen=True)
class VehicleModifiers:
    """How behavioural anomalies change the vehicle itself, per plant sample."""

    cooling_efficiency: np.ndarray  # 1 = healthy radiator and fan; overheating lowers it
    rpm_target: np.ndarray  # over-revving: rpm the driver holds by staying in a low gear (0 = normal driving)
    idle_rpm_boost: np.ndarray  # excessive idling: fast idle while parked
    fuel_leak_lph: np.ndarray  # fuel leaving the tank past the engine


def vehicle_modifiers(t_s: np.ndarray, anomalies: list[Anomaly], redline_rpm: float) -> VehicleModifiers:
    cooling = np.ones_like(t_s)
    rpm_target = np.zeros_like(t_s)
    idle_boost = np.zeros_like(t_s)
    leak = np.zeros_like(t_s)
    for a in anomalies:
        env = a.envelope(t_s)
        if a.type == "overheating":
            # Fan or radiator failure: 25 % of cooling left at severity 0, 1 % at severity 1.
            cooling *= 1.0 - env * (0.75 + 0.24 * a.severity)
        elif a.type == "over_revving":
            target = (0.72 + 0.26 * a.severity) * redline_rpm
            rpm_target = np.maximum(rpm_target, np.where(env > 0, env * target, 0.0))
        elif a.type == "excessive_idling":
            idle_boost = np.maximum(idle_boost, env * 350.0 * a.severity)
        elif a.type == "fuel_leak":
            leak += env * (1.0 + 14.0 * a.severity)
    return VehicleModifiers(cooling, rpm_target, idle_boost, leak)


def stuck_at(value: float, a: Anomaly, rng: np.random.Generator) -> float:
    """The value a `stuck_value` reading freezes at: `severity` x the signal's `DRIFT_SPAN` off its reading at the
    fault's start, to a side drawn by `rng` (the other side when that one leaves the signal's physical range):
    severity near 0 freezes the reading where it was (the stuck sensor that only shows as the truth moves away from
    it), 1 latches it a full span off (e.g. 25 km/h, 30 degC, 1200 rpm).

    >>> rng = np.random.default_rng(0)
    >>> stuck_at(0.0, Anomaly("stuck_value", 10.0, severity=0.4, signal="vehicle_speed"), rng)
    10.0
    """
    lo, hi = PHYSICAL_RANGE[a.signal]
    offset = a.severity * DRIFT_SPAN[a.signal] * (1.0 if rng.random() < 0.5 else -1.0)
    if not lo <= value + offset <= hi:
        offset = -offset
    return float(np.clip(value + offset, lo, hi))


def apply_reading_faults(t_s: np.ndarray, readings: dict[str, np.ndarray], anomalies: list[Anomaly],
                         seed: int) -> dict[str, np.ndarray]:
    """Readings as faulty sensors report them. Only the named signal changes; the vehicle does not."""
    out = {name: values.copy() for name, values in readings.items()}
    for index, a in enumerate(anomalies):
        if a.type not in READING_TYPES:
            continue
        env = a.envelope(t_s)
        active = env > 0
        if not active.any():
            continue
        rng = _rng(seed, index)
        if a.type == "gps_jump":
            distance = 300.0 + 4700.0 * a.severity  # a multipath or spoofed fix, hundreds of metres to km
            bearing = rng.uniform(0.0, 2.0 * np.pi)
            lat, lon = offset_position(out["latitude"][active], out["longitude"][active],
                                       distance * np.cos(bearing), distance * np.sin(bearing))
            out["latitude"][active], out["longitude"][active] = lat, lon
            continue
        values = out[a.signal]
        lo, hi = PHYSICAL_RANGE[a.signal]
        if a.type == "stuck_value":
            stuck = stuck_at(values[int(np.argmax(active))], a, rng)
            blend = values[active] + env[active] * (stuck - values[active])
            values[active] = np.where(env[active] >= 1.0, stuck, blend)
        elif a.type == "drift":
            sign = 1.0 if rng.random() < 0.5 else -1.0
            drifted = values[active] + sign * env[active] * a.severity * DRIFT_SPAN[a.signal]
            values[active] = np.clip(drifted, lo, hi)
        elif a.type == "spike_noise":
            p = env[active] * (0.02 + 0.13 * a.severity)
            hit = rng.random(active.sum()) < p
            size = rng.choice([-1.0, 1.0], hit.sum()) * DRIFT_SPAN[a.signal] * (0.5 + 1.5 * a.severity)
            spiked = values[active]
            spiked[hit] += size
            values[active] = spiked
        elif a.type == "dropout":
            # An intermittent connector: this share of the readings is lost (severity 1: all of them), rising over
            # the onset and falling over the recovery with the envelope.
            lost = rng.random(active.sum()) < env[active] * a.severity
            dropped = values[active]
            dropped[lost] = np.nan
            values[active] = dropped
    return out



#: How long each type of anomaly lasts at full strength (s) when drawn at random: faults of the vehicle persist
#: until it is repaired or stopped (a failed fan heats the engine for as long as it runs; a leak keeps leaking: a
#: one-minute "leak" of a few L/h would be below the tank sender's resolution), sensor faults and driving come
#: and go.
SUSTAIN_RANGE_S: dict[str, tuple[float, float]] = {"overheating": (240.0, 480.0), "fuel_leak": (240.0, 600.0)}
DEFAULT_SUSTAIN_RANGE_S = (60.0, 240.0)


def random_shape(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    """(onset_s, sustain_s, recovery_s) of an anomaly of `kind` drawn at random: faults that set in at once
    (GPS jump, stuck value, dropout) have no ramp in, and a GPS jump or a stuck value no ramp out."""
    onset = float(round(rng.uniform(0.0, 60.0) if kind not in ("gps_jump", "stuck_value", "dropout") else 0.0, 1))
    sustain = float(round(rng.uniform(*SUSTAIN_RANGE_S.get(kind, DEFAULT_SUSTAIN_RANGE_S)), 1))
    recovery = float(round(rng.uniform(0.0, 60.0) if kind not in ("gps_jump", "stuck_value") else 0.0, 1))
    return onset, sustain, recovery


def random_schedule(rng: np.random.Generator, duration_s: float, count: int,
                    types: tuple[str, ...] = ANOMALY_TYPES, earliest_s: float = 120.0,
                    gap_s: float = 60.0) -> list[Anomaly]:
    """Up to `count` non-overlapping anomalies of random types, severities and shapes within a trip.

    Used to make labelled validation and test trips; fewer are returned when the trip is too short.
    """
    out: list[Anomaly] = []
    slots = np.sort(rng.uniform(earliest_s, max(earliest_s, duration_s - 200.0), count))
    free_from = earliest_s
    for start in slots:
        kind = str(rng.choice(types))
        at_s = float(round(max(start, free_from), 1))
        onset, sustain, recovery = random_shape(rng, kind)
        anomaly = Anomaly(kind, at_s, float(round(rng.uniform(0.3, 1.0), 2)), onset, sustain, recovery,
                          str(rng.choice(SIGNALS)) if kind in SENSOR_FAULT_TYPES else None)
        if anomaly.end_s > duration_s - 1.0:
            break
        out.append(anomaly)
        free_from = anomaly.end_s + gap_s
    return out
