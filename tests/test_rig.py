"""The simulated rig end to end: speed independence, planted regressions, scenario collection, hil skips."""
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.inference.models import ModelSet
from harness.rig.rigfile import BUILTIN_SIM_RIG, RigConfig, load_rig
from harness.run.chain import run_scenario
from harness.wire.events import AnomalyResult, RuleEvent
from harness.world.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "models" / "manifest.json"

SHORT = """\
name: short-gps-jump
vehicle: passenger_car
seed: 5
route:
  generated: {duration_s: 120, mix: {urban: 1.0}}
anomalies:
  - {type: gps_jump, at_s: 80, sustain_s: 20, severity: 0.8}
expect:
  recall_min: 1.0
  false_alarms_per_h_max: 30
"""



@pytest.fixture(scope="module")
def short_scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp("sc") / "short.yaml"
    path.write_text(SHORT)
    return load_scenario(path)


def detections(result):
    """What the app reported: every alarm and rule event with its time, and every anomaly score."""
    events = result.collector.events
    alarms = [(e.t_s, e.alarm) for e in events if isinstance(e, AnomalyResult)]
    scores = [round(e.score, 4) for e in events if isinstance(e, AnomalyResult)]
    rules = [(e.t_s, e.type) for e in events if isinstance(e, RuleEvent)]
    return alarms, rules, scores


@pytest.mark.sim
def test_same_detections_paced_and_as_fast_as_possible(tmp_path, models, short_scenario):
    """On virtual time a finite time scale only paces: the drive at 20x takes at least its scenario time / 20 of wall
    time (to its last poll tick, a second before its end), and gives what the unpaced run gives."""
    slow = run_scenario(short_scenario, RigConfig(**{**BUILTIN_SIM_RIG.__dict__, "time_scale": 20.0}), models,
                        tmp_path / "20x")
    fast = run_scenario(short_scenario, BUILTIN_SIM_RIG, models, tmp_path / "unpaced")
    # one sample per whole second of the trip (ticks 0, 1, ...), at both speeds
    assert slow.accounting.samples_received == fast.accounting.samples_received \
        == short_scenario.profile().duration_s
    assert detections(slow) == detections(fast)
    assert slow.judgement.passed and fast.judgement.passed
    assert slow.wall_s >= (short_scenario.profile().duration_s - 1.0) / 20.0
    assert fast.speed > 2 * slow.speed


@pytest.mark.sim
def test_a_threshold_far_too_high_fails_the_verdict_and_says_why(tmp_path, short_scenario):
    broken = tmp_path / "models"
    shutil.copytree(MANIFEST.parent, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["models"]["anomaly"]["threshold"] *= 1000.0
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with ModelSet.open(broken / "manifest.json") as planted:
        result = run_scenario(short_scenario, BUILTIN_SIM_RIG, planted, tmp_path / "run")
    assert not result.judgement.passed
    assert "recall" in result.judgement.message and "< required 1.00" in result.judgement.message
    for artifact in ("events.log", "can.blf", "labels.json", "result.json", "run.png"):
        assert (result.artifacts / artifact).stat().st_size > 0, artifact


def _pytest(args, cwd):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_new_yaml_file_is_a_new_test_item_and_a_bad_one_fails_collection(tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "mine.yaml").write_text(SHORT)
    result = _pytest(["--collect-only", "-q", "scenarios"], tmp_path)
    assert "scenarios/mine.yaml::short-gps-jump[sim]" in result.stdout
    assert "scenarios/mine.yaml::short-gps-jump[hil]" in result.stdout
    (scenarios / "bad.yaml").write_text(SHORT.replace("gps_jump", "gps_jmp"))
    result = _pytest(["--collect-only", "-q", "scenarios"], tmp_path)
    assert result.returncode != 0
    assert "bad.yaml:7: anomalies[0].type: unknown anomaly type 'gps_jmp'; expected one of:" in result.stdout


def test_hil_items_skip_naming_the_missing_setting(tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "mine.yaml").write_text(SHORT)
    result = _pytest(["-m", "hil", "-rs", "scenarios"], tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "no real rig configured: pass --rig FILE" in result.stdout


def test_a_rig_that_cannot_inject_a_signal_skips_with_the_reason(tmp_path):
    rig_file = tmp_path / "bench.yaml"
    rig_file.write_text(textwrap.dedent("""\
        name: bench
        profile: obd2
        can: {interface: pcan, channel: PCAN_USBBUS1, bitrate: 500000}
        stm32: {kind: real, codec: raw-can-v1}
        android: {kind: adb, package: com.example.dtg}
        gnss: {kind: none}
        """))
    rig = load_rig(rig_file)
    assert not rig.simulated and rig.time_scale == 1.0
    stuck_brake = load_scenario(ROOT / "scenarios" / "stuck_speed_udds.yaml")
    assert rig.unsupported(stuck_brake) is None  # speed and coolant travel on OBD-II
    gps = load_scenario(ROOT / "scenarios" / "gps_jump_rural.yaml")
    assert "cannot inject latitude, longitude" in rig.unsupported(gps)
