"""`dtg-hil scenario new`: a commented scenario to start from, valid as written (it is validated before it is
returned), with one window per anomaly asked for, spaced along a generated route."""
from __future__ import annotations

import re
from pathlib import Path

from harness.core.datafile import parse_yaml
from harness.core.errors import DtgHilError
from harness.wire.signals import SIGNALS
from harness.world.anomalies import ANOMALY_TYPES, SENSOR_FAULT_TYPES
from harness.world.scenario import ScenarioError, parse_scenario
from harness.world.vehicle import VEHICLES

#: The signal a sensor fault acts on when `--anomaly TYPE` names none.
DEFAULT_SIGNAL = "coolant_temp"
FIRST_AT_S = 300
#: One anomaly window every this many seconds: a sustain of half of it, then normal driving.
SPACING_S = 600
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class TemplateError(DtgHilError, ValueError):
    """A name or an anomaly `dtg-hil scenario new` cannot write a scenario for."""


def _anomaly(spec: str) -> tuple[str, str | None]:
    kind, _, signal = spec.partition(":")
    if kind not in ANOMALY_TYPES:
        raise TemplateError(f"--anomaly: unknown anomaly type '{kind}'; expected one of: {', '.join(ANOMALY_TYPES)}")
    if kind not in SENSOR_FAULT_TYPES:
        if signal:
            raise TemplateError(f"--anomaly {spec}: only sensor faults ({', '.join(SENSOR_FAULT_TYPES)}) take a "
                                f"signal; {kind} acts on the vehicle")
        return kind, None
    signal = signal or DEFAULT_SIGNAL
    if signal not in SIGNALS:
        raise TemplateError(f"--anomaly {spec}: unknown signal '{signal}'; expected one of: {', '.join(SIGNALS)}")
    return kind, signal


def new_scenario(name: str, anomalies: list[str], base_dir: Path | None = None) -> str:
    """The text of a new scenario file named `name` with these anomalies (`TYPE` or `TYPE:SIGNAL`)."""
    if not NAME.fullmatch(name):
        raise TemplateError(f"NAME: '{name}' is not a scenario name; use letters, digits, - and _")
    picked = [_anomaly(spec) for spec in anomalies]
    duration_s = max(1800, FIRST_AT_S + SPACING_S * len(picked))
    lines = [
        f"# {name}: a dtg-hil scenario (the format: docs/scenarios.md; its JSON Schema: dtg-hil scenario schema).",
        f"# Check it: dtg-hil scenario validate {name}.yaml        Run it: pytest -m sim {name}.yaml",
        f"name: {name}",
        "description: What this drive checks, in a sentence.",
        f"vehicle: passenger_car              # {' | '.join(VEHICLES)}",
        "seed: 1                             # route geometry, sensor noise, fault randomness",
        "route:",
        f"  generated: {{duration_s: {duration_s}, seed: 1}}   # a generated trip (it may end a few seconds later);",
        "  # or: cycle: udds                  # udds | wltc_class1 | wltc_class3b | a time_s,speed_kmh CSV path",
        "conditions: {ambient_c: 20}         # -40..50 degC",
    ]
    if picked:
        lines.append("anomalies:                          # windows: at_s .. at_s + onset_s + sustain_s + recovery_s; "
                     "no overlaps")
        for i, (kind, signal) in enumerate(picked):
            on = f"signal: {signal}, " if signal else ""
            lines.append(f"  - {{type: {kind}, {on}at_s: {FIRST_AT_S + SPACING_S * i}, onset_s: 30, "
                         f"sustain_s: {SPACING_S // 2 - 60}, recovery_s: 30, severity: 0.8}}")
    else:
        lines.append("anomalies: []                       # a clean drive; e.g. - {type: overheating, at_s: 300}")
    lines += [
        "expect:                             # what the unit must achieve (every key optional)",
        "  recall_min: 1.0                   # share of injected events detected (or per type: {fuel_leak: 1.0})",
        "  false_alarms_per_h_max: 2         # alarm episodes outside every event, per hour of driving",
        "  detection_delay_s_p90_max: 240    # first alarm after onset, scenario seconds",
    ]
    text = "\n".join(lines) + "\n"
    data, where = parse_yaml(text, f"{name}.yaml", ScenarioError)
    parse_scenario(data, where, f"{name}.yaml", base_dir, name)  # raises if the template ever stops being valid
    return text
