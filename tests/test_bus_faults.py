"""Bus faults (harness.world.bus_faults) and loss accounting: each fault end to end on the simulated rig, asserting the
verdict and the numbers; the CAN log (can.blf, written by a bus monitor beside the firmware) is the independent
witness of what reached the wire. Plus the pure parts: the fault plan, the stale-data rule, the criterion and the
loss stages."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import can
import pytest
import yaml

from firmware_sim.phone.rules import RuleDetector, RuleLimits
from firmware_sim.stm32 import OBD_POLL_PIDS
from harness.inference.features import WINDOW_S
from harness.judge.metrics import stale_data_criterion
from harness.judge.result import Accounting, DataLossError
from harness.rig.bus_fault_injector import FaultPlan
from harness.rig.rigfile import BUILTIN_SIM_RIG
from harness.run.chain import run_scenario
from harness.wire.events import FuelResult, RuleEvent
from harness.wire.signals import SIGNALS
from harness.world.bus_faults import BusFault
from harness.world.scenario import ScenarioError, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "models" / "manifest.json"
ROUTE = "route: {generated: {duration_s: 120, mix: {urban: 1.0}}}\n"
N_PIDS = len(OBD_POLL_PIDS)
#: The end-to-end runs drive the first 140 s of UDDS (a generated route runs past its duration_s; this one ends
#: where it says, so a fault window can cover all of it).
CYCLE_S = 140


@pytest.fixture(scope="module")
def short_cycle(tmp_path_factory) -> str:
    lines = (ROOT / "harness" / "world" / "cycles" / "udds.csv").read_text().splitlines()
    header = lines.index("time_s,speed_kmh")
    path = tmp_path_factory.mktemp("cycle") / "udds_start.csv"
    path.write_text("\n".join(lines[header:header + 2 + CYCLE_S]) + "\n")
    return f"route: {{cycle: {path}}}\n"



def scenario(body: str, name: str = "bus-fault", route: str = ROUTE):
    text = f"name: {name}\nseed: 3\n{route}" + textwrap.dedent(body)
    return parse_scenario(yaml.safe_load(text), {}, f"{name}.yaml")


@pytest.fixture
def run(models, tmp_path, short_cycle):
    def run_body(body: str, folder: str = "run"):
        return run_scenario(scenario(body, route=short_cycle), BUILTIN_SIM_RIG, models, tmp_path / folder)
    return run_body


def can_log(result) -> list[can.Message]:
    with can.BLFReader(str(result.artifacts / "can.blf")) as reader:
        return list(reader)


def obd_answers(log: list[can.Message]) -> list[can.Message]:
    return [m for m in log if m.arbitration_id == 0x7E8 and not m.is_error_frame]


def unanswered(log: list[can.Message], pids: set[int]) -> list[int]:
    """The poll ticks at which a request for one of `pids` got no answer, counted from the first of them. (The BLF
    file stores times from its first frame: a log's times are shifted by a whole number of seconds, the first
    poll tick; so only differences are compared.)"""
    def polls(arbitration_id: int) -> set[tuple[float, int]]:
        return {(round(m.timestamp, 3), m.data[2]) for m in log
                if m.arbitration_id == arbitration_id and not m.is_error_frame and m.data[2] in pids}

    ticks = sorted({t for t, _ in polls(0x7DF) - polls(0x7E8)})
    return [round(t - ticks[0]) for t in ticks] if ticks else []


def stale_events(result) -> list[RuleEvent]:
    return [e for e in result.collector.events if isinstance(e, RuleEvent) and e.type == "stale_data"]


def criterion(result, name: str):
    return next(c for c in result.judgement.criteria if c.name == name)


def assert_no_unexplained_loss(acc: Accounting) -> None:
    assert [(stage, lost) for stage, lost, _ in acc.unit_loss() if lost] == []
    on_wire = acc.restbus_frames_sent - acc.injector_frames_dropped + acc.injector_frames_added
    assert acc.firmware_frames_received == on_wire


# --- end to end, one per fault ---------------------------------------------------------------------------------


@pytest.mark.sim
def test_random_frame_loss_is_counted_exactly(run):
    result = run("""
        bus_faults:
          - {type: frame_loss, at_s: 0, duration_s: 140, probability: 0.05}
        expect: {stale_data_flagged: false}
    """)
    acc = result.accounting
    assert result.judgement.passed, result.judgement.summary()
    assert_no_unexplained_loss(acc)
    # The CAN log is the witness: every request the firmware put on the wire, and the answers that reached it.
    log = can_log(result)
    asked = {(round(m.timestamp, 3), m.data[2]) for m in log if m.arbitration_id == 0x7DF}
    answered = {(round(m.timestamp, 3), m.data[2]) for m in obd_answers(log)}
    assert answered <= asked
    assert len(asked) == acc.restbus_frames_sent  # the ECU answered every request (it never reads NaN here)
    assert len(asked - answered) == acc.injector_frames_dropped == result.bus_faults.faults[0].frames_dropped
    assert len(answered) == acc.firmware_frames_received == acc.restbus_frames_sent - acc.injector_frames_dropped
    assert 0.03 < acc.injector_frames_dropped / acc.restbus_frames_sent < 0.07
    # Seeded: the plan replayed over the same frames in the same order (poll tick, then PID) drops the same ones.
    # The log's times start at its first frame, the first poll; the app's first window ends WINDOW_S - 1 s after it.
    first_poll_s = min(e.t_s for e in result.collector.events if isinstance(e, FuelResult)) - (WINDOW_S - 1)
    plan = FaultPlan(result.scenario.bus_faults, profile="obd2", seed=result.scenario.seed)
    in_order = sorted(asked, key=lambda key: (key[0], OBD_POLL_PIDS.index(key[1])))
    replayed = {key for key in in_order if plan.decide(can.Message(
        arbitration_id=0x7E8, is_extended_id=False, data=[3, 0x41, key[1], 0], timestamp=key[0] + first_poll_s)
    )[0] == "drop"}
    assert replayed == asked - answered
    assert json.loads((result.artifacts / "result.json").read_text())["accounting"]["injector_frames_dropped"] == \
        acc.injector_frames_dropped


@pytest.mark.sim
def test_a_silent_id_makes_the_app_flag_stale_data(run):
    result = run("""
        bus_faults:
          - {type: id_silent, at_s: 50, duration_s: 30, signal: coolant_temp}
        expect: {stale_data_flagged: true}
    """)
    acc = result.accounting
    assert result.judgement.passed, result.judgement.summary()
    assert criterion(result, "stale_data_flagged").note == "1/1 faults flagged"
    assert acc.injector_frames_dropped == 30  # one coolant answer per poll cycle, 30 cycles
    assert_no_unexplained_loss(acc)
    stale = stale_events(result)
    assert [e.signal for e in stale] == ["coolant_temp"]
    # The firmware holds a value up to 1.5 s (tick 49's at tick 50): the app's newest reading is at 50 s, and at 56 s
    # it is more than stale_after_s (5 s) old. The same at any time scale: values date from their poll tick.
    assert (stale[0].t_s, stale[0].value, stale[0].limit) == (56.0, 6.0, RuleLimits().stale_after_s)
    assert unanswered(can_log(result), {0x05}) == list(range(30))  # 30 consecutive polls of coolant, no answer


@pytest.mark.sim
def test_bus_off_silences_the_rest_bus_and_every_bus_signal_goes_stale(run):
    result = run("""
        bus_faults:
          - {type: bus_off, at_s: 60, duration_s: 15}
        expect: {stale_data_flagged: true}
    """)
    acc = result.accounting
    assert result.judgement.passed, result.judgement.summary()
    assert acc.injector_frames_dropped == 15 * N_PIDS
    assert acc.obd_requests_unanswered >= 15 * N_PIDS  # the unit kept asking; nobody answered
    assert_no_unexplained_loss(acc)
    assert unanswered(can_log(result), set(OBD_POLL_PIDS)) == list(range(15))
    bus_signals = {"vehicle_speed", "engine_rpm", "throttle_position", "coolant_temp", "fuel_level"}
    stale = stale_events(result)
    assert {e.signal for e in stale} == bus_signals  # the unit's own sensors (brake, GNSS, ...) carry on
    assert {e.t_s for e in stale} == {66.0}


@pytest.mark.sim
def test_on_j1939_a_silent_signal_silences_its_parameter_group(models, tmp_path, short_cycle):
    # J1939 broadcasts 203 frames/s, each at its own instant of virtual time: none is ever skipped.
    rig = dataclasses.replace(BUILTIN_SIM_RIG, profile="j1939")
    body = """
        bus_faults:
          - {type: id_silent, at_s: 40, duration_s: 30, signal: latitude}
        expect: {stale_data_flagged: true}
    """
    result = run_scenario(scenario(body, route=short_cycle), rig, models, tmp_path / "run")
    assert result.judgement.passed, result.judgement.summary()
    assert result.accounting.injector_frames_dropped == 6  # VP goes out every 5 s: six of them in 30 s
    assert {m.arbitration_id for m in can_log(result)} >= {0x18FEF31C, 0xCF00400}
    # VP carries latitude and longitude: both go stale, and nothing else does.
    assert {(e.signal, e.t_s > 40) for e in stale_events(result)} == {("latitude", True), ("longitude", True)}


@pytest.mark.sim
def test_flood_frames_all_reach_the_firmware_and_nothing_goes_stale(run):
    result = run("""
        bus_faults:
          - {type: flood, at_s: 40, duration_s: 30, id: 0x123, rate_hz: 50, data: "deadbeef"}
        expect: {stale_data_flagged: false}
    """)
    acc = result.accounting
    assert result.judgement.passed, result.judgement.summary()
    assert acc.injector_frames_added == 30 * 50
    flood = [m for m in can_log(result) if m.arbitration_id == 0x123]
    assert len(flood) == 1500 and all(bytes(m.data) == bytes.fromhex("deadbeef") for m in flood)
    assert acc.firmware_frames_received == acc.restbus_frames_sent + 1500
    assert_no_unexplained_loss(acc)


@pytest.mark.sim
def test_delayed_frames_arrive_late_and_all_of_them_arrive(run):
    result = run("""
        bus_faults:
          - {type: delay, at_s: 30, duration_s: 20, delay_ms: 200, jitter_ms: 50}
        expect: {stale_data_flagged: false}
    """)
    acc = result.accounting
    assert result.judgement.passed, result.judgement.summary()
    assert acc.injector_frames_delayed == 20 * N_PIDS
    assert acc.injector_frames_dropped == 0
    assert_no_unexplained_loss(acc)
    # Delayed answers carry their stamp plus the delay: 150..250 ms after their poll tick; all others are on it.
    offsets = [m.timestamp - math.floor(m.timestamp + 1e-9) for m in obd_answers(can_log(result))]
    late = [o for o in offsets if o > 1e-6]
    assert len(late) == 20 * N_PIDS
    assert all(0.15 - 1e-6 <= o <= 0.25 + 1e-6 for o in late)


@pytest.mark.sim
def test_error_frames_are_counted_by_the_firmware_and_lose_nothing(run):
    result = run("""
        bus_faults:
          - {type: error_frames, at_s: 20, duration_s: 40, rate_hz: 10}
        expect: {stale_data_flagged: false}
    """)
    acc = result.accounting
    assert result.judgement.passed, result.judgement.summary()
    assert acc.injector_error_frames == acc.firmware_error_frames == 400
    assert sum(m.is_error_frame for m in can_log(result)) == 400
    assert acc.firmware_frames_received == acc.restbus_frames_sent  # an error frame is not a frame received
    assert acc.firmware_frames_unforwardable == 0
    assert_no_unexplained_loss(acc)


@pytest.mark.sim
def test_loss_no_fault_explains_is_a_data_loss_error_with_the_numbers(run, tmp_path, monkeypatch):
    import harness.world.bus_faults

    # A lossy wire the harness did not ask for: every 10th answer of the injector's vanishes, uncounted.
    forward = harness.rig.bus_fault_injector.BusFaultInjector.send
    seen = Counter()

    def lossy(self, msg, timeout=None):
        seen["frames"] += 1
        if seen["frames"] % 10 == 0:
            return None
        return forward(self, msg, timeout)

    monkeypatch.setattr(harness.rig.bus_fault_injector.BusFaultInjector, "send", lossy)
    body = """
        bus_faults:
          - {type: error_frames, at_s: 10, duration_s: 10, rate_hz: 1}
    """
    with pytest.raises(DataLossError) as caught:
        run(body)
    error = caught.value
    lost = seen["frames"] // 10
    assert "data loss beyond tolerance, not a model failure" in str(error)
    assert f"CAN bus -> firmware (frames): lost {lost} of {seen['frames']} " in str(error)
    assert error.stages == [("CAN bus -> firmware (frames)", lost, seen["frames"])]
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["passed"] is False and summary["verdict"].startswith("error: ")
    assert {"stage": "CAN bus -> firmware (frames)", "lost": lost, "of": seen["frames"], "side": "unit"} \
        in summary["data_loss"]
    # Within the scenario's tolerance the same loss is no error.
    seen.clear()
    result = run(textwrap.dedent(body) + "expect: {data_loss_max_pct: 15}\n", folder="tolerated")
    assert dict((stage, lost) for stage, lost, _ in result.accounting.data_loss())["CAN bus -> firmware (frames)"] \
        == seen["frames"] // 10 > 0


# --- the pytest plugin reports a data loss as an error ----------------------------------------------------------


def test_the_plugin_reports_data_loss_as_an_error_not_a_failure(tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "lossy.yaml").write_text(f"name: lossy\nseed: 3\n{ROUTE}bus_faults:\n"
                                          "  - {type: error_frames, at_s: 10, duration_s: 10, rate_hz: 1}\n")
    # The run itself is tested above; here it only raises what a lossy run raises.
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        import harness.run.chain
        def lossy_run(scenario, *args, **kwargs):
            raise harness.judge.result.DataLossError(
                "lossy: data loss beyond tolerance, not a model failure: CAN bus -> "
                "firmware (frames): lost 12 of 1000 (1.2 %)", [], None)
        harness.run.chain.run_scenario = lossy_run
    """))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider",
                           "-m", "sim", "--dtg-artifacts", str(tmp_path / "reports"), "--dtg-models", str(MANIFEST),
                           "-rA", "scenarios"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout and " failed" not in done.stdout, done.stdout
    assert "lossy.yaml::lossy[sim] - DataLossError" in done.stdout  # the short summary's ERROR line
    assert "data loss beyond tolerance, not a model failure" in done.stdout


