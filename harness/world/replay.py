"""Recorded CAN logs as scenario routes: decode a log through the DBC, fill in what the bus does not carry,
and overlay reading faults whose windows are the ground truth.

A route `recording: drive.blf` (BLF or ASC, python-can's `LogReader`) is decoded through the DBC of the profile
the log speaks, detected from its frames: OBD-II responses on 0x7E8 (service 01, the PID in the third byte, the
DBC's multiplexed `OBD2_RESPONSE`) or J1939 broadcasts (29-bit identifiers, matched by PGN). The result is the
drive at 1 Hz: second k holds the last value decoded in [k, k+1) of the log's own time, NaN where nothing came
(an unanswered PID, J1939 "not available"). Time zero is the log's first frame: python-can's BLF and ASC readers
give stamps relative to it, so a log recorded from scenario second 1 replays from its second 0.

What the bus does not carry is derived from what it does, with the plant's own physics, and says so here:
- OBD-II carries neither brake, longitudinal acceleration nor position (on a unit they come from its own
  sensors). Acceleration is the slope of the (3-s smoothed) speed plus the grade's share of gravity; brake
  pressure is what the vehicle's brakes need for the deceleration the road load and engine braking do not
  give (`harness.world.vehicle`'s formula, the vehicle from the scenario); position and altitude lay the distance
  driven along the scenario's seeded route (`harness.world.route`), as the plant does.
- The fuel rate (fuel truth) comes from J1939 LFE1 when present, else from engine load and rpm through the
  vehicle's fuel map (an estimate: engine power from load x full-load power, less friction).
- OBD-II PIDs a J1939 log lacks (load, intake air, MAF, module voltage) are estimated the same way, so that an
  OBD-II rig replaying a J1939 log answers every PID the unit polls.

Only reading faults can be overlaid (`OVERLAY_TYPES`): the vehicle's behaviour is in the log, and a
behavioural anomaly (overheating, harsh braking, ...) would need the plant to drive it. What this module does
not do: multi-frame (ISO-TP) answers, J1939 transport protocol, several ECUs answering on 0x7E9..., or a log
whose stamps jump backwards (they are sorted).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import can
import cantools
import numpy as np

from harness.core.datafile import size_problem
from harness.core.errors import DtgHilError
from harness.wire.dbc import get_profile, j1939_valid_max, load_database
from harness.wire.signals import AUX_SIGNALS, PHYSICAL_RANGE, PLANT_RATE_HZ, SIGNALS, Trace
from harness.world.anomalies import READING_TYPES, Anomaly, apply_reading_faults
from harness.world.cycles import SpeedProfile
from harness.world.route import offset_position, route_along
from harness.world.vehicle import G, PlantConditions, VehicleParams, _ou_noise, fuel_rate_l_s, road_load_n

#: Anomaly types that can be overlaid on a recording: faults of a reading, not of the vehicle.
OVERLAY_TYPES: tuple[str, ...] = READING_TYPES
#: Log formats a recording may be in (python-can's readers and writers, chosen by suffix).
LOG_SUFFIXES: tuple[str, ...] = (".blf", ".asc")
OBD_RESPONSE_ID = 0x7E8
#: A recording must hold at least this much driving to feed the models one window.
MIN_RECORDING_S = 60


class RecordingError(DtgHilError, ValueError):
    """A recorded CAN log cannot be used as a route: unreadable, unknown format, no decodable traffic."""


@dataclass(frozen=True)
class Recording:
    """A CAN log decoded to 1 Hz: `values[channel][k]` is the last value decoded in second k (NaN: none)."""

    path: Path
    profile: str
    values: dict[str, np.ndarray]
    frames: int
    decoded_frames: int

    @property
    def duration_s(self) -> float:
        return float(len(self.values["vehicle_speed"]))

    def speed_profile(self) -> SpeedProfile:
        """The recorded speed as a drive cycle (gaps bridged), for whatever needs a route's speed."""
        return SpeedProfile(f"recording:{self.path.name}", _bridge(self.values["vehicle_speed"]),
                            f"CAN log {self.path.name} ({self.profile}, {self.frames} frames)")


