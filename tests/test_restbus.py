"""The rest-bus and its scenario clock: OBD-II answers, J1939 broadcasts, periods, lifecycle.

Expected bytes are worked out by hand from SAE J1979 / J1939-71 and written literally.
Every test builds its own trace and uses its own virtual-bus channel (in-process, no network).
"""
from __future__ import annotations

import math
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator

import can
import numpy as np
import pytest

from harness.core.clock import ScenarioClock
from harness.rig.restbus import (
    BroadcastSchedule,
    RestBus,
    RestBusError,
    _encode_response,
    _encode_response_dbc,
    _obd_response_signals,
    j1939_frames,
    j1939_periods_s,
    obd_request_pid,
    obd_response,
    obd_supported_mask,
    obd_supported_pids,
)
from harness.wire.dbc import load_database
from harness.wire.signals import AUX_SIGNALS, PLANT_RATE_HZ, SIGNALS, Trace

# A hand-made vehicle state with values whose encodings are easy to check by hand.
STATE = {
    "vehicle_speed": 87.0,  # OBD A = 87 = 0x57; J1939 87*256 = 22272 = 0x5700
    "engine_rpm": 1726.0,  # OBD 4*1726 = 6904 = 0x1AF8; J1939 1726/0.125 = 13808 = 0x35F0
    "throttle_position": 40.0,  # OBD 40*255/100 = 102 = 0x66; J1939 40/0.4 = 100 = 0x64
    "brake_pressure": 80.0,  # J1939 pedal 80/160 = 50 % -> 50/0.4 = 125 = 0x7D
    "coolant_temp": 90.0,  # OBD 90+40 = 130 = 0x82; J1939 same
    "fuel_level": 60.0,  # OBD 60*255/100 = 153 = 0x99; J1939 60/0.4 = 150 = 0x96
    "acceleration_x": -2.5,  # J1939 (-2.5+12.5)/0.1 = 100 = 0x64
    "latitude": 37.5,  # J1939 (37.5+210)/1e-7 = 2475000000 = 0x938580C0
    "longitude": 127.0,  # J1939 (127+210)/1e-7 = 3370000000 = 0xC8DE1E80
    "altitude": 100.0,  # J1939 (100+2500)/0.125 = 20800 = 0x5140
    "fuel_rate": 20.0,  # J1939 20/0.05 = 400 = 0x0190
    "engine_load": 20.0,  # OBD 20*255/100 = 51 = 0x33
    "intake_air_temp": 25.0,  # OBD 25+40 = 65 = 0x41
    "maf": 12.34,  # OBD 1234 = 0x04D2
    "battery_voltage": 13.8,  # OBD 13800 = 0x35E8
    "gear": 4.0,
}

OBD_EXPECTED = {
    0x00: "06 41 00 18 1b 80 01 aa",  # PIDs 04 05 0C 0D 0F 10 11 and 20 (more PIDs above 0x20)
    0x20: "06 41 20 00 02 00 01 aa",  # PID 2F and 40 (more PIDs above 0x40)
    0x40: "06 41 40 40 00 00 00 aa",  # PID 42
    0x04: "03 41 04 33 aa aa aa aa",
    0x05: "03 41 05 82 aa aa aa aa",
    0x0C: "04 41 0c 1a f8 aa aa aa",
    0x0D: "03 41 0d 57 aa aa aa aa",
    0x0F: "03 41 0f 41 aa aa aa aa",
    0x10: "04 41 10 04 d2 aa aa aa",
    0x11: "03 41 11 66 aa aa aa aa",
    0x2F: "03 41 2f 99 aa aa aa aa",
    0x42: "04 41 42 35 e8 aa aa aa",
}