# --- the pure parts ----------------------------------------------------------------------------------------------


def test_bus_fault_validation_names_the_field_and_the_choices():
    bad = """
        bus_faults:
          - {type: frame_los, at_s: 10, duration_s: 10}
          - {type: frame_loss, at_s: 10, duration_s: 10}
          - {type: id_silent, at_s: 10, duration_s: 200, signal: coolant}
          - {type: flood, at_s: 10, duration_s: 10, id: 0x123, rate_hz: 5000}
          - {type: delay, at_s: 10, duration_s: 10, delay_ms: 5, probability: 0.5}
        expect: {stale_data_flagged: 1, data_loss_max_pct: 101}
    """
    with pytest.raises(ScenarioError) as caught:
        scenario(bad)
    message = str(caught.value)
    for expected in (
        "bus_faults[0].type: unknown bus fault type 'frame_los'; expected one of: frame_loss, id_silent, flood, "
        "delay, error_frames, bus_off",
        "bus_faults[1]: frame_loss needs either 'probability' (random loss) or 'burst_frames' and 'every_s'",
        "bus_faults[2].signal: unknown signal 'coolant'; expected one of: vehicle_speed,",
        "bus_faults[2].duration_s: window 10-210 s ends past the end of the route",
        "bus_faults[3].rate_hz: must be <= 1000; got 5000",
        "bus_faults[4].probability: unknown key 'probability'; expected one of: type, at_s, duration_s, delay_ms",
        "expect.stale_data_flagged: expected true or false; got a number 1",
        "expect.data_loss_max_pct: must be <= 100; got 101",
    ):
        assert expected in message, message
    assert message.startswith("bus-fault.yaml:")


