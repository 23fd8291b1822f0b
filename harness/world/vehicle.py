"""The vehicle plant: from a driver's speed profile to 10 Hz traces of the ten signals, with fuel truth.

Physics, in the order the plant evaluates it:
- Longitudinal dynamics: the speed target is followed within what the tyres and engine allow (a forward rate
  limiter with a power-limited maximum acceleration), on the road grade of the route.
- Road load and tractive power, and fuel: VT-CPFM-1, the Virginia Tech Comprehensive Power-based Fuel
  consumption Model (Rakha, Ahn, Moran, Saerens, Van den Bulck, "Virginia Tech Comprehensive Power-Based Fuel
  Consumption Model: Model development and testing", Transportation Research Part D 16(7):492-503, 2011):
      R(t) = rho/25.92 * Cd * Ch * Af * v^2 + 9.8066 * m * Cr/1000 * (c1 * v + c2) + 9.8066 * m * G   [N, v km/h]
      P(t) = (R(t) + 1.04 * m * a) / (3600 * eta_d) * v                                              [kW]
      FC(t) = alpha0 + alpha1 * P + alpha2 * P^2  for P >= 0,  alpha0 for P < 0                         [L/s]
  The passenger-car preset uses the paper's composite-vehicle parameters (m 1453 kg, Cd 0.30, Af 2.32 m^2,
  Cr 1.75, c1 0.0328, c2 4.575, eta_d 0.92, alpha0 4.7738e-4, alpha1 5.363e-5, alpha2 1.0e-6), as quoted in the
  eco-driving literature that builds on it. The light-truck preset keeps the road-load form with a 1-tonne
  cargo truck's mass and area, and sets alpha0 from a 2.5 L common-rail diesel's idle fuel rate and alpha1 from a
  diesel's marginal (Willans-line) efficiency; those coefficients are this project's estimates, not a
  published calibration. One extension beyond VT-CPFM-1: the idle term scales with engine speed above the
  rpm the gear strategy would have chosen (friction work grows with rpm), so over-revving and fast idle cost
  fuel as they do on a real engine.
- Gears: an automatic-style shift schedule with hysteresis, upshift rpm rising with power demand and scaled by the
  driving style (`harness.world.cycles.STYLE_EFFECTS`: eco changes up early, aggressive late); clutch slip
  at pull-away; neutral at rest. rpm = v / (2 pi r_wheel) * 60 * ratio(gear) * final_drive.
- Throttle: engine power demand over the power available at the current rpm (a simple full-load curve).
- Brake pressure: the deceleration the road load and engine braking do not provide, as line pressure.
- Coolant: one lumped thermal mass heated by the fuel energy that goes to the coolant, cooled by a radiator
  behind a wax thermostat (opens 85-97 degC) with ram air and a fan, and by convection from the block.
- Fuel level: tank content integrated from consumption (and any leak), as a percentage of the tank.
- Longitudinal acceleration as an accelerometer reads it (dv/dt plus the gravity component along the grade).
- Position: latitude, longitude and altitude along the route of `harness.world.route`.
- The style label (`Trace.style`): the one the true speed earns (`harness.world.driving_style`), whatever the
  profile intended; the intent only sets the gear-shift speeds.

Not modelled: lateral dynamics, tyre slip, gear-shift torque interruptions, turbo lag, cold-start enrichment,
the fuel level sender's slosh damping beyond a small reading noise, and the electrical load on the alternator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.wire.signals import PLANT_RATE_HZ, Trace
from harness.world.anomalies import Anomaly, apply_reading_faults, apply_speed_anomalies, vehicle_modifiers
from harness.world.cycles import SHIFT_SCALE, SpeedProfile
from harness.world.driving_style import style_per_second
from harness.world.route import RouteStart, route_along

G = 9.8066
AIR_DENSITY = 1.2256  # kg/m^3, the value VT-CPFM uses at sea level
DT = 1.0 / PLANT_RATE_HZ


@dataclass(frozen=True)
class VehicleParams:
    name: str
    description: str
    mass_kg: float
    drag_coefficient: float
    frontal_area_m2: float
    rolling_cr: float
    rolling_c1: float
    rolling_c2: float
    driveline_efficiency: float
    alpha0_l_s: float
    alpha1_l_s_kw: float
    alpha2_l_s_kw2: float
    fuel: str
    fuel_lhv_mj_l: float
    fuel_density_kg_l: float
    tank_l: float
    displacement_l: float
    idle_rpm: float
    redline_rpm: float
    rated_power_kw: float
    rated_rpm: float
    gear_ratios: tuple[float, ...]
    final_drive: float
    wheel_radius_m: float
    upshift_rpm: tuple[float, float]  # at no demand, at full demand
    downshift_rpm: float
    max_traction_accel: float  # m/s^2, what the tyres transmit at pull-away
    brake_bar_per_g: float
    thermal_mass_kj_k: float
    radiator_ua_kw_k: float
    coolant_heat_fraction: float = 0.30
    thermostat_c: tuple[float, float] = (85.0, 97.0)

    def rpm_in_gear(self, speed_kmh: np.ndarray | float, gear: int) -> np.ndarray | float:
        wheel_rpm = np.asarray(speed_kmh) / 3.6 / (2 * np.pi * self.wheel_radius_m) * 60.0
        return wheel_rpm * self.gear_ratios[gear - 1] * self.final_drive

    def available_power_kw(self, rpm: np.ndarray | float) -> np.ndarray | float:
        """Full-load power at an engine speed: a smooth curve through 0 and the rated point."""
        x = np.clip(np.asarray(rpm) / self.rated_rpm, 0.0, 1.15)
        return self.rated_power_kw * x * (1.9 - 0.9 * x)


VEHICLES: dict[str, VehicleParams] = {
    "passenger_car": VehicleParams(
        name="passenger_car",
        description="mid-size gasoline sedan (VT-CPFM-1 composite passenger car, 2.5 L, 6-speed automatic)",
        mass_kg=1453.0, drag_coefficient=0.30, frontal_area_m2=2.32,
        rolling_cr=1.75, rolling_c1=0.0328, rolling_c2=4.575, driveline_efficiency=0.92,
        alpha0_l_s=4.7738e-4, alpha1_l_s_kw=5.363e-5, alpha2_l_s_kw2=1.0e-6,
        fuel="gasoline", fuel_lhv_mj_l=32.0, fuel_density_kg_l=0.745, tank_l=64.0, displacement_l=2.5,
        idle_rpm=700.0, redline_rpm=6500.0, rated_power_kw=133.0, rated_rpm=6000.0,
        gear_ratios=(3.300, 1.900, 1.420, 1.000, 0.713, 0.608), final_drive=3.824, wheel_radius_m=0.33,
        upshift_rpm=(1900.0, 4600.0), downshift_rpm=1150.0, max_traction_accel=5.0,
        brake_bar_per_g=110.0, thermal_mass_kj_k=60.0, radiator_ua_kw_k=1.2,
    ),
    "light_truck": VehicleParams(
        name="light_truck",
        description="1-tonne cargo truck, half laden (2.5 L common-rail diesel, 6-speed)",
        mass_kg=2600.0, drag_coefficient=0.50, frontal_area_m2=3.8,
        rolling_cr=1.75, rolling_c1=0.0328, rolling_c2=4.575, driveline_efficiency=0.90,
        alpha0_l_s=2.6e-4, alpha1_l_s_kw=5.7e-5, alpha2_l_s_kw2=6.0e-7,
        fuel="diesel", fuel_lhv_mj_l=35.8, fuel_density_kg_l=0.835, tank_l=65.0, displacement_l=2.5,
        idle_rpm=750.0, redline_rpm=4200.0, rated_power_kw=98.0, rated_rpm=3800.0,
        gear_ratios=(4.271, 2.282, 1.429, 1.000, 0.829, 0.695), final_drive=4.778, wheel_radius_m=0.32,
        upshift_rpm=(1700.0, 3300.0), downshift_rpm=1100.0, max_traction_accel=4.0,
        brake_bar_per_g=120.0, thermal_mass_kj_k=90.0, radiator_ua_kw_k=2.4,
    ),
}


def get_vehicle(name: str) -> VehicleParams:
    try:
        return VEHICLES[name]
    except KeyError:
        raise ValueError(f"unknown vehicle '{name}'; expected one of: {', '.join(VEHICLES)}") from None


@dataclass(frozen=True)
class PlantConditions:
    """What the scenario sets beside the route: weather, tank and engine state at key-on, where the trip starts."""

    ambient_c: float = 20.0
    start_fuel_pct: float = 75.0
    start_coolant_c: float | None = None  # None: a cold start at ambient temperature
    route_start: RouteStart = field(default_factory=RouteStart)
    hilliness: float = 0.3


def road_load_n(vehicle: VehicleParams, speed_kmh: np.ndarray, grade: np.ndarray | float,
                altitude_m: np.ndarray | float = 0.0) -> np.ndarray:
    """VT-CPFM resistance force R(t) in newtons (aerodynamic + rolling + grade)."""
    altitude_factor = 1.0 - 0.085 * np.asarray(altitude_m) / 1000.0  # Ch in the paper
    aero = AIR_DENSITY / 25.92 * vehicle.drag_coefficient * altitude_factor * vehicle.frontal_area_m2 * speed_kmh**2
    rolling = G * vehicle.mass_kg * vehicle.rolling_cr / 1000.0 * (vehicle.rolling_c1 * speed_kmh + vehicle.rolling_c2)
    return aero + np.where(speed_kmh > 0, rolling, 0.0) + G * vehicle.mass_kg * np.asarray(grade)


def fuel_rate_l_s(vehicle: VehicleParams, power_kw: np.ndarray,
                  friction_factor: np.ndarray | float = 1.0) -> np.ndarray:
    """VT-CPFM-1 fuel rate (L/s) for tractive power (kW); the idle term scaled by `friction_factor`."""
    p = np.maximum(power_kw, 0.0)
    return vehicle.alpha0_l_s * friction_factor + vehicle.alpha1_l_s_kw * p + vehicle.alpha2_l_s_kw2 * p**2


def _follow_speed(vehicle: VehicleParams, target_kmh: np.ndarray) -> np.ndarray:
    """The speed the vehicle achieves following the driver's target within tyre and engine limits (flat road)."""
    brake_max = 9.5 * 3.6 * DT  # km/h per step, about 1 g on dry asphalt
    mass_eff = 1.04 * vehicle.mass_kg
    peak_w = vehicle.rated_power_kw * 1000.0 * vehicle.driveline_efficiency
    out = np.empty(len(target_kmh))
    v = float(target_kmh[0])
    drag_k = AIR_DENSITY / 25.92 * vehicle.drag_coefficient * vehicle.frontal_area_m2
    roll_k = G * vehicle.mass_kg * vehicle.rolling_cr / 1000.0
    for i, target in enumerate(target_kmh.tolist()):
        out[i] = v
        dv = target - v
        if dv > 0:
            resistance = drag_k * v * v + roll_k * (vehicle.rolling_c1 * v + vehicle.rolling_c2)
            power_accel = (peak_w / max(v / 3.6, 1.0) - resistance) / mass_eff
            dv = min(dv, min(vehicle.max_traction_accel, max(power_accel, 0.3)) * 3.6 * DT)
        else:
            dv = max(dv, -brake_max)
        v = max(v + dv, 0.0)
    return out


