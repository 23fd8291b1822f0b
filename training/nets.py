"""The networks, written so that everything the device must do to a raw window is inside the exported graph.

- `Channels`: raw window [B, 60, 10] (device units, NaN = no reading) → standardised channels [B, C, 60]:
  NaN filled with the window's own mean of that signal (the training mean if the signal is missing throughout),
  a missing-reading mask per signal, and position used only through differences (GPS step length; altitude
  step), never absolutely.
- `FuelTCN`: dilated causal Conv1d stack on `Channels`, a per-second fuel rate head, averaged over the window.
- `AnomalyFeatures`: physics-consistency statistics of a window (missing-reading share, noise level, spikes,
  exact repeats, GPS step vs speed, accelerometer vs speed derivative, rpm/speed vs the gear lines, tank-level
  slope vs the fuel model's consumption, coolant level and slope, pedal consistency), each attributed to the
  signals it judges (`FEATURE_SIGNALS`).
- `FeatureAE`: a small MLP autoencoder over standardised features; `AnomalyModel` scores a window by its
  largest standardised reconstruction residual and reports the largest per signal.
- `LstmAE`: the reference family (LSTM autoencoder over `Channels`), kept for the side-by-side comparison.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.inference.features import WINDOW_S
from harness.wire.signals import PHYSICAL_RANGE, SIGNALS
from harness.world.vehicle import VEHICLES

N_SIGNALS = len(SIGNALS)
SP, RPM, THR, BRK, COL, FUEL, ACC, LAT, LON, ALT = range(N_SIGNALS)
DEG_M = math.pi / 180.0 * 6_371_000.0  # metres per degree of latitude
G = 9.8066
#: Tank size used to turn the consumption estimate into an expected level slope (both presets: 64-65 L).
TANK_L = float(np.mean([v.tank_l for v in VEHICLES.values()]))
#: rpm per km/h in every gear of the vehicles the models are trained for (log-space "gear lines").
GEAR_LINES = np.sort(np.log([v.rpm_in_gear(1.0, g) for v in VEHICLES.values()
                             for g in range(1, len(v.gear_ratios) + 1)]))

CHANNELS: tuple[str, ...] = (
    "speed_ms", "rpm_k", "throttle_pct", "brake_bar", "coolant_c", "fuel_level_step_pct", "accel_x_ms2",
    "gps_step_m", "altitude_step_m", "speed_step_ms",
) + tuple(f"missing_{s}" for s in SIGNALS)


def fill_missing(x: torch.Tensor, fallback: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN → the window's mean of that signal (or `fallback` [10] if the signal is missing throughout)."""
    nan = torch.isnan(x)
    valid = (~nan).to(x.dtype)
    count = valid.sum(dim=1, keepdim=True)
    total = torch.where(nan, torch.zeros_like(x), x).sum(dim=1, keepdim=True)
    mean = torch.where(count > 0, total / count.clamp(min=1.0), fallback.view(1, 1, -1))
    return torch.where(nan, mean.expand_as(x), x), valid


def _step(v: torch.Tensor) -> torch.Tensor:
    """v[t] - v[t-1] along dim 1, 0 at t = 0."""
    return F.pad(v[:, 1:] - v[:, :-1], (0, 0, 1, 0)) if v.dim() == 3 else F.pad(v[:, 1:] - v[:, :-1], (1, 0))


def gps_step_m(xf: torch.Tensor) -> torch.Tensor:
    """Distance (m) between consecutive fixes [B, T] (0 at t = 0), flat-earth."""
    lat, lon = xf[:, :, LAT], xf[:, :, LON]
    north = _step(lat) * DEG_M
    east = _step(lon) * DEG_M * torch.cos(lat * (math.pi / 180.0))
    return torch.sqrt(north * north + east * east + 1e-6)


#: The physical range of each signal, as lower and upper bounds in SIGNALS order: readings outside are clipped.
RANGE_LO = np.array([PHYSICAL_RANGE[s][0] for s in SIGNALS], dtype=np.float32)
RANGE_HI = np.array([PHYSICAL_RANGE[s][1] for s in SIGNALS], dtype=np.float32)
#: What the fuel model looks at (position, altitude, coolant and tank level carry no fuel information here that
#: speed, accelerometer, rpm and pedals do not, and they are where GPS jumps and spikes live).
FUEL_CHANNELS: tuple[str, ...] = ("speed_ms", "rpm_k", "throttle_pct", "brake_bar", "accel_x_ms2", "speed_step_ms",
                                  "missing_vehicle_speed", "missing_engine_rpm", "missing_throttle_position",
                                  "missing_brake_pressure", "missing_acceleration_x")