J1939_EXPECTED = {
    0x0CF00400: "ff ff ff f0 35 ff ff ff",  # EEC1 engine speed, bytes 4-5
    0x0CF00300: "ff 64 ff ff ff ff ff ff",  # EEC2 accelerator pedal, byte 2
    0x18F0010B: "ff 7d ff ff ff ff ff ff",  # EBC1 brake pedal, byte 2
    0x18F0090B: "ff ff ff ff ff ff ff 64",  # VDC2 longitudinal acceleration, byte 8
    0x18FEF100: "ff 00 57 ff ff ff ff ff",  # CCVS1 wheel-based speed, bytes 2-3
    0x18FEF200: "90 01 ff ff ff ff ff ff",  # LFE1 fuel rate, bytes 1-2
    0x18FEEE00: "82 ff ff ff ff ff ff ff",  # ET1 coolant, byte 1
    0x18FEFC17: "ff 96 ff ff ff ff ff ff",  # DD fuel level, byte 2
    0x18FEF31C: "c0 80 85 93 80 1e de c8",  # VP latitude bytes 1-4, longitude bytes 5-8
    0x18FEE81C: "ff ff ff ff ff ff 40 51",  # VDS altitude, bytes 7-8
}


def make_trace(state: dict[str, float], duration_s: float = 60.0, **overrides: np.ndarray) -> Trace:
    """A constant trace of `state` (channels absent from it are NaN), with optional per-channel arrays."""
    t_s = np.arange(int(duration_s * PLANT_RATE_HZ)) / PLANT_RATE_HZ

    def channel(name: str) -> np.ndarray:
        return overrides.get(name, np.full(len(t_s), state.get(name, math.nan)))

    signals = {name: channel(name) for name in SIGNALS}
    return Trace(t_s=t_s, signals=signals, truth=dict(signals), aux={name: channel(name) for name in AUX_SIGNALS})


@pytest.fixture
def channel() -> str:
    return f"test-restbus-{uuid.uuid4()}"


def virtual_bus(channel: str, **kwargs: object) -> can.BusABC:
    return can.Bus(interface="virtual", channel=channel, **kwargs)


def ask(
    tester: can.BusABC, pid: int, *, request_id: int = 0x7DF, service: int = 0x01, timeout_s: float = 1.0
) -> bytes | None:
    """Send a single-PID request like the STM32 does and return the first 0x7E8 answer's data, or None."""
    request = [0x02, service, pid, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]
    tester.send(can.Message(arbitration_id=request_id, is_extended_id=False, data=request))
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        reply = tester.recv(timeout=remaining)
        if reply is not None and reply.arbitration_id == 0x7E8 and not reply.is_extended_id:
            return bytes(reply.data)
    return None


@pytest.fixture
def obd_ecu(channel: str) -> Iterator[tuple[can.BusABC, RestBus]]:
    """An OBD-II rest-bus playing STATE at real time, and a tester bus to talk to it."""
    ecu_bus, tester = virtual_bus(channel), virtual_bus(channel)
    rest_bus = RestBus(ecu_bus, make_trace(STATE), "obd2", ScenarioClock(1.0), end_s=math.inf)
    with rest_bus:
        yield tester, rest_bus
    tester.shutdown()
    ecu_bus.shutdown()


# --------------------------------------------------------------------------------------------- OBD-II


@pytest.mark.parametrize("pid", sorted(OBD_EXPECTED), ids=lambda pid: f"pid{pid:02X}")
def test_obd_request_on_the_bus_gets_the_hand_computed_answer(obd_ecu, pid: int) -> None:
    tester, rest_bus = obd_ecu
    assert ask(tester, pid).hex(" ") == OBD_EXPECTED[pid]
    assert rest_bus.stats.requests_answered == 1
    assert rest_bus.stats.frames_sent == 1


def test_obd_physical_request_id_is_answered_too(obd_ecu) -> None:
    tester, _ = obd_ecu
    assert ask(tester, 0x0C, request_id=0x7E0).hex(" ") == OBD_EXPECTED[0x0C]


@pytest.mark.parametrize("pid", [0x01, 0x0B, 0x1F, 0x21, 0x46, 0x60], ids=lambda pid: f"pid{pid:02X}")
def test_obd_unsupported_pid_gets_no_answer(obd_ecu, pid: int) -> None:
    tester, rest_bus = obd_ecu
    assert ask(tester, pid, timeout_s=0.15) is None
    assert rest_bus.stats.requests_ignored == 1
    assert rest_bus.stats.frames_sent == 0


