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

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.inference.features import WINDOW_S
from harness.world.vehicle import VEHICLES
from training.channels import (
    ACC,
    ALT,
    BRK,
    COL,
    FUEL,
    LAT,
    LON,
    RANGE_HI,
    RANGE_LO,
    RPM,
    SP,
    THR,
    fill_missing,
    gps_step_m,
    time_step,
)
from training.feature_catalogue import EXCURSION_FLOOR, NOISE_FLOOR, NOISE_KEPT, NOISY
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
#: The context tank-level slope spans only the last FUEL_CONTEXT_S: its spread on normal training windows hardly
#: narrows past 3 minutes (the consumption proxy's error, not the level's noise, sets it: 99.9th percentile
#: 0.118 %/min over 180 s, 0.109 over 300 s), while a leak fills a shorter span sooner (a 13.6 L/h leak crosses
#: 2.56 times that spread 156 s after onset over 180 s, 233 s over 300 s).
FUEL_CONTEXT_S = 180
#: A speed change below this (m/s per s, relative rpm change) is "not moving" for the repeat features.
RPM_MOVES = 0.01


def _slosh_corrected_level(xf: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Tank level [B, T] with the sender's slosh undone: it reads back by 0.15 %/(m/s^2) of the acceleration
    (the central speed derivative of v [B, T], m/s)."""
    return xf[:, :, FUEL] + 0.15 * F.pad(0.5 * (v[:, 2:] - v[:, :-2]), (1, 1))


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
        self.register_buffer("excursion_floor", torch.tensor([EXCURSION_FLOOR[s] for s in NOISY],
                                                             dtype=torch.float32))
        self.register_buffer("lo", torch.tensor(RANGE_LO[list(NOISY)]))
        self.register_buffer("hi", torch.tensor(RANGE_HI[list(NOISY)]))
        self.noisy = list(NOISY)
        self.kept = list(NOISE_KEPT)
        self.register_buffer("kept_floor", torch.tensor([NOISE_FLOOR[s] for s in NOISE_KEPT], dtype=torch.float32))
        self.register_buffer("fuel_proxy", torch.zeros(9))

    def context_features(self, xc: torch.Tensor, coolant_now: torch.Tensor) -> torch.Tensor:
        """The `context_` features of the whole input [B, T, 10]."""
        xf, valid = fill_missing(xc, self.fallback)
        v = xf[:, :, SP] / 3.6
        drive_ok = valid[:, :, SP] * valid[:, :, RPM] * valid[:, :, THR] * valid[:, :, ACC]
        proxy = (fuel_proxy_design(xf) * self.fuel_proxy.view(1, 1, -1)).sum(dim=-1).clamp(min=0.0)
        fuel_lph = masked_mean(proxy, drive_ok)
        recent = slice(-FUEL_CONTEXT_S, None)
        fuel_ok = valid[:, recent, FUEL]
        level = _slosh_corrected_level(xf, v)[:, recent]
        expected = -masked_mean(proxy[:, recent], drive_ok[:, recent]) / TANK_L * 100.0 / 60.0
        col_ok = valid[:, :, COL]
        slope = robust_slope_per_min(xf[:, :, COL], col_ok, CONTEXT_COOLANT_BAND_C)
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
            (robust_slope_per_min(level, fuel_ok, CONTEXT_LEVEL_BAND_PCT) - expected) * fuel_span,
            slope * col_span,
            F.relu(slope) * ((coolant_now - 85.0) / 10.0).clamp(0.0, 1.0) * col_span,
            # Heat balance: with a working radiator the coolant rises past the thermostat's band only under
            # a high heat input (fuel burnt); hot at a low burn rate is a cooling system that is not cooling.
            F.relu(coolant_now - 90.0) / (1.0 + fuel_lph / HOT_LOAD_LPH),
            ((gps - travelled).clamp(-CONTEXT_STEP_CLIP_M, CONTEXT_STEP_CLIP_M) * both).sum(dim=1)
            / dist.clamp(min=200.0),
            masked_mean(self._speed_held(xf), speed_ok),
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
        step_std = torch.log(torch.sqrt(masked_mean((dk - masked_mean(dk, bk).unsqueeze(1)) ** 2, bk)
                                        + 1e-12) + self.kept_floor)
        # A spike is an excursion of one or two samples that comes back: the distance of a sample from the median
        # of the five around it (a gear change or a braking onset steps once and stays: the median follows it).
        excursion, all_valid = spike_excursions(xf[:, :, self.noisy], valid[:, :, self.noisy])  # [B, T-4, S]
        excursion_max = torch.log(masked_max(excursion, all_valid) + self.excursion_floor)
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
            masked_mean(same[:, :, BRK], both[:, :, BRK] * (brk[:, 1:] > 0.5).to(x.dtype) * moving),
            masked_mean(same[:, :, COL], both[:, :, COL]),
            masked_mean(same[:, :, FUEL], both[:, :, FUEL]),
            masked_mean(same[:, :, ACC], both[:, :, ACC]),
            masked_mean(same[:, :, ALT], both[:, :, ALT]),
            masked_mean(same[:, :, THR], both[:, :, THR] * (thr[:, 1:] > 0.5).to(x.dtype) * moving),
            masked_mean(self._speed_held(xf), both[:, :, SP] * both[:, :, RPM]),
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
        grade = torch.where(dist > 100.0, slope_against(xf[:, :, ALT], along, valid[:, :, ALT]),
                            torch.zeros_like(dist)).clamp(-0.3, 0.3)
        acc_bias = masked_mean(acc_res, acc_ok) - G * grade
        acc_spread = torch.sqrt(masked_mean((acc_res - masked_mean(acc_res, acc_ok).unsqueeze(1)) ** 2, acc_ok)
                                + 1e-12)

        # Above 30 km/h and weighted by speed: speed arrives in whole km/h, too coarse for a gear ratio when slow.
        in_gear = ((speed > 30.0) & (rpm > 100.0) & ~nan[:, :, SP] & ~nan[:, :, RPM]).to(x.dtype) * speed
        ratio = torch.log(rpm.clamp(min=1.0) / speed.clamp(min=1.0))
        gear_dist = (ratio.unsqueeze(-1) - self.gear_lines.view(1, 1, -1)).abs().min(dim=-1).values
        at_rest = ((speed < 0.5) & ~nan[:, :, SP] & ~nan[:, :, RPM]).to(x.dtype)
        rpm_ok = valid[:, :, RPM]

        dv = time_step(v)[:, 1:]
        pedal_ok = valid[:, 1:, THR] * valid[:, 1:, BRK]
        tb = ((thr[:, 1:] > 5.0) & (brk[:, 1:] > 2.0) & (speed[:, 1:] > 0.5)).to(x.dtype)
        # Speed arrives in whole km/h (0.28 m/s per step): ask for a clear acceleration, above walking pace.
        brk_acc = brk[:, 1:] * ((dv > 0.6) & (speed[:, 1:] > 5.0)).to(x.dtype)
        decel_nb = F.relu(-dv - 1.5) * (brk[:, 1:] < 1.0).to(x.dtype) * moving
        acc_nt = ((dv > 0.5) & (thr[:, 1:] < 1.0) & (speed[:, 1:] > 5.0)).to(x.dtype)

        col_ok = valid[:, :, COL]
        coolant_mean = masked_mean(xf[:, :, COL], col_ok)
        coolant_slope = slope_per_min(xf[:, :, COL], col_ok)
        fuel_ok = valid[:, :, FUEL]
        level = _slosh_corrected_level(xf, v)
        fuel_slope = slope_per_min(level, fuel_ok)
        fuel_lph = self.fuel(x)[:, 0]
        expected = -fuel_lph / TANK_L * 100.0 / 60.0
        rpm_pred, rpm_std, thr_pred, thr_std = self.cross(x)
        rpm_res, thr_res = rpm_std - rpm_pred, thr_std - thr_pred
        rpm_w = valid[:, :, RPM] * valid[:, :, SP]
        thr_w = valid[:, :, THR] * valid[:, :, SP]
        cross_std = self.cross.channels.std
        rpm_exc, rpm_exc_ok = spike_excursions(rpm_res * (cross_std[CROSS_RPM] * 1000.0), rpm_w)
        rpm_spikes = (F.relu(rpm_exc / SPIKE_LEVEL_RPM - 1.0) * rpm_exc_ok).sum(dim=1)
        thr_exc, thr_exc_ok = spike_excursions(thr_res * cross_std[CROSS_THR], thr_w)
        thr_spikes = ((thr_exc > SPIKE_LEVEL_THROTTLE_PCT).to(x.dtype) * thr_exc_ok).sum(dim=1)

        feats = [
            missing, step_std, excursion_max, out_of_range, torch.stack(rep, dim=1),
            torch.stack([
                torch.log1p(masked_mean(gps_err, gps_ok)), torch.log1p(masked_max(gps_err, gps_ok)),
                acc_bias, acc_spread, (climb / dist.clamp(min=30.0)).abs(),
                masked_mean(gear_dist, in_gear), masked_mean(rpm, rpm_ok) / 1000.0,
                masked_max(rpm, rpm_ok) / 1000.0, masked_mean(rpm, at_rest) / 1000.0,
                masked_mean(tb, pedal_ok), masked_mean(brk_acc, pedal_ok), masked_mean(decel_nb, pedal_ok),
                masked_mean(acc_nt, pedal_ok),
                coolant_mean, coolant_slope,
                # Warm, the thermostat holds the coolant: a rise past its band is what a failed fan looks like.
                F.relu(coolant_slope) * ((coolant_mean - 85.0) / 10.0).clamp(0.0, 1.0),
                F.relu(WARMUP_C_PER_MIN_PER_LPH * fuel_lph - COLD_LOSS_C_PER_MIN - coolant_slope)
                * ((COLD_COOLANT_C - coolant_mean) / 3.0).clamp(0.0, 1.0) * col_ok.mean(dim=1),
                fuel_slope, fuel_slope - expected, fuel_lph,
                masked_mean(rpm_res, rpm_w), masked_mean(rpm_res.abs(), rpm_w),
                masked_mean(thr_res, thr_w), masked_mean(thr_res.abs(), thr_w),
                rpm_spikes, thr_spikes,
            ], dim=1),
            self.context_features(xc, coolant_mean),
        ]
        return torch.cat(feats, dim=1)