def _read_frames(path: Path) -> list[can.Message]:
    if path.suffix.lower() not in LOG_SUFFIXES:
        raise RecordingError(f"{path}: unknown log format '{path.suffix}'; expected one of: {', '.join(LOG_SUFFIXES)}")
    too_large = size_problem(path, "recording")
    if too_large is not None:
        raise RecordingError(f"{path}: {too_large}")
    try:
        with can.LogReader(str(path)) as reader:
            objects = 0
            frames = []
            for m in reader:
                objects += 1
                if not m.is_error_frame and not m.is_remote_frame:
                    frames.append(m)
            _check_complete(path, reader, objects)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except RecordingError:
        raise
    except Exception as exc:  # noqa: BLE001 - python-can's readers raise anything on a corrupt file
        raise RecordingError(f"{path}: not a readable {path.suffix[1:].upper()} log: {type(exc).__name__}: {exc}") \
            from None
    frames.sort(key=lambda m: m.timestamp)
    return frames


def _check_complete(path: Path, reader, objects: int) -> None:
    """A BLF log's header counts its objects and bytes (written when the log was closed): a log that holds fewer
    (truncated in a copy, a recorder killed mid-write) is refused rather than replayed short. python-can's reader
    yields every CAN frame and error frame; the project's logs hold nothing else. ASC logs carry no count."""
    if not isinstance(reader, can.BLFReader):
        return
    expected_bytes = getattr(reader, "file_size", 0)
    actual_bytes = path.stat().st_size
    if expected_bytes and actual_bytes < expected_bytes:
        raise RecordingError(f"{path}: truncated: {actual_bytes} of the {expected_bytes} bytes its header counts "
                             f"({100.0 * actual_bytes / expected_bytes:.3g} %)")
    expected = getattr(reader, "object_count", 0)
    if expected and objects != expected:
        raise RecordingError(f"{path}: incomplete: {objects} of the {expected} frames its header counts")


def _detect_profile(frames: list[can.Message]) -> str:
    if any(not m.is_extended_id and m.arbitration_id == OBD_RESPONSE_ID for m in frames):
        return "obd2"
    pgns = {cantools.j1939.pgn_from_frame_id(m.frame_id) for m in load_database("j1939").messages}
    if any(m.is_extended_id and cantools.j1939.pgn_from_frame_id(m.arbitration_id) in pgns for m in frames):
        return "j1939"
    raise RecordingError("no OBD-II answers (0x7E8) and no J1939 parameter group of the project's DBC in the log; "
                         "expected one of the profiles: obd2, j1939")


