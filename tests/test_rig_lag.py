"""Rig lag: what the harness's own side failed to do in time is the rig's loss, and a run beyond its tolerance is an
ERROR "the rig fell behind", never a PASS or FAIL of the unit (DESIGN.md, "Time"; docs/rig.md, "Rig-side loss").

The accounting's classification is tested on counters (which counter is whose), then a loopback-rig run whose
OBD-II responder is slowed on purpose (a conftest in the test's own pytest session wraps the rest-bus's answer;
nothing in the harness changes) must end as an ERROR with the figures, in the terminal, JUnit, result.json and
the HTML report.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import can
import numpy as np
import pytest

from harness.judge.result import RIG_SIDE, Accounting, RigLagError, RunError, rig_lag_error
from harness.rig.bus_fault_injector import BusFaultInjector
from harness.rig.restbus import RestBus, frame_is_late, j1939_periods_s
from harness.rig.rigfile import RigError, load_rig, parse_rig
from harness.wire.signals import AUX_SIGNALS, PLANT_RATE_HZ, SIGNALS, Trace
from harness.world.bus_faults import BusFault

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "models" / "manifest.json"

OBD_ROW = RIG_SIDE + "OBD-II requests the rest-bus left unanswered in time (requests)"
SKIPPED_ROW = RIG_SIDE + "rest-bus frames skipped (frames)"
LATE_FRAMES_ROW = RIG_SIDE + "rest-bus frames sent late (frames)"
INJECTOR_ROW = RIG_SIDE + "bus fault injector frames sent late (frames)"
SIMULATOR_ROW = RIG_SIDE + "STM32 simulator poll cycles or samples late (cycles or samples)"
FIRMWARE_ROW = "firmware poll cycles or samples late (cycles or samples)"


def rows(table: list[tuple[str, int, int]]) -> dict[str, tuple[int, int]]:
    return {stage: (lost, of) for stage, lost, of in table}


def obd_run(**changes) -> Accounting:
    """An OBD-II run's counters: 1000 requests, 40 unanswered; the rest-bus declined 25 (a sensor dropout's NaN
    readings), bus faults dropped 5 answers and delayed 3, and 2 answers were lost between the wire and the
    firmware. 40 - 25 - 5 - 3 - 2 = 5 requests are left that only the rest-bus can have failed to answer in time."""
    counters = dict(obd_requests_answered=960, obd_requests_unanswered=40, restbus_requests_ignored=25,
                    restbus_frames_sent=960, injector_frames_dropped=5, injector_frames_delayed=3,
                    firmware_frames_received=960 - 5 - 2, firmware_frames_forwarded=953 + 1000, poll_cycles=111)
    counters.update(changes)
    return Accounting(**counters)


# --- which counters are the rig's ---------------------------------------------------------------------------------

def test_unanswered_requests_are_the_rig_s_less_what_the_scenario_or_the_unit_explains():
    acc = obd_run()
    assert rows(acc.rig_loss())[OBD_ROW] == (5, 1000 - 25)
    # Each explanation counts: without it, its requests are the rig's.
    assert rows(obd_run(restbus_requests_ignored=0).rig_loss())[OBD_ROW] == (30, 1000)
    assert rows(obd_run(injector_frames_dropped=0, firmware_frames_received=958).rig_loss())[OBD_ROW] == (10, 975)
    assert rows(obd_run(injector_frames_delayed=0).rig_loss())[OBD_ROW] == (8, 975)
    # An answer lost between the wire and the firmware is the unit's stage, counted there and only there.
    assert rows(acc.unit_loss())["CAN bus -> firmware (frames)"] == (2, 955)
    assert rows(obd_run(firmware_frames_received=955).rig_loss())[OBD_ROW] == (7, 975)
    assert rows(obd_run(firmware_frames_received=955).unit_loss())["CAN bus -> firmware (frames)"] == (0, 955)


def test_late_answers_with_nothing_else_to_blame_are_all_rig_loss():
    # The slowed responder: every answer went out, all reached the firmware, 111 came after the unit's timeout.
    acc = Accounting(obd_requests_answered=889, obd_requests_unanswered=111, restbus_frames_sent=1000,
                     firmware_frames_received=1000, firmware_frames_forwarded=2000, poll_cycles=111)
    assert rows(acc.rig_loss())[OBD_ROW] == (111, 1000)
    assert all(lost == 0 for stage, lost, _ in acc.unit_loss()), acc.unit_loss()


def test_skipped_and_late_broadcast_frames_are_the_rig_s_not_the_unit_s():
    acc = Accounting(restbus_frames_sent=1000, restbus_frames_skipped=3, restbus_frames_late=4,
                     firmware_frames_received=1000, firmware_frames_forwarded=1000)
    assert rows(acc.rig_loss())[SKIPPED_ROW] == (3, 1003)
    assert rows(acc.rig_loss())[LATE_FRAMES_ROW] == (4, 1000)
    assert all(lost == 0 for _, lost, _ in acc.unit_loss()), acc.unit_loss()


def test_late_injector_frames_are_the_rig_s():
    acc = Accounting(restbus_frames_sent=100, injector_frames_delayed=20, injector_frames_added=50,
                     injector_error_frames=10, injector_frames_late=6, firmware_frames_received=150,
                     firmware_frames_forwarded=150)
    assert rows(acc.rig_loss())[INJECTOR_ROW] == (6, 80)
    assert all(lost == 0 for _, lost, _ in acc.unit_loss())


def test_skipped_gnss_epochs_are_the_rig_s():
    acc = Accounting(gnss_epochs_sent=178, gnss_epochs_skipped=2)
    assert rows(acc.rig_loss())[RIG_SIDE + "GNSS feed epochs skipped (epochs)"] == (2, 180)
    assert all(lost == 0 for _, lost, _ in acc.unit_loss())


def test_a_simulated_stm32_s_lateness_is_the_rig_s_a_real_one_s_the_unit_s():
    late = dict(poll_cycles=100, poll_cycles_late=3, poll_ticks_missed=2)
    simulated = Accounting(**late)
    assert rows(simulated.rig_loss())[SIMULATOR_ROW] == (5, 102)
    assert FIRMWARE_ROW not in rows(simulated.unit_loss())
    real = Accounting(**late, firmware_simulated=False)
    assert SIMULATOR_ROW not in rows(real.rig_loss())
    assert rows(real.unit_loss())[FIRMWARE_ROW] == (5, 102)
    # A late cycle answered for its own tick (a simulated rig's virtual CAN) reads the same values: no loss.
    assert rows(Accounting(**late, answers_at_request_stamp=True).rig_loss())[SIMULATOR_ROW] == (2, 102)
    # J1939: no polls; the simulator's late samples.
    assert rows(Accounting(samples_sent=600, samples_late=9).rig_loss())[SIMULATOR_ROW] == (9, 600)


def test_the_loss_table_lists_the_unit_s_stages_then_the_rig_s_each_labelled():
    acc = obd_run()
    table = acc.data_loss()
    assert table == acc.unit_loss() + acc.rig_loss()
    assert [stage.startswith(RIG_SIDE) for stage, _, _ in table] == [False] * 5 + [True] * 6
    assert not any(stage.startswith(RIG_SIDE) for stage, _, _ in acc.unit_loss())


# --- the error ------------------------------------------------------------------------------------------------------

def lagging(acc: Accounting, tolerance_pct: float = 0.0, paced: bool = True):
    return SimpleNamespace(accounting=acc, artifacts=Path("reports/run"), rig=SimpleNamespace(
        name="bench", rig_loss_max_pct=tolerance_pct, paced_by_wall_clock=paced))


def test_rig_loss_beyond_the_tolerance_is_a_rig_lag_error_naming_the_figures():
    acc = Accounting(obd_requests_answered=990, obd_requests_unanswered=10, restbus_frames_sent=990,
                     firmware_frames_received=990, poll_cycles=112, poll_cycles_late=2)
    error = rig_lag_error(lagging(acc))
    assert isinstance(error, RigLagError) and isinstance(error, RunError)
    first = str(error).splitlines()[0]
    assert first == ("the rig fell behind (OBD-II requests the rest-bus left unanswered in time: 10 of 1000 requests "
                     "(1 %); STM32 simulator poll cycles or samples late: 2 of 112 cycles or samples (1.79 %); "
                     "tolerance 0 %, rig_loss_max_pct of rig 'bench'); not a verdict on the unit")
    assert error.stages == [(OBD_ROW, 10, 1000), (SIMULATOR_ROW, 2, 112)]
    # Within the rig's tolerance (rig_loss_max_pct) it is no error; a row beyond it still is.
    assert rig_lag_error(lagging(acc, tolerance_pct=2.0)) is None
    assert rig_lag_error(lagging(acc, tolerance_pct=1.5)).stages == [(SIMULATOR_ROW, 2, 112)]
    assert rig_lag_error(lagging(Accounting(obd_requests_answered=1000, poll_cycles=112))) is None
    # The simulated rig (to run on virtual time) reports its lateness and is not judged on it; frames the rest-bus
    # skipped outright (never sent) are judged there too, as they were as data loss.
    assert rig_lag_error(lagging(acc, paced=False)) is None
    skipped = Accounting(restbus_frames_sent=990, restbus_frames_skipped=10, restbus_frames_late=50, poll_cycles=10,
                         poll_cycles_late=5)
    assert rig_lag_error(lagging(skipped, paced=False)).stages == [(SKIPPED_ROW, 10, 1000)]
    assert len(rig_lag_error(lagging(skipped)).stages) == 3  # skipped, late, polls


def test_the_loopback_rig_and_a_bench_are_paced_by_the_wall_clock_the_simulated_rig_is_not():
    assert load_rig(ROOT / "rigs" / "loopback.yaml").paced_by_wall_clock
    assert parse_rig({"name": "bench", "can": {"interface": "pcan", "channel": "PCAN_USBBUS1"},
                      "stm32": {"kind": "real"}}, {}, "bench.yaml").paced_by_wall_clock
    assert not load_rig(None).paced_by_wall_clock


# --- the rig file ---------------------------------------------------------------------------------------------------

def test_rig_loss_max_pct_defaults_to_0_and_is_validated():
    assert load_rig(ROOT / "rigs" / "loopback.yaml").rig_loss_max_pct == 0.0
    assert parse_rig({"name": "r", "rig_loss_max_pct": 0.5}, {}, "r.yaml").rig_loss_max_pct == 0.5
    for bad, says in ((101, "rig_loss_max_pct: must be <= 100; got 101"), (-1, "rig_loss_max_pct: must be >= 0"),
                      ("lots", "rig_loss_max_pct: expected a number; got")):
        with pytest.raises(RigError, match=says):
            parse_rig({"name": "r", "rig_loss_max_pct": bad}, {}, "r.yaml")


def test_a_broadcast_frame_is_late_a_period_beyond_one_batch():
    assert not frame_is_late(5.0, 5.0999, period_s=0.1)
    assert frame_is_late(5.0, 5.1, period_s=0.1)
    assert not frame_is_late(5.0, 5.1, period_s=0.1, batch_s=0.04)
    assert frame_is_late(5.0, 5.14, period_s=0.1, batch_s=0.04)


class SteppedClock:
    """A scenario clock the test moves by hand: a worker sees time jump, as a thread the host stalled would."""

    time_scale = 1.0

    def __init__(self) -> None:
        self.t_s = 0.0

    def now_s(self) -> float:
        return self.t_s

    def wall_s_until(self, t_s: float) -> float:
        return 0.001

    def scenario_span_s(self, wall_span_s: float) -> float:
        return wall_span_s


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_broadcaster_that_fell_behind_counts_its_late_frames():
    t_s = np.arange(int(10 * PLANT_RATE_HZ)) / PLANT_RATE_HZ
    signals = {name: np.full(len(t_s), 1.0) for name in SIGNALS}
    trace = Trace(t_s=t_s, signals=signals, truth=dict(signals), aux={n: np.full(len(t_s), 1.0) for n in AUX_SIGNALS})
    clock, channel = SteppedClock(), f"test-rig-lag-{uuid.uuid4()}"
    periods = j1939_periods_s()
    with can.Bus(interface="virtual", channel=channel) as bus:
        rest_bus = RestBus(bus, trace, "j1939", clock, end_s=3.0, max_lag_wall_s=5.0, min_wall_sleep_s=0.002).start()
        wait_for(lambda: rest_bus.stats.frames_sent == len(periods))  # every message's first frame, on time
        clock.t_s = 3.0  # the thread "wakes" 3 s later: the backlog goes out at once
        assert rest_bus.wait(10.0)
        rest_bus.stop()
    # Due at k * period before 3 s; late when sent a period or more (plus one 2-ms batch) after that.
    due = {name: [k * period for k in range(1, math.ceil(3.0 / period - 1e-9))] for name, period in periods.items()}
    late = sum(3.0 - t >= periods[name] + 0.002 - 1e-9 for name, times in due.items() for t in times)
    stats = rest_bus.stats
    assert stats.frames_skipped == 0 and stats.frames_sent == len(periods) + sum(map(len, due.values()))
    assert stats.frames_late == late > 0


def test_an_injector_that_fell_behind_counts_its_late_frames():
    clock, channel = SteppedClock(), f"test-rig-lag-{uuid.uuid4()}"
    flood = BusFault("flood", at_s=0.0, duration_s=3.0, id=0x123, rate_hz=10.0)
    with can.Bus(interface="virtual", channel=channel) as bus:
        injector = BusFaultInjector(bus, [flood], clock, end_s=3.0).start()
        wait_for(lambda: injector.stats.frames_added == 1)  # the frame due at 0 s, on time
        clock.t_s = 2.0  # frames due at 0.1 ... 2.0 s go out now
        wait_for(lambda: injector.stats.frames_added == 21)
        injector.stop()
    # More than one wake-up (20 ms here) late: those due at 0.1 ... 1.9 s.
    assert injector.stats.frames_late == 19


# --- a loopback run whose OBD-II responder is slowed on purpose -------------------------------------------------------

#: The rest-bus answers PID 0x42 (the last of each poll cycle, so the next request is most of a cycle away) of every
#: third cycle this many wall seconds late: at the loopback's 20x the unit waits 500 ms of scenario time (25 ms of
#: wall time) for an answer, and a cycle lasts 50 ms of wall time: the slowed thread must not hold up the next one.
SLOW_PID, SLOW_EVERY, SLOW_WALL_S = 0x42, 3, 0.04
SLOW_CONFTEST = f"""
import itertools
import time
import harness.rig.restbus

