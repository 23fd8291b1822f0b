"""The JSON Schemas of the scenario and rig formats (`dtg-hil scenario schema`, `dtg-hil rig schema`) against the
files the validators accept and reject: every bundled file passes, the bad ones of tests/ fail."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from test_scenario import BAD, GOOD

from harness.rig.rig_schema import rig_schema
from harness.rig.rigfile import RigError, load_rig
from harness.world.scenario_schema import scenario_schema

ROOT = Path(__file__).resolve().parents[1]
#: Problems only the validator can find: the text is no YAML data, or it takes the route's length, other windows
#: or the files on disk to see them.
VALIDATOR_ONLY = {"bad YAML", "code in YAML", "overlapping windows", "onset past the end of the route",
                  "window running past the end", "unknown cycle file"}
BAD_RIGS = {
    "unknown profile": "profile: obd3\n",
    "unknown key": "name: x\nprofle: obd2\n",
    "adb without a package": "android: {kind: adb, serial: R58}\n",
    "nmea without a port": "gnss: {kind: nmea}\n",
    "time scale 0": "time_scale: 0\n",
    "loss over 100 %": "rig_loss_max_pct: 101\n",
    "unknown codec": "stm32: {kind: real, codec: raw-can-v3}\n",
}


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_schemas_are_draft_2020_12_and_printed_by_the_cli():
    for command, schema in (("scenario", scenario_schema()), ("rig", rig_schema())):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        done = subprocess.run([sys.executable, "-m", "harness.tools.cli", command, "schema"], capture_output=True,
                              text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 0 and json.loads(done.stdout) == schema


def test_the_scenario_schema_bounds_behaviour_macro_f1_min():
    expect = scenario_schema()["properties"]["expect"]["properties"]["behaviour_macro_f1_min"]
    assert (expect["minimum"], expect["maximum"]) == (0.0, 1.0)


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_scenario_meets_the_schema(path):
    validator(scenario_schema()).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("what,text", [(b[0], b[1]) for b in BAD if b[0] not in VALIDATOR_ONLY],
                         ids=[b[0] for b in BAD if b[0] not in VALIDATOR_ONLY])
def test_the_bad_scenarios_of_the_tests_fail_the_schema(what, text):
    check = validator(scenario_schema())
    check.validate(yaml.safe_load(GOOD))
    assert list(check.iter_errors(yaml.safe_load(text))), what


@pytest.mark.parametrize("path", sorted(ROOT.glob("rigs/**/*.yaml")), ids=lambda p: p.name)
def test_every_bundled_rig_meets_the_schema_and_the_validator(path):
    validator(rig_schema()).validate(yaml.safe_load(path.read_text()))
    load_rig(path)


@pytest.mark.parametrize("what", sorted(BAD_RIGS))
def test_bad_rigs_fail_both_the_schema_and_the_validator(tmp_path, what):
    path = tmp_path / "rig.yaml"
    path.write_text(BAD_RIGS[what])
    assert list(validator(rig_schema()).iter_errors(yaml.safe_load(BAD_RIGS[what]))), what
    with pytest.raises(RigError):
        load_rig(path)


BAD_BUS_FAULTS = {
    "probability 0": "{type: frame_loss, at_s: 10, duration_s: 5, probability: 0}",
    "flood too fast": "{type: flood, at_s: 10, duration_s: 5, id: 0x100, rate_hz: 5000}",
    "a key of another type": "{type: bus_off, at_s: 10, duration_s: 5, rate_hz: 10}",
    "unknown type": "{type: bus_on, at_s: 10, duration_s: 5}",
    "a CAN ID too large": "{type: id_silent, at_s: 10, duration_s: 5, ids: [0x20000000]}",
}


@pytest.mark.parametrize("what", sorted(BAD_BUS_FAULTS))
def test_bad_bus_faults_fail_both_the_schema_and_the_validator(tmp_path, what):
    from harness.world.scenario import ScenarioError, load_scenario

    text = f"route: {{cycle: udds}}\nbus_faults:\n  - {BAD_BUS_FAULTS[what]}\n"
    good = "route: {cycle: udds}\nbus_faults:\n  - {type: bus_off, at_s: 10, duration_s: 5}\n"
    check = validator(scenario_schema())
    check.validate(yaml.safe_load(good))
    assert list(check.iter_errors(yaml.safe_load(text))), what
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ScenarioError):
        load_scenario(tmp_path / "s.yaml")
