"""Virtual time on the simulated rig (issue 16): a run's outputs are a pure function of its inputs.

The same short scenario runs on a quiet machine, with CPU-hog processes on every core, paced for a demo, and again:
its event log (every field but the wall-clock logcat stamp and the host-CPU `infer_ms`), every figure of
result.json but the wall-time ones, and the CAN log's frames must be identical, to the last alarm.
"""
from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import time
from pathlib import Path

import can
import pytest

from harness.core.clock import VirtualClock
from harness.rig.rigfile import BUILTIN_SIM_RIG, load_rig
from harness.run.chain import run_scenario
from harness.run.scheduler import Scheduler, SchedulerError, Stage
from harness.world.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
#: result.json fields measured on the wall clock: how long the run took, not what it found.
WALL_FIELDS = ("wall_s", "speed_x")


def _scenario():
    data = {"name": "virtual-time", "vehicle": "passenger_car", "seed": 11,
            "route": {"generated": {"duration_s": 600, "mix": {"urban": 0.5, "rural": 0.5}}},
            "anomalies": [{"type": "overheating", "at_s": 200, "sustain_s": 120, "severity": 0.9},
                          {"type": "harsh_braking", "at_s": 420, "severity": 0.9}],
            "bus_faults": [{"type": "delay", "at_s": 100, "duration_s": 60, "delay_ms": 120, "jitter_ms": 80},
                           {"type": "frame_loss", "at_s": 480, "duration_s": 60, "probability": 0.05}],
            "expect": {"false_alarms_per_h_max": 1000, "data_loss_max_pct": 100}}
    return parse_scenario(data, {}, "", name=data["name"])


def _hog(stop) -> None:  # a busy loop, until told to stop
    while not stop.is_set():
        for _ in range(100_000):
            pass


def _outputs(folder: Path) -> dict:
    """What a run found, without what the wall clock or the host's CPU measured."""
    payloads = []
    for line in (folder / "events.log").read_text().splitlines():
        payload = json.loads(line.split(": ", 1)[1])
        payload.pop("infer_ms", None)
        payloads.append(payload)
    result = json.loads((folder / "result.json").read_text())
    for key in WALL_FIELDS:
        result.pop(key)
    with can.BLFReader(str(folder / "can.blf")) as reader:
        frames = [(m.timestamp, m.arbitration_id, m.is_extended_id, m.is_error_frame, bytes(m.data)) for m in reader]
    return {"events": payloads, "result": result, "frames": frames}



@pytest.mark.sim
def test_outputs_identical_quiet_loaded_paced_and_repeated(tmp_path, models):
    scenario, rig = _scenario(), BUILTIN_SIM_RIG
    assert rig.on_virtual_time and rig.time_scale == math.inf
    quiet = run_scenario(scenario, rig, models, tmp_path / "quiet")
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_hog, args=(stop,), daemon=True) for _ in range(4)]
    for hog in hogs:
        hog.start()
    try:
        loaded = run_scenario(scenario, rig, models, tmp_path / "loaded")
    finally:
        stop.set()
        for hog in hogs:
            hog.join(10)
            if hog.is_alive():
                hog.kill()
    paced = run_scenario(scenario, dataclasses.replace(rig, time_scale=3000.0), models, tmp_path / "paced")
    again = run_scenario(scenario, rig, models, tmp_path / "again")

    reference = _outputs(tmp_path / "quiet")
    alarms = [e["t"] for e in reference["events"] if e.get("alarm") or e["kind"] == "event"]
    assert alarms, "the scenario must raise alarms, or the comparison proves little"
    assert reference["result"]["accounting"]["injector_frames_delayed"] > 0
    assert reference["result"]["accounting"]["injector_frames_dropped"] > 0
    for name in ("loaded", "paced", "again"):
        other = _outputs(tmp_path / name)
        other_alarms = [e["t"] for e in other["events"] if e.get("alarm") or e["kind"] == "event"]
        assert other_alarms == alarms, f"{name}: alarms moved"
        assert other["events"] == reference["events"], f"{name}: the event log differs"
        assert other["result"] == reference["result"], f"{name}: result.json differs"
        assert other["frames"] == reference["frames"], f"{name}: the CAN log differs"
    assert quiet.judgement == loaded.judgement == paced.judgement == again.judgement
    # The paced run did not run ahead of 3000x (600 s of scenario: at least 0.2 s of wall time).
    assert paced.wall_s >= 600 / 3000.0