def test_fault_plan_decides_by_stamp_with_a_seeded_generator():
    def frames():
        return [can.Message(arbitration_id=0x7E8 if i % 2 else 0x7E9, timestamp=i * 0.01) for i in range(20_000)]

    faults = [BusFault("bus_off", 10.0, 5.0), BusFault("frame_loss", 0.0, 90.0, probability=0.05, ids=(0x7E8,)),
              BusFault("frame_loss", 50.0, 30.0, burst_frames=3, every_s=10.0),
              BusFault("delay", 100.0, 10.0, delay_ms=100.0, jitter_ms=20.0)]
    def decisions(plan: FaultPlan) -> list[tuple[str, int | None, float]]:
        return [plan.decide(m) for m in frames()]

    plan = FaultPlan(faults, seed=1)
    first = decisions(plan)
    assert decisions(FaultPlan(faults, seed=1)) == first
    assert decisions(FaultPlan(faults, seed=2)) != first
    counts = plan.stats.faults
    assert counts[0].frames_dropped == 500  # bus-off: every frame of 10-15 s, whatever else covers it
    assert counts[2].frames_dropped == 9  # three bursts of three frames
    assert counts[3].frames_delayed == 1000 and all(0.08 <= d <= 0.12 for a, _, d in first if a == "delay")
    random_drops = [m for m, (a, i, _) in zip(frames(), first, strict=False) if a == "drop" and i == 1]
    assert all(m.arbitration_id == 0x7E8 for m in random_drops)  # only the IDs it names
    assert 0.04 < counts[1].frames_dropped / (4500 - 250) < 0.06
    assert plan.stats.frames_dropped == sum(a == "drop" for a, _, _ in first)


