"""`AnomalyFeatures`: the physics-consistency statistics of a raw input, as a torch graph exported inside the
anomaly model.

Missing-reading share, noise level, spikes, exact repeats, GPS step vs speed, accelerometer vs speed derivative,
rpm/speed vs the gear lines, tank-level slope vs the fuel model's consumption, coolant level and slope, pedal
consistency and the residuals of the cross-signal predictor over the last 60 s; slow faults (tank level, coolant,
GPS distance, speed held) over the whole context. Which signals each feature judges is in
`training.feature_catalogue`; how the features become a score is in `training.anomaly_model`. The vehicle
knowledge is the two trained vehicles' gearing and tank (`harness.world.vehicle`): a new vehicle needs retraining.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.inference.features import WINDOW_S
from harness.wire.signals import SIGNALS
from harness.world.vehicle import VEHICLES
from training.channels import (
    ACC,
    ALT,
    BRK,
    COL,
    DEG_M,
    FUEL,
    LAT,
    LON,
    N_SIGNALS,
    RANGE_HI,
    RANGE_LO,
    RPM,
    SP,
    THR,
    fill_missing,
    take,
    time_step,
)
from training.feature_catalogue import EXCURSION_FLOOR, FEATURES, NOISE_FLOOR, NOISE_KEPT, NOISY
from training.fuel_proxy import fuel_proxy_design
from training.nets import CROSS_RPM, CROSS_THR, CrossPredictor, FuelTCN
from training.window_stats import (
    masked_max,
    masked_mean,
    robust_slope_per_min,
    slope_against,
    slope_per_min,
    spike_excursions,
)

G = 9.8066
#: Tank size used to turn the consumption estimate into an expected level slope (both presets: 64-65 L).
TANK_L = float(np.mean([v.tank_l for v in VEHICLES.values()]))
#: rpm per km/h in every gear of the vehicles the models are trained for (log-space "gear lines").
GEAR_LINES = np.sort(np.log([v.rpm_in_gear(1.0, g) for v in VEHICLES.values()
                             for g in range(1, len(v.gear_ratios) + 1)]))
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
#: The most a tank level reading (slosh taken out) moves in one second as fuel: the largest 1-s step on the normal
#: training and validation samples of the seed-0 dataset is 1.07 % (99.99th percentile 0.79: bus steps of 0.39 %
#: and the sender's noise); a stuck sender let go at severity 0.1 jumps 2 %.
LEVEL_JUMP_PCT = 1.5
#: A speed change below this (m/s per s, relative rpm change) is "not moving" for the repeat features.
RPM_MOVES = 0.01


def _slosh(central: torch.Tensor) -> torch.Tensor:
    """What to add to the tank level [B, T] to undo the sender's slosh: it reads back by 0.15 %/(m/s^2) of the
    acceleration (`central`: the central speed derivative, m/s per s, at t = 1..T-2)."""
    return F.pad(0.15 * central, (1, 1))


def _gps_steps(step: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Distance (m) between consecutive fixes [B, T-1] from their (latitude, longitude) differences [B, 2, T-1]
    and the later fix's latitude, flat-earth (`training.channels.gps_step_m` from t = 1)."""
    north = step[:, 0] * DEG_M
    east = step[:, 1] * DEG_M * torch.cos(lat * (math.pi / 180.0))
    return torch.sqrt(north * north + east * east + 1e-6)



def _speed_held(speed: torch.Tensor, rpm: torch.Tensor) -> torch.Tensor:
    """Per step [B, T-1]: 1 where the speed reading repeats while moving and rpm changes by > RPM_MOVES."""
    rpm_step = (rpm[:, 1:] - rpm[:, :-1]).abs() / rpm[:, 1:].clamp(min=500.0)
    return ((speed[:, 1:] == speed[:, :-1]) & (speed[:, 1:] > 5.0) & (rpm_step > RPM_MOVES)).to(speed.dtype)


