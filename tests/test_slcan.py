"""The simulated slcan adapter, driven by python-can's REAL slcan driver (and by raw pyserial for the protocol).

Each test makes its own adapter on its own virtual channel (in-process, no network) and runs under a wall-clock
limit (`support.time_limit`), so a hung pty or a lost frame fails the test instead of hanging the run.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator

import can
import pytest
import serial
from can.interfaces.slcan import slcanBus
from support import time_limit

from firmware_sim.slcan import MAX_LINE_CHARS, SLCAN_BITRATES, SlcanAdapter, SlcanError, format_frame


def _wait_until(condition: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True


def _key(message: can.Message) -> tuple:
    """What must arrive unchanged: ID, ID kind, remote flag, DLC and data."""
    return (message.arbitration_id, message.is_extended_id, message.is_remote_frame, message.dlc, bytes(message.data))


def _random_frames(count: int, seed: int) -> list[can.Message]:
    rng = random.Random(seed)
    frames = []
    for i in range(count):
        extended = i % 2 == 1
        remote = i % 7 == 3
        dlc = i % 9
        arbitration_id = rng.randrange(0x20000000 if extended else 0x800)
        data = b"" if remote else bytes(rng.randrange(256) for _ in range(dlc))
        frames.append(can.Message(arbitration_id=arbitration_id, is_extended_id=extended, is_remote_frame=remote,
                                  dlc=dlc, data=data))
    # The edges of both ID ranges and of the DLC.
    frames += [
        can.Message(arbitration_id=0x7FF, is_extended_id=False, data=bytes(range(8))),
        can.Message(arbitration_id=0x000, is_extended_id=False, data=b""),
        can.Message(arbitration_id=0x1FFFFFFF, is_extended_id=True, data=b"\xff" * 8),
        can.Message(arbitration_id=0, is_extended_id=True, is_remote_frame=True, dlc=8),
    ]
    return frames


@pytest.fixture
def channel() -> str:
    return f"slcan-test-{uuid.uuid4().hex}"


@pytest.fixture
def adapter(channel: str) -> Iterator[SlcanAdapter]:
    with SlcanAdapter(channel) as running:
        yield running


@pytest.fixture
def peer(channel: str) -> Iterator[can.BusABC]:
    """Another node on the virtual bus: the vehicle side of the adapter."""
    bus = can.Bus(interface="virtual", channel=channel)
    yield bus
    bus.shutdown()


def _host(adapter: SlcanAdapter, **kwargs: object) -> can.BusABC:
    """python-can's slcan driver on the adapter's pty, with the one keyword a pty needs (see firmware_sim/slcan.py)."""
    options = {"bitrate": 500000, **kwargs}
    host = can.Bus(interface="slcan", channel=adapter.port, sleep_after_open=0, **options)
    assert _wait_until(lambda: adapter.is_open), "the driver's open sequence did not reach the adapter"
    return host


@pytest.fixture
def host(adapter: SlcanAdapter) -> Iterator[can.BusABC]:
    bus = _host(adapter)
    yield bus
    bus.shutdown()


@pytest.fixture
def raw(adapter: SlcanAdapter) -> Iterator[serial.Serial]:
    """The adapter's port opened with plain pyserial, to speak the protocol line by line."""
    port = serial.Serial(adapter.port, 115200, timeout=0.5)
    yield port
    port.close()


def _ask(port: serial.Serial, line: bytes) -> bytes:
    """Send one command line and read the answer up to its CR or BEL."""
    port.write(line + b"\r")
    answer = b""
    while not answer.endswith((b"\r", b"\a")):
        byte = port.read(1)
        assert byte, f"no answer to {line!r} (got {answer!r} so far)"
        answer += byte
    return answer


def _send_and_receive(adapter: SlcanAdapter, sender: can.BusABC, receiver: can.BusABC,
                      frames: list[can.Message]) -> list[can.Message]:
    """Send `frames` from `sender` and receive as many at `receiver` (each within 2 s); they arrive identical and in
    order. Returns the received messages."""
    for frame in frames:
        sender.send(frame)
    received = []
    while len(received) < len(frames):
        message = receiver.recv(timeout=2.0)
        assert message is not None, f"only {len(received)} of {len(frames)} frames arrived; {adapter.stats}"
        received.append(message)
    assert [_key(m) for m in received] == [_key(f) for f in frames]
    return received


# ------------------------------------------------------------------------------------- through python-can


@time_limit(10)
def test_host_frames_arrive_identical_on_the_virtual_bus(adapter: SlcanAdapter, host: can.BusABC,
                                                         peer: can.BusABC) -> None:
    frames = _random_frames(1000, seed=1)
    received = _send_and_receive(adapter, host, peer, frames)
    assert {(m.is_extended_id, m.is_remote_frame) for m in received} == {(False, False), (False, True),
                                                                          (True, False), (True, True)}
    stats = adapter.stats
    assert stats.frames_from_host == len(frames)
    assert stats.malformed_lines == 0 and stats.bus_send_errors == 0
    # python-can sends O twice when given a bitrate (inside set_bitrate and again after it): the second is refused.
    assert stats.refused_commands == 1