class Channels(nn.Module):
    """Raw window [B, T, 10] → the named channels [B, C, T], standardised and clipped to ±`clip`."""

    def __init__(self, fallback: np.ndarray, names: tuple[str, ...] = CHANNELS, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, clip: float = 8.0):
        super().__init__()
        unknown = sorted(set(names) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r}; expected one of: {', '.join(CHANNELS)}")
        self.names = tuple(names)
        self.clip = clip
        c = len(names)
        self.register_buffer("fallback", torch.tensor(fallback, dtype=torch.float32))
        self.register_buffer("lo", torch.tensor(RANGE_LO))
        self.register_buffer("hi", torch.tensor(RANGE_HI))
        self.register_buffer("mean", torch.tensor(np.zeros(c) if mean is None else mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(np.ones(c) if std is None else std, dtype=torch.float32))

    def raw_channels(self, x: torch.Tensor) -> torch.Tensor:
        xf, valid = fill_missing(x, self.fallback)
        xf = torch.minimum(torch.maximum(xf, self.lo), self.hi)
        speed = xf[:, :, SP] / 3.6
        make = {
            "speed_ms": lambda: speed, "rpm_k": lambda: xf[:, :, RPM] / 1000.0, "throttle_pct": lambda: xf[:, :, THR],
            "brake_bar": lambda: xf[:, :, BRK], "coolant_c": lambda: xf[:, :, COL],
            "fuel_level_step_pct": lambda: _step(xf[:, :, FUEL]), "accel_x_ms2": lambda: xf[:, :, ACC],
            "gps_step_m": lambda: gps_step_m(xf), "altitude_step_m": lambda: _step(xf[:, :, ALT]),
            "speed_step_ms": lambda: _step(speed),
        }
        chans = [make[n]() if n in make else 1.0 - valid[:, :, SIGNALS.index(n[len("missing_"):])]
                 for n in self.names]
        return torch.stack(chans, dim=1)  # [B, C, T]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.raw_channels(x) - self.mean.view(1, -1, 1)) / self.std.view(1, -1, 1)
        return z.clamp(-self.clip, self.clip)


class CausalConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, 0)))


class FuelTCN(nn.Module):
    """Dilated causal TCN → per-second fuel rate → mean over the window (L/h)."""

    def __init__(self, channels: Channels, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8),
                 kernel: int = 3, scale_lph: float = 10.0):
        super().__init__()
        self.channels = channels
        self.inp = nn.Conv1d(len(channels.names), width, 1)
        self.blocks = nn.ModuleList([CausalConv(width, width, kernel, d) for d in dilations])
        self.head = nn.Conv1d(width, 1, 1)
        self.scale = scale_lph

    def per_second(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inp(self.channels(x)))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(h)[:, 0, :] * self.scale  # [B, T]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.per_second(x).mean(dim=1, keepdim=True)  # [B, 1]


#: Inputs of the cross-signal predictor; each head is blind to the signal it predicts.
CROSS_CHANNELS: tuple[str, ...] = ("speed_ms", "accel_x_ms2", "speed_step_ms", "brake_bar", "rpm_k", "throttle_pct")
_RPM_INPUTS = [0, 1, 2, 5]  # speed, accelerometer, speed step, throttle
_THR_INPUTS = [0, 1, 2, 3, 4]  # speed, accelerometer, speed step, brake, rpm
_CROSS_RPM, _CROSS_THR = CROSS_CHANNELS.index("rpm_k"), CROSS_CHANNELS.index("throttle_pct")