#: How `AnomalyFeatures.forward` lays its pieces out before one gather puts them in FEATURES order ('' = computed
#: with its group but not a feature), and the features it then takes log1p of or divides by 1000.
_LAYOUT: tuple[str, ...] = (
    tuple(f"missing_share_{SIGNALS[s]}" for s in range(N_SIGNALS))
    + tuple(f"log_step_std_{SIGNALS[s]}" for s in NOISE_KEPT)
    + tuple(f"log_excursion_max_{SIGNALS[s]}" for s in NOISY)
    + tuple(f"out_of_range_share_{SIGNALS[s]}" for s in NOISY)
    + tuple(f"repeat_share_{SIGNALS[s]}" if s in (BRK, COL, FUEL, ACC, ALT, THR) else "" for s in range(N_SIGNALS))
    + ("speed_repeat_while_rpm_moves", "gps_step_vs_speed_mean_m", "throttle_and_brake_share",
       "brake_while_accelerating_bar", "decel_without_brake_ms2", "accel_without_throttle_share")
    + ("gear_line_distance", "rpm_mean_k", "rpm_at_rest_k", "coolant_mean_c", "rpm_vs_predicted_mean",
       "throttle_vs_predicted_mean", "rpm_vs_predicted_abs", "throttle_vs_predicted_abs")
    + ("coolant_slope_c_per_min", "fuel_level_slope_pct_per_min")
    + ("rpm_spike_excess_vs_predicted", "throttle_spikes_vs_predicted")
    + ("gps_step_vs_speed_max_m", "rpm_max_k")
    + ("accel_vs_speed_bias_ms2", "accel_vs_speed_std_ms2", "altitude_grade", "coolant_rise_while_hot",
       "coolant_cold_not_warming", "fuel_level_slope_vs_consumption", "fuel_estimate_lph")
    + ("context_fuel_level_slope_vs_consumption", "context_coolant_slope_c_per_min",
       "context_coolant_rise_while_hot", "context_coolant_hot_at_low_load", "context_gps_distance_vs_speed",
       "context_speed_repeat_while_rpm_moves")
)
_LOG1P = ("gps_step_vs_speed_mean_m", "gps_step_vs_speed_max_m")
_PER_1000 = ("rpm_mean_k", "rpm_max_k", "rpm_at_rest_k")