@time_limit(10)
def test_bus_frames_arrive_identical_at_the_host(adapter: SlcanAdapter, host: can.BusABC, peer: can.BusABC) -> None:
    frames = _random_frames(1000, seed=2)
    _send_and_receive(adapter, peer, host, frames)
    assert adapter.stats.frames_to_host == len(frames)
    assert adapter.stats.frames_dropped_overflow == 0


@time_limit(5)
@pytest.mark.parametrize("bitrate", [125000, 250000, 500000, 1000000])
def test_bitrate_command_is_recorded(adapter: SlcanAdapter, bitrate: int) -> None:
    host = _host(adapter, bitrate=bitrate)
    try:
        assert adapter.bitrate == bitrate
        assert SLCAN_BITRATES[adapter.bitrate_command] == bitrate
    finally:
        host.shutdown()


@time_limit(5)
def test_btr_registers_are_decoded_to_a_bitrate(adapter: SlcanAdapter) -> None:
    # BTR0=0x01, BTR1=0x1C at 8 MHz: prescaler 2, 16 time quanta -> 250 kbit/s.
    host = _host(adapter, bitrate=None, timing=can.BitTiming.from_registers(f_clock=8_000_000, btr0=0x01, btr1=0x1C))
    try:
        assert adapter.bitrate_command == "s011C"
        assert adapter.bitrate == 250000
    finally:
        host.shutdown()


def test_bitrate_table_matches_python_can() -> None:
    assert SLCAN_BITRATES == {command: bitrate for bitrate, command in slcanBus._BITRATES.items()}


@time_limit(5)
def test_version_and_serial_number_through_python_can(host: can.BusABC) -> None:
    assert host.get_version(timeout=1.0) == (10, 13)
    assert host.get_serial_number(timeout=1.0) == "SIM0"


@time_limit(5)
def test_listen_only_receives_and_refuses_to_transmit(adapter: SlcanAdapter, peer: can.BusABC) -> None:
    host = _host(adapter, listen_only=True)
    try:
        assert adapter.listen_only
        host.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"))
        assert _wait_until(lambda: adapter.stats.refused_commands >= 2)  # the second O, then the frame
        assert peer.recv(timeout=0.05) is None
        peer.send(can.Message(arbitration_id=0x456, is_extended_id=False, data=b"\x02"))
        message = host.recv(timeout=1.0)
        assert message is not None and message.arbitration_id == 0x456
    finally:
        host.shutdown()


# --------------------------------------------------------------------------------- the protocol, line by line


@time_limit(5)
def test_malformed_line_gets_bel_and_is_counted(adapter: SlcanAdapter, raw: serial.Serial) -> None:
    assert _ask(raw, b"O") == b"\r"
    assert _ask(raw, b"t12") == b"\a"  # an 11-bit ID needs 3 hex digits and a DLC
    assert adapter.stats.malformed_lines == 1
    assert "'t12' from host" in (adapter.last_error or "")
    for line in (b"t1239", b"t123201", b"t800", b"T200000000", b"t12G1FF", b"r1231FF", b"Q1", b"S", b"hello"):
        assert _ask(raw, line) == b"\a", line
    assert adapter.stats.malformed_lines == 10
    assert adapter.stats.errors == 10
    assert _ask(raw, b"t1232BEEF") == b"z\r"  # the adapter still works after garbage


@time_limit(5)
def test_overlong_line_is_one_malformed_line(adapter: SlcanAdapter, raw: serial.Serial) -> None:
    raw.write(b"t" * (3 * MAX_LINE_CHARS) + b"\r")
    assert raw.read(1) == b"\a"
    raw.timeout = 0.05
    assert raw.read(1) == b""  # one BEL for the whole line
    raw.timeout = 0.5
    assert adapter.stats.malformed_lines == 1
    assert _ask(raw, b"V") == b"V1013\r"