def _decode(frames: list[can.Message], profile: str) -> tuple[dict[int, dict[str, float]], int]:
    """Second -> {channel: last value decoded in that second}, and how many frames carried values."""
    database = load_database(profile)
    chosen = get_profile(profile)
    t0 = frames[0].timestamp
    by_second: dict[int, dict[str, float]] = {}
    decoded = 0
    if profile == "obd2":
        by_signal = {b.signal: b for b in chosen.signals if b.pid is not None}
        for m in frames:
            if m.is_extended_id or m.arbitration_id != OBD_RESPONSE_ID:
                continue
            try:
                values = database.decode_message(OBD_RESPONSE_ID, bytes(m.data), decode_choices=False)
            except (cantools.database.DecodeError, KeyError, ValueError):
                continue  # a PID the DBC does not describe, or a short frame
            if values.get("Service") != 0x41:
                continue
            second = by_second.setdefault(int(math.floor(m.timestamp - t0 + 1e-9)), {})
            for name, value in values.items():
                if name in by_signal:
                    second[by_signal[name].channel] = by_signal[name].from_bus(float(value))
                    decoded += 1
        return by_second, decoded
    messages = {cantools.j1939.pgn_from_frame_id(m.frame_id): m for m in database.messages}
    bindings = {m.name: [b for b in chosen.signals if b.message == m.name] for m in database.messages}
    for m in frames:
        if not m.is_extended_id:
            continue
        message = messages.get(cantools.j1939.pgn_from_frame_id(m.arbitration_id))
        if message is None:
            continue
        try:
            raw = message.decode(bytes(m.data), decode_choices=False, scaling=False)
        except (cantools.database.DecodeError, ValueError):
            continue
        second = by_second.setdefault(int(math.floor(m.timestamp - t0 + 1e-9)), {})
        decoded += 1
        for binding in bindings[message.name]:
            signal = message.get_signal_by_name(binding.signal)
            value = raw.get(binding.signal)
            second[binding.channel] = (math.nan if value is None or value > j1939_valid_max(signal.length)
                                       else binding.from_bus(float(signal.conversion.raw_to_scaled(value))))
    return by_second, decoded


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> Recording:
    frames = _read_frames(Path(path))
    if not frames:
        raise RecordingError(f"{path}: the log holds no CAN data frames")
    try:
        profile = _detect_profile(frames)
    except RecordingError as exc:
        raise RecordingError(f"{path}: {exc}") from None
    by_second, decoded = _decode(frames, profile)
    n = max(by_second) + 1 if by_second else 0
    channels = tuple(b.channel for b in get_profile(profile).signals)
    values = {ch: np.full(n, np.nan) for ch in channels}
    for second, readings in by_second.items():
        for channel, value in readings.items():
            values[channel][second] = value
    if profile == "j1939":
        # A parameter group broadcast less often than once a second (VP, position: every 5 s) holds its value
        # until the next one is due, as a receiver keeps the latest; "not available" stays NaN.
        database = load_database(profile)
        for binding in get_profile(profile).signals:
            hold_s = int(math.ceil(database.get_message_by_name(binding.message).cycle_time / 1000.0))
            last, last_second = math.nan, -hold_s - 1
            for second in range(n):
                if binding.channel in by_second.get(second, {}):
                    last, last_second = values[binding.channel][second], second
                elif second - last_second < hold_s:
                    values[binding.channel][second] = last
    # The log may stop in the middle of a poll cycle: drop a last second that holds fewer values than the one
    # before (a real dropout lasts longer than the final second).
    if n >= 2 and sum(np.isfinite(values[ch][-1]) for ch in channels) < \
            sum(np.isfinite(values[ch][-2]) for ch in channels):
        values = {ch: v[:-1] for ch, v in values.items()}
        n -= 1
    if n < MIN_RECORDING_S or not np.isfinite(values["vehicle_speed"]).any():
        raise RecordingError(f"{path}: {n} s of decodable {profile} traffic with vehicle speed; a route needs at "
                             f"least {MIN_RECORDING_S} s")
    return Recording(Path(path), profile, values, len(frames), decoded)


def read_recording(path: str | Path) -> Recording:
    """Decode the CAN log at `path` (BLF or ASC) to 1 Hz; parsed once per file version. Raises RecordingError."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror}") from None
    return _read_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _bridge(values: np.ndarray) -> np.ndarray:
    """`values` with NaN gaps filled by linear interpolation (ends held); all-NaN becomes zeros."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros_like(values)
    index = np.arange(len(values))
    return np.interp(index, index[finite], values[finite])