def test_fault_plan_generates_flood_and_error_frames_on_schedule():
    plan = FaultPlan([BusFault("flood", 1.0, 2.0, id=0x18FEF100, rate_hz=4.0, data=b"\x01"),
                      BusFault("error_frames", 2.0, 1.0, rate_hz=2.0)])
    generated = list(plan.generated())
    assert [(t, i) for t, i, _ in generated] == [(1.0, 0), (1.25, 0), (1.5, 0), (1.75, 0), (2.0, 0), (2.0, 1),
                                                 (2.25, 0), (2.5, 0), (2.5, 1), (2.75, 0)]
    assert generated[0][2].is_extended_id and generated[5][2].is_error_frame
    assert len(list(plan.generated(end_s=2.0))) == 4


def test_a_signal_the_profile_does_not_carry_cannot_be_silenced():
    with pytest.raises(ValueError, match="does not carry brake_pressure on the bus"):
        FaultPlan([BusFault("id_silent", 0.0, 1.0, signal="brake_pressure")], profile="obd2")
    plan = FaultPlan([BusFault("id_silent", 0.0, 10.0, signal="latitude")], profile="j1939")
    vp = can.Message(arbitration_id=0x18FEF31C, timestamp=1.0)  # VP carries latitude and longitude
    assert plan.decide(vp)[0] == "drop"
    assert plan.decide(can.Message(arbitration_id=0x18FEEE00, timestamp=1.0))[0] == "send"


