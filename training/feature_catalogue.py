"""The anomaly features by name: what each judges and which side of it is anomalous.

`FEATURE_SIGNALS` lists every feature of `training.anomaly_features.AnomalyFeatures` in its output order, with
the signals it judges (`signal_matrix`: the attribution of a feature's residual to signals); `FEATURE_SIDES`,
`FEATURE_SCALE_FLOOR` and `NORMAL_SIDE_CLIP` say how `training.anomaly_model.AnomalyModel` standardises them.
The per-signal floors of the noise and excursion features are here too, as they decide which signals have
those features. How a feature is computed is not (`training.anomaly_features`).
"""
from __future__ import annotations

import numpy as np

from harness.wire.signals import SIGNALS
from training.channels import ACC, ALT, BRK, COL, FUEL, LAT, LON, N_SIGNALS, RPM, SP, THR

NOISY = (SP, RPM, THR, BRK, COL, FUEL, ACC, ALT)
#: Signals whose reading keeps some noise through the bus: OBD-II sends coolant in whole degrees and the tank
#: level in 0.4 % steps, so a flat reading of those is normal and their step spread says nothing.
NOISE_KEPT = (SP, RPM, THR, BRK, ACC, ALT)
#: Floors for log noise features (about each signal's reading resolution): the log of a stuck signal is finite
#: (OBD-II sends speed in 1 km/h, rpm in 0.25 rpm, throttle and tank level in 0.39 %, coolant in 1 degC).
NOISE_FLOOR = {SP: 0.1, RPM: 0.1, THR: 0.05, BRK: 1e-3, COL: 0.1, FUEL: 0.05, ACC: 1e-3, ALT: 1e-2}
#: Floors of the log excursion features: the same, except brake pressure, where a light touch of the pedal for a
#: second (a 2-bar excursion) is driving. Over a floor of 1e-3 bar the log put a 1.8-bar tap while cruising
#: (z 7.8) within a few units of a 25-bar spike, and that tap alone raised two false alarms in one scenario.
EXCURSION_FLOOR = {**NOISE_FLOOR, BRK: 2.0}
#: Each feature with the signals it judges; the order is the order of AnomalyFeatures' output.
FEATURE_SIGNALS: tuple[tuple[str, tuple[int, ...]], ...] = (
    tuple((f"missing_share_{SIGNALS[s]}", (s,)) for s in range(N_SIGNALS))
    + tuple((f"log_step_std_{SIGNALS[s]}", (s,)) for s in NOISE_KEPT)
    + tuple((f"log_excursion_max_{SIGNALS[s]}", (s,)) for s in NOISY)
    + tuple((f"out_of_range_share_{SIGNALS[s]}", (s,)) for s in NOISY)
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
        # Over the context (CONTEXT_S): slow faults.
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
              "altitude_grade", "speed_repeat_while_rpm_moves", "context_coolant_rise_while_hot",
              "context_coolant_hot_at_low_load", "context_coolant_slope_c_per_min",
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


def signal_matrix() -> np.ndarray:
    """[features, 10]: 1 where a feature judges a signal."""
    m = np.zeros((len(FEATURE_SIGNALS), N_SIGNALS), dtype=np.float32)
    for i, (_, signals) in enumerate(FEATURE_SIGNALS):
        m[i, list(signals)] = 1.0
    return m