answer = harness.rig.restbus.obd_response
calls = itertools.count()

def slow_answer(pid, reading):
    if pid == {SLOW_PID} and next(calls) % {SLOW_EVERY} == 0:
        time.sleep({SLOW_WALL_S})  # the test hook: a rest-bus that falls behind
    return answer(pid, reading)

harness.rig.restbus.obd_response = slow_answer
"""


def test_a_loopback_run_whose_responder_is_slowed_ends_as_a_rig_lag_error(tmp_path):
    pytest.importorskip("adbutils")
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "slowed.yaml").write_text(textwrap.dedent("""\
        name: slowed
        seed: 5
        route: {generated: {duration_s: 180, mix: {urban: 1.0}}}
        expect: {false_alarms_per_h_max: 1000}
    """))
    (tmp_path / "conftest.py").write_text(SLOW_CONFTEST)
    reports, junit = tmp_path / "reports", tmp_path / "junit.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "400"}  # the short summary's line whole
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider", "-m", "hil", "-rA",
         "--rig", str(ROOT / "rigs" / "loopback.yaml"), "--dtg-models", str(MANIFEST), "--dtg-artifacts",
         str(reports), f"--junitxml={junit}", "scenarios"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = done.stdout
    print(out[-4000:])
    # pytest: an ERROR, neither passed nor failed; its short summary names the cause.
    assert done.returncode == 1, out[-4000:] + done.stderr[-2000:]
    assert "1 error" in out and " passed" not in out and " failed" not in out, out[-2000:]
    assert ("slowed.yaml::slowed[hil] - RigLagError: the rig fell behind (OBD-II requests the rest-bus left "
            "unanswered in time: ") in out
    # result.json: the verdict is an error with the figures; the loss table has the rig's row.
    summary = json.loads(next(reports.glob("*/slowed/result.json")).read_text())
    assert summary["passed"] is False and summary["outcome"] == "ERROR", summary["verdict"]
    assert summary["verdict"].startswith("error: the rig fell behind (")
    assert "; not a verdict on the unit" in summary["error"].splitlines()[0]
    obd = next(row for row in summary["data_loss"] if row["stage"] == OBD_ROW)
    cycles = summary["accounting"]["poll_cycles"]
    assert obd["side"] == "rig" and cycles >= 150
    # Every slowed answer was late (one every third cycle); what else the slowed thread made late is the rig's too.
    assert cycles // SLOW_EVERY - 2 <= obd["lost"] <= obd["of"], obd
    assert f"unanswered in time: {obd['lost']} of {obd['of']} requests (" in summary["error"]
    # The unit lost nothing of its own.
    assert [row for row in summary["data_loss"] if row["side"] == "unit" and row["lost"]] == []
    # The terminal table, JUnit and the HTML report say ERROR, never PASS or FAIL.
    row = next(line for line in out.splitlines() if line.startswith("slowed "))
    assert row.split()[1] == "ERROR", row
    assert "  ERROR: the rig fell behind (" in out
    case = ET.parse(junit).getroot().find(".//testcase")
    # pytest's JUnit writer files any error of the call phase as <failure>: the verdict property tells them apart.
    assert case.find("failure").get("message").startswith("RigLagError: the rig fell behind (")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["verdict"] == "ERROR" and properties["error"].startswith("the rig fell behind (")
    page = next(reports.glob("*/index.html")).read_text()
    assert '<span class="badge error">ERROR</span>' in page and "0 of 1 scenarios passed; 1 ERROR" in page
    assert "PASS" not in page and "FAIL" not in page


# --- a sweep with a variant whose rig fell behind --------------------------------------------------------------

SWEEP = """\
name: lag-sweep
seed: 5
route: {generated: {duration_s: 120, mix: {urban: 1.0}}}
anomalies:
  - {type: drift, signal: coolant_temp, at_s: 30, onset_s: 20, sustain_s: 40, recovery_s: 10}