def test_scheduler_settles_each_instant_before_time_moves():
    """A ping-pong between two stages settles at one instant; time then moves to the next due one."""
    clock = VirtualClock()
    log: list[tuple[float, str]] = []
    inbox = {"a": 0, "b": 0}
    ticks = [0.0, 1.0]

    def a_step(now_s: float) -> bool:
        did = False
        if ticks and ticks[0] <= now_s:
            ticks.pop(0)
            inbox["b"] += 3
            did = True
        if inbox["a"]:
            inbox["a"] -= 1
            log.append((now_s, "a"))
            did = True
        return did

    def b_step(now_s: float) -> bool:
        if not inbox["b"]:
            return False
        inbox["b"] -= 1
        inbox["a"] += 1
        log.append((now_s, "b"))
        return True

    scheduler = Scheduler(clock, [Stage("a", a_step, lambda: ticks[0] if ticks else math.inf),
                                  Stage("b", b_step, lambda: math.inf)])
    scheduler.run(done=lambda: not ticks and not inbox["a"] and not inbox["b"])
    assert log == [(0.0, "b"), (0.0, "a")] * 3 + [(1.0, "b"), (1.0, "a")] * 3
    assert clock.now_s() == 1.0


def test_scheduler_reports_a_livelock_and_a_stall():
    clock = VirtualClock()
    with pytest.raises(SchedulerError, match="livelock"):
        Scheduler(clock, [Stage("spinner", lambda now_s: True, lambda: math.inf)], max_rounds=50).settle()
    with pytest.raises(SchedulerError, match="no stage has anything due"):
        Scheduler(clock, [Stage("idle", lambda now_s: False, lambda: math.inf)]).run(done=lambda: False)


def test_a_stage_too_slow_for_its_instant_ends_the_run():
    """A stage that keeps working and takes wall time at one instant is called stalled, within the bound."""
    def slow(now_s: float) -> bool:
        time.sleep(0.02)
        return True

    scheduler = Scheduler(VirtualClock(), [Stage("slowpoke", slow, lambda: math.inf)], stall_wall_s=0.1)
    started = time.monotonic()
    with pytest.raises(SchedulerError, match=r"did not settle within 0.1 s of wall time"):
        scheduler.settle()
    assert time.monotonic() - started < 5.0


def test_a_failing_stage_is_named_with_the_instant():
    def broken(now_s: float) -> bool:
        raise OSError("pty gone")

    clock = VirtualClock()
    clock.advance_to(42.0)
    with pytest.raises(SchedulerError, match=r"the firmware failed at t=42.000 s: OSError\('pty gone'\)"):
        Scheduler(clock, [Stage("firmware", broken, lambda: math.inf)]).settle()


def test_only_fully_simulated_rigs_run_on_virtual_time():
    assert BUILTIN_SIM_RIG.on_virtual_time
    assert not load_rig(ROOT / "rigs" / "loopback.yaml").on_virtual_time  # stand-ins on the wall clock, paced
    assert load_rig(ROOT / "rigs" / "loopback.yaml").time_scale == 20.0


def test_virtual_clock_never_goes_back_and_refuses_to_sleep():
    clock = VirtualClock()
    clock.advance_to(5.0)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(4.0)
    with pytest.raises(RuntimeError, match="moved by its scheduler"):
        clock.sleep_until(6.0)

