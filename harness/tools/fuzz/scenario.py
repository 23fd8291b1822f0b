"""The ``scenario`` and ``scenario-data`` fuzz targets: the scenario format, from a file and from loaded data.

``scenario`` runs ``load_scenario`` on the input written to a file; ``scenario-data`` runs ``parse_scenario`` on
what ``yaml.safe_load`` makes of the input (PyYAML's own loader builds the data: sets, timestamps, binary,
shared nodes). Both reject with
`ScenarioError`, share the examples (the bundled scenarios and generated trees) and the structure-aware inputs
(`harness.tools.fuzz.yamlfile` on a valid scenario tree: a drive cycle or a generated route, conditions,
anomalies, expectations), and run beside a few drive-cycle CSVs, good and bad, and the bundled recordings
(`prepare_cycles`), so a route's cycle reaches the CSV and log readers.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import yaml

from harness.tools.fuzz.target import REJECTED, ROOT
from harness.tools.fuzz.yamlfile import datafile_examples, run_load, structured_yaml, yaml_target
from harness.wire.behaviour import STYLES
from harness.wire.signals import SIGNALS
from harness.world.anomalies import ANOMALY_TYPES, SENSOR_FAULT_TYPES
from harness.world.cycles import BUNDLED_CYCLES, DRIVING, SEGMENT_KINDS
from harness.world.scenario import EXPECT_KEYS, ScenarioError, load_scenario, parse_scenario
from harness.world.vehicle import VEHICLES

__all__ = ["DATA_TARGET", "TARGET", "prepare_cycles", "scenario_tree"]


def _run_scenario_data(data: bytes, workdir: Path) -> object:
    try:
        loaded = yaml.safe_load(data)  # PyYAML's own loader builds the data: sets, timestamps, binary, shared nodes
    except Exception:  # noqa: BLE001 - not loadable (PyYAML has its own bugs): nothing for parse_scenario to see
        return REJECTED
    return parse_scenario(loaded, {}, "<fuzz>", workdir, "fuzz")


#: Drive cycle files beside the fuzzed scenario (`prepare`), so `route.cycle` paths reach the CSV reader.
_CYCLE_FILES = {
    "ok.csv": "# a short valid cycle\ntime_s,speed_kmh\n0,0\n1,5\n2,10\n3,12\n4,0\n",
    "bad.csv": "time_s,speed_kmh\n0,0\n1,fast\n",
    "columns.csv": "t,v\n0,0\n1,1\n",
    "one.csv": "time_s,speed_kmh\n0,0\n",
    "back.csv": "time_s,speed_kmh\n0,0\n2,5\n1,4\n",
}


def prepare_cycles(workdir: Path) -> None:
    """The cycle files the structured inputs name, and the bundled scenarios' recordings (their routes name them
    relative to the scenario file)."""
    for name, text in _CYCLE_FILES.items():
        (workdir / name).write_text(text)
    recordings = ROOT / "scenarios" / "recordings"
    if recordings.is_dir():
        (workdir / "recordings").mkdir(exist_ok=True)
        for log in recordings.glob("*.blf"):
            shutil.copyfile(log, workdir / "recordings" / log.name)


def scenario_tree(rng: random.Random) -> dict:
    """A valid scenario as data: a drive cycle (bundled, a CSV beside it, or missing) or a generated route,
    conditions, anomalies spread over the drive, expectations within their bounds."""
    tree: dict[str, Any] = {"name": rng.choice(("fuzz", "udds-overheating", "x" * 80))}
    if rng.random() < 0.5:
        tree["description"] = "a generated scenario"
    tree["vehicle"] = rng.choice(tuple(VEHICLES))
    tree["seed"] = rng.randrange(1000)
    if rng.random() < 0.5:
        route: dict[str, Any] = {"cycle": rng.choice(BUNDLED_CYCLES + tuple(_CYCLE_FILES) + ("missing.csv", "nedc"))}
        if rng.random() < 0.5:
            route["repeat"] = rng.randint(1, 3)
        duration = 1400.0
    else:
        duration = float(rng.choice((120, 150, 300, 600, 900)))
        generated: dict[str, Any] = {"duration_s": duration}
        if rng.random() < 0.6:
            generated["mix"] = {kind: round(rng.random(), 2) for kind in SEGMENT_KINDS if rng.random() < 0.7}
        if rng.random() < 0.4:
            generated["styles"] = {style: round(rng.random(), 2) for style in STYLES if rng.random() < 0.7}
        if rng.random() < 0.3:
            generated["seed"] = rng.randrange(100)
        if rng.random() < 0.3:
            generated["driving"] = rng.choice(DRIVING)
        route = {"generated": generated}
    if rng.random() < 0.3:
        route["start"] = {"latitude": rng.uniform(-80, 80), "longitude": rng.uniform(-180, 180),
                          "altitude_m": rng.uniform(-400, 4500), "heading_deg": rng.uniform(0, 360)}
    if rng.random() < 0.3:
        route["hilliness"] = round(rng.uniform(0, 3), 2)
    tree["route"] = route
    if rng.random() < 0.6:
        tree["conditions"] = {"ambient_c": rng.uniform(-40, 50), "start_fuel_pct": rng.uniform(1, 100)}
        if rng.random() < 0.5:
            tree["conditions"]["start_coolant_c"] = rng.uniform(-40, 110)
    anomalies = []
    at = 0.0
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        kind = rng.choice(ANOMALY_TYPES)
        at += rng.uniform(0, duration / 4)
        item: dict[str, Any] = {"type": kind, "at_s": round(at, 1)}
        for key, high in (("onset_s", 30), ("sustain_s", 120), ("recovery_s", 30)):
            if rng.random() < 0.6:
                item[key] = round(rng.uniform(0, high), 1) or 1.0
        if rng.random() < 0.5:
            item["severity"] = round(rng.uniform(0.05, 1.0), 2)
        if kind in SENSOR_FAULT_TYPES or rng.random() < 0.05:
            item["signal"] = rng.choice(SIGNALS)
        at += 200
        anomalies.append(item)
    if anomalies or rng.random() < 0.3:
        tree["anomalies"] = anomalies
    if rng.random() < 0.6:
        expect: dict[str, Any] = {}
        for key, (low, high) in EXPECT_KEYS.items():
            if rng.random() < 0.4:
                low, high = -1.0 if low is None else low, 300.0 if high is None else high
                expect[key] = round(rng.uniform(low, high), 2)
        if rng.random() < 0.2:
            expect["recall_min"] = {rng.choice(ANOMALY_TYPES): round(rng.random(), 2)}
        tree["expect"] = expect
    return tree


_examples = datafile_examples("scenarios", scenario_tree, seed=11)
_structured = structured_yaml(scenario_tree, ("names", "speed", "anomaly", "expected", "route2"))

TARGET = yaml_target("scenario", "harness.world.scenario.load_scenario on a file", (ScenarioError,),
                     run_load(load_scenario, "fuzz.yaml"), _examples, _structured, prepare=prepare_cycles)
DATA_TARGET = yaml_target("scenario-data", "harness.world.scenario.parse_scenario on yaml.safe_load data",
                          (ScenarioError,), _run_scenario_data, _examples, _structured, prepare=prepare_cycles)
