"""The two vehicle DBCs load, describe what the design says, and every signal survives encode/decode."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.wire.dbc import (
    BRAKE_PRESSURE_AT_FULL_PEDAL_BAR,
    PROFILES,
    brake_pedal_percent,
    brake_pressure_bar,
    get_profile,
    load_database,
)
from harness.wire.signals import AUX_SIGNALS, SIGNALS


def _all_signals() -> list[tuple[str, str, str]]:
    return [
        (profile, message.name, signal.name)
        for profile in sorted(PROFILES)
        for message in load_database(profile).messages
        for signal in message.signals
    ]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_loads_with_cantools_and_matches_its_metadata(profile: str) -> None:
    database = load_database(profile)
    meta = get_profile(profile)
    assert database.messages
    assert database.dbc.attributes["Baudrate"].value == meta.bitrate_bps
    for message in database.messages:
        assert message.is_extended_frame == meta.extended_ids, message.name
        assert message.frame_id < 2**meta.id_bits
        assert message.length == 8


def test_profile_metadata_is_the_designs() -> None:
    assert (get_profile("obd2").bitrate_bps, get_profile("obd2").id_bits) == (500_000, 11)
    assert (get_profile("j1939").bitrate_bps, get_profile("j1939").id_bits) == (250_000, 29)


def test_unknown_profile_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown vehicle profile 'kwp2000'; expected one of: j1939, obd2"):
        load_database("kwp2000")


def test_load_database_is_cached() -> None:
    assert load_database("j1939") is load_database("j1939")


@pytest.mark.parametrize("dbc_name", ["obd2.dbc", "j1939.dbc"])
def test_cantools_command_line_dumps_the_dbc(dbc_name: str) -> None:
    cantools_cli = Path(sys.executable).with_name("cantools")
    dbc_path = Path(__file__).resolve().parents[1] / "harness" / "wire" / "dbc" / dbc_name
    result = subprocess.run(
        [str(cantools_cli), "dump", str(dbc_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    profile = dbc_name.removesuffix(".dbc")
    for message in load_database(profile).messages:
        assert f"Name:           {message.name}" in result.stdout


def test_obd2_ids_and_pid_multiplexing() -> None:
    database = load_database("obd2")
    assert {m.name: m.frame_id for m in database.messages} == {
        "OBD2_REQUEST_FUNCTIONAL": 0x7DF,
        "OBD2_REQUEST_PHYSICAL": 0x7E0,
        "OBD2_RESPONSE": 0x7E8,
    }
    response = database.get_message_by_name("OBD2_RESPONSE")
    by_pid = {pid: s.name for s in response.signals for pid in (s.multiplexer_ids or ())}
    assert by_pid == {
        0x00: "PIDsSupported_01_20",
        0x04: "EngineLoad",
        0x05: "CoolantTemp",
        0x0C: "EngineRPM",
        0x0D: "VehicleSpeed",
        0x0F: "IntakeAirTemp",
        0x10: "MAF",
        0x11: "ThrottlePosition",
        0x20: "PIDsSupported_21_40",
        0x2F: "FuelTankLevel",
        0x40: "PIDsSupported_41_60",
        0x42: "ControlModuleVoltage",
    }
    for binding in get_profile("obd2").signals:
        assert by_pid[binding.pid] == binding.signal


def test_obd2_scalings_match_sae_j1979() -> None:
    response = load_database("obd2").get_message_by_name("OBD2_RESPONSE")

    def decode(pid: int, *data: int) -> float:
        frame = bytes([2 + len(data), 0x41, pid, *data]) + bytes(5 - len(data))
        return response.decode(frame)[_signal_for(response, pid)]

    assert decode(0x0C, 0x1A, 0xF8) == 1726.0  # (256A+B)/4
    assert decode(0x0D, 0x57) == 87  # A
    assert decode(0x11, 0xFF) == pytest.approx(100.0)  # 100A/255
    assert decode(0x2F, 0x99) == pytest.approx(60.0)
    assert decode(0x04, 0x33) == pytest.approx(20.0)
    assert decode(0x05, 0x82) == 90
    assert decode(0x0F, 0x00) == -40
    assert decode(0x10, 0x04, 0xD2) == pytest.approx(12.34)  # (256A+B)/100
    assert decode(0x42, 0x35, 0xE8) == pytest.approx(13.8)  # (256A+B)/1000


def _signal_for(message: cantools.database.can.Message, pid: int) -> str:
    return next(s.name for s in message.signals if pid in (s.multiplexer_ids or ()))


def test_j1939_ids_priorities_source_addresses_and_periods() -> None:
    database = load_database("j1939")
    # name: (priority, PGN, source address, GenMsgCycleTime ms)
    expected = {
        "EEC1": (3, 61444, 0x00, 20),
        "EEC2": (3, 61443, 0x00, 50),
        "EBC1": (6, 61441, 0x0B, 100),
        "VDC2": (6, 61449, 0x0B, 10),
        "CCVS1": (6, 65265, 0x00, 100),
        "LFE1": (6, 65266, 0x00, 100),
        "ET1": (6, 65262, 0x00, 1000),
        "DD": (6, 65276, 0x17, 1000),
        "VP": (6, 65267, 0x1C, 5000),
        "VDS": (6, 65256, 0x1C, 1000),
    }
    actual = {
        m.name: ((m.frame_id >> 26) & 0x7, (m.frame_id >> 8) & 0x3FFFF, m.frame_id & 0xFF, m.cycle_time)
        for m in database.messages
    }
    assert actual == expected
    assert all(m.protocol == "j1939" for m in database.messages)


def test_j1939_spn_layouts() -> None:
    database = load_database("j1939")
    # (message, signal): (start bit, length, scale, offset); byte N of J1939-71 is start bit 8*(N-1).
    expected = {
        ("EEC1", "EngineSpeed"): (24, 16, 0.125, 0),  # SPN 190, bytes 4-5
        ("EEC2", "AccelPedalPos1"): (8, 8, 0.4, 0),  # SPN 91, byte 2
        ("EBC1", "BrakePedalPos"): (8, 8, 0.4, 0),  # SPN 521, byte 2
        ("VDC2", "LongitudinalAcceleration"): (56, 8, 0.1, -12.5),  # SPN 1810, byte 8
        ("CCVS1", "WheelBasedVehicleSpeed"): (8, 16, 1 / 256, 0),  # SPN 84, bytes 2-3
        ("LFE1", "EngineFuelRate"): (0, 16, 0.05, 0),  # SPN 183, bytes 1-2
        ("ET1", "EngineCoolantTemp"): (0, 8, 1, -40),  # SPN 110, byte 1
        ("DD", "FuelLevel1"): (8, 8, 0.4, 0),  # SPN 96, byte 2
        ("VP", "Latitude"): (0, 32, 1e-7, -210),  # SPN 584, bytes 1-4
        ("VP", "Longitude"): (32, 32, 1e-7, -210),  # SPN 585, bytes 5-8
        ("VDS", "Altitude"): (48, 16, 0.125, -2500),  # SPN 580, bytes 7-8
    }
    actual = {
        (m.name, s.name): (s.start, s.length, s.scale, s.offset) for m in database.messages for s in m.signals
    }
    assert actual == expected
    assert all(s.byte_order == "little_endian" for m in database.messages for s in m.signals)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_bindings_name_real_dbc_signals_and_trace_channels(profile: str) -> None:
    database = load_database(profile)
    channels = set(SIGNALS) | set(AUX_SIGNALS)
    for binding in get_profile(profile).signals:
        database.get_message_by_name(binding.message).get_signal_by_name(binding.signal)
        assert binding.channel in channels


def test_which_of_the_ten_signals_each_bus_carries() -> None:
    obd2, j1939 = get_profile("obd2"), get_profile("j1939")
    assert obd2.carried == ("vehicle_speed", "engine_rpm", "throttle_position", "coolant_temp", "fuel_level")
    assert obd2.not_carried == ("brake_pressure", "acceleration_x", "latitude", "longitude", "altitude")
    assert j1939.carried == SIGNALS
    assert j1939.not_carried == ()
    with pytest.raises(ValueError, match="does not carry channel 'brake_pressure'"):
        obd2.binding("brake_pressure")


def test_brake_pressure_maps_linearly_onto_pedal_position() -> None:
    assert BRAKE_PRESSURE_AT_FULL_PEDAL_BAR == 160.0
    assert brake_pedal_percent(0.0) == 0.0
    assert brake_pedal_percent(160.0) == pytest.approx(100.0)
    assert brake_pressure_bar(50.0) == pytest.approx(80.0)
    binding = get_profile("j1939").binding("brake_pressure")
    assert binding.to_bus(80.0) == pytest.approx(50.0)
    assert binding.from_bus(binding.to_bus(123.4)) == pytest.approx(123.4)


def _encode_decode(profile: str, message_name: str, signal_name: str, value: float) -> float:
    """Encode `value` into `signal_name` (other signals at their minimum) and decode it back."""
    message = load_database(profile).get_message_by_name(message_name)
    signal = message.get_signal_by_name(signal_name)
    data = {s.name: s.minimum for s in message.signals if not s.multiplexer_ids}
    for mux in (s for s in message.signals if s.is_multiplexer):
        selected = value if signal is mux else (signal.multiplexer_ids or [0])[0]
        data[mux.name] = selected
        data.update({s.name: s.minimum for s in message.signals if selected in (s.multiplexer_ids or ())})
    data[signal_name] = value
    return message.decode(message.encode(data, strict=True), decode_choices=False)[signal_name]


def _multiplexer_ids(message: cantools.database.can.Message) -> list[int]:
    return sorted({pid for s in message.signals for pid in (s.multiplexer_ids or ())})


@pytest.mark.parametrize(("profile", "message_name", "signal_name"), _all_signals())
@settings(max_examples=40, deadline=None)
@given(fraction=st.floats(min_value=0.0, max_value=1.0))
def test_every_signal_round_trips_within_one_lsb(
    profile: str, message_name: str, signal_name: str, fraction: float
) -> None:
    message = load_database(profile).get_message_by_name(message_name)
    signal = message.get_signal_by_name(signal_name)
    if signal.is_multiplexer:
        values = _multiplexer_ids(message)  # only the PIDs the DBC describes can be encoded
    else:
        values = [signal.minimum, signal.maximum, signal.minimum + fraction * (signal.maximum - signal.minimum)]
    for value in values:
        decoded = _encode_decode(profile, message_name, signal_name, value)
        assert abs(decoded - value) <= signal.scale * (1 + 1e-9), (value, decoded)