def test_stale_rule_fires_once_per_signal_and_episode():
    detector = RuleDetector(RuleLimits(stale_after_s=3.0))
    row = [50.0, 2000.0, 20.0, 0.0, 90.0, 60.0, 0.0, 37.5, 127.0, math.nan]  # altitude never read: absent
    hits = []
    for t in range(20):
        sample = list(row)
        if 5 <= t < 12:
            sample[SIGNALS.index("coolant_temp")] = math.nan
        hits += [(h.t_s, h.signal, h.value) for h in detector.feed(float(t), sample) if h.type == "stale_data"]
    assert hits == [(8.0, "coolant_temp", 4.0)]  # last reading at 4 s; stale once more than 3 s old


def test_stale_data_criterion():
    events = [RuleEvent(60.0, "stale_data", 6.0, 5.0, "coolant_temp"), RuleEvent(61.0, "overheating", 110, 105)]
    flagged = stale_data_criterion(True, events, [(54.0, 80.0), (150.0, 160.0)], max_delay_s=30.0)
    assert (flagged.measured, flagged.status, flagged.note) == (0.5, "fail", "1/2 faults flagged; missed: 150-160 s")
    assert stale_data_criterion(True, events, [], max_delay_s=30.0).status == "not measured"
    quiet = stale_data_criterion(False, events, [(54.0, 80.0)], max_delay_s=30.0)
    assert (quiet.measured, quiet.status) == (1.0, "fail")


def test_data_loss_stages_count_only_what_no_fault_explains():
    acc = Accounting(restbus_frames_sent=1000, restbus_frames_skipped=3, injector_frames_dropped=50,
                     injector_frames_added=20, firmware_frames_received=968, firmware_frames_forwarded=1900,
                     link_frames_expected=2000, link_frames_decoded=1990, samples_sent=100, samples_received=99,
                     event_lines=300)
    assert acc.unit_loss() == [("CAN bus -> firmware (frames)", 2, 970), ("firmware -> UART (frames)", 0, 1900),
                               ("UART link -> app (frames)", 10, 2000), ("samples -> app", 1, 100),
                               ("EdgeAI lines -> harness", 0, 300)]
    # The rest-bus's skipped frames are the rig's own loss (tests/test_rig_lag.py), listed after the unit's stages.
    assert acc.data_loss()[:5] == acc.unit_loss()
    assert ("rig-side: rest-bus frames skipped (frames)", 3, 1003) in acc.data_loss()
