"""Scenario files: a route, a vehicle, an anomaly schedule and what the unit is expected to achieve.

Scenario files are data: they are read with PyYAML's safe loader (no tags, no code) and validated field by field.
Every problem is reported with the file, the field path (`anomalies[2].type`), the line where known, and the
valid choices; all problems in a file are reported at once.

Example::

    name: udds-overheating
    vehicle: passenger_car          # passenger_car | light_truck
    seed: 7
    route:
      cycle: udds                   # a bundled cycle, or a time_s,speed_kmh CSV path relative to this file
      repeat: 2
    conditions: {ambient_c: 25}
    anomalies:
      - {type: overheating, at_s: 900, onset_s: 60, sustain_s: 300, recovery_s: 120, severity: 0.8}
    expect:
      recall_min: 1.0
      false_alarms_per_h_max: 2
      detection_delay_s_p90_max: 120

The `expect:` section is parsed and validated here; the rig evaluates it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.datafile import (
    Checker,
    DataFileError,
    FileTooLarge,
    Problem,
    decode_text,
    kind_of,
    parse_yaml,
    read_limited,
)
from harness.wire.behaviour import STYLES
from harness.wire.signals import SIGNALS, Trace
from harness.world.anomalies import ANOMALY_TYPES, SENSOR_FAULT_TYPES, Anomaly
from harness.world.bus_faults import BusFault, read_bus_faults
from harness.world.cycles import (
    BUNDLED_CYCLES,
    DRIVING,
    MAX_CYCLE_S,
    SEGMENT_KINDS,
    CycleError,
    SpeedProfile,
    generate_trip,
    load_cycle,
)
from harness.world.route import RouteStart
from harness.world.sweep import SweepSpec, expand, read_sweep
from harness.world.vehicle import VEHICLES, PlantConditions, get_vehicle, simulate

EXPECT_KEYS: dict[str, tuple[float | None, float | None]] = {
    # key: (lowest valid value, highest valid value)
    "recall_min": (0.0, 1.0),
    "false_alarms_per_h_max": (0.0, None),
    "detection_delay_s_p50_max": (0.0, None),
    "detection_delay_s_p90_max": (0.0, None),
    "max_delay_s": (0.0, None),
    "fuel_r2_min": (None, 1.0),
    "fuel_mae_lph_max": (0.0, None),
    "latency_ms_p50_max": (0.0, None),
    "latency_ms_p99_max": (0.0, None),
    "data_loss_max_pct": (0.0, 100.0),
    "coverage_min": (0.0, 1.0),
    "result_late_s_max": (0.0, None),
    "behaviour_accuracy_min": (0.0, 1.0),
    "behaviour_macro_f1_min": (0.0, 1.0),
}
#: `expect:` keys that take true or false.
EXPECT_FLAGS = ("stale_data_flagged",)
#: The longest route a scenario may drive (a repeated cycle or a generated trip): three days of driving, far past
#: a tachograph's daily limits, and a bound that keeps a mistyped `repeat` from exhausting memory.
MAX_ROUTE_S = MAX_CYCLE_S
#: Detection window after an event ends within which an alarm still counts (DESIGN.md, event recall).
DEFAULT_MAX_DELAY_S = 60.0


class ScenarioError(DataFileError):
    """A scenario file is invalid; `problems` lists every problem found, each with its field and line."""


@dataclass(frozen=True)
class RouteSpec:
    cycle: str | None = None
    repeat: int = 1
    generated_duration_s: float | None = None
    generated_mix: dict[str, float] | None = None
    generated_seed: int | None = None
    generated_styles: dict[str, float] | None = None
    generated_driving: str = "classic"  # harness.world.cycles.DRIVING
    recording: str | None = None  # a CAN log (BLF/ASC) path relative to the scenario file (harness.world.replay)


@dataclass(frozen=True)
class Expectations:
    """Pass criteria for the rig; None means "not judged". `recall_min` may be per anomaly type."""

    recall_min: float | dict[str, float] | None = None
    false_alarms_per_h_max: float | None = None
    detection_delay_s_p50_max: float | None = None
    detection_delay_s_p90_max: float | None = None
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    fuel_r2_min: float | None = None
    fuel_mae_lph_max: float | None = None
    latency_ms_p50_max: float | None = None
    latency_ms_p99_max: float | None = None
    # Data the chain may lose that no bus fault dropped, in % of each stage's traffic; beyond it the run is an
    # error (harness.judge.result.DataLossError), not a verdict. Always applied: 0 unless the scenario says otherwise.
    data_loss_max_pct: float = 0.0
    stale_data_flagged: bool | None = None  # the app must (true) / must not (false) report stale_data
    # Judged on every run (harness.judge.metrics.evidence); None: the default there (docs/scenarios.md).
    coverage_min: float | None = None
    result_late_s_max: float | None = None
    behaviour_accuracy_min: float | None = None
    # Not judged unless asked: macro-F1 of the behaviour class (harness.judge.metrics.behaviour).
    behaviour_macro_f1_min: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path | None
    description: str
    vehicle: str
    seed: int
    route: RouteSpec
    conditions: PlantConditions
    anomalies: tuple[Anomaly, ...]
    expect: Expectations
    sha256: str = ""
    profile_: SpeedProfile | None = field(default=None, repr=False, compare=False)
    bus_faults: tuple[BusFault, ...] = ()  # the `bus_faults:` schedule (harness.world.bus_faults)
    sweep: SweepSpec | None = None  # the `sweep:` section of a scenario that has one (harness.world.sweep)
    sweep_base: str = ""  # a sweep variant: the name of the scenario it was expanded from
    sweep_point: tuple[tuple[str, Any], ...] = ()  # a sweep variant: its (parameter, value) pairs

    def profile(self) -> SpeedProfile:
        """The driver's speed profile for this route."""
        if self.profile_ is not None:
            return self.profile_
        if self.route.recording is not None:
            return self.recording().speed_profile()
        return _profile_for(self.route, self.seed, self.path.parent if self.path else None)

    def recording(self):
        """The decoded CAN log of a `recording:` route (`harness.world.replay.Recording`)."""
        from harness.world.replay import read_recording, resolve

        return read_recording(resolve(self.route.recording, self.path.parent if self.path else None))

    def variants(self) -> list[Scenario]:
        """The scenarios this file stands for: one per point of its `sweep:`, or itself alone."""
        return expand(self)

    def run_plant(self) -> Trace:
        """Drive the scenario: the vehicle's trace with the anomalies injected and labelled (on a recorded
        route: the recording, decoded, with the anomalies overlaid)."""
        if self.route.recording is not None:
            from harness.world.replay import recording_trace

            return recording_trace(self.recording(), get_vehicle(self.vehicle), self.anomalies, self.seed,
                                   self.conditions)
        return simulate(self.profile(), get_vehicle(self.vehicle), self.anomalies, self.seed, self.conditions)