sweep:
  severity: [0.5, 1.0]
  expect: {recall_drop_events_max: 1}
"""
#: The simulated rig is not judged on lateness: this conftest makes the harness find its variant at severity 0.5
#: behind, to show what the plugin does with such a run in a sweep.
LAG_CONFTEST = """
import harness.run.chain
from harness.judge.result import RigLagError

judge = harness.run.chain.rig_lag_error

def lagging(result):
    if result.scenario.name.endswith("[severity=0.5]"):
        return RigLagError("the rig fell behind (test: 9 requests); not a verdict on the unit", [],
                           result.accounting, result)
    return judge(result)

harness.run.chain.rig_lag_error = lagging
"""


def test_a_sweep_with_a_variant_whose_rig_fell_behind_is_an_error_not_a_verdict(tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "lag_sweep.yaml").write_text(SWEEP)
    (tmp_path / "conftest.py").write_text(LAG_CONFTEST)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "400"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider", "-m", "sim", "-rA",
         "--dtg-models", str(MANIFEST), "--dtg-artifacts", str(tmp_path / "reports"), "scenarios"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    out = done.stdout
    assert done.returncode == 1, out[-4000:] + done.stderr[-2000:]
    assert "1 passed" in out and "2 error" in out and " failed" not in out, out[-3000:]
    assert "lag-sweep[severity=0.5][sim] - RigLagError: the rig fell behind (test: 9 requests)" in out
    assert ("lag-sweep[sweep-sim] - RunError: sweep lag-sweep: 1 of 2 variants ended as ERROR, no curve to judge; "
            "lag-sweep[severity=0.5]: the rig fell behind (test: 9 requests)") in out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("lag-sweep[")}
    assert rows == {"lag-sweep[severity=0.5]": "ERROR", "lag-sweep[severity=1]": "PASS"}, out[-3000:]
    # The curve has no point from the ERROR run.
    curve = out[out.index("sensitivity of sweep lag-sweep"):].splitlines()[3:]
    assert [line.split()[:2] for line in curve if line.startswith("drift")] == [["drift", "1"]], out[-3000:]