def _smooth(x: np.ndarray, samples: int) -> np.ndarray:
    if samples <= 1:
        return x
    kernel = np.ones(samples) / samples
    padded = np.concatenate([np.full(samples // 2, x[0]), x, np.full(samples - 1 - samples // 2, x[-1])])
    return np.convolve(padded, kernel, mode="valid")


def _gears_and_rpm(vehicle: VehicleParams, speed_kmh: np.ndarray, demand: np.ndarray,
                   rpm_target: np.ndarray, idle_boost: np.ndarray,
                   shift_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gear (0 = neutral), engine rpm, and the rpm normal driving would have had (for the friction term).

    `shift_scale` scales the up- and downshift engine speeds per sample (the driver's style)."""
    n_gears = len(vehicle.gear_ratios)
    per_kmh = np.array([vehicle.rpm_in_gear(1.0, g) for g in range(1, n_gears + 1)])  # rpm per km/h in each gear
    up_lo, up_hi = vehicle.upshift_rpm
    idle, redline = vehicle.idle_rpm, vehicle.redline_rpm
    gears = np.zeros(len(speed_kmh), dtype=np.int64)
    rpm = np.empty(len(speed_kmh))
    normal_rpm = np.empty(len(speed_kmh))
    gear, since_shift = 0, 10.0
    for i, (v, d, target, boost, k) in enumerate(zip(speed_kmh.tolist(), demand.tolist(), rpm_target.tolist(),
                                                     idle_boost.tolist(), shift_scale.tolist(), strict=False)):
        since_shift += DT
        if v < 1.0:
            gear = 0
            base = idle + boost
            r = max(base, target)  # revving in neutral when over-revving while parked
            gears[i], rpm[i], normal_rpm[i] = 0, min(r, redline), base
            continue
        if gear == 0:
            gear = 1
        up_at = (up_lo + (up_hi - up_lo) * min(max(d, 0.0), 1.0)) * k
        down_at = vehicle.downshift_rpm * k
        if since_shift >= 1.0:
            if gear < n_gears and v * per_kmh[gear - 1] > up_at and v * per_kmh[gear] > down_at * 1.1:
                gear += 1
                since_shift = 0.0
            elif gear > 1 and v * per_kmh[gear - 1] < down_at:
                gear -= 1
                since_shift = 0.0
        # Pull-away: below idle speed in first gear the clutch (or converter) slips.
        normal = max(v * per_kmh[gear - 1], idle + 400.0 * min(max(d, 0.0), 1.0) if gear == 1 else idle)
        held = gear
        if target > 0:
            # Over-revving: the driver holds the highest gear that still reaches the target rpm.
            held = 1
            for g in range(n_gears, 0, -1):
                if v * per_kmh[g - 1] >= target:
                    held = g
                    break
        r = max(v * per_kmh[held - 1], idle) if held != gear else normal
        gears[i], rpm[i], normal_rpm[i] = held, min(r, redline), normal
    return gears, rpm, normal_rpm


def _thermal(vehicle: VehicleParams, heat_in_kw: np.ndarray, speed_kmh: np.ndarray, cooling: np.ndarray,
             ambient_c: float, start_c: float) -> np.ndarray:
    """Coolant temperature: lumped mass, thermostat-gated radiator with ram air and fan, block convection."""
    open_c, full_c = vehicle.thermostat_c
    ua = vehicle.radiator_ua_kw_k
    temp = np.empty(len(heat_in_kw))
    t = start_c
    k = DT / vehicle.thermal_mass_kj_k
    for i, (q_in, v, eff) in enumerate(zip(heat_in_kw.tolist(), speed_kmh.tolist(), cooling.tolist(), strict=False)):
        temp[i] = t
        opening = min(max((t - open_c) / (full_c - open_c), 0.02), 1.0)  # a bypass always leaks a little
        airflow = max(min(v / 60.0, 1.0), 0.4 if t > full_c - 2.0 else 0.15)  # fan switches on near full open
        q_out = ua * opening * airflow * eff * (t - ambient_c) + 0.015 * (t - ambient_c)
        # 128 degC: the pressure cap vents and the coolant boils; the reading cannot climb further.
        t = min(t + k * (q_in - q_out), 128.0)
    return temp


def _lowpass(x: np.ndarray, tau_s: float, initial: float | None = None) -> np.ndarray:
    alpha = DT / (tau_s + DT)
    out = np.empty(len(x))
    y = float(x[0]) if initial is None else initial
    for i, value in enumerate(x.tolist()):
        y += alpha * (value - y)
        out[i] = y
    return out


def _ou_noise(rng: np.random.Generator, n: int, sigma: float, tau_s: float) -> np.ndarray:
    """Correlated noise (GNSS position error wanders; it is not white)."""
    return _lowpass(rng.normal(0.0, sigma * np.sqrt(2 * tau_s / DT), n), tau_s, initial=0.0)


def simulate(profile: SpeedProfile, vehicle: VehicleParams, anomalies: list[Anomaly] | tuple = (),
             seed: int = 0, conditions: PlantConditions = PlantConditions()) -> Trace:
    """Drive `profile` with `vehicle`, injecting `anomalies`; deterministic for `seed`."""
    anomalies = list(anomalies)
    n = int(round(profile.duration_s * PLANT_RATE_HZ))
    t = np.arange(n) * DT
    target = np.interp(t, np.arange(len(profile.speed_kmh), dtype=float), profile.speed_kmh)
    target = apply_speed_anomalies(t, _smooth(target, 5), anomalies, seed)
    speed = _follow_speed(vehicle, target)
    accel = np.gradient(speed / 3.6, DT)
    distance_m = np.concatenate([[0.0], np.cumsum((speed[:-1] + speed[1:]) / 2 / 3.6 * DT)])
    route = route_along(distance_m, seed, conditions.route_start, conditions.hilliness)

    mods = vehicle_modifiers(t, anomalies, vehicle.redline_rpm)
    resistance = road_load_n(vehicle, speed, route.grade, route.altitude_m)
    tractive_n = resistance + 1.04 * vehicle.mass_kg * accel
    wheel_power_kw = tractive_n * speed / 3600.0  # N * km/h / 3600 = kW
    # The speed follower works on a flat road, so a long climb at speed can ask for more than the engine has:
    # the engine gives at most its rated power (the fuel and the heat into the coolant stay those of a real
    # engine at full load; without the cap a healthy light truck boiled at 140 km/h uphill).
    engine_power_kw = np.minimum(np.maximum(wheel_power_kw, 0.0) / vehicle.driveline_efficiency,
                                 vehicle.rated_power_kw)
    # Power demand relative to the rated point drives the shift schedule; actual throttle follows below.
    demand = engine_power_kw / vehicle.rated_power_kw * 2.0
    intent = np.repeat(profile.style_at(), int(PLANT_RATE_HZ))[:n]  # the driver's intent: how they shift
    gear, rpm, normal_rpm = _gears_and_rpm(vehicle, speed, demand, mods.rpm_target, mods.idle_rpm_boost,
                                           SHIFT_SCALE[intent])

    friction_factor = (1.0 + np.maximum(rpm - normal_rpm, 0.0) / vehicle.idle_rpm
                       + mods.idle_rpm_boost / vehicle.idle_rpm)
    fuel_l_s = fuel_rate_l_s(vehicle, engine_power_kw, friction_factor)
    fuel_lph = fuel_l_s * 3600.0

    available = vehicle.available_power_kw(rpm)
    friction_kw = 0.02 * vehicle.rated_power_kw * friction_factor
    revving = np.where(gear == 0,
                       np.clip((rpm - vehicle.idle_rpm - mods.idle_rpm_boost) / vehicle.redline_rpm, 0, 1), 0.0)
    throttle = np.clip(100.0 * engine_power_kw / np.maximum(available, 1.0) + 60.0 * revving, 0.0, 100.0)
    load = np.clip(100.0 * (engine_power_kw + friction_kw) / np.maximum(available, 1.0), 0.0, 100.0)

    engine_brake_n = np.where((gear > 0) & (speed > 10.0), 0.25 * vehicle.mass_kg, 0.0)
    brake_n = np.maximum(-tractive_n - engine_brake_n, 0.0)
    brake_n = np.where(speed < 0.5, 0.0, brake_n)
    brake_bar = np.clip(brake_n / (vehicle.mass_kg * G) * vehicle.brake_bar_per_g, 0.0, 160.0)
    # Held at rest on the brake pedal, as drivers do at lights (a fixed holding pressure).
    brake_bar = np.where((speed < 0.5) & (target < 0.5), 8.0, brake_bar)

    fuel_power_kw = fuel_l_s * vehicle.fuel_lhv_mj_l * 1000.0
    start_c = conditions.ambient_c if conditions.start_coolant_c is None else conditions.start_coolant_c
    coolant = _thermal(vehicle, vehicle.coolant_heat_fraction * fuel_power_kw, speed, mods.cooling_efficiency,
                       conditions.ambient_c, start_c)

    used_l = np.concatenate([[0.0], np.cumsum((fuel_l_s + mods.fuel_leak_lph / 3600.0)[:-1] * DT)])
    fuel_pct = np.clip(conditions.start_fuel_pct - 100.0 * used_l / vehicle.tank_l, 0.0, 100.0)
    accel_x = accel + G * np.sin(np.arctan(route.grade))

    if vehicle.fuel == "gasoline":
        maf = fuel_l_s * vehicle.fuel_density_kg_l * 1000.0 * 14.7  # stoichiometric air-fuel ratio
    else:  # diesel: unthrottled, air follows displacement, rpm and boost
        maf = 1.184 * vehicle.displacement_l * rpm / 120.0 * 0.9 * (1.0 + load / 100.0)
    intake = conditions.ambient_c + 3.0 + _lowpass(20.0 * (1.0 - np.minimum(speed / 50.0, 1.0)), 60.0)
    battery = 13.8 + 0.5 * np.clip((rpm - vehicle.idle_rpm) / 1000.0, 0.0, 1.0)

    truth = {
        "vehicle_speed": speed,
        "engine_rpm": rpm,
        "throttle_position": throttle,
        "brake_pressure": brake_bar,
        "coolant_temp": coolant,
        "fuel_level": fuel_pct,
        "acceleration_x": accel_x,
        "latitude": route.latitude,
        "longitude": route.longitude,
        "altitude": route.altitude_m,
    }
    rng = np.random.default_rng([seed, 0x5E45])
    readings = {name: values.copy() for name, values in truth.items()}
    # Sensor noise a real unit sees; small against every anomaly, and never outside the physical range.
    readings["acceleration_x"] = accel_x + rng.normal(0.0, 0.05, n)
    readings["fuel_level"] = np.clip(fuel_pct - 0.15 * accel + rng.normal(0.0, 0.1, n), 0.0, 100.0)
    readings["coolant_temp"] = coolant + rng.normal(0.0, 0.1, n)
    pos_n, pos_e = _ou_noise(rng, n, 1.5, 20.0), _ou_noise(rng, n, 1.5, 20.0)
    readings["latitude"] = route.latitude + np.degrees(pos_n / 6_371_000.0)
    readings["longitude"] = route.longitude + np.degrees(pos_e / (6_371_000.0 * np.cos(np.radians(route.latitude))))
    readings["altitude"] = route.altitude_m + _ou_noise(rng, n, 3.0, 30.0)
    readings = apply_reading_faults(t, readings, anomalies, seed)

    aux = {
        "fuel_rate": fuel_lph,
        "engine_load": load,
        "intake_air_temp": intake,
        "maf": maf,
        "battery_voltage": battery,
        "gear": gear.astype(float),
    }
    # The label is the style the true driving earns (harness.world.driving_style), per second at 1 Hz, held.
    step = int(PLANT_RATE_HZ)
    style = np.repeat(style_per_second(speed[::step]), step)[:n]
    return Trace(t_s=t, signals=readings, truth=truth, aux=aux, events=[a.label() for a in anomalies], style=style)


@dataclass(frozen=True)
class DriveSummary:
    distance_km: float
    duration_s: float
    fuel_used_l: float
    fuel_l_per_100km: float
    idle_l_per_h: float
    max_rpm: float
    coolant_min_c: float
    coolant_max_c: float
    coolant_settled_c: float
    fuel_level_drop_pct: float
    fuel_level_drop_expected_pct: float

    @property
    def fuel_level_error(self) -> float:
        """Relative mismatch between the fuel level drop and the integrated consumption."""
        return (abs(self.fuel_level_drop_pct - self.fuel_level_drop_expected_pct)
                / max(self.fuel_level_drop_expected_pct, 1e-9))


def summarize(trace: Trace, vehicle: VehicleParams) -> DriveSummary:
    """Headline figures of a drive, from the ground truth (what `dtg-hil vehicle summary` prints)."""
    speed = trace.truth["vehicle_speed"]
    fuel_lph = trace.aux["fuel_rate"]
    fuel_used = float(np.sum(fuel_lph) * DT / 3600.0)
    distance = float(np.sum(speed) * DT / 3600.0)
    coolant = trace.truth["coolant_temp"]
    idle = (speed < 0.5) & (trace.aux["gear"] == 0)
    warm_half = coolant[len(coolant) // 2:]
    # Compare the tank content over the same interval the consumption was integrated over.
    level = trace.truth["fuel_level"]
    used_to_last = float(np.sum(fuel_lph[:-1]) * DT / 3600.0)
    return DriveSummary(
        distance_km=distance,
        duration_s=trace.duration_s,
        fuel_used_l=fuel_used,
        fuel_l_per_100km=100.0 * fuel_used / distance if distance > 0 else float("nan"),
        idle_l_per_h=float(np.mean(fuel_lph[idle])) if idle.any() else float("nan"),
        max_rpm=float(np.max(trace.truth["engine_rpm"])),
        coolant_min_c=float(np.min(coolant)),
        coolant_max_c=float(np.max(coolant)),
        coolant_settled_c=float(np.median(warm_half)),
        fuel_level_drop_pct=float(level[0] - level[-1]),
        fuel_level_drop_expected_pct=100.0 * used_to_last / vehicle.tank_l,
    )
