"""Scenario files: the bundled ones are valid; every kind of bad input gets a precise error and exit code 2."""
import glob
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.tools.cli import main
from harness.world.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(glob.glob(str(ROOT / "scenarios" / "*.yaml")))

GOOD = """\
name: probe
vehicle: passenger_car
seed: 1
route:
  cycle: udds
anomalies:
  - {type: overheating, at_s: 300, onset_s: 30, sustain_s: 200, recovery_s: 30, severity: 0.8}
  - type: stuck_value
    signal: coolant_temp
    at_s: 900
    sustain_s: 100
expect:
  recall_min: 1.0
  false_alarms_per_h_max: 2
"""


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_bundled_scenarios_are_valid_and_cover_every_anomaly_type():
    from harness.world.anomalies import ANOMALY_TYPES

    scenarios = [load_scenario(p) for p in BUNDLED]
    assert len(scenarios) >= 12
    covered = {a.type for s in scenarios for a in s.anomalies}
    assert covered == set(ANOMALY_TYPES)
    assert sum(1 for s in scenarios if not s.anomalies) >= 2
    assert len({s.name for s in scenarios}) == len(scenarios)


def test_validate_cli_lists_every_bundled_scenario(capsys):
    assert main(["scenario", "validate", *BUNDLED]) == 0
    out = capsys.readouterr().out
    assert f"{len(BUNDLED)} valid, 0 invalid" in out
    assert out.count("\nok  ") + out.startswith("ok  ") == len(BUNDLED)


def test_good_scenario_parses(tmp_path):
    s = load_scenario(write(tmp_path, GOOD))
    assert [a.type for a in s.anomalies] == ["overheating", "stuck_value"]
    assert s.anomalies[0].end_s == 560 and s.anomalies[1].signal == "coolant_temp"
    assert s.expect.recall_min == 1.0 and s.expect.max_delay_s == 60.0
    assert len(s.sha256) == 64


BAD = [
    # (what, text, substrings the message must contain, line)
    ("bad YAML", "route: {cycle: udds\nseed: 1\n", ["not valid YAML"], 2),
    ("unknown anomaly type", GOOD.replace("type: overheating", "type: overheat"),
     ["anomalies[0].type", "unknown anomaly type 'overheat'", "expected one of: overheating, over_revving"], 7),
    ("negative window", GOOD.replace("at_s: 300", "at_s: -5"), ["anomalies[0].at_s", "must be >= 0"], 7),
    ("zero sustain", GOOD.replace("sustain_s: 100", "sustain_s: 0"), ["anomalies[1].sustain_s", "must be > 0"], 11),
    ("overlapping windows", GOOD.replace("at_s: 900", "at_s: 500"),
     ["anomalies[1].at_s", "overlaps anomalies[0] (overheating, 300-560 s)"], 10),
    ("onset past the end of the route", GOOD.replace("at_s: 900", "at_s: 1400"),
     ["anomalies[1].at_s", "ends past the end of the route (1370 s)"], 10),
    ("window running past the end", GOOD.replace("at_s: 900", "at_s: 1300"),
     ["anomalies[1].sustain_s", "1300-1400 s ends past the end of the route"], 11),
    ("missing route", "name: x\nseed: 1\n", ["route: is required"], 1),
    ("unknown cycle file", GOOD.replace("cycle: udds", "cycle: nedc"),
     ["route.cycle", "unknown drive cycle 'nedc'", "expected one of: udds, wltc_class1, wltc_class3b"], 5),
    ("wrong type", GOOD.replace("severity: 0.8", "severity: high"),
     ["anomalies[0].severity", "expected a number; got text 'high'"], 7),
    ("unknown top-level key", GOOD.replace("seed: 1", "sead: 1"),
     ["sead", "unknown key 'sead'", "expected one of: name, description, vehicle, seed, route"], 3),
    ("unknown nested key", GOOD.replace("    sustain_s: 100", "    sustain_s: 100\n    sevrity: 0.5"),
     ["anomalies[1].sevrity", "unknown key 'sevrity'", "severity"], 12),
    ("unknown vehicle", GOOD.replace("passenger_car", "bus"),
     ["vehicle", "unknown vehicle 'bus'", "passenger_car, light_truck"], 2),
    ("sensor fault without a signal", GOOD.replace("    signal: coolant_temp\n", ""),
     ["anomalies[1].signal", "is required for a stuck_value fault", "vehicle_speed, engine_rpm"], 8),
    ("unknown signal", GOOD.replace("signal: coolant_temp", "signal: oil_temp"),
     ["anomalies[1].signal", "unknown signal 'oil_temp'", "coolant_temp"], 9),
    ("severity out of range", GOOD.replace("severity: 0.8", "severity: 1.5"),
     ["anomalies[0].severity", "must be <= 1"], 7),
    ("both route kinds", GOOD.replace("  cycle: udds", "  cycle: udds\n  generated: {duration_s: 600}"),
     ["route", "exactly one of 'cycle'"], 4),
    ("unknown segment kind", GOOD.replace("  cycle: udds", "  generated: {duration_s: 600, mix: {congested: 1}}"),
     ["route.generated.mix.congested", "unknown key 'congested'", "urban, rural, highway, stop_go"], 5),
    ("unknown driving", GOOD.replace("  cycle: udds", "  generated: {duration_s: 600, driving: wild}"),
     ["route.generated.driving", "unknown driving 'wild'", "expected one of: classic, varied"], 5),
    ("not a mapping", "- just\n- a list\n", ["expected a mapping"], None),
    ("code in YAML", "route: !!python/object/apply:os.system ['true']\n", ["not plain YAML data"], 1),
    ("bad expectation", GOOD.replace("recall_min: 1.0", "recall_min: 2"), ["expect.recall_min", "must be <= 1"], 13),
    ("behaviour macro-F1 above 1", GOOD.replace("recall_min: 1.0", "behaviour_macro_f1_min: 1.2"),
     ["expect.behaviour_macro_f1_min", "must be <= 1"], 13),
    ("misspelt behaviour minimum", GOOD.replace("recall_min: 1.0", "behaviour_f1_min: 0.8"),
     ["expect.behaviour_f1_min", "unknown key 'behaviour_f1_min'", "behaviour_accuracy_min, behaviour_macro_f1_min"],
     13),
]


