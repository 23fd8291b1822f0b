"""Recording a rig's CAN traffic (`dtg-hil record`) and replaying a recorded log as a route with an overlay."""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import can
import numpy as np
import pytest

from harness.rig.record import record_scenario
from harness.rig.rigfile import BUILTIN_SIM_RIG, RigConfig
from harness.tools.cli import main
from harness.wire.dbc import as_received, get_profile
from harness.wire.signals import SIGNALS
from harness.world.replay import OVERLAY_TYPES, read_recording, recording_trace
from harness.world.scenario import ScenarioError, load_scenario
from harness.world.vehicle import get_vehicle

ROOT = Path(__file__).resolve().parents[1]
CANTOOLS = Path(__import__("sys").executable).with_name("cantools")
BUNDLED_LOG = ROOT / "scenarios" / "recordings" / "city_loop_car.blf"

SOURCE = """\
name: rec-source
vehicle: passenger_car
seed: 7
route:
  generated: {duration_s: 150, mix: {urban: 1}}
conditions: {start_coolant_c: 85}
"""


def write(folder: Path, text: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 150-s scenario recorded to BLF and to ASC, the scenario time of each log's first frame, and the plant
    trace it was driven from."""
    folder = tmp_path_factory.mktemp("rec")
    scenario = load_scenario(write(folder, SOURCE))
    first = {suffix: record_scenario(scenario, BUILTIN_SIM_RIG, folder / f"drive.{suffix}").first_stamp_s
             for suffix in ("blf", "asc")}
    return folder, first, scenario.run_plant()


def _candump(message: can.Message) -> str:
    return f"  vcan0  {message.arbitration_id:03X}   [{message.dlc}]  {message.data.hex(' ').upper()}"


@pytest.mark.parametrize("suffix", ["blf", "asc"])
def test_recorded_log_reads_back_and_cantools_decodes_it(recorded, suffix):
    folder, first, trace = recorded
    frames = list(can.LogReader(str(folder / f"drive.{suffix}")))
    requests = [m for m in frames if m.arbitration_id == 0x7DF]
    answers = [m for m in frames if m.arbitration_id == 0x7E8]
    # The simulated unit polls 9 PIDs a second from second 1; the ECU answers each.
    assert len(requests) >= 9 * 140 and len(answers) >= len(requests) - 9
    assert not any(m.is_extended_id for m in frames)
    speed_answers = [m for m in answers if m.data[2] == 0x0D]
    done = subprocess.run([str(CANTOOLS), "decode", "--single-line", str(get_profile("obd2").dbc_path)],
                          input="\n".join(_candump(m) for m in speed_answers) + "\n", capture_output=True,
                          text=True, timeout=60, check=True)
    decoded = [float(line.split("VehicleSpeed: ")[1].split()[0]) for line in done.stdout.splitlines()]
    assert len(decoded) == len(speed_answers)
    # The readers give stamps relative to the log's first frame (the unit's first poll, at scenario second 0 or 1).
    offset_s = first[suffix] - frames[0].timestamp
    expected = as_received("obd2", {"vehicle_speed": np.array(
        [trace.reading_at(m.timestamp + offset_s)["vehicle_speed"] for m in speed_answers])})["vehicle_speed"]
    assert decoded == expected.tolist()
    # The replay's own decoder agrees with cantools' command line, second by second.
    recording = read_recording(folder / f"drive.{suffix}")
    assert recording.profile == "obd2"
    assert recording.values["vehicle_speed"][:len(decoded)].tolist() == decoded[:int(recording.duration_s)]


def test_j1939_recording_carries_all_ten_signals(tmp_path):
    scenario = load_scenario(write(tmp_path, SOURCE))
    rig = RigConfig(**{**BUILTIN_SIM_RIG.__dict__, "profile": "j1939"})
    # ~200 broadcasts per scenario second: at 30x the rest-bus keeps up on a busy host.
    stats = record_scenario(scenario, rig, tmp_path / "truck.blf", duration_s=90, time_scale=30.0)
    assert stats.frames > 90 * 150
    recording = read_recording(tmp_path / "truck.blf")
    assert recording.profile == "j1939" and 88 <= recording.duration_s <= 90
    # Every broadcast carries the plant's reading at its own stamp (relative to the first frame), as the DBC encodes.
    from harness.wire.dbc import load_database

    trace = scenario.run_plant()
    database = load_database("j1939")
    frames = list(can.LogReader(str(tmp_path / "truck.blf")))
    offset_s = stats.first_stamp_s - frames[0].timestamp
    checked = 0
    for frame in frames[::7]:
        message = database.get_message_by_frame_id(frame.arbitration_id)
        for binding in get_profile("j1939").signals:
            if binding.message == message.name and binding.channel in ("vehicle_speed", "engine_rpm", "coolant_temp"):
                value = binding.from_bus(message.decode(bytes(frame.data))[binding.signal])
                reading = trace.reading_at(frame.timestamp + offset_s)[binding.channel]
                assert value == pytest.approx(as_received("j1939", {binding.channel: np.array([reading])})
                                              [binding.channel][0], abs=1e-6), (binding.channel, frame)
                checked += 1
    assert checked > 300
    replayed = recording_trace(recording, get_vehicle("light_truck")).resample()
    # Seconds the broadcaster skipped on a busy host are gaps in the log: dropouts in the replay, nothing else.
    gaps_s = stats.frames_skipped / 150 + 1
    assert all(np.sum(~np.isfinite(replayed.signals[name])) <= gaps_s for name in SIGNALS), stats


def test_replay_trace_derives_local_sensors_and_labels_the_overlay(recorded):
    from harness.world.anomalies import Anomaly

    folder, _, _ = recorded
    recording = read_recording(folder / "drive.blf")
    overlay = (Anomaly("stuck_value", 40.0, sustain_s=50.0, signal="vehicle_speed"),
               Anomaly("drift", 100.0, severity=1.0, onset_s=10.0, sustain_s=20.0, signal="coolant_temp"))
    trace = recording_trace(recording, get_vehicle("passenger_car"), overlay, seed=7)
    one_hz = trace.resample()
    assert [e.type for e in trace.events] == ["stuck_value", "drift"]
    assert np.array_equal(one_hz.truth["vehicle_speed"], recording.values["vehicle_speed"])
    inside = (one_hz.t_s >= 40) & (one_hz.t_s < 90)
    assert np.ptp(one_hz.signals["vehicle_speed"][inside]) == 0
    assert np.array_equal(one_hz.signals["vehicle_speed"][~inside], one_hz.truth["vehicle_speed"][~inside])
    assert abs(one_hz.signals["coolant_temp"][115] - one_hz.truth["coolant_temp"][115]) == pytest.approx(30.0)
    # OBD-II carries no brake, acceleration or position: they follow the recorded speed.
    speed_ms = one_hz.truth["vehicle_speed"] / 3.6
    assert np.corrcoef(np.gradient(speed_ms), one_hz.signals["acceleration_x"])[0, 1] > 0.8
    assert all(np.isfinite(one_hz.signals[name]).all() for name in SIGNALS)
    assert np.isfinite(one_hz.aux["fuel_rate"]).all() and one_hz.aux["fuel_rate"].min() > 0


def test_replay_with_an_overlay_is_detected_end_to_end(tmp_path):
    from harness.inference.models import ModelSet
    from harness.run.chain import run_scenario
    from harness.world.anomalies import ANOMALY_TYPES

    path = write(tmp_path, f"""\
        name: replay-drift
        vehicle: passenger_car
        seed: 41
        route:
          recording: {BUNDLED_LOG}
        anomalies:
          - {{type: drift, signal: engine_rpm, at_s: 150, onset_s: 30, sustain_s: 90, severity: 0.9}}
        expect:
          recall_min: 1.0
        """)
    scenario = load_scenario(path)
    rig = BUILTIN_SIM_RIG
    models = ModelSet.open(rig.models)
    covered = tuple(t for t in ANOMALY_TYPES if t not in models.manifest.rule_based_types)
    result = run_scenario(scenario, rig, models, tmp_path / "run", covered)
    assert result.metrics.detection.overall.recall == 1.0, result.judgement.message
    assert result.metrics.detection.false_alarms.n_false_alarms == 0
    assert [e.type for e in result.trace.events] == ["drift"]


def test_recorded_route_validation(tmp_path):
    log = tmp_path / "drive.blf"
    log.write_bytes(BUNDLED_LOG.read_bytes())
    base = "name: r\nroute:\n  recording: drive.blf\n"
    overlay = "anomalies:\n  - {type: dropout, signal: coolant_temp, at_s: 100}\n"
    scenario = load_scenario(write(tmp_path, base + overlay))
    assert scenario.route.recording == "drive.blf" and 380 <= scenario.profile().duration_s <= 400

    with pytest.raises(ScenarioError) as bad:
        load_scenario(write(tmp_path, base + "anomalies:\n  - {type: overheating, at_s: 100}\n"))
    assert "anomalies[0].type: 'overheating' changes the vehicle and cannot be overlaid" in str(bad.value)
    assert ", ".join(OVERLAY_TYPES) in str(bad.value)
    with pytest.raises(ScenarioError, match="ends past the end of the route"):
        load_scenario(write(tmp_path, base + "anomalies:\n  - {type: drift, signal: engine_rpm, at_s: 380}\n"))
    with pytest.raises(ScenarioError, match="route: needs exactly one of 'cycle'.*'generated' or 'recording'"):
        load_scenario(write(tmp_path, "route: {recording: drive.blf, cycle: udds}\n"))
    with pytest.raises(ScenarioError, match=r"route.recording: .*missing.blf: cannot read"):
        load_scenario(write(tmp_path, "route: {recording: missing.blf}\n"))
    with pytest.raises(ScenarioError, match=r"unknown log format '.csv'; expected one of: .blf, .asc"):
        (tmp_path / "x.csv").write_text("time_s,speed_kmh\n")
        load_scenario(write(tmp_path, "route: {recording: x.csv}\n"))
    (tmp_path / "junk.blf").write_bytes(b"not a log")
    with pytest.raises(ScenarioError, match=r"route.recording: .*junk.blf: not a readable BLF log"):
        load_scenario(write(tmp_path, "route: {recording: junk.blf}\n"))


def test_record_cli(tmp_path, capsys):
    source = write(tmp_path, SOURCE)
    assert main(["record", "--scenario", str(source), "--out", str(tmp_path / "x.asc"), "--duration-s", "70"]) == 0
    assert "frames (obd2, 70 s) to" in capsys.readouterr().out
    assert 65 <= read_recording(tmp_path / "x.asc").duration_s <= 70
    assert main(["record", "--scenario", str(source), "--out", str(tmp_path / "x.txt")]) == 2
    assert "unknown log format '.txt'; expected one of: .blf, .asc" in capsys.readouterr().err
    assert main(["record", "--out", str(tmp_path / "x.blf")]) == 2
    assert "pass --scenario FILE" in capsys.readouterr().err
    assert main(["record", "--scenario", str(source), "--out", str(tmp_path / "x.blf"), "--duration-s", "0"]) == 2
    assert "--duration-s must be a number > 0" in capsys.readouterr().err


def test_bundled_recording_is_small_and_clean():
    assert BUNDLED_LOG.stat().st_size < 300_000
    recording = read_recording(BUNDLED_LOG)
    assert recording.profile == "obd2" and recording.duration_s >= 360
    assert all(np.isfinite(values).all() for values in recording.values.values())