def _profile_for(route: RouteSpec, seed: int, base_dir: Path | None) -> SpeedProfile:
    if route.cycle is not None:
        return load_cycle(route.cycle, base_dir).repeated(route.repeat)
    return generate_trip(seed if route.generated_seed is None else route.generated_seed,
                         route.generated_duration_s or 1800.0, route.generated_mix, styles=route.generated_styles,
                         driving=route.generated_driving)


# --- validation -------------------------------------------------------------------------------------------

TOP_KEYS = ("name", "description", "vehicle", "seed", "route", "conditions", "anomalies", "expect", "sweep",
            "bus_faults")
ROUTE_KEYS = ("cycle", "repeat", "generated", "recording", "start", "hilliness")
GENERATED_KEYS = ("duration_s", "mix", "styles", "seed", "driving")
START_KEYS = ("latitude", "longitude", "altitude_m", "heading_deg")
CONDITION_KEYS = ("ambient_c", "start_fuel_pct", "start_coolant_c")
ANOMALY_KEYS = ("type", "at_s", "onset_s", "sustain_s", "recovery_s", "severity", "signal")
# The ranges of numeric fields, as `Checker.number` takes them: the validator reads them, and so does the JSON
# Schema of the format (`harness.world.scenario_schema`).
ANOMALY_NUMBERS: dict[str, dict[str, Any]] = {
    "at_s": {"lo": 0.0}, "onset_s": {"lo": 0.0}, "sustain_s": {"lo": 0.0, "lo_open": True},
    "recovery_s": {"lo": 0.0}, "severity": {"lo": 0.0, "hi": 1.0, "lo_open": True},
}
CONDITION_NUMBERS: dict[str, dict[str, Any]] = {
    "ambient_c": {"lo": -40.0, "hi": 50.0}, "start_fuel_pct": {"lo": 0.0, "hi": 100.0, "lo_open": True},
    "start_coolant_c": {"lo": -40.0, "hi": 110.0},
}
START_NUMBERS: dict[str, dict[str, Any]] = {
    "latitude": {"lo": -80, "hi": 80}, "longitude": {"lo": -180, "hi": 180}, "altitude_m": {"lo": -400, "hi": 4500},
    "heading_deg": {"lo": 0, "hi": 360},
}
GENERATED_NUMBERS: dict[str, dict[str, Any]] = {
    "duration_s": {"lo": 120, "hi": MAX_ROUTE_S}, "seed": {"lo": 0, "integer": True},
}
HILLINESS = {"lo": 0.0, "hi": 3.0}


