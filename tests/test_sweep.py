"""Sweeps: a scenario's `sweep:` expands to variants, the plugin runs them, the curve is judged and drawn."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.report.sensitivity import CurvePoint, judge_curve, sensitivity, sensitivity_table, sweep_sections
from harness.wire.signals import LabelledEvent
from harness.world.scenario import ScenarioError, load_scenario
from harness.world.sweep import SweepSpec, variant_name

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
name: sw
seed: 3
route:
  generated: {duration_s: 600, mix: {urban: 1}}
anomalies:
  - {type: drift, signal: coolant_temp, at_s: 100, sustain_s: 60, severity: 0.5}
  - {type: spike_noise, signal: engine_rpm, at_s: 300, sustain_s: 60, severity: 0.5}
"""


def write(folder: Path, text: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_sweep_expands_to_named_variants(tmp_path):
    scenario = load_scenario(write(tmp_path, BASE + "sweep:\n  severity: [0.2, 0.9]\n  seed: [1, 2]\n"
                                               "  vehicle: [light_truck]\n  anomalies: [1]\n"))
    variants = scenario.variants()
    assert [v.name for v in variants] == [
        "sw[severity=0.2,seed=1,vehicle=light_truck]", "sw[severity=0.2,seed=2,vehicle=light_truck]",
        "sw[severity=0.9,seed=1,vehicle=light_truck]", "sw[severity=0.9,seed=2,vehicle=light_truck]"]
    last = variants[-1]
    assert [a.severity for a in last.anomalies] == [0.5, 0.9]  # only anomalies[1] is swept
    assert last.seed == 2 and last.vehicle == "light_truck" and last.sweep is None and last.sweep_base == "sw"
    assert last.sweep_point == (("severity", 0.9), ("seed", 2), ("vehicle", "light_truck"))
    # A generated route without its own seed follows the scenario seed: each seed drives another trip.
    assert variants[0].profile().digest() != variants[1].profile().digest()
    assert load_scenario(write(tmp_path, BASE)).variants()[0].name == "sw"


@pytest.mark.parametrize("sweep, message", [
    ("{severity: [0.2, 1.5]}", "sweep.severity[1]: must be <= 1; got 1.5"),
    ("{severity: []}", "sweep.severity: expected a non-empty list of values; got a list"),
    ("{vehicle: [tractor]}",
     "sweep.vehicle[0]: unknown vehicle 'tractor'; expected one of: passenger_car, light_truck"),
    ("{speed: [1]}", "sweep.speed: unknown key 'speed'; expected one of: severity, seed, vehicle, anomalies, expect"),
    ("{seed: [1, 1]}", "sweep.seed: lists a value twice"),
    ("{anomalies: [0]}", "sweep: lists no values to sweep; expected at least one of: severity, seed, vehicle"),
    ("{severity: [0.5], anomalies: [2]}", "sweep.anomalies[0]: must be <= 1; got 2"),
    ("{seed: [1], expect: {recall_at_max_severity_min: 1}}", "sweep.expect: judges a curve against severity"),
    ("{severity: [0.5], expect: {recall: 1}}", "sweep.expect.recall: unknown key 'recall'; expected one of: "
                                                "recall_at_max_severity_min, recall_drop_events_max, "
                                                "recall_from_severity_min"),
    ("{severity: [0.5], expect: {recall_from_severity_min: {severity: 0.7, recall: 1}}}",
     "sweep.expect.recall_from_severity_min.severity: 0.7 is above every swept severity (the highest is 0.5)"),
    ("{severity: [0.5], expect: {recall_from_severity_min: {severity: 0.5}}}",
     "sweep.expect.recall_from_severity_min.recall: is required"),
    ("{severity: [0.5], expect: {recall_from_severity_min: {severity: 0.5, recall: 2}}}",
     "sweep.expect.recall_from_severity_min.recall: must be <= 1; got 2"),
    ("[0.2, 0.5]", "sweep: expected a mapping with keys severity, seed, vehicle, anomalies, expect; got a list"),
])
def test_bad_sweeps_name_the_field_and_the_choices(tmp_path, sweep, message):
    with pytest.raises(ScenarioError) as bad:
        load_scenario(write(tmp_path, BASE + f"sweep: {sweep}\n"))
    assert message in str(bad.value)


def test_severity_sweep_needs_anomalies(tmp_path):
    with pytest.raises(ScenarioError, match="sweep.severity: sweeps the severity of the scenario's anomalies"):
        load_scenario(write(tmp_path, "route: {cycle: udds}\nsweep: {severity: [0.5]}\n"))


def _result(name: str, severity: float, detected: list[bool], delays: list[float]):
    detections = [SimpleNamespace(event=LabelledEvent("drift", 0.0, 60.0, severity, "coolant_temp"), detected=hit,
                                  detection_delay_s=delay if hit else None)
                  for hit, delay in zip(detected, delays, strict=False)]
    scenario = SimpleNamespace(name=variant_name("sw", (("severity", severity),)), sweep_base="sw")
    return SimpleNamespace(scenario=scenario, metrics=SimpleNamespace(detection=SimpleNamespace(detections=detections)))


def test_sensitivity_curve_table_plot_and_judgement(tmp_path):
    results = [_result("a", 0.2, [False, False], [0, 0]), _result("b", 0.5, [True, False], [50, 0]),
               _result("c", 0.8, [True, True], [30, 40]), _result("d", 1.0, [True, True], [20, 30]),
               SimpleNamespace(scenario=SimpleNamespace(name="other", sweep_base=""))]
    curve = sensitivity(results)["sw"]
    assert [(p.severity, p.events, p.detected, p.delay_p50_s) for p in curve] == [
        (0.2, 2, 0, None), (0.5, 2, 1, 50.0), (0.8, 2, 2, 35.0), (1.0, 2, 2, 25.0)]
    table = sensitivity_table(curve)
    assert "severity" in table and "recall" in table and len(table.splitlines()) == 6
    strict = SweepSpec(severity=(0.2,), recall_at_max_severity_min=1.0, recall_drop_events_max=0)
    assert judge_curve(strict, curve) == []
    dipped = curve[:2] + [CurvePoint("sw", "drift", 0.8, 1, 2, 0, None, None)] + curve[3:]
    failures = judge_curve(SweepSpec(severity=(0.2,), recall_at_max_severity_min=1.0, recall_drop_events_max=0), dipped)
    assert failures == ["drift: recall falls from 0.50 at severity 0.5 to 0.00 at 0.8 (1.0 events); at most 0 allowed"]
    assert judge_curve(SweepSpec(severity=(0.2,), recall_drop_events_max=1), dipped) == []
    assert "recall 0.50 at severity 1 (the highest)" in judge_curve(
        SweepSpec(severity=(0.2,), recall_at_max_severity_min=1.0), curve[:2] + [
            CurvePoint("sw", "drift", 1.0, 1, 2, 1, 9.0, 9.0)])[0]
    from_half = SweepSpec(severity=(0.2,), recall_from_severity_min=(0.5, 1.0))
    assert judge_curve(from_half, curve) == [
        "drift: recall 0.50 at severity 0.5 (1/2); required >= 1 from severity 0.5 on"]
    assert judge_curve(SweepSpec(severity=(0.2,), recall_from_severity_min=(0.8, 1.0)), curve) == []
    [(title, fragment)] = sweep_sections(results, tmp_path)
    assert title == "Sensitivity: sw" and "<td>0.50</td>" in fragment
    assert '<img class="plot" src="sweep-sw.png"' in fragment
    assert (tmp_path / "sweep-sw.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SWEEP_RUN = """\
name: quick-sweep
seed: 5
route:
  generated: {duration_s: 300, mix: {urban: 0.5, rural: 0.5}}
conditions: {start_coolant_c: 85}
anomalies:
  - {type: drift, signal: coolant_temp, at_s: 100, onset_s: 60, sustain_s: 90, recovery_s: 30}
sweep:
  severity: [0.2, 0.35, 0.5, 0.8, 1.0]
  expect: {recall_at_max_severity_min: 1.0, recall_drop_events_max: 0}
"""


def test_plugin_runs_a_sweep_and_draws_its_curve(tmp_path):
    """Five severities through the simulated chain, one item each, then the curve: recall 1.0 at the top and
    never falling as severity rises (one event per severity: no slack)."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    write(folder, SWEEP_RUN, "quick_sweep.yaml")
    artifacts = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider",
                           "-m", "sim", "--dtg-artifacts", str(artifacts), "-q", "-rA", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    out = done.stdout
    assert "6 passed" in out and "6 deselected" in out  # 5 variants + the sweep check; the [hil] ones filtered
    assert "PASSED" in out and "quick-sweep[sweep-sim]" in out
    table = out[out.index("sensitivity of sweep quick-sweep"):]
    rows = [line.split() for line in table.splitlines()[3:8]]
    assert [float(r[1]) for r in rows] == [0.2, 0.35, 0.5, 0.8, 1.0]
    recall = [float(r[5]) for r in rows]
    assert recall[-1] == 1.0 and all(b >= a for a, b in zip(recall, recall[1:], strict=False)), table
    [session] = list(artifacts.iterdir())
    assert (session / "sweep-quick-sweep.png").stat().st_size > 10_000
    page = (session / "index.html").read_text()
    assert "Sensitivity (sweeps)" in page and 'src="sweep-quick-sweep.png"' in page
    assert (session / "quick_sweep[severity=0.5]" / "result.json").exists()