def _smooth(values: np.ndarray, samples: int) -> np.ndarray:
    padded = np.pad(values, samples // 2, mode="edge")
    return np.convolve(padded, np.ones(samples) / samples, mode="valid")[:len(values)]


def _estimates(rec: Recording, vehicle: VehicleParams, seed: int, conditions: PlantConditions) -> dict[str, np.ndarray]:
    """Every signal and aux channel at 1 Hz: the recorded ones as recorded, the rest derived (module docstring)."""
    out = dict(rec.values)
    speed = _bridge(rec.values["vehicle_speed"])
    distance_m = np.concatenate([[0.0], np.cumsum((speed[:-1] + speed[1:]) / 2 / 3.6)])
    route = route_along(distance_m, seed, conditions.route_start, conditions.hilliness)
    slope = np.gradient(_smooth(speed, 3) / 3.6)  # m/s^2 at 1 Hz
    grade_accel = G * np.sin(np.arctan(route.grade))
    rpm = _bridge(rec.values.get("engine_rpm", np.full(len(speed), vehicle.idle_rpm)))
    available = np.maximum(vehicle.available_power_kw(rpm), 1.0)
    friction_kw = 0.02 * vehicle.rated_power_kw
    derived: dict[str, np.ndarray] = {
        "acceleration_x": slope + grade_accel,
        "latitude": route.latitude,
        "longitude": route.longitude,
        "altitude": route.altitude_m,
    }
    tractive_n = road_load_n(vehicle, speed, route.grade, route.altitude_m) + 1.04 * vehicle.mass_kg * slope
    engine_brake_n = np.where(speed > 10.0, 0.25 * vehicle.mass_kg, 0.0)
    brake_n = np.where(speed < 0.5, 0.0, np.maximum(-tractive_n - engine_brake_n, 0.0))
    brake = np.clip(brake_n / (vehicle.mass_kg * G) * vehicle.brake_bar_per_g, *PHYSICAL_RANGE["brake_pressure"])
    derived["brake_pressure"] = np.where(speed < 0.5, 8.0, brake)  # held on the pedal at rest, as the plant does
    if "engine_load" in rec.values:
        load = _bridge(rec.values["engine_load"])
    else:
        throttle = _bridge(rec.values.get("throttle_position", np.zeros(len(speed))))
        load = np.clip(throttle + 100.0 * friction_kw / available, 0.0, 100.0)
    derived["engine_load"] = load
    power_kw = np.maximum(load / 100.0 * available - friction_kw, 0.0)
    fuel_lph = fuel_rate_l_s(vehicle, power_kw) * 3600.0
    derived["fuel_rate"] = fuel_lph
    if vehicle.fuel == "gasoline":
        derived["maf"] = fuel_lph / 3600.0 * vehicle.fuel_density_kg_l * 1000.0 * 14.7
    else:
        derived["maf"] = 1.184 * vehicle.displacement_l * rpm / 120.0 * 0.9 * (1.0 + load / 100.0)
    derived["intake_air_temp"] = conditions.ambient_c + 3.0 + 20.0 * (1.0 - np.minimum(_smooth(speed, 61) / 50.0, 1.0))
    derived["battery_voltage"] = 13.8 + 0.5 * np.clip((rpm - vehicle.idle_rpm) / 1000.0, 0.0, 1.0)
    derived["gear"] = np.full(len(speed), np.nan)  # no bus of ours carries the gear
    for name, values in derived.items():
        if name not in out:
            out[name] = values
        elif name == "fuel_rate":  # the fuel truth must have no holes
            out[name] = np.where(np.isfinite(out[name]), out[name], values)
    return out


def recording_trace(rec: Recording, vehicle: VehicleParams, anomalies: tuple[Anomaly, ...] | list[Anomaly] = (),
                    seed: int = 0, conditions: PlantConditions = PlantConditions()) -> Trace:
    """The recording as a plant trace (at `PLANT_RATE_HZ`, each 1 Hz value held), with `anomalies` overlaid.

    `truth` is the recording (with the derived channels), `signals` the same with the overlay's reading faults,
    `events` the overlay's windows: the recording itself is taken as normal driving.
    """
    bad = [a.type for a in anomalies if a.type not in OVERLAY_TYPES]
    if bad:
        raise RecordingError(f"cannot overlay {', '.join(bad)} on a recording; expected one of: "
                             f"{', '.join(OVERLAY_TYPES)}")
    step = int(PLANT_RATE_HZ)
    per_second = _estimates(rec, vehicle, seed, conditions)
    held = {name: np.repeat(values, step) for name, values in per_second.items()}
    t_s = np.arange(len(held["vehicle_speed"])) / PLANT_RATE_HZ
    # The unit's own sensors are not noise-free: the plant's noise models, on what this recording lacks.
    rng = np.random.default_rng([seed, 0x5E45])
    n = len(t_s)
    if "acceleration_x" not in rec.values:
        held["acceleration_x"] = held["acceleration_x"] + rng.normal(0.0, 0.05, n)
    if "latitude" not in rec.values:
        north_m, east_m = _ou_noise(rng, n, 1.5, 20.0), _ou_noise(rng, n, 1.5, 20.0)
        held["latitude"], held["longitude"] = offset_position(held["latitude"], held["longitude"], north_m, east_m)
    if "altitude" not in rec.values:
        held["altitude"] = held["altitude"] + _ou_noise(rng, n, 3.0, 30.0)
    truth = {name: held[name] for name in SIGNALS}
    signals = apply_reading_faults(t_s, truth, list(anomalies), seed)
    aux = {name: held[name] for name in AUX_SIGNALS}
    return Trace(t_s=t_s, signals=signals, truth={k: v.copy() for k, v in truth.items()}, aux=aux,
                 events=[a.label() for a in anomalies])


def resolve(path_text: str, base_dir: Path | None) -> Path:
    """A recording path as a scenario names it: relative to the scenario file's folder."""
    path = Path(os.path.expanduser(path_text))
    return path if path.is_absolute() or base_dir is None else base_dir / path