def _read_weights(c: Checker, gen: dict, key: str, choices: tuple[str, ...]) -> dict[str, float] | None:
    """A {choice: weight} mapping such as the segment mix or the driving-style mix."""
    if key not in gen:
        return None
    path = f"route.generated.{key}"
    raw = c.mapping(gen[key], path, choices)
    weights = {k: c.number(raw, k, path, 0.0, lo=0.0) for k in raw if k in choices}
    if raw and not any(v and v > 0 for v in weights.values()):
        c.report(path, "needs at least one weight > 0")
    return weights or None


def _read_route(c: Checker, data: Any, base_dir: Path | None) -> tuple[RouteSpec, dict, float, SpeedProfile | None]:
    route = c.mapping(data, "route", ROUTE_KEYS)
    if not isinstance(data, dict):
        return RouteSpec(), {}, 0.3, None
    has_cycle, has_generated, has_recording = "cycle" in route, "generated" in route, "recording" in route
    if has_cycle + has_generated + has_recording != 1:
        c.report("route", "needs exactly one of 'cycle' (a drive cycle name or CSV path), 'generated' or "
                          "'recording' (a BLF or ASC CAN log)")
    spec, recorded = RouteSpec(), None
    if has_recording and not (has_cycle or has_generated):
        spec, recorded = _read_recording_route(c, route, base_dir)
    elif has_cycle:
        cycle = route["cycle"]
        repeat = c.number(route, "repeat", "route", 1, lo=1, integer=True)
        if not isinstance(cycle, str):
            c.report("route.cycle", f"expected a cycle name or CSV path; got {kind_of(cycle)}; "
                                    f"bundled cycles: {', '.join(BUNDLED_CYCLES)}")
        else:
            spec = RouteSpec(cycle=cycle, repeat=int(repeat))
    elif has_generated:
        if "repeat" in route:
            c.report("route.repeat", "only applies to 'cycle' routes")
        gen = c.mapping(route["generated"], "route.generated", GENERATED_KEYS, required=("duration_s",))
        duration = c.number(gen, "duration_s", "route.generated", None, **GENERATED_NUMBERS["duration_s"])
        gen_seed = c.number(gen, "seed", "route.generated", None, **GENERATED_NUMBERS["seed"])
        mix = _read_weights(c, gen, "mix", tuple(SEGMENT_KINDS))
        styles = _read_weights(c, gen, "styles", STYLES)
        driving = c.choice(gen, "driving", "route.generated", DRIVING, "classic", "driving")
        spec = RouteSpec(generated_duration_s=duration, generated_mix=mix, generated_seed=None if gen_seed is None
                         else int(gen_seed), generated_styles=styles, generated_driving=driving)
    start = {}
    if "start" in route:
        raw = c.mapping(route["start"], "route.start", START_KEYS)
        start = {key: c.number(raw, key, "route.start", getattr(RouteStart, key), **limits)
                 for key, limits in START_NUMBERS.items()}
    hilliness = c.number(route, "hilliness", "route", PlantConditions.hilliness, **HILLINESS)
    profile = recorded
    if spec.cycle is not None:
        try:
            profile = load_cycle(spec.cycle, base_dir)
        except CycleError as exc:
            c.report("route.cycle", str(exc))
        if profile is not None and profile.duration_s * spec.repeat > MAX_ROUTE_S:
            c.report("route.repeat", f"{spec.repeat} x {profile.duration_s:g} s would drive "
                                     f"{profile.duration_s * spec.repeat / 3600:.4g} h; a route lasts at most "
                                     f"{MAX_ROUTE_S / 3600:g} h")
            profile = None
        elif profile is not None:
            profile = profile.repeated(spec.repeat)
    return spec, start, hilliness, profile