class AnomalyFeatures(nn.Module):
    """Physics-consistency statistics of a raw input [B, CONTEXT_S, 10] → [B, len(FEATURES)].

    Most features judge the last WINDOW_S samples; the `context_` ones the whole input (NaN rows, before the
    trip's start, are left out). Written for the device's runtime, which runs the graph one node after another:
    signals are rows ([B, 10, T], time last, so that picking signals copies whole rows), a group of signals is
    computed at a time where the features allow it, and the pieces are laid out as they come (`_LAYOUT`) and put
    in FEATURES order by one gather at the end.
    """

    def __init__(self, fuel: FuelTCN, fallback: np.ndarray, cross: CrossPredictor):
        super().__init__()
        self.fuel = fuel
        self.cross = cross
        self.register_buffer("fallback", torch.tensor(fallback, dtype=torch.float32))
        self.register_buffer("gear_lines", torch.tensor(GEAR_LINES, dtype=torch.float32))
        self.register_buffer("excursion_floor", torch.tensor([EXCURSION_FLOOR[s] for s in NOISY],
                                                             dtype=torch.float32))
        self.register_buffer("lo", torch.tensor(RANGE_LO).view(-1, 1))
        self.register_buffer("hi", torch.tensor(RANGE_HI).view(-1, 1))
        self.noisy = list(NOISY)
        self.kept = list(NOISE_KEPT)
        self.register_buffer("kept_floor", torch.tensor([NOISE_FLOOR[s] for s in NOISE_KEPT], dtype=torch.float32))
        self.register_buffer("fuel_proxy", torch.zeros(9, 1))
        layout = {  # which signals each group of features takes, not weights
            "pedals": ([[s in (BRK, THR)] for s in range(N_SIGNALS)], torch.bool),
            "cross_units": ([[1000.0], [1.0]], torch.float32),
            "order": ([_LAYOUT.index(name) for name in FEATURES], torch.int64),
            "log1p": ([name in _LOG1P for name in FEATURES], torch.bool),
            "unit": ([1000.0 if name in _PER_1000 else 1.0 for name in FEATURES], torch.float32),
            "context_bands": ([[CONTEXT_LEVEL_BAND_PCT], [CONTEXT_COOLANT_BAND_C]], torch.float32),
        }
        for key, (values, dtype) in layout.items():
            self.register_buffer(key, torch.tensor(values, dtype=dtype), persistent=False)

    def _rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, 10] with NaN filled (`fill_missing`), and its valid mask, as rows [B, 10, T]."""
        xf, valid = fill_missing(x, self.fallback)
        return xf.transpose(1, 2), valid.transpose(1, 2)

    def context_features(self, xc: torch.Tensor, coolant_now: torch.Tensor) -> torch.Tensor:
        """The `context_` features of the whole input [B, T, 10]."""
        xf, valid = self._rows(xc)
        speed, rpm = xf[:, SP], xf[:, RPM]
        v = speed / 3.6
        drive_ok = take(valid, [SP, RPM, THR, ACC]).prod(dim=1)
        proxy = (fuel_proxy_design(xf, dim=1) * self.fuel_proxy).sum(dim=1).clamp(min=0.0)  # L/h per second
        fuel_lph = masked_mean(proxy, drive_ok)
        # The tank level plus what the engine burnt since the context's start (tank %): flat while healthy, its
        # slope minus the leak's rate (a severity-0.3 leak, 5.2 L/h: -0.135 %/min). Fitting this sum rather than
        # comparing the level's slope with the mean burn rate weighs every second's consumption as the level's
        # fit weighs it (a hard pull-away mid-span moves the least-squares slope more than the mean): on the
        # normal windows of the seed-0 dataset's val and test splits (plain least squares) the 0.1st percentile
        # is -0.039 %/min over the 300-s context against -0.099 for the level's slope minus the mean rate
        # (-0.051 and -0.124 over 240 s; a shorter span forgets a stopped leak sooner but is noisier).
        # Where a reading the proxy or the slosh needs is missing (filled with the context's mean), the mean burn
        # rate stands in for the proxy and no slosh is taken out: a speed reading that drops out every few
        # seconds would otherwise turn into accelerations and burn rates that never were.
        burn = torch.where(drive_ok > 0, proxy, fuel_lph.unsqueeze(-1))
        burnt = torch.cumsum(burn, dim=-1) * (100.0 / 3600.0 / TANK_L)
        sp_ok = valid[:, SP]
        level = xf[:, FUEL] + _slosh(0.5 * (v[:, 2:] - v[:, :-2]) * sp_ok[:, 2:] * sp_ok[:, :-2]) + burnt
        # A tank level cannot move by LEVEL_JUMP_PCT in a second: such a step is a sensor let go (a stuck or
        # dropped-out reading coming back), not fuel, and is taken out so that the slope does not remember it.
        step = time_step(level)
        level = level - torch.cumsum(torch.where(step.abs() > LEVEL_JUMP_PCT, step, torch.zeros_like(step)), dim=-1)
        level_col = torch.stack([level, xf[:, COL]], dim=1)
        ok = take(valid, [FUEL, COL])
        slopes = robust_slope_per_min(level_col, ok, self.context_bands)  # level, coolant
        # A slope over the first minute or two of a trip is mostly noise: weigh slopes by how much of the
        # context they cover.
        span = ok.mean(dim=-1)
        slope, col_span = slopes[:, 1], span[:, 1]
        step_ok = take(valid, [SP, RPM, LAT, LON])
        step_ok = step_ok[:, :, 1:] * step_ok[:, :, :-1]
        both = take(step_ok, [0, 2, 3]).prod(dim=1)
        travelled = 0.5 * (v[:, 1:] + v[:, :-1])
        dist = (travelled * both).sum(dim=-1)
        position = take(xf, [LAT, LON])
        gps = _gps_steps(position[:, :, 1:] - position[:, :, :-1], xf[:, LAT, 1:])
        return torch.stack([
            slopes[:, 0] * span[:, 0],
            slope * col_span,
            F.relu(slope) * ((coolant_now - 85.0) / 10.0).clamp(0.0, 1.0) * col_span,
            # Heat balance: with a working radiator the coolant rises past the thermostat's band only under
            # a high heat input (fuel burnt); hot at a low burn rate is a cooling system that is not cooling.
            F.relu(coolant_now - 90.0) / (1.0 + fuel_lph / HOT_LOAD_LPH),
            ((gps - travelled).clamp(-CONTEXT_STEP_CLIP_M, CONTEXT_STEP_CLIP_M) * both).sum(dim=-1)
            / dist.clamp(min=200.0),
            masked_mean(_speed_held(speed, rpm), take(step_ok, [0, 1]).prod(dim=1)),
        ], dim=1)

    def forward(self, xc: torch.Tensor) -> torch.Tensor:
        x = xc[:, -WINDOW_S:]
        xf, valid = self._rows(x)  # [B, 10, T]
        missing = 1.0 - valid.mean(dim=-1)  # [B, 10]
        d = xf[:, :, 1:] - xf[:, :, :-1]  # [B, 10, 59]
        both = valid[:, :, 1:] * valid[:, :, :-1]
        dk = take(d, self.kept)
        bk = take(both, self.kept)
        step_std = torch.log(torch.sqrt(masked_mean((dk - masked_mean(dk, bk).unsqueeze(-1)) ** 2, bk)
                                        + 1e-12) + self.kept_floor)
        raw = x.transpose(1, 2)
        out_of_range = take(((raw < self.lo) | (raw > self.hi)).to(x.dtype).mean(dim=-1), self.noisy)

        speed, rpm, col, alt = xf[:, SP], xf[:, RPM], xf[:, COL], xf[:, ALT]
        x1 = xf[:, :, 1:]
        speed1, thr1, brk1 = x1[:, SP], x1[:, THR], x1[:, BRK]
        moving = (speed1 > 2.0).to(x.dtype)
        # Exact repeats of a reading that should move (speed, rpm and throttle are left out: real drive cycles
        # hold a speed exactly, rpm follows it, and OBD-II sends throttle in 0.4 % steps; position repeats at
        # walking pace, where the GPS step features judge it better). Pedals count only while pressed and moving.
        pressed = (x1 > 0.5).to(x.dtype) * moving.unsqueeze(1)
        repeats = masked_mean((d == 0).to(x.dtype) * both,
                              both * torch.where(self.pedals, pressed, torch.ones_like(pressed)))

        v = speed / 3.6
        dv = v[:, 1:] - v[:, :-1]
        travelled = 0.5 * (v[:, 1:] + v[:, :-1])
        gps_ok = take(both, [LAT, LON, SP]).prod(dim=1)
        gps_err = (_gps_steps(take(d, [LAT, LON]), x1[:, LAT]) - travelled).abs()
        dist = travelled.sum(dim=-1)

        central = 0.5 * (v[:, 2:] - v[:, :-2])  # dv/dt at t = 1..58
        acc_ok = valid[:, ACC, 1:-1] * valid[:, SP, 2:] * valid[:, SP, :-2]
        acc_res = xf[:, ACC, 1:-1] - central
        climb = (alt[:, -1] - alt[:, 0]) * valid[:, ALT, 0] * valid[:, ALT, -1]
        # Grade: least-squares slope of altitude against distance travelled (the GNSS altitude wanders by metres,
        # so two end points are not enough).
        along = F.pad(torch.cumsum(travelled, dim=-1), (1, 0))
        grade = torch.where(dist > 100.0, slope_against(alt, along, valid[:, ALT]),
                            torch.zeros_like(dist)).clamp(-0.3, 0.3)
        acc_mean = masked_mean(acc_res, acc_ok)
        acc_spread = torch.sqrt(masked_mean((acc_res - acc_mean.unsqueeze(-1)) ** 2, acc_ok) + 1e-12)

        # Above 30 km/h and weighted by speed: speed arrives in whole km/h, too coarse for a gear ratio when slow.
        sp_rpm_read = take(valid, [SP, RPM]).prod(dim=1)
        in_gear = ((speed > 30.0) & (rpm > 100.0)).to(x.dtype) * sp_rpm_read * speed
        ratio = torch.log(rpm.clamp(min=1.0) / speed.clamp(min=1.0))
        gear_dist = (ratio.unsqueeze(-1) - self.gear_lines).abs().min(dim=-1).values
        at_rest = (speed < 0.5).to(x.dtype) * sp_rpm_read

        pedal_ok = take(valid[:, :, 1:], [THR, BRK]).prod(dim=1)
        tb = ((thr1 > 5.0) & (brk1 > 2.0) & (speed1 > 0.5)).to(x.dtype)
        # Speed arrives in whole km/h (0.28 m/s per step): ask for a clear acceleration, above walking pace.
        brk_acc = brk1 * ((dv > 0.6) & (speed1 > 5.0)).to(x.dtype)
        decel_nb = F.relu(-dv - 1.5) * (brk1 < 1.0).to(x.dtype) * moving
        acc_nt = ((dv > 0.5) & (thr1 < 1.0) & (speed1 > 5.0)).to(x.dtype)
        steps_mean = masked_mean(
            torch.stack([_speed_held(speed, rpm), gps_err, tb, brk_acc, decel_nb, acc_nt], dim=1),
            torch.stack([take(both, [SP, RPM]).prod(dim=1), gps_ok, pedal_ok, pedal_ok, pedal_ok, pedal_ok], dim=1))

        slopes = slope_per_min(torch.stack([col, xf[:, FUEL] + _slosh(central)], dim=1),
                               take(valid, [COL, FUEL]))  # coolant, tank level
        coolant_slope = slopes[:, 0]
        fuel_lph = self.fuel(x)[:, 0]
        expected = -fuel_lph / TANK_L * 100.0 / 60.0
        res = self.cross.residuals(x)  # [B, 2, T]: rpm, throttle
        res_w = take(valid, [RPM, THR]) * valid[:, SP:SP + 1]
        samples_mean = masked_mean(
            torch.cat([torch.stack([gear_dist, rpm, rpm, col], dim=1), res, res.abs()], dim=1),
            torch.cat([torch.stack([in_gear, valid[:, RPM], at_rest, valid[:, COL]], dim=1), res_w, res_w], dim=1))
        coolant_mean = samples_mean[:, 3]
        # A spike is an excursion of one or two samples that comes back: the distance of a sample from the median
        # of the five around it (a gear change or a braking onset steps once and stays: the median follows it).
        # The cross predictor's residuals are judged in rpm and % of throttle.
        units = take(self.cross.channels.std, [CROSS_RPM, CROSS_THR], 0) * self.cross_units
        excursion, excursion_ok = spike_excursions(torch.cat([take(xf, self.noisy), res * units], dim=1),
                                                   torch.cat([take(valid, self.noisy), res_w], dim=1))
        excursion_max = torch.log(masked_max(excursion[:, :-2], excursion_ok[:, :-2]) + self.excursion_floor)
        spikes = torch.stack([F.relu(excursion[:, -2] / SPIKE_LEVEL_RPM - 1.0),
                              (excursion[:, -1] > SPIKE_LEVEL_THROTTLE_PCT).to(x.dtype)], dim=1)
        spikes = (spikes * excursion_ok[:, -2:]).sum(dim=-1)

        maxima = torch.stack([masked_max(gps_err, gps_ok), masked_max(rpm, valid[:, RPM])], dim=1)
        scalars = torch.stack([
            acc_mean - G * grade, acc_spread, (climb / dist.clamp(min=30.0)).abs(),
            # Warm, the thermostat holds the coolant: a rise past its band is what a failed fan looks like.
            F.relu(coolant_slope) * ((coolant_mean - 85.0) / 10.0).clamp(0.0, 1.0),
            F.relu(WARMUP_C_PER_MIN_PER_LPH * fuel_lph - COLD_LOSS_C_PER_MIN - coolant_slope)
            * ((COLD_COOLANT_C - coolant_mean) / 3.0).clamp(0.0, 1.0) * valid[:, COL].mean(dim=-1),
            slopes[:, 1] - expected, fuel_lph,
        ], dim=1)
        laid_out = torch.cat([missing, step_std, excursion_max, out_of_range, repeats, steps_mean, samples_mean,
                              slopes, spikes, maxima, scalars, self.context_features(xc, coolant_mean)], dim=1)
        feats = take(laid_out, self.order)
        return torch.where(self.log1p, torch.log1p(feats), feats) / self.unit