@time_limit(5)
def test_protocol_answers(adapter: SlcanAdapter, raw: serial.Serial, peer: can.BusABC) -> None:
    conversation = [
        (b"t1230", b"\a"),  # data frame while closed: refused
        (b"F", b"\a"),  # status flags only on an open channel
        (b"V", b"V1013\r"),
        (b"v", b"v0013\r"),
        (b"N", b"NSIM0\r"),
        (b"S5", b"\r"),
        (b"C", b"\r"),  # closing a closed channel is fine (python-can starts with C)
        (b"", b"\r"),  # python-can's empty "no CAN FD data bitrate" line
        (b"O", b"\r"),
        (b"O", b"\a"),  # already open
        (b"S6", b"\a"),  # no bitrate change while open
        (b"Z1", b"\a"),  # nor timestamp change
        (b"F", b"F00\r"),
        (b"t7DF802010CAAAAAAAAAA", b"z\r"),
        (b"T18FEF1008FFFFFFFFFFFFFFFF", b"Z\r"),
        (b"r7E08", b"z\r"),
        (b"R18FEF1000", b"Z\r"),
        (b"C", b"\r"),
    ]
    for line, answer in conversation:
        assert _ask(raw, line) == answer, line
    assert adapter.bitrate == 250000 and adapter.bitrate_command == "S5"
    assert adapter.stats.refused_commands == 5
    assert adapter.stats.frames_from_host == 4
    sent = [peer.recv(timeout=1.0) for _ in range(4)]
    assert [format_frame(m) for m in sent if m is not None] == [
        "t7DF802010CAAAAAAAAAA", "T18FEF1008FFFFFFFFFFFFFFFF", "r7E08", "R18FEF1000"
    ]


@time_limit(5)
def test_bus_frames_are_dropped_while_closed_and_timestamped_when_asked(adapter: SlcanAdapter,
                                                                        raw: serial.Serial,
                                                                        peer: can.BusABC) -> None:
    peer.send(can.Message(arbitration_id=0x100, is_extended_id=False, data=b"\x01"))
    assert _wait_until(lambda: adapter.stats.frames_dropped_closed == 1)
    assert _ask(raw, b"Z1") == b"\r"
    assert _ask(raw, b"O") == b"\r"
    peer.send(can.Message(arbitration_id=0x101, is_extended_id=False, data=b"\x02\x03"))
    line = raw.read_until(b"\r")
    assert line.startswith(b"t10120203") and len(line) == len(b"t10120203") + 4 + 1, line
    assert int(line[9:13], 16) < 60000


@time_limit(5)
def test_host_that_does_not_read_overflows_and_f_reports_it(channel: str, peer: can.BusABC) -> None:
    with SlcanAdapter(channel, host_buffer_bytes=200) as adapter:
        port = serial.Serial(adapter.port, 115200, timeout=0.5)
        try:
            assert _ask(port, b"O") == b"\r"
            for i in range(2000):
                peer.send(can.Message(arbitration_id=0x200, is_extended_id=False, data=i.to_bytes(8, "big")))
            assert _wait_until(lambda: adapter.stats.frames_to_host + adapter.stats.frames_dropped_overflow == 2000)
            assert adapter.stats.frames_dropped_overflow > 0
            port.write(b"F\r")
            while (line := port.read_until(b"\r")).startswith(b"t200"):
                pass  # the frames that did fit, still on their way
            assert line == b"F08\r"  # data overrun; reading the flags clears them
            assert _ask(port, b"F") == b"F00\r"
        finally:
            port.close()


# ----------------------------------------------------------------------------------------------- lifecycle


@time_limit(5)
def test_stop_is_prompt_and_a_stopped_adapter_refuses_use(channel: str) -> None:
    adapter = SlcanAdapter(channel).start()
    host = _host(adapter)
    started = time.monotonic()
    adapter.stop()
    assert time.monotonic() - started < 0.2
    with pytest.raises(SlcanError, match="stopped"):
        _ = adapter.port
    with pytest.raises(SlcanError, match="cannot be restarted"):
        adapter.start()
    with pytest.raises(can.CanError):
        host.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"))
    with pytest.raises(can.CanError):
        host.shutdown()  # writes C to a port whose adapter is gone
    adapter.stop()  # stopping twice is harmless


@time_limit(5)
def test_an_adapter_never_started_releases_its_pty_on_stop(channel: str) -> None:
    adapter = SlcanAdapter(channel)
    assert adapter.port.startswith("/dev/")
    adapter.stop()
    with pytest.raises(SlcanError, match="stopped"):
        _ = adapter.port
    with pytest.raises(SlcanError, match="cannot be restarted"):
        adapter.start()


def test_constructor_checks_its_arguments(channel: str) -> None:
    with pytest.raises(ValueError, match="serial_number"):
        SlcanAdapter(channel, serial_number="TOO-LONG")
    with pytest.raises(ValueError, match="hardware_version"):
        SlcanAdapter(channel, hardware_version=100)


def test_format_frame_refuses_what_slcan_cannot_carry() -> None:
    assert format_frame(can.Message(arbitration_id=1, is_fd=True, data=bytes(12))) is None
    assert format_frame(can.Message(arbitration_id=1, is_error_frame=True)) is None
    assert format_frame(can.Message(arbitration_id=0x1, is_extended_id=False, data=b"")) == "t0010"