def _read_recording_route(c: Checker, route: dict, base_dir: Path | None) -> tuple[RouteSpec, SpeedProfile | None]:
    from harness.world.replay import RecordingError, read_recording, resolve

    if "repeat" in route:
        c.report("route.repeat", "only applies to 'cycle' routes")
    raw = route["recording"]
    if not isinstance(raw, str) or not raw:
        c.report("route.recording", f"expected the path of a BLF or ASC CAN log; got {kind_of(raw)}")
        return RouteSpec(), None
    try:
        recording = read_recording(resolve(raw, base_dir))
    except RecordingError as exc:
        c.report("route.recording", str(exc))
        return RouteSpec(recording=raw), None
    return RouteSpec(recording=raw), recording.speed_profile()


def _check_overlay(c: Checker, data: Any) -> None:
    """On a recorded route only reading faults can be overlaid: the vehicle's behaviour is in the recording."""
    from harness.world.replay import OVERLAY_TYPES

    for i, raw in enumerate(data if isinstance(data, list) else []):
        kind = raw.get("type") if isinstance(raw, dict) else None
        if isinstance(kind, str) and kind in ANOMALY_TYPES and kind not in OVERLAY_TYPES:
            c.report(f"anomalies[{i}].type", f"'{kind}' changes the vehicle and cannot be overlaid on a recorded "
                                             f"route; expected one of: {', '.join(OVERLAY_TYPES)}")


def _read_anomalies(c: Checker, data: Any, duration_s: float | None) -> list[Anomaly]:
    if data is None:
        return []
    if not isinstance(data, list):
        c.report("anomalies", f"expected a list of anomalies; got {kind_of(data)}")
        return []
    out: list[tuple[int, Anomaly]] = []
    for i, raw in enumerate(data):
        path = f"anomalies[{i}]"
        item = c.mapping(raw, path, ANOMALY_KEYS, required=("type", "at_s"))
        kind = c.choice(item, "type", path, ANOMALY_TYPES, None, "anomaly type")
        at_s, onset, sustain, recovery, severity = (
            c.number(item, key, path, default, **ANOMALY_NUMBERS[key]) for key, default in
            (("at_s", None), ("onset_s", 0.0), ("sustain_s", 60.0), ("recovery_s", 0.0), ("severity", 0.7)))
        signal = None
        if kind in SENSOR_FAULT_TYPES:
            if "signal" not in item:
                c.report(f"{path}.signal", f"is required for a {kind} fault; expected one of: {', '.join(SIGNALS)}")
            signal = c.choice(item, "signal", path, SIGNALS, None, "signal")
        elif "signal" in item and kind is not None:
            c.report(f"{path}.signal", f"only sensor faults ({', '.join(SENSOR_FAULT_TYPES)}) take a signal; "
                                       f"{kind} acts on the vehicle")
        if kind is None or at_s is None or (kind in SENSOR_FAULT_TYPES and signal is None):
            continue
        anomaly = Anomaly(kind, float(at_s), float(severity), float(onset), float(sustain), float(recovery), signal)
        if duration_s is not None and anomaly.end_s > duration_s:
            field_name = "at_s" if anomaly.at_s >= duration_s else "sustain_s"
            c.report(f"{path}.{field_name}", f"window {anomaly.at_s:g}-{anomaly.end_s:g} s ends past the end of the "
                                             f"route ({duration_s:g} s)")
            continue
        for j, other in out:
            if anomaly.at_s < other.end_s and other.at_s < anomaly.end_s:
                c.report(f"{path}.at_s", f"window {anomaly.at_s:g}-{anomaly.end_s:g} s overlaps anomalies[{j}] "
                                         f"({other.type}, {other.at_s:g}-{other.end_s:g} s); anomalies may not overlap")
                break
        else:
            out.append((i, anomaly))
    return [a for _, a in out]


