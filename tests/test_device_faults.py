"""Device and link faults (issue 7): each ends in a clear verdict within a bounded time, artifacts saved.

Each run drives a few minutes of a generated route through the simulated chain (on virtual time, as fast as the CPU
allows) with one fault from `harness.rig.device_faults` and checks the verdict, the accounting's numbers and how much
scenario time the harness took to tell (on virtual time: exactly, at any speed). The adb stand-in's run is paced by
the wall clock, and its bound is in wall seconds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import shutil
import time
from pathlib import Path

import pytest
from support import adb_problem, time_limit

from harness.inference.models import ManifestError, ModelSet
from harness.judge.result import RunError
from harness.rig.device_faults import DeviceFault, FaultInjector, UartLine
from harness.rig.rigfile import BUILTIN_SIM_RIG
from harness.run.chain import DEFAULT_MAX_SILENCE_S, run_scenario
from harness.world.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "models" / "manifest.json"
RIG = BUILTIN_SIM_RIG  # virtual time


def _scenario(duration_s: float = 400.0):
    data = {"name": "device-faults", "vehicle": "passenger_car", "seed": 5,
            "route": {"generated": {"duration_s": duration_s, "mix": {"urban": 1.0}}},
            "anomalies": [{"type": "gps_jump", "at_s": duration_s - 70, "sustain_s": 20, "severity": 0.8}],
            "expect": {"recall_min": 1.0, "false_alarms_per_h_max": 30}}
    return parse_scenario(data, {}, "", name=data["name"])



def _failed_run(tmp_path: Path, models, faults, scenario=None, rig=RIG) -> tuple[RunError, dict, float]:
    """Run until the RunError; returns it, the run's result.json, and the scenario seconds from the first fault to
    the end of the run."""
    with pytest.raises(RunError) as failed:
        run_scenario(scenario or _scenario(), rig, models, tmp_path / "run", faults=faults)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    fired = result["device_faults"][0]["fired_at_s"]
    return failed.value, result, result["scenario_s_reached"] - fired


def _artifacts_kept(folder: Path) -> None:
    assert (folder / "events.log").stat().st_size > 0
    assert (folder / "can.blf").stat().st_size > 0


@pytest.mark.sim
@time_limit(15)
def test_the_app_killed_mid_run_ends_the_run_naming_the_dead_process(tmp_path, models) -> None:
    error, result, detected_s = _failed_run(tmp_path, models, [DeviceFault("app_killed", at_s=300)])
    message = str(error)
    assert "app simulator's process (pid 4321) died at t=" in message
    died_at = float(re.search(r"died at t=(\d+) s", message)[1])
    assert died_at == 300 and detected_s == 0  # on virtual time the run sees it at the instant it happens
    assert result["verdict"] == f"error: {message}" and result["passed"] is False
    assert result["device_faults"][0]["kind"] == "app_killed"
    assert result["counters"]["app"]["windows_scored"] > 100  # it ran until the kill (a little behind the clock)
    _artifacts_kept(tmp_path / "run")
    # the dead app wrote nothing after its death
    last_t = max(json.loads(line.split(": ", 1)[1]).get("t") or 0 for line in
                 (tmp_path / "run" / "events.log").read_text().splitlines())
    assert last_t <= 301


@pytest.mark.sim
@time_limit(15)
def test_a_device_that_stops_logging_ends_the_run_naming_the_last_line(tmp_path, models) -> None:
    # 200 s of logging, then silence: the run ends long before the drive's 1000 s
    error, result, detected_s = _failed_run(tmp_path, models, [DeviceFault("logging_stopped", at_s=200)],
                                            _scenario(1000.0))
    message = str(error)
    since = float(re.search(r"no EdgeAI lines since t=(\d+) s", message)[1])
    assert since == 199, message  # the last line logged: sample 199's results (the fault falls before sample 200)
    assert f"limit {DEFAULT_MAX_SILENCE_S:g} s" in message and "the device stopped logging" in message
    # the bound, in scenario time: the first instant past max_silence_s without a line
    assert result["scenario_s_reached"] == since + DEFAULT_MAX_SILENCE_S + 1
    assert detected_s == DEFAULT_MAX_SILENCE_S
    assert result["verdict"].startswith("error: no EdgeAI lines since t=")
    _artifacts_kept(tmp_path / "run")


@pytest.mark.sim
@time_limit(15)
def test_a_silent_device_ends_even_a_long_run_within_its_bound(tmp_path, models) -> None:
    """A device that never logs: an hour of drive ends after the silence bound, not at its end."""
    started = time.monotonic()
    with pytest.raises(RunError, match=r"no EdgeAI lines since t=0 s"):
        run_scenario(_scenario(3600.0), RIG, models, tmp_path / "run", faults=[DeviceFault("logging_stopped", 0)],
                     max_silence_s=60.0)
    assert time.monotonic() - started < 12.0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["scenario_s_reached"] == 61  # the first instant more than 60 s after t=0
    assert (tmp_path / "run" / "can.blf").stat().st_size > 0


@pytest.mark.sim
@time_limit(15)
def test_a_firmware_restart_is_judged_normally_and_accounted(tmp_path, models) -> None:
    result = run_scenario(_scenario(), RIG, models, tmp_path / "run",
                          faults=[DeviceFault("firmware_restart", at_s=200, duration_s=5)])
    a = result.accounting
    assert a.firmware_restarts == 1 and a.link_sequence_resets == 1
    # down from t=200 to t=205: the ticks 200..204 are never polled, whatever the speed
    assert a.sample_gaps == 1 and a.seconds_without_sample == 5
    # ticks 0 .. ceil(duration) - 1 (the firmware starts with the clock, at t=0), less the five
    assert a.samples_sent == a.samples_received == math.ceil(result.trace.duration_s) - 5
    assert a.link_frames_lost == 0 and a.link_crc_errors == 0
    # the app recovered: it scored windows after the restart, and the verdict is the scenario's own
    assert max(e.t_s for e in result.collector.of_kind("fuel")) >= result.trace.duration_s - 5
    assert result.judgement.passed, result.judgement.message
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["verdict"] == result.judgement.message
    assert summary["accounting"]["firmware_restarts"] == 1
    assert summary["device_faults"][0]["kind"] == "firmware_restart" and summary["device_faults"][0][
        "fired_at_s"] == 200


@pytest.mark.sim
@time_limit(15)
def test_a_uart_disconnect_shows_its_gap_in_frames_and_samples(tmp_path, models) -> None:
    result = run_scenario(_scenario(), RIG, models, tmp_path / "run",
                          faults=[DeviceFault("uart_disconnect", at_s=150, duration_s=20)])
    a = result.accounting
    assert a.uart_bytes_dropped > 0
    # 20 s of scenario without a cable: the 20 samples the firmware wrote meanwhile (ticks 150 .. 169), each missing
    # from the app's seconds
    assert a.samples_sent - a.samples_received == 20
    assert a.sample_gaps == 1 and a.seconds_without_sample == a.samples_sent - a.samples_received
    # every frame the firmware wrote is either decoded or counted lost by sequence number: none vanish
    assert a.link_frames_lost > 0 and a.link_frames_decoded + a.link_frames_lost == a.link_frames_expected
    assert a.link_crc_errors == 0
    # the run went on after the reconnect
    assert max(e.t_s for e in result.collector.of_kind("fuel")) >= result.trace.duration_s - 5
    assert result.judgement.passed, result.judgement.message
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["accounting"]["uart_bytes_dropped"] == a.uart_bytes_dropped


@time_limit(15)
def test_a_model_file_changed_after_opening_is_refused_before_the_run(tmp_path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(MANIFEST.parent, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    fuel = copy / manifest["models"]["fuel"]["file"]
    with ModelSet.open(copy / "manifest.json") as opened:
        fuel.write_bytes(fuel.read_bytes() + b"\0")
        changed = hashlib.sha256(fuel.read_bytes()).hexdigest()
        started = time.monotonic()
        with pytest.raises(RunError) as refused:
            run_scenario(_scenario(), RIG, opened, tmp_path / "run")
    message = str(refused.value)
    assert str(fuel) in message and changed in message and manifest["models"]["fuel"]["sha256"] in message
    assert "refused" in message and time.monotonic() - started < 2.0
    assert not (tmp_path / "run").exists()  # nothing started


def test_a_corrupt_model_file_is_refused_naming_it_and_both_hashes(tmp_path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(MANIFEST.parent, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    fuel = copy / manifest["models"]["fuel"]["file"]
    data = bytearray(fuel.read_bytes())
    data[100:200] = b"\xff" * 100
    fuel.write_bytes(bytes(data))
    corrupt = hashlib.sha256(data).hexdigest()
    with pytest.raises(ManifestError) as refused:
        ModelSet.open(copy / "manifest.json")
    assert re.search(rf"model 'fuel' \({fuel.name}\): sha256 mismatch: manifest says "
                     rf"{manifest['models']['fuel']['sha256']}, file has {corrupt}", str(refused.value))
    # a manifest that agrees with the corrupt file: onnxruntime cannot load it, and the error says which file
    manifest["models"]["fuel"]["sha256"] = corrupt
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=rf"model 'fuel' \({re.escape(str(fuel))}\): onnxruntime cannot load it"):
        ModelSet.open(copy / "manifest.json")


def test_a_fault_the_rig_cannot_inject_is_refused_before_the_run(tmp_path, models) -> None:
    real_phone = dataclasses.replace(BUILTIN_SIM_RIG, name="bench", android_kind="adb", adb_serial="R58M123",
                                     package="com.dtg.edgeai")
    with pytest.raises(RunError, match="rig 'bench' cannot inject app_killed: it can inject firmware_restart, "
                                       "uart_disconnect"):
        run_scenario(_scenario(), real_phone, models, tmp_path / "run", faults=[DeviceFault("app_killed", 10)])
    assert not (tmp_path / "run").exists()


def test_a_device_fault_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="unknown device fault 'app_kill'; expected one of: app_killed, "
                                         "firmware_restart, uart_disconnect, logging_stopped, power_cycle"):
        DeviceFault("app_kill", 10)
    with pytest.raises(ValueError, match="at_s must be a finite number >= 0"):
        DeviceFault("app_killed", -1)
    assert DeviceFault("uart_disconnect", 5).lasts_s == 10.0 and DeviceFault("app_killed", 5).lasts_s is None


def test_the_injector_refuses_a_kind_it_has_no_action_for() -> None:
    from harness.core.clock import ScenarioClock
    from harness.rig.device_faults import DeviceFaultError

    with pytest.raises(DeviceFaultError, match="rig 'x' cannot inject app_killed: it can inject uart_disconnect"):
        FaultInjector([DeviceFault("app_killed", 1)], ScenarioClock(100), {"uart_disconnect": print},
                      rig_name="rig 'x'")


def test_a_pulled_uart_line_drops_whole_writes_and_counts_them() -> None:
    written = []

    class Sink:
        def write(self, data):
            written.append(bytes(data))
            return len(data)

    line = UartLine(Sink())
    line.write(b"abc")
    line.disconnect()
    assert line.write(b"defg") == 4
    line.connect()
    line.write(b"h")
    assert written == [b"abc", b"h"] and line.bytes_dropped == 4 and line.writes_dropped == 1


@pytest.mark.sim
@time_limit(30)
def test_the_app_killed_on_the_phone_ends_the_run_naming_its_package_and_pid(tmp_path, models) -> None:
    problem = adb_problem()
    if problem:
        pytest.skip(problem)
    phone_rig = dataclasses.replace(BUILTIN_SIM_RIG, name="phone", android_kind="adb", adb_serial="simulated",
                                    apk="simulated", package="com.dtg.edgeai", time_scale=50.0)
    error, result, detected_s = _failed_run(tmp_path, models, [DeviceFault("app_killed", at_s=120)],
                                            _scenario(300.0), phone_rig)
    message = str(error)
    assert "the app on the phone died at t=" in message and "com.dtg.edgeai" in message, message
    assert re.search(r"last pid was \d+", message), message
    assert detected_s / phone_rig.time_scale <= 10.0  # wall seconds: this rig is paced
    assert result["verdict"].startswith("error: the app on the phone died")
    _artifacts_kept(tmp_path / "run")