@pytest.mark.parametrize("what,text,needles,line", BAD, ids=[b[0] for b in BAD])
def test_bad_scenarios_are_reported_precisely(tmp_path, capsys, what, text, needles, line):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for needle in needles:
        assert needle in message, f"{what}: {needle!r} not in {message!r}"
    if line is not None:
        assert message.startswith(f"{path}:{line}:"), message
    # and the CLI says the same on stderr with exit code 2
    assert main(["scenario", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert needles[0] in err


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    text = GOOD.replace("type: overheating", "type: overheat").replace("passenger_car", "bus")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    assert len(info.value.problems) == 2


def test_a_generated_route_drives_classic_unless_it_asks_for_varied(tmp_path):
    from harness.world.cycles import generate_trip

    route = "  generated: {duration_s: 1200, seed: 4, mix: {stop_go: 1, urban: 1}%s}"
    classic = load_scenario(write(tmp_path, GOOD.replace("  cycle: udds", route % ""), "a.yaml")).profile()
    varied = load_scenario(write(tmp_path, GOOD.replace("  cycle: udds", route % ", driving: varied"), "b.yaml"))
    mix = {"stop_go": 1.0, "urban": 1.0}
    assert np.array_equal(classic.speed_kmh, generate_trip(4, 1200, mix, driving="classic").speed_kmh)
    assert np.array_equal(varied.profile().speed_kmh, generate_trip(4, 1200, mix, driving="varied").speed_kmh)
    assert not np.array_equal(classic.speed_kmh, varied.profile().speed_kmh)


def test_cycle_csv_relative_to_the_scenario(tmp_path):
    (tmp_path / "my.csv").write_text("# a test trace\ntime_s,speed_kmh\n0,0\n1,10\n2,20\n3,0\n" +
                                     "".join(f"{t},0\n" for t in range(4, 400)))
    s = load_scenario(write(tmp_path, GOOD.replace("cycle: udds", "cycle: my.csv").replace("at_s: 900", "at_s: 10")
                            .replace("at_s: 300", "at_s: 200").replace("sustain_s: 200", "sustain_s: 100")))
    assert s.profile().duration_s == 400 and s.profile().provenance == "a test trace"


def test_installed_console_script_exits_2_on_a_bad_file(tmp_path):
    path = write(tmp_path, GOOD.replace("type: overheating", "type: overheat"))
    script = Path(sys.executable).with_name("dtg-hil")
    result = subprocess.run([str(script), "scenario", "validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "anomalies[0].type" in result.stderr