def _read_expect(c: Checker, data: Any) -> Expectations:
    if data is None:
        return Expectations()
    raw = c.mapping(data, "expect", tuple(EXPECT_KEYS) + EXPECT_FLAGS)
    values: dict[str, Any] = {}
    for key, (lo, hi) in EXPECT_KEYS.items():
        if key == "recall_min" and isinstance(raw.get(key), dict):
            per_type = c.mapping(raw[key], "expect.recall_min", ANOMALY_TYPES)
            values[key] = {k: c.number(per_type, k, "expect.recall_min", 1.0, lo=0.0, hi=1.0)
                           for k in per_type if k in ANOMALY_TYPES}
        elif key in raw:
            values[key] = c.number(raw, key, "expect", None, lo=lo, hi=hi)
    for key in EXPECT_FLAGS:
        if key in raw and not isinstance(raw[key], bool):
            c.report(f"expect.{key}", f"expected true or false; got {kind_of(raw[key])} {raw[key]!r}")
        elif key in raw:
            values[key] = raw[key]
    for key in ("max_delay_s", "data_loss_max_pct"):
        if values.get(key) is None:
            values.pop(key, None)
    return Expectations(**values)


def parse_scenario(data: Any, lines: dict[str, int], file: str, base_dir: Path | None = None,
                   name: str = "scenario", sha256: str = "") -> Scenario:
    """Validate loaded scenario data; raise ScenarioError listing every problem."""
    c = Checker(lines)
    top = c.mapping(data, "", TOP_KEYS, required=("route",))
    if not isinstance(data, dict):
        raise ScenarioError(file, c.problems)
    vehicle = c.choice(top, "vehicle", "", tuple(VEHICLES), "passenger_car", "vehicle")
    seed = c.number(top, "seed", "", 0, lo=0, integer=True)
    route, start, hilliness, profile = (_read_route(c, top["route"], base_dir) if "route" in top
                                        else (RouteSpec(), {}, 0.3, None))
    cond_raw = c.mapping(top.get("conditions", {}), "conditions", CONDITION_KEYS)
    conditions = PlantConditions(
        ambient_c=c.number(cond_raw, "ambient_c", "conditions", 20.0, **CONDITION_NUMBERS["ambient_c"]),
        start_fuel_pct=c.number(cond_raw, "start_fuel_pct", "conditions", 75.0, **CONDITION_NUMBERS["start_fuel_pct"]),
        start_coolant_c=c.number(cond_raw, "start_coolant_c", "conditions", None,
                                 **CONDITION_NUMBERS["start_coolant_c"]),
        route_start=RouteStart(**start) if start else RouteStart(),
        hilliness=hilliness,
    )
    duration = profile.duration_s if profile is not None else route.generated_duration_s
    anomalies = _read_anomalies(c, top.get("anomalies"), duration)
    if route.recording is not None:
        _check_overlay(c, top.get("anomalies"))
    expect = _read_expect(c, top.get("expect"))
    bus_faults = read_bus_faults(c, top.get("bus_faults"), duration)
    sweep = read_sweep(c, top.get("sweep"), len(anomalies), tuple(VEHICLES))
    scenario_name, description = c.text(top, "name", "", name), c.text(top, "description", "", "")
    if c.problems:
        raise ScenarioError(file, c.problems)
    scenario = Scenario(
        name=scenario_name, path=Path(file) if file else None, description=description, vehicle=vehicle,
        seed=int(seed), route=route, conditions=conditions, anomalies=tuple(anomalies), expect=expect,
        sha256=sha256, profile_=profile, sweep=sweep, bus_faults=tuple(bus_faults),
    )
    if route.cycle is None and route.recording is None:
        # Generated routes may run a little past duration_s; check windows against the real trip.
        real = scenario.profile()
        late = [i for i, a in enumerate(anomalies) if a.end_s > real.duration_s]
        if late:
            raise ScenarioError(file, [Problem(f"anomalies[{late[0]}].at_s", f"window ends past the end of the "
                                               f"route ({real.duration_s:g} s)", lines.get(f"anomalies[{late[0]}]"))])
        scenario = Scenario(**{**scenario.__dict__, "profile_": real})
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    path = Path(path)
    try:
        raw = read_limited(path, "scenario")
    except FileTooLarge as exc:
        raise ScenarioError(str(path), [Problem("", exc.problem)]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [Problem("", f"cannot read: {exc.strerror}")]) from None
    text = decode_text(raw, str(path), ScenarioError)
    data, lines = parse_yaml(text, str(path), ScenarioError)
    return parse_scenario(data, lines, str(path), path.parent, path.stem, hashlib.sha256(raw).hexdigest())