def test_obd_other_services_and_other_ids_get_no_answer(obd_ecu) -> None:
    tester, rest_bus = obd_ecu
    assert ask(tester, 0x02, service=0x09, timeout_s=0.15) is None  # service 09 (VIN) is not modelled
    assert ask(tester, 0x0C, request_id=0x7E1, timeout_s=0.15) is None  # addressed to ECU #2
    assert rest_bus.stats.requests_ignored == 1  # 0x7E1 is not for this ECU at all


def test_obd_nan_reading_gets_no_answer(channel: str) -> None:
    ecu_bus, tester = virtual_bus(channel), virtual_bus(channel)
    dropout = dict(STATE, engine_rpm=math.nan)
    with RestBus(ecu_bus, make_trace(dropout), "obd2", ScenarioClock(1.0), end_s=math.inf) as rest_bus:
        assert ask(tester, 0x0C, timeout_s=0.15) is None
        assert ask(tester, 0x0D).hex(" ") == OBD_EXPECTED[0x0D]
    assert (rest_bus.stats.requests_ignored, rest_bus.stats.requests_answered) == (1, 1)
    tester.shutdown()
    ecu_bus.shutdown()


def test_obd_answers_from_the_reading_at_the_current_scenario_time(channel: str) -> None:
    n = int(60 * PLANT_RATE_HZ)
    rpm = np.where(np.arange(n) < 20 * PLANT_RATE_HZ, 1000.0, 2000.0)  # steps up at t = 20 s
    ecu_bus, tester = virtual_bus(channel), virtual_bus(channel)
    clock = ScenarioClock(100.0)
    with RestBus(ecu_bus, make_trace(STATE, engine_rpm=rpm), "obd2", clock):
        assert ask(tester, 0x0C).hex(" ") == "04 41 0c 0f a0 aa aa aa"  # 4000 = 0x0FA0
        clock.sleep_until(21.0)
        assert ask(tester, 0x0C).hex(" ") == "04 41 0c 1f 40 aa aa aa"  # 8000 = 0x1F40
    tester.shutdown()
    ecu_bus.shutdown()


def test_obd_response_pure_function_saturates_and_skips_missing_readings() -> None:
    assert obd_response(0x0D, {"vehicle_speed": 300.0}).hex(" ") == "03 41 0d ff aa aa aa aa"
    assert obd_response(0x0D, {"vehicle_speed": -3.0}).hex(" ") == "03 41 0d 00 aa aa aa aa"
    assert obd_response(0x05, {"coolant_temp": -60.0}).hex(" ") == "03 41 05 00 aa aa aa aa"
    assert obd_response(0x0C, {}) is None  # the trace has no such channel
    assert obd_response(0x0C, {"engine_rpm": math.inf}) is None
    assert obd_response(0x00, {}).hex(" ") == OBD_EXPECTED[0x00]  # support masks need no reading


def test_obd_response_bytes_packed_directly_are_the_bytes_cantools_writes() -> None:
    # obd_response packs the DBC's whole-byte fields itself; cantools, the reference, must agree on every PID at
    # its ends, at values that round either way and across the range.
    signals = _obd_response_signals()
    rng = np.random.default_rng(7)
    for pid in sorted(obd_supported_pids()):
        signal = signals[pid]
        if pid % 0x20 == 0:
            values = [float(obd_supported_mask(pid))]
        else:
            low, high = signal.minimum, signal.maximum
            step = signal.conversion.scale
            values = [low, high, low + step / 2, high - step / 2, *rng.uniform(low, high, 300)]
        for value in values:
            raw = signal.conversion.numeric_scaled_to_raw(value)
            assert _encode_response(pid, signal, value, raw) == _encode_response_dbc(pid, signal, value), (pid, value)


def test_obd_request_parser() -> None:
    assert obd_request_pid(bytes([0x02, 0x01, 0x0C, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA])) == 0x0C
    assert obd_request_pid(bytes([0x02, 0x01, 0x0C])) == 0x0C
    assert obd_request_pid(bytes([0x03, 0x01, 0x0C, 0x0D])) is None  # multi-PID request: not modelled
    assert obd_request_pid(bytes([0x02, 0x09, 0x02])) is None
    assert obd_request_pid(bytes([0x02, 0x01])) is None


# ---------------------------------------------------------------------------------------------- J1939


