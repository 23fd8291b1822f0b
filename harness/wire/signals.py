"""The vehicle signals the DTG unit reads, and the trace that carries them.

This module is the contract between the vehicle plant and everything downstream (rest-bus, firmware, app,
training): signal names, units, physical ranges and the `Trace` container. It does no physics itself.

A reading of NaN means "no reading" (a sensor dropout): downstream parts must treat it as missing, never as 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The reference system's feature order; the unit samples these at 1 Hz.
SIGNALS: tuple[str, ...] = (
    "vehicle_speed",
    "engine_rpm",
    "throttle_position",
    "brake_pressure",
    "coolant_temp",
    "fuel_level",
    "acceleration_x",
    "latitude",
    "longitude",
    "altitude",
)

UNITS: dict[str, str] = {
    "vehicle_speed": "km/h",
    "engine_rpm": "rpm",
    "throttle_position": "%",
    "brake_pressure": "bar",
    "coolant_temp": "degC",
    "fuel_level": "%",
    "acceleration_x": "m/s^2",
    "latitude": "deg",
    "longitude": "deg",
    "altitude": "m",
    # auxiliary channels (OBD-II PIDs and ground truth)
    "fuel_rate": "L/h",
    "engine_load": "%",
    "intake_air_temp": "degC",
    "maf": "g/s",
    "battery_voltage": "V",
    "gear": "-",
}

#: Physical range of each signal: a healthy vehicle's readings never leave it.
PHYSICAL_RANGE: dict[str, tuple[float, float]] = {
    "vehicle_speed": (0.0, 200.0),
    "engine_rpm": (0.0, 8000.0),
    "throttle_position": (0.0, 100.0),
    "brake_pressure": (0.0, 160.0),
    "coolant_temp": (-40.0, 130.0),
    "fuel_level": (0.0, 100.0),
    "acceleration_x": (-11.0, 8.0),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
    "altitude": (-450.0, 5000.0),
    "fuel_rate": (0.0, 120.0),
    "engine_load": (0.0, 100.0),
    "intake_air_temp": (-40.0, 90.0),
    "maf": (0.0, 655.35),
    "battery_voltage": (9.0, 16.0),
    "gear": (0.0, 8.0),
}

#: Auxiliary channels the plant also produces: OBD-II PIDs beyond the ten, and the ground-truth fuel rate.
AUX_SIGNALS: tuple[str, ...] = ("fuel_rate", "engine_load", "intake_air_temp", "maf", "battery_voltage", "gear")

PLANT_RATE_HZ = 10.0
SAMPLE_RATE_HZ = 1.0


@dataclass(frozen=True)
class LabelledEvent:
    """Ground truth for one injected anomaly: its type, when it is active and how strong it is."""

    type: str
    start_s: float
    end_s: float
    severity: float
    signal: str | None = None  # the signal a sensor fault acts on; None for behavioural anomalies

    def active(self, t_s: np.ndarray) -> np.ndarray:
        """Boolean mask of the samples inside [start_s, end_s)."""
        return (t_s >= self.start_s) & (t_s < self.end_s)


@dataclass
class Trace:
    """A drive as the vehicle produced it, at `PLANT_RATE_HZ`.

    `signals` holds what the sensors read (faults included), `truth` the fault-free values of the same ten
    signals, `aux` the auxiliary channels (`fuel_rate` there is the ground-truth engine fuel rate, L/h),
    `events` the ground-truth anomaly labels, and `style` the driving style per sample (an index into
    `harness.wire.behaviour.STYLES`: normal, eco, aggressive), the one the true driving earns
    (`harness.world.driving_style`); None where it is not known (a replayed recording).
    """

    t_s: np.ndarray
    signals: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    aux: dict[str, np.ndarray]
    events: list[LabelledEvent] = field(default_factory=list)
    style: np.ndarray | None = None

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] + 1.0 / PLANT_RATE_HZ) if len(self.t_s) else 0.0

    def index_at(self, t_s: float) -> int:
        """Index of the latest sample at or before `t_s` (sample-and-hold), clipped to the trace."""
        i = int(np.floor(t_s * PLANT_RATE_HZ + 1e-9))
        return min(max(i, 0), len(self.t_s) - 1)

    def reading_at(self, t_s: float) -> dict[str, float]:
        """Every channel's reading at scenario time `t_s` (signals and aux), sample-and-hold."""
        i = self.index_at(t_s)
        out = {name: float(values[i]) for name, values in self.signals.items()}
        out.update({name: float(values[i]) for name, values in self.aux.items()})
        return out

    def label_mask(self, anomaly_type: str | None = None, t_s: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of samples inside any event (of `anomaly_type`, if given)."""
        times = self.t_s if t_s is None else t_s
        mask = np.zeros(len(times), dtype=bool)
        for event in self.events:
            if anomaly_type is None or event.type == anomaly_type:
                mask |= event.active(times)
        return mask

    def resample(self, rate_hz: float = SAMPLE_RATE_HZ) -> Trace:
        """The trace as a unit polling at `rate_hz` sees it: readings at each tick, fuel rate averaged over it."""
        step = int(round(PLANT_RATE_HZ / rate_hz))
        idx = np.arange(0, len(self.t_s), step)
        fuel = self.aux["fuel_rate"]
        n_full = len(fuel) // step * step
        fuel_mean = fuel[:n_full].reshape(-1, step).mean(axis=1)
        if len(fuel_mean) < len(idx):
            fuel_mean = np.append(fuel_mean, fuel[n_full:].mean())
        aux = {name: values[idx] for name, values in self.aux.items()}
        aux["fuel_rate"] = fuel_mean
        return Trace(
            t_s=self.t_s[idx],
            signals={name: values[idx] for name, values in self.signals.items()},
            truth={name: values[idx] for name, values in self.truth.items()},
            aux=aux,
            events=list(self.events),
            style=None if self.style is None else self.style[idx],
        )