class CrossPredictor(nn.Module):
    """Per-second rpm and throttle predicted from the other signals (learned on normal driving).

    Drift or a stuck pedal sensor, or an engine held at high rpm, leave a residual that the plain statistics of
    each signal cannot show. Returns standardised (predicted, actual) for rpm and throttle, [B, T] each.
    """

    def __init__(self, channels: Channels, width: int = 16):
        super().__init__()
        self.channels = channels

        def net(n_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(n_in, width, 5, padding=2), nn.ReLU(), nn.Conv1d(width, width, 1),
                                 nn.ReLU(), nn.Conv1d(width, 1, 1))
        self.rpm_net, self.thr_net = net(len(_RPM_INPUTS)), net(len(_THR_INPUTS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.channels(x)
        rpm_pred = self.rpm_net(c[:, _RPM_INPUTS])[:, 0]
        thr_pred = self.thr_net(c[:, _THR_INPUTS])[:, 0]
        return rpm_pred, c[:, _CROSS_RPM], thr_pred, c[:, _CROSS_THR]


def _masked_mean(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (v * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


def _masked_max(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, v, torch.full_like(v, -1e9)).max(dim=1).values.clamp(min=0.0)


def _spike_excursions(v: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far each sample of v [B, T] (or [B, T, S]) stands out from the median of the five around it along
    time ([B, T-4] or [B, T-4, S]), and where that is measured on valid samples only (w, and the two on each
    side)."""
    t = v.shape[1]
    around = torch.stack([v[:, k:t - 4 + k] for k in range(5)], dim=-1)
    excursion = (v[:, 2:t - 2] - torch.sort(around, dim=-1).values[..., 2]).abs()
    return excursion, w[:, :t - 4] * w[:, 1:t - 3] * w[:, 2:t - 2] * w[:, 3:t - 1] * w[:, 4:]


def _slope_against(y: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted least-squares slope of y [B, T] against t [B, T]."""
    tm = _masked_mean(t, w).unsqueeze(1)
    ym = _masked_mean(y, w).unsqueeze(1)
    return (w * (t - tm) * (y - ym)).sum(dim=1) / (w * (t - tm) ** 2).sum(dim=1).clamp(min=1e-6)


def _slope_per_min(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted least-squares slope of y [B, T] against t (per minute)."""
    t = torch.arange(y.shape[1], dtype=y.dtype, device=y.device).view(1, -1)
    tm = _masked_mean(t.expand_as(y), w).unsqueeze(1)
    ym = _masked_mean(y, w).unsqueeze(1)
    num = (w * (t - tm) * (y - ym)).sum(dim=1)
    den = (w * (t - tm) ** 2).sum(dim=1).clamp(min=1.0)
    return num / den * 60.0


def _robust_slope_per_min(y: torch.Tensor, w: torch.Tensor, band: float) -> torch.Tensor:
    """`_slope_per_min` refitted without the samples more than `band` off the first fit (spikes)."""
    t = torch.arange(y.shape[1], dtype=y.dtype, device=y.device).view(1, -1)
    slope = _slope_per_min(y, w) / 60.0
    tm = _masked_mean(t.expand_as(y), w).unsqueeze(1)
    ym = _masked_mean(y, w).unsqueeze(1)
    fit = ym + slope.unsqueeze(1) * (t - tm)
    return _slope_per_min(y, w * ((y - fit).abs() < band).to(y.dtype))


def _slosh_corrected_level(xf: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Tank level [B, T] with the sender's slosh undone: it reads back by 0.15 %/(m/s^2) of the acceleration
    (the central speed derivative of v [B, T], m/s)."""
    return xf[:, :, FUEL] + 0.15 * F.pad(0.5 * (v[:, 2:] - v[:, :-2]), (1, 1))


def _std(v: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(((v - v.mean(dim=1, keepdim=True)) ** 2).mean(dim=1) + 1e-12)


# Each feature with the signals it judges; the order is the order of AnomalyFeatures' output.
_NOISY = (SP, RPM, THR, BRK, COL, FUEL, ACC, ALT)
#: Signals whose reading keeps some noise through the bus: OBD-II sends coolant in whole degrees and the tank
#: level in 0.4 % steps, so a flat reading of those is normal and their step spread says nothing.
_NOISE_KEPT = (SP, RPM, THR, BRK, ACC, ALT)
#: Floors for log noise features (about each signal's reading resolution): the log of a stuck signal is finite.
# (OBD-II sends speed in 1 km/h, rpm in 0.25 rpm, throttle and tank level in 0.39 %, coolant in 1 degC).
_NOISE_FLOOR = {SP: 0.1, RPM: 0.1, THR: 0.05, BRK: 1e-3, COL: 0.1, FUEL: 0.05, ACC: 1e-3, ALT: 1e-2}
#: Floors of the log excursion features: the same, except brake pressure, where a light touch of the pedal for a
#: second (a 2-bar excursion) is driving. Over a floor of 1e-3 bar the log put a 1.8-bar tap while cruising
#: (z 7.8) within a few units of a 25-bar spike, and that tap alone raised two false alarms in one scenario.
_EXCURSION_FLOOR = {**_NOISE_FLOOR, BRK: 2.0}
FEATURE_SIGNALS: tuple[tuple[str, tuple[int, ...]], ...] = (
    tuple((f"missing_share_{SIGNALS[s]}", (s,)) for s in range(N_SIGNALS))
    + tuple((f"log_step_std_{SIGNALS[s]}", (s,)) for s in _NOISE_KEPT)
    + tuple((f"log_excursion_max_{SIGNALS[s]}", (s,)) for s in _NOISY)
    + tuple((f"out_of_range_share_{SIGNALS[s]}", (s,)) for s in _NOISY)
    + (
        ("repeat_share_brake_pressure", (BRK,)),
        ("repeat_share_coolant_temp", (COL,)),
        ("repeat_share_fuel_level", (FUEL,)),
        ("repeat_share_acceleration_x", (ACC,)),
        ("repeat_share_altitude", (ALT,)),
        # Throttle held at one non-zero reading while moving (a pedal is never that still for long), and speed
        # held at one reading while rpm moves (in gear rpm follows the wheels).
        ("repeat_share_throttle_position", (THR,)),
        ("speed_repeat_while_rpm_moves", (SP,)),
        ("gps_step_vs_speed_mean_m", (LAT, LON)),
        ("gps_step_vs_speed_max_m", (LAT, LON)),
        ("accel_vs_speed_bias_ms2", (ACC,)),
        ("accel_vs_speed_std_ms2", (ACC,)),
        ("altitude_grade", (ALT,)),
        ("gear_line_distance", (SP, RPM)),
        ("rpm_mean_k", (RPM,)),
        ("rpm_max_k", (RPM,)),
        ("rpm_at_rest_k", (RPM,)),
        ("throttle_and_brake_share", (THR, BRK)),
        ("brake_while_accelerating_bar", (BRK,)),
        ("decel_without_brake_ms2", (BRK,)),
        ("accel_without_throttle_share", (THR,)),
        ("coolant_mean_c", (COL,)),
        ("coolant_slope_c_per_min", (COL,)),
        ("coolant_rise_while_hot", (COL,)),
        ("coolant_cold_not_warming", (COL,)),
        ("fuel_level_slope_pct_per_min", (FUEL,)),
        ("fuel_level_slope_vs_consumption", (FUEL,)),
        ("fuel_estimate_lph", (FUEL,)),
        ("rpm_vs_predicted_mean", (RPM,)),
        ("rpm_vs_predicted_abs", (RPM,)),
        ("throttle_vs_predicted_mean", (THR,)),
        ("throttle_vs_predicted_abs", (THR,)),
        ("rpm_spike_excess_vs_predicted", (RPM,)),
        ("throttle_spikes_vs_predicted", (THR,)),
        # Over the context: slow faults (the tank level over its last FUEL_CONTEXT_S, the rest over CONTEXT_S).
        ("context_fuel_level_slope_vs_consumption", (FUEL,)),
        ("context_coolant_slope_c_per_min", (COL,)),
        ("context_coolant_rise_while_hot", (COL,)),
        ("context_coolant_hot_at_low_load", (COL,)),
        ("context_gps_distance_vs_speed", (SP, LAT, LON)),
        ("context_speed_repeat_while_rpm_moves", (SP,)),
    )
)
FEATURES: tuple[str, ...] = tuple(name for name, _ in FEATURE_SIGNALS)
#: Which side of each feature is anomalous: +1 only above normal, -1 only below, 0 both. A sensor that loses its
#: noise shows as a LOW step spread (a high one is a spike, which the excursion feature judges); shares of
#: missing, out-of-range or repeated readings matter only when high.
_HIGH_ONLY = ("missing_share_", "log_excursion_max_", "out_of_range_share_", "repeat_share_", "gps_step_vs_speed_",
              "gear_line_distance", "throttle_and_brake_share", "brake_while_accelerating_bar",
              "decel_without_brake_ms2", "accel_without_throttle_share", "coolant_rise_while_hot",
              "coolant_cold_not_warming", "rpm_max_k",
              "rpm_at_rest_k", "rpm_vs_predicted_abs", "throttle_vs_predicted_abs", "accel_vs_speed_std_ms2",
              "rpm_spike_excess_vs_predicted", "throttle_spikes_vs_predicted",
              "altitude_grade", "speed_repeat_while_rpm_moves", "context_coolant_rise_while_hot", "context_coolant_hot_at_low_load",
              "context_coolant_slope_c_per_min",
              "context_speed_repeat_while_rpm_moves")
_LOW_ONLY = ("log_step_std_",)
#: The smallest spread a feature is standardised by (`training.anomaly.robust_scale`): the spike features and the
#: cold-coolant heat balance are 0 in almost every normal window, and a spread taken from those zeros would make a
#: single spike or a fraction of a degree look enormous. One spike (throttle), one spike-level of excess (rpm), or
#: 1 degC/min is one unit; every other feature keeps the generic floor.
_UNIT_FLOOR_FEATURES = ("rpm_spike_excess_vs_predicted", "throttle_spikes_vs_predicted", "coolant_cold_not_warming")
FEATURE_SCALE_FLOOR = np.array([1.0 if name in _UNIT_FLOOR_FEATURES else 1e-3 for name in FEATURES],
                               dtype=np.float32)
#: How far the autoencoder's input goes on the normal side of a one-sided feature. That side says nothing (a
#: coolant cooling fast after an overheating recovers is not a fault), but at its full value (z = -10 there)
#: it pulled the reconstruction of unrelated features (brake and speed excursions) off for the minutes the
#: context remembers it: 11 of the 19 false alarms of a model retrained without this clip on the validation
#: anomaly set sat 1-4 minutes after an overheating event.
NORMAL_SIDE_CLIP = 3.0
FEATURE_SIDES = np.array([1.0 if name.startswith(_HIGH_ONLY) else -1.0 if name.startswith(_LOW_ONLY) else 0.0
                          for name in FEATURES], dtype=np.float32)


#: Fuel rate (L/h) over the context that halves the "hot at low load" feature: the heat input that can hold
#: a healthy engine above its thermostat band.
HOT_LOAD_LPH = 2.5
#: Context features must not remember a short glitch for minutes after it: samples further than these from the
#: first straight-line fit are left out of the slopes, and each GPS-vs-speed step counts at most this much.
CONTEXT_LEVEL_BAND_PCT = 2.0
CONTEXT_COOLANT_BAND_C = 5.0
CONTEXT_STEP_CLIP_M = 4.0
#: Spike levels of the spike features: how far a sample's residual against the cross-signal predictor stands out
#: from the median of the five around it (gear changes and pedal moves are predicted from the other signals, so
#: they mostly stay under these). rpm: the sum over the window of each sample's excess over the level, in
#: levels (a 2000-rpm spike adds 1.9); throttle: the count of samples over the level. Chosen on normal training
#: and validation windows against the spike noise of `harness.world.anomalies` (60-s windows, seed-0 dataset): the rpm
#: excess has a 99.9th percentile of 1.3 on normal training windows and a median of 9.6 in windows of rpm spike
#: noise at severity 0.8 (a count over 900 rpm: 2 and 6); throttle spikes (31-35 % at severity 0.6-0.7, about
#: half of them clipped at 0 %) stand out less from a pedal that the driver moves by tens of % a second: over
#: 25 % the count is at most 1 on normal windows and 2 in the median spike window.
SPIKE_LEVEL_RPM = 700.0
SPIKE_LEVEL_THROTTLE_PCT = 25.0
#: Heat balance of a cold engine: below its thermostat's opening (85 degC in both trained vehicles; judged from
#: COLD_COOLANT_C, with a 3-degC ramp under it) the thermostat is shut and only a bypass and the block shed heat,
#: so an engine that burns fuel must warm up. The slowest-warming vehicle (the light truck: 30 % of 35.8 MJ/L
#: into 90 kJ/K) gains 2.0 degC/min per L/h; shut, both lose at most 5.2 degC/min at 83 degC even at -40 degC
#: ambient. The feature is how far the coolant's slope falls short of half that heat input minus that loss: a
#: reading that holds or falls under load while cold (a sender drifting down or stuck low) cannot be the coolant.
#: 0 on every normal training and validation window of the seed-0 dataset; 2.0 degC/min (median) while a sender
#: drifts 24 degC down on a warm engine.
COLD_COOLANT_C = 83.0
WARMUP_C_PER_MIN_PER_LPH = 1.0
COLD_LOSS_C_PER_MIN = 5.2
#: The context tank-level slope spans only the last FUEL_CONTEXT_S: its spread on normal training windows hardly
#: narrows past 3 minutes (the consumption proxy's error, not the level's noise, sets it: 99.9th percentile
#: 0.118 %/min over 180 s, 0.109 over 300 s), while a leak fills a shorter span sooner (a 13.6 L/h leak crosses
#: 2.56 times that spread 156 s after onset over 180 s, 233 s over 300 s).
FUEL_CONTEXT_S = 180
#: A speed change below this (m/s per s, relative rpm change) is "not moving" for the repeat features.
RPM_MOVES = 0.01


def fuel_proxy_design(xf: torch.Tensor) -> torch.Tensor:
    """Per-second terms [B, T, 9] of a linear fuel-rate proxy (rpm, throttle, speed, power demand).

    The anomaly model's context features need the consumption over minutes; the TCN over 300 s would cost
    five times its 60-s latency, and over minutes a linear proxy's errors average out.
    """
    v = xf[:, :, SP] / 3.6
    r = xf[:, :, RPM] / 1000.0
    th = xf[:, :, THR] / 100.0
    a = xf[:, :, ACC]
    return torch.stack([torch.ones_like(v), r, r * th, th, r * r, v, v ** 3 / 1000.0, F.relu(a) * v / 10.0,
                        r * th * th], dim=-1)


def fit_fuel_proxy(x: np.ndarray, fuel_seq: np.ndarray, fallback: np.ndarray, rows: int = 400_000,
                   seed: int = 0) -> np.ndarray:
    """Least-squares coefficients of `fuel_proxy_design` on windows [n, T, 10] (their last `fuel_seq` columns)."""
    t = fuel_seq.shape[1]
    with torch.no_grad():
        xf, valid = fill_missing(torch.from_numpy(np.ascontiguousarray(x[:, -t:], dtype=np.float32)),
                                 torch.tensor(fallback, dtype=torch.float32))
        design = fuel_proxy_design(xf).reshape(-1, 9).numpy().astype(np.float64)
        ok = valid.min(dim=2).values.reshape(-1).numpy() > 0
    y = fuel_seq.reshape(-1).astype(np.float64)
    idx = np.flatnonzero(ok)
    idx = np.random.default_rng(seed).choice(idx, min(rows, len(idx)), replace=False)
    coef, *_ = np.linalg.lstsq(design[idx], y[idx], rcond=None)
    return coef.astype(np.float32)


class AnomalyFeatures(nn.Module):
    """Physics-consistency statistics of a raw input [B, CONTEXT_S, 10] → [B, len(FEATURES)].

    Most features judge the last WINDOW_S samples; the `context_` ones the whole input (NaN rows, before the
    trip's start, are left out).
    """

    def __init__(self, fuel: FuelTCN, fallback: np.ndarray, cross: CrossPredictor):
        super().__init__()
        self.fuel = fuel
        self.cross = cross
        self.register_buffer("fallback", torch.tensor(fallback, dtype=torch.float32))
        self.register_buffer("gear_lines", torch.tensor(GEAR_LINES, dtype=torch.float32))
        self.register_buffer("excursion_floor", torch.tensor([_EXCURSION_FLOOR[s] for s in _NOISY],
                                                             dtype=torch.float32))
        self.register_buffer("lo", torch.tensor(RANGE_LO[list(_NOISY)]))
        self.register_buffer("hi", torch.tensor(RANGE_HI[list(_NOISY)]))
        self.noisy = list(_NOISY)
        self.kept = list(_NOISE_KEPT)
        self.register_buffer("kept_floor", torch.tensor([_NOISE_FLOOR[s] for s in _NOISE_KEPT], dtype=torch.float32))
        self.register_buffer("fuel_proxy", torch.zeros(9))

    def context_features(self, xc: torch.Tensor, coolant_now: torch.Tensor) -> torch.Tensor:
        """The `context_` features of the whole input [B, T, 10]."""
        xf, valid = fill_missing(xc, self.fallback)
        v = xf[:, :, SP] / 3.6
        drive_ok = valid[:, :, SP] * valid[:, :, RPM] * valid[:, :, THR] * valid[:, :, ACC]
        proxy = (fuel_proxy_design(xf) * self.fuel_proxy.view(1, 1, -1)).sum(dim=-1).clamp(min=0.0)
        fuel_lph = _masked_mean(proxy, drive_ok)
        recent = slice(-FUEL_CONTEXT_S, None)
        fuel_ok = valid[:, recent, FUEL]
        level = _slosh_corrected_level(xf, v)[:, recent]
        expected = -_masked_mean(proxy[:, recent], drive_ok[:, recent]) / TANK_L * 100.0 / 60.0
        col_ok = valid[:, :, COL]
        slope = _robust_slope_per_min(xf[:, :, COL], col_ok, CONTEXT_COOLANT_BAND_C)
        both = valid[:, 1:, LAT] * valid[:, 1:, LON] * valid[:, :-1, LAT] * valid[:, :-1, LON] \
            * valid[:, 1:, SP] * valid[:, :-1, SP]
        travelled = 0.5 * (v[:, 1:] + v[:, :-1])
        gps = gps_step_m(xf)[:, 1:]
        dist = (travelled * both).sum(dim=1)
        speed_ok = valid[:, 1:, SP] * valid[:, :-1, SP] * valid[:, 1:, RPM] * valid[:, :-1, RPM]
        # A slope over the first minute or two of a trip is mostly noise: weigh slopes by how much of the
        # context they cover.
        fuel_span = fuel_ok.mean(dim=1)
        col_span = col_ok.mean(dim=1)
        return torch.stack([
            (_robust_slope_per_min(level, fuel_ok, CONTEXT_LEVEL_BAND_PCT) - expected) * fuel_span,
            slope * col_span,
            F.relu(slope) * ((coolant_now - 85.0) / 10.0).clamp(0.0, 1.0) * col_span,
            # Heat balance: with a working radiator the coolant rises past the thermostat's band only under
            # a high heat input (fuel burnt); hot at a low burn rate is a cooling system that is not cooling.
            F.relu(coolant_now - 90.0) / (1.0 + fuel_lph / HOT_LOAD_LPH),
            ((gps - travelled).clamp(-CONTEXT_STEP_CLIP_M, CONTEXT_STEP_CLIP_M) * both).sum(dim=1)
            / dist.clamp(min=200.0),
            _masked_mean(self._speed_held(xf), speed_ok),
        ], dim=1)

    @staticmethod
    def _speed_held(xf: torch.Tensor) -> torch.Tensor:
        """Per step [B, T-1]: 1 where the speed reading repeats while moving and rpm changes by > RPM_MOVES."""
        speed, rpm = xf[:, :, SP], xf[:, :, RPM]
        rpm_step = (rpm[:, 1:] - rpm[:, :-1]).abs() / rpm[:, 1:].clamp(min=500.0)
        return ((speed[:, 1:] == speed[:, :-1]) & (speed[:, 1:] > 5.0) & (rpm_step > RPM_MOVES)).to(xf.dtype)

    def forward(self, xc: torch.Tensor) -> torch.Tensor:
        x = xc[:, -WINDOW_S:]
        nan = torch.isnan(x)
        xf, valid = fill_missing(x, self.fallback)
        missing = 1.0 - valid.mean(dim=1)  # [B, 10]
        d = xf[:, 1:] - xf[:, :-1]  # [B, 59, 10]
        both = valid[:, 1:] * valid[:, :-1]
        dk = d[:, :, self.kept]
        bk = both[:, :, self.kept]
        step_std = torch.log(torch.sqrt(_masked_mean((dk - _masked_mean(dk, bk).unsqueeze(1)) ** 2, bk)
                                        + 1e-12) + self.kept_floor)
        # A spike is an excursion of one or two samples that comes back: the distance of a sample from the median
        # of the five around it (a gear change or a braking onset steps once and stays: the median follows it).
        excursion, all_valid = _spike_excursions(xf[:, :, self.noisy], valid[:, :, self.noisy])  # [B, T-4, S]
        excursion_max = torch.log(_masked_max(excursion, all_valid) + self.excursion_floor)
        raw = x[:, :, self.noisy]
        outside = ((raw < self.lo) | (raw > self.hi)).to(x.dtype)
        out_of_range = outside.mean(dim=1)

        speed = xf[:, :, SP]
        rpm = xf[:, :, RPM]
        thr, brk = xf[:, :, THR], xf[:, :, BRK]
        moving = (speed[:, 1:] > 2.0).to(x.dtype)
        same = (d == 0).to(x.dtype) * both
        # Exact repeats of a reading that should move (speed, rpm and throttle are left out: real drive cycles
        # hold a speed exactly, rpm follows it, and OBD-II sends throttle in 0.4 % steps; position repeats at
        # walking pace, where the GPS step features judge it better).
        rep = [
            _masked_mean(same[:, :, BRK], both[:, :, BRK] * (brk[:, 1:] > 0.5).to(x.dtype) * moving),
            _masked_mean(same[:, :, COL], both[:, :, COL]),
            _masked_mean(same[:, :, FUEL], both[:, :, FUEL]),
            _masked_mean(same[:, :, ACC], both[:, :, ACC]),
            _masked_mean(same[:, :, ALT], both[:, :, ALT]),
            _masked_mean(same[:, :, THR], both[:, :, THR] * (thr[:, 1:] > 0.5).to(x.dtype) * moving),
            _masked_mean(self._speed_held(xf), both[:, :, SP] * both[:, :, RPM]),
        ]

        v = speed / 3.6
        gps_ok = both[:, :, LAT] * both[:, :, LON] * both[:, :, SP]
        step = gps_step_m(xf)[:, 1:]
        gps_err = (step - 0.5 * (v[:, 1:] + v[:, :-1])).abs()
        dist = (0.5 * (v[:, 1:] + v[:, :-1])).sum(dim=1)

        central = 0.5 * (v[:, 2:] - v[:, :-2])  # dv/dt at t = 1..58
        acc_ok = valid[:, 1:-1, ACC] * valid[:, 2:, SP] * valid[:, :-2, SP]
        acc_res = xf[:, 1:-1, ACC] - central
        alt_ok = valid[:, 0, ALT] * valid[:, -1, ALT]
        climb = (xf[:, -1, ALT] - xf[:, 0, ALT]) * alt_ok
        # Grade: least-squares slope of altitude against distance travelled (the GNSS altitude wanders by metres,
        # so two end points are not enough).
        along = F.pad(torch.cumsum(0.5 * (v[:, 1:] + v[:, :-1]), dim=1), (1, 0))
        grade = torch.where(dist > 100.0, _slope_against(xf[:, :, ALT], along, valid[:, :, ALT]),
                            torch.zeros_like(dist)).clamp(-0.3, 0.3)
        acc_bias = _masked_mean(acc_res, acc_ok) - G * grade
        acc_spread = torch.sqrt(_masked_mean((acc_res - _masked_mean(acc_res, acc_ok).unsqueeze(1)) ** 2, acc_ok)
                                + 1e-12)

        # Above 30 km/h and weighted by speed: speed arrives in whole km/h, too coarse for a gear ratio when slow.
        in_gear = ((speed > 30.0) & (rpm > 100.0) & ~nan[:, :, SP] & ~nan[:, :, RPM]).to(x.dtype) * speed
        ratio = torch.log(rpm.clamp(min=1.0) / speed.clamp(min=1.0))
        gear_dist = (ratio.unsqueeze(-1) - self.gear_lines.view(1, 1, -1)).abs().min(dim=-1).values
        at_rest = ((speed < 0.5) & ~nan[:, :, SP] & ~nan[:, :, RPM]).to(x.dtype)
        rpm_ok = valid[:, :, RPM]

        dv = _step(v)[:, 1:]
        pedal_ok = valid[:, 1:, THR] * valid[:, 1:, BRK]
        tb = ((thr[:, 1:] > 5.0) & (brk[:, 1:] > 2.0) & (speed[:, 1:] > 0.5)).to(x.dtype)
        # Speed arrives in whole km/h (0.28 m/s per step): ask for a clear acceleration, above walking pace.
        brk_acc = brk[:, 1:] * ((dv > 0.6) & (speed[:, 1:] > 5.0)).to(x.dtype)
        decel_nb = F.relu(-dv - 1.5) * (brk[:, 1:] < 1.0).to(x.dtype) * moving
        acc_nt = ((dv > 0.5) & (thr[:, 1:] < 1.0) & (speed[:, 1:] > 5.0)).to(x.dtype)

        col_ok = valid[:, :, COL]
        coolant_mean = _masked_mean(xf[:, :, COL], col_ok)
        coolant_slope = _slope_per_min(xf[:, :, COL], col_ok)
        fuel_ok = valid[:, :, FUEL]
        level = _slosh_corrected_level(xf, v)
        fuel_slope = _slope_per_min(level, fuel_ok)
        fuel_lph = self.fuel(x)[:, 0]
        expected = -fuel_lph / TANK_L * 100.0 / 60.0
        rpm_pred, rpm_std, thr_pred, thr_std = self.cross(x)
        rpm_res, thr_res = rpm_std - rpm_pred, thr_std - thr_pred
        rpm_w = valid[:, :, RPM] * valid[:, :, SP]
        thr_w = valid[:, :, THR] * valid[:, :, SP]
        cross_std = self.cross.channels.std
        rpm_exc, rpm_exc_ok = _spike_excursions(rpm_res * (cross_std[_CROSS_RPM] * 1000.0), rpm_w)
        rpm_spikes = (F.relu(rpm_exc / SPIKE_LEVEL_RPM - 1.0) * rpm_exc_ok).sum(dim=1)
        thr_exc, thr_exc_ok = _spike_excursions(thr_res * cross_std[_CROSS_THR], thr_w)
        thr_spikes = ((thr_exc > SPIKE_LEVEL_THROTTLE_PCT).to(x.dtype) * thr_exc_ok).sum(dim=1)

        feats = [
            missing, step_std, excursion_max, out_of_range, torch.stack(rep, dim=1),
            torch.stack([
                torch.log1p(_masked_mean(gps_err, gps_ok)), torch.log1p(_masked_max(gps_err, gps_ok)),
                acc_bias, acc_spread, (climb / dist.clamp(min=30.0)).abs(),
                _masked_mean(gear_dist, in_gear), _masked_mean(rpm, rpm_ok) / 1000.0,
                _masked_max(rpm, rpm_ok) / 1000.0, _masked_mean(rpm, at_rest) / 1000.0,
                _masked_mean(tb, pedal_ok), _masked_mean(brk_acc, pedal_ok), _masked_mean(decel_nb, pedal_ok),
                _masked_mean(acc_nt, pedal_ok),
                coolant_mean, coolant_slope,
                # Warm, the thermostat holds the coolant: a rise past its band is what a failed fan looks like.
                F.relu(coolant_slope) * ((coolant_mean - 85.0) / 10.0).clamp(0.0, 1.0),
                F.relu(WARMUP_C_PER_MIN_PER_LPH * fuel_lph - COLD_LOSS_C_PER_MIN - coolant_slope)
                * ((COLD_COOLANT_C - coolant_mean) / 3.0).clamp(0.0, 1.0) * col_ok.mean(dim=1),
                fuel_slope, fuel_slope - expected, fuel_lph,
                _masked_mean(rpm_res, rpm_w), _masked_mean(rpm_res.abs(), rpm_w),
                _masked_mean(thr_res, thr_w), _masked_mean(thr_res.abs(), thr_w),
                rpm_spikes, thr_spikes,
            ], dim=1),
            self.context_features(xc, coolant_mean),
        ]
        return torch.cat(feats, dim=1)


class FeatureAE(nn.Module):
    def __init__(self, n: int, hidden: int = 32, latent: int = 8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, latent), nn.ReLU())
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, n))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(z))


def signal_matrix() -> np.ndarray:
    """[features, 10]: 1 where a feature judges a signal."""
    m = np.zeros((len(FEATURE_SIGNALS), N_SIGNALS), dtype=np.float32)
    for i, (_, signals) in enumerate(FEATURE_SIGNALS):
        m[i, list(signals)] = 1.0
    return m


class AnomalyModel(nn.Module):
    """Raw window → (score [B], signal_scores [B, 10]).

    z = (features - centre) / scale; the residual z - AE(clip(z)) (or z itself without an AE) is divided by its
    spread on normal training windows, separately above and below (`scale_hi`, `scale_lo`: a hot engine and a
    cold start are not equally normal); score = the largest scaled residual; a signal's score is the largest
    among the features that judge it. clip(z) is ±clip, and ±NORMAL_SIDE_CLIP on the side of a one-sided feature
    that is never anomalous (`FEATURE_SIDES`).
    """

    def __init__(self, features: AnomalyFeatures, centre: np.ndarray, scale: np.ndarray, ae: FeatureAE | None,
                 scale_hi: np.ndarray, scale_lo: np.ndarray, clip: float = 50.0):
        super().__init__()
        self.features = features
        self.ae = ae
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("scale_hi", torch.tensor(scale_hi, dtype=torch.float32))
        self.register_buffer("scale_lo", torch.tensor(scale_lo, dtype=torch.float32))
        self.register_buffer("signals", torch.tensor(signal_matrix()))
        self.register_buffer("use_hi", torch.tensor((FEATURE_SIDES >= 0).astype(np.float32)))
        self.register_buffer("use_lo", torch.tensor((FEATURE_SIDES <= 0).astype(np.float32)))
        self.register_buffer("ae_lo", torch.tensor(np.where(FEATURE_SIDES > 0, -NORMAL_SIDE_CLIP, -clip),
                                                   dtype=torch.float32))
        self.register_buffer("ae_hi", torch.tensor(np.where(FEATURE_SIDES < 0, NORMAL_SIDE_CLIP, clip),
                                                   dtype=torch.float32))

    def _ae_input(self, z: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(z, self.ae_lo), self.ae_hi)

    def standardise(self, feats: torch.Tensor) -> torch.Tensor:
        """(features - centre) / scale, clipped (see the class): the autoencoder's input."""
        return self._ae_input((feats - self.centre) / self.scale)

    def signed_residual(self, x: torch.Tensor) -> torch.Tensor:
        # Unclipped: many features are 0 in almost every normal window (tiny scale), and a clip before the
        # division by their normal spread would flatten a 35 degC/min coolant rise to a barely raised score.
        z = (self.features(x) - self.centre) / self.scale
        return z - self.ae(self._ae_input(z)) if self.ae is not None else z

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        r = self.signed_residual(x)
        return torch.maximum(self.use_hi * r / self.scale_hi, -self.use_lo * r / self.scale_lo).clamp(min=0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.residual(x)  # [B, F]
        per_signal = (r.unsqueeze(-1) * self.signals.unsqueeze(0)).max(dim=1).values  # [B, 10]
        return r.max(dim=1).values, per_signal


class LstmAE(nn.Module):
    """The reference family: LSTM encoder → latent → LSTM decoder reconstructing the standardised channels."""

    def __init__(self, channels: Channels, hidden: int = 32, latent: int = 16):
        super().__init__()
        self.channels = channels
        c = len(channels.names)
        self.enc = nn.LSTM(c, hidden, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.dec = nn.LSTM(latent, hidden, batch_first=True)
        self.out = nn.Linear(hidden, c)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seq = self.channels(x).transpose(1, 2)  # [B, T, C]
        _, (h, _) = self.enc(seq)
        latent = self.to_latent(h[-1])
        rep = latent.unsqueeze(1).expand(-1, seq.shape[1], -1)
        y, _ = self.dec(rep)
        return seq, self.out(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, rec = self.reconstruct(x)
        return ((seq - rec) ** 2).mean(dim=(1, 2))