def test_j1939_frames_carry_the_hand_computed_bytes() -> None:
    frames = j1939_frames(12.5, STATE)
    assert {f.arbitration_id: bytes(f.data).hex(" ") for f in frames} == J1939_EXPECTED
    assert all(f.is_extended_id and f.dlc == 8 and f.timestamp == 12.5 for f in frames)


def test_j1939_nan_readings_go_out_as_not_available() -> None:
    frames = j1939_frames(0.0, {name: math.nan for name in STATE})
    assert {bytes(f.data) for f in frames} == {b"\xff" * 8}
    half = j1939_frames(0.0, dict(STATE, latitude=math.nan))
    vp = next(f for f in half if f.arbitration_id == 0x18FEF31C)
    assert bytes(vp.data).hex(" ") == "ff ff ff ff 80 1e de c8"  # longitude still there


def test_j1939_frames_decode_back_to_the_plant_values() -> None:
    database = load_database("j1939")
    decoded: dict[str, float] = {}
    for frame in j1939_frames(0.0, STATE):
        decoded.update(database.decode_message(frame.arbitration_id, frame.data, decode_choices=False))
    assert decoded["EngineSpeed"] == pytest.approx(1726.0)
    assert decoded["BrakePedalPos"] == pytest.approx(50.0)  # 80 bar of 160 bar full scale
    assert decoded["LongitudinalAcceleration"] == pytest.approx(-2.5)
    assert decoded["Latitude"] == pytest.approx(37.5, abs=1e-7)
    assert decoded["Longitude"] == pytest.approx(127.0, abs=1e-7)
    assert decoded["Altitude"] == pytest.approx(100.0)


def test_broadcast_schedule_is_exact_and_skips_a_long_backlog() -> None:
    schedule = BroadcastSchedule({"fast": 0.1, "slow": 1.0}, start_s=5.0, max_lag_s=1.0)
    assert [name for _, name in schedule.due(5.25)] == ["fast", "slow", "fast", "fast"]
    assert schedule.due(5.25) == []
    late = schedule.due(15.0)  # 9.75 s late: only the last second is sent
    assert [t for t, name in late if name == "fast"] == pytest.approx([14.0 + 0.1 * k for k in range(11)])
    assert [t for t, name in late if name == "slow"] == pytest.approx([14.0, 15.0])
    assert schedule.skipped == (90 - 3) + (9 - 1)  # fast: 5.3 .. 13.9 s, slow: 6 .. 13 s
    with pytest.raises(ValueError, match="periods must be > 0"):
        BroadcastSchedule({"bad": 0.0})


def test_j1939_broadcast_periods_at_50x_real_time(channel: str) -> None:
    time_scale, duration_s = 50.0, 20.0
    clock = ScenarioClock(time_scale)
    arrivals: dict[int, list[tuple[float, float]]] = defaultdict(list)  # id -> [(stamped, arrived)] scenario s
    sender = virtual_bus(channel, preserve_timestamps=True)
    listener = virtual_bus(channel)
    listening = threading.Event()
    listening.set()

    def listen() -> None:
        while listening.is_set():
            frame = listener.recv(timeout=0.01)
            if frame is not None:
                arrivals[frame.arbitration_id].append((frame.timestamp, clock.now_s()))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    start_s = clock.now_s()
    rest_bus = RestBus(sender, make_trace(STATE), "j1939", clock, end_s=start_s + duration_s)
    with rest_bus:
        assert rest_bus.wait(timeout_s=duration_s / time_scale + 5.0)
    time.sleep(0.05)
    listening.clear()
    thread.join()
    sender.shutdown()
    listener.shutdown()

    assert rest_bus.stats.frames_skipped == 0
    assert rest_bus.stats.frames_sent == sum(len(v) for v in arrivals.values())
    ids = {m.name: m.frame_id for m in load_database("j1939").messages}
    for name, period_s in j1939_periods_s().items():
        stamped = np.array([s for s, _ in arrivals[ids[name]]])
        arrived = np.array([a for _, a in arrivals[ids[name]]])
        # Broadcasting starts when the worker thread does, a moment after start_s.
        assert len(stamped) == pytest.approx((start_s + duration_s - stamped[0]) / period_s, abs=1.0), name
        assert np.diff(stamped) == pytest.approx(period_s, rel=1e-6), name  # scheduled scenario times
        # When frames reach a listener depends on the host's load (they go out in batches); that is measured by
        # `dtg-hil bench link`, not asserted here.
        assert np.all(arrived - stamped > -1e-6), name  # never sent before it is due


# ------------------------------------------------------------------------------------------ lifecycle


def test_rest_bus_lifecycle_refuses_reuse(channel: str) -> None:
    bus = virtual_bus(channel)
    rest_bus = RestBus(bus, make_trace(STATE), "j1939", ScenarioClock(1.0))
    with pytest.raises(RestBusError, match="never started"):
        rest_bus.wait(0.0)
    with rest_bus:
        assert rest_bus.running
        with pytest.raises(RestBusError, match="already running"):
            rest_bus.start()
    assert not rest_bus.running
    rest_bus.stop()  # a second stop is harmless
    with pytest.raises(RestBusError, match="cannot be restarted, create a new RestBus"):
        rest_bus.start()
    assert rest_bus.wait(0.0)
    bus.shutdown()


def test_rest_bus_stops_promptly_at_real_time(channel: str) -> None:
    bus = virtual_bus(channel)
    rest_bus = RestBus(bus, make_trace(STATE, duration_s=3600.0), "obd2", ScenarioClock(1.0)).start()
    began = time.monotonic()
    rest_bus.stop()
    assert time.monotonic() - began < 0.5
    bus.shutdown()


def test_rest_bus_reports_a_dead_bus_on_stop(channel: str) -> None:
    bus = virtual_bus(channel)
    rest_bus = RestBus(bus, make_trace(STATE), "j1939", ScenarioClock(100.0)).start()
    bus.shutdown()  # every send now fails; the worker gives up after MAX_CONSECUTIVE_SEND_ERRORS
    assert rest_bus.wait(timeout_s=5.0)
    with pytest.raises(RestBusError, match="failed") as failure:
        rest_bus.stop()
    assert isinstance(failure.value.__cause__, can.CanError)
    assert rest_bus.stats.send_errors == RestBus.MAX_CONSECUTIVE_SEND_ERRORS


def test_unknown_profile_is_refused(channel: str) -> None:
    bus = virtual_bus(channel)
    with pytest.raises(ValueError, match="expected one of: j1939, obd2"):
        RestBus(bus, make_trace(STATE), "canopen", ScenarioClock(1.0))
    bus.shutdown()


# ---------------------------------------------------------------------------------------------- clock


@pytest.mark.parametrize("bad_scale", [0.0, -1.0, math.inf, math.nan])
def test_clock_refuses_a_meaningless_time_scale(bad_scale: float) -> None:
    with pytest.raises(ValueError, match="time_scale must be a finite number > 0"):
        ScenarioClock(bad_scale)


def test_clock_runs_at_its_time_scale() -> None:
    clock = ScenarioClock(200.0, start_s=10.0)
    wall0, t0 = time.monotonic(), clock.now_s()
    assert clock.sleep_until(t0 + 10.0)  # 50 ms of wall time
    wall_elapsed = time.monotonic() - wall0
    assert clock.now_s() >= t0 + 10.0
    assert wall_elapsed == pytest.approx(0.05, abs=0.04)
    assert t0 >= 10.0
    assert clock.scenario_span_s(0.5) == 100.0
    assert clock.wall_s_until(clock.now_s() - 1.0) == 0.0


def test_clock_sleep_can_be_cancelled() -> None:
    clock = ScenarioClock(1.0)
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    began = time.monotonic()
    assert clock.sleep_until(clock.now_s() + 60.0, cancel=cancel) is False
    assert time.monotonic() - began < 1.0


def test_clock_is_monotonic_across_threads() -> None:
    clock = ScenarioClock(1000.0)
    readings: list[list[float]] = [[] for _ in range(4)]

    def read(out: list[float]) -> None:
        for _ in range(2000):
            out.append(clock.now_s())

    threads = [threading.Thread(target=read, args=(out,)) for out in readings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for out in readings:
        assert all(b >= a for a, b in zip(out, out[1:], strict=False))
