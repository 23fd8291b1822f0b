"""The simulated STM32 firmware: OBD-II polling, forwarding every frame, the 1 Hz records, the pty UART.

A tiny fake ECU in this file answers the firmware's requests with canned bytes, so the expected UART bytes
can be written down literally. Every test uses its own virtual-bus channel (in-process, no network) and
its own pty pair. The last tests run the real rest-bus against the firmware end to end.
"""
from __future__ import annotations

import gc
import math
import threading
import time
import uuid
from collections.abc import Iterator

import can
import pytest
import serial

from firmware_sim.latest_values import LatestValues
from firmware_sim.stm32 import OBD_POLL_PIDS, Stm32Sim, Stm32SimError, obd_request_data
from firmware_sim.uart import PtyPair, UartCapture
from harness.core.clock import ScenarioClock
from harness.rig.restbus import RestBus, j1939_frames
from harness.tools.bench.link import bench_link, can_frame_bits
from harness.wire.dbc import get_profile
from harness.wire.link import CanFrame, SampleRecord, StatusRecord, get_codec
from harness.wire.signals import SIGNALS, Trace
from harness.world.cycles import load_cycle
from harness.world.vehicle import get_vehicle, simulate

pytestmark = pytest.mark.sim

#: Canned answers of the fake ECU (8 data bytes each, padded with 0xAA as the reference firmware's ECU does).
ECU_ANSWERS = {
    0x0D: "03 41 0d 57 aa aa aa aa",  # 87 km/h
    0x0C: "04 41 0c 1a f8 aa aa aa",  # 1726 rpm: the reference firmware's own vector (shared/vectors)
    0x11: "03 41 11 66 aa aa aa aa",  # 40 %
    0x05: "03 41 05 82 aa aa aa aa",  # 90 degC
    0x2F: "03 41 2f 99 aa aa aa aa",  # 60 %
    0x04: "03 41 04 33 aa aa aa aa",  # 20 %
    0x0F: "03 41 0f 41 aa aa aa aa",  # 25 degC
    0x10: "04 41 10 04 d2 aa aa aa",  # 12.34 g/s
    0x42: "04 41 42 35 e8 aa aa aa",  # 13.8 V
}


def crc16_modbus_bitwise(data: bytes) -> int:
    """CRC-16/MODBUS the slow, obvious way (independent of harness.wire.link's table version)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class FakeEcu:
    """Answers service 01 requests on 0x7DF with `ECU_ANSWERS` on 0x7E8; stays silent for `ignore`."""

    def __init__(self, bus: can.BusABC, ignore: frozenset[int] = frozenset()) -> None:
        self.bus, self.ignore = bus, ignore
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.bus.recv(timeout=0.01)
            if message is None or message.arbitration_id != 0x7DF:
                continue
            self.requests.append(bytes(message.data))
            pid = message.data[2]
            if pid not in self.ignore:
                self.bus.send(can.Message(arbitration_id=0x7E8, is_extended_id=False,
                                          data=bytes.fromhex(ECU_ANSWERS[pid])))

    def __enter__(self) -> FakeEcu:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(2.0)


class ByteSink:
    """The simplest UART: an object with `.write(bytes)` that keeps what it was given."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


@pytest.fixture
def channel() -> str:
    return f"test-stm32-{uuid.uuid4()}"


@pytest.fixture
def buses(channel: str) -> Iterator[list[can.BusABC]]:
    """Virtual buses on one channel, made on demand by `new_bus(buses)`, all shut down afterwards."""
    made: list[can.BusABC] = []
    yield made
    for bus in made:
        bus.shutdown()


def new_bus(made: list[can.BusABC], channel: str, **kwargs: object) -> can.BusABC:
    bus = can.Bus(interface="virtual", channel=channel, **kwargs)
    made.append(bus)
    return bus


def decode_all(codec_name: str, data: bytes):
    codec = get_codec(codec_name)
    decoder = codec.decoder(first_seq=0) if codec.capabilities.has_sequence else codec.decoder()
    received = decoder.feed(data) + decoder.finish()
    return [r.record for r in received], decoder.stats


# ----------------------------------------------------------------------------------- OBD-II polling


def test_request_bytes_are_the_documented_ones() -> None:
    assert obd_request_data(0x0D) == bytes([0x02, 0x01, 0x0D, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA])
    with pytest.raises(ValueError, match="one byte"):
        obd_request_data(0x100)


def test_uart_carries_each_request_and_answer_byte_exactly(channel: str, buses: list[can.BusABC]) -> None:
    sink = ByteSink()
    clock = ScenarioClock(10.0)
    with FakeEcu(new_bus(buses, channel)):
        firmware = Stm32Sim(new_bus(buses, channel), sink, clock, profile="obd2", codec="raw-can-v1", end_s=1.5)
        with firmware:
            assert firmware.wait(5.0)  # one poll cycle (t = 1 s, the first whole second), then polling is over

    # Hand-computed: the speed request 0x7DF [02 01 0D AA AA AA AA AA] on raw-can-v1, CRC over bytes 1-11.
    body = bytes.fromhex("07df08" "02010daaaaaaaaaa")
    assert crc16_modbus_bitwise(body) == 0xF238
    speed_request = bytes.fromhex("aa" "07df08" "02010daaaaaaaaaa" "f238" "55")
    speed_answer = bytes.fromhex("aa" "07e808" "03410d57aaaaaaaa") + crc16_modbus_bitwise(
        bytes.fromhex("07e808" "03410d57aaaaaaaa")).to_bytes(2, "big") + b"\x55"
    # the rpm answer exactly as the reference firmware's own C code framed it (shared/vectors)
    rpm_answer_reference = bytes.fromhex("aa07e80804410c1af8aaaaaa8a1855")
    assert sink.data.startswith(speed_request + speed_answer + bytes.fromhex("aa07df0802010caaaaaaaaaa233955"))
    assert rpm_answer_reference in sink.data

    # the whole stream: each PID's request, then its answer, in poll order, nothing else
    records, stats = decode_all("raw-can-v1", bytes(sink.data))
    expected = []
    for pid in OBD_POLL_PIDS:
        expected.append(CanFrame(0x7DF, obd_request_data(pid)))
        expected.append(CanFrame(0x7E8, bytes.fromhex(ECU_ANSWERS[pid])))
    assert records == expected
    assert len(sink.data) == 15 * len(expected) and stats.bytes_skipped == 0
    assert firmware.stats.requests_sent == 9 and firmware.stats.requests_answered == 9
    assert firmware.stats.frames_received == 9 and firmware.stats.frames_forwarded == 18


def test_unanswered_requests_are_counted_exactly(channel: str, buses: list[can.BusABC]) -> None:
    ignored = frozenset({0x05, 0x42})
    sink = ByteSink()
    clock = ScenarioClock(10.0)  # 500 ms of scenario time is 50 ms of wall time: no answer is ever late
    with FakeEcu(new_bus(buses, channel), ignore=ignored) as ecu:
        with Stm32Sim(new_bus(buses, channel), sink, clock, profile="obd2", codec="dtg-link-v2", end_s=3.5) as fw:
            assert fw.wait(10.0)  # cycles at t = 1, 2, 3, each with two 500 ms waits for nothing
    stats = fw.stats
    assert stats.poll_cycles == 3
    assert stats.requests_sent == 27 == len(ecu.requests)
    assert stats.requests_unanswered == 3 * len(ignored) == 6
    assert stats.requests_answered == 21
    assert stats.answers_late == 0 and stats.poll_ticks_missed == 0
    assert [r[2] for r in ecu.requests] == list(OBD_POLL_PIDS) * 3

    # the status records carry the same counters; the last one (sent at stop) has the final values
    records, decoder_stats = decode_all("dtg-link-v2", bytes(sink.data))
    assert decoder_stats.frames_lost == 0
    statuses = [r for r in records if isinstance(r, StatusRecord)]
    assert statuses[-1].requests_sent == 27 and statuses[-1].requests_unanswered == 6
    assert statuses[-1].can_frames_received == 21 and statuses[-1].can_frames_dropped == 0


@pytest.mark.parametrize("with_local_sensors", [True, False])
def test_samples_hold_decoded_obd_values_and_local_sensors(
    with_local_sensors: bool, channel: str, buses: list[can.BusABC]
) -> None:
    local = {"brake_pressure": 12.5, "acceleration_x": -1.25, "latitude": 37.5, "longitude": 127.0, "altitude": 100.0}
    sensors = (lambda t_s: local) if with_local_sensors else None
    sink = ByteSink()
    with FakeEcu(new_bus(buses, channel)):
        with Stm32Sim(new_bus(buses, channel), sink, ScenarioClock(10.0), profile="obd2", end_s=2.5,
                      local_sensors=sensors) as firmware:
            assert firmware.wait(5.0)
    records, _ = decode_all("dtg-link-v2", bytes(sink.data))
    samples = [r for r in records if isinstance(r, SampleRecord)]
    assert [s.t_ms for s in samples] == [1000, 2000]  # on whole scenario seconds, none at or after end_s
    carried = {"vehicle_speed": 87.0, "engine_rpm": 1726.0, "throttle_position": 40.0, "coolant_temp": 90.0,
               "fuel_level": 60.0}
    expected = {**{name: None for name in SIGNALS}, **(local if with_local_sensors else {}), **carried}
    got = dict(zip(SIGNALS, samples[-1].values, strict=False))
    # OBD-II's percentages are A*100/255: 102 -> 40.0, 153 -> 60.0 exactly; the rest are integers
    assert got == pytest.approx(expected, abs=1e-6) if with_local_sensors else got == expected


# ----------------------------------------------------------------------------------------- 29-bit


@pytest.mark.parametrize("codec", ["raw-can-v1", "dtg-link-v2"])
def test_29_bit_frames_are_never_truncated(codec: str, channel: str, buses: list[can.BusABC]) -> None:
    sink = ByteSink()
    tester = new_bus(buses, channel)
    firmware = Stm32Sim(new_bus(buses, channel), sink, ScenarioClock(1.0), profile="j1939", codec=codec).start()
    ccvs1 = can.Message(arbitration_id=0x18FEF100, is_extended_id=True, data=bytes.fromhex("ff0057ffffffffff"))
    plain = can.Message(arbitration_id=0x100, is_extended_id=False, data=b"\x01\x02")  # what truncation would forge
    tester.send(ccvs1)
    tester.send(plain)
    firmware.stop()  # forwards what is queued on the bus before it returns

    records, stats = decode_all(codec, bytes(sink.data))
    frames = [r for r in records if isinstance(r, CanFrame)]
    assert firmware.stats.frames_received == 2
    assert stats.malformed_frames == 0 and stats.crc_errors == 0
    if codec == "raw-can-v1":
        assert firmware.stats.frames_unforwardable == 1 and firmware.stats.frames_forwarded == 1
        assert [(f.can_id, f.is_extended, f.data) for f in frames] == [(0x100, False, b"\x01\x02")]
    else:
        assert firmware.stats.frames_unforwardable == 0 and firmware.stats.frames_forwarded == 2
        assert [(f.can_id, f.is_extended, f.data) for f in frames] == [
            (0x18FEF100, True, bytes.fromhex("ff0057ffffffffff")),
            (0x100, False, b"\x01\x02"),
        ]
        assert stats.frames_lost == 0
        status = [r for r in records if isinstance(r, StatusRecord)][-1]
        assert status.can_frames_received == 2 and status.can_frames_dropped == 0


def test_j1939_values_decode_back_from_the_rest_bus_frames() -> None:
    reading = {"vehicle_speed": 87.0, "engine_rpm": 1726.0, "throttle_position": 40.0, "brake_pressure": 80.0,
               "coolant_temp": 90.0, "fuel_level": 60.0, "acceleration_x": -2.5, "latitude": 37.5,
               "longitude": 127.0, "altitude": 100.0, "fuel_rate": math.nan}
    latest = LatestValues(get_profile("j1939"))
    for message in j1939_frames(0.0, reading):
        latest.note(CanFrame(message.arbitration_id, bytes(message.data), True), 0.0)
    values = latest.values(0.0)
    assert values.pop("fuel_rate") is None  # sent as "not available" (0xFFFF): no value, not 3276.75 L/h
    assert values == pytest.approx({name: reading[name] for name in values})


def test_old_values_lapse_only_when_asked() -> None:
    frame = CanFrame(0x7E8, bytes.fromhex(ECU_ANSWERS[0x0D]))
    holding, lapsing = LatestValues(get_profile("obd2")), LatestValues(get_profile("obd2"), max_value_age_s=3.0)
    for latest in (holding, lapsing):
        assert latest.note(frame, 10.0) == 0x0D
    assert holding.values(20.0)["vehicle_speed"] == 87.0
    assert lapsing.values(13.0)["vehicle_speed"] == 87.0 and lapsing.values(13.5)["vehicle_speed"] is None


# ------------------------------------------------------------------------------------ pty and UART


@pytest.mark.parametrize("wiring", ["firmware-on-master", "firmware-on-pyserial"])
def test_bytes_cross_the_pty_unchanged(wiring: str, channel: str, buses: list[can.BusABC]) -> None:
    """Every byte value (0x00-0xFF, including CR, LF, XON/XOFF, ^C, ^D, DEL) arrives as written."""
    tester = new_bus(buses, channel)
    with PtyPair() as pty:
        if wiring == "firmware-on-master":
            uart, reader = pty.device, pty.open_serial()
            read = lambda: reader.read(max(1, reader.in_waiting))  # noqa: E731
        else:
            uart = pty.open_serial()
            read = pty.read_device
        written = bytearray()

        class Tee:
            def write(self, data: bytes) -> int:
                written.extend(data)
                return uart.write(data)

        firmware = Stm32Sim(new_bus(buses, channel), Tee(), ScenarioClock(1.0), profile="j1939", codec="dtg-link-v2")
        with firmware:
            for first in range(0, 256, 8):
                tester.send(can.Message(arbitration_id=first, is_extended_id=False,
                                        data=bytes(range(first, first + 8))))
        received = bytearray()
        deadline = time.monotonic() + 5.0
        while len(received) < len(written) and time.monotonic() < deadline:
            received += read()
    assert firmware.stats.bytes_written == len(written) > 32 * 30
    assert bytes(received) == bytes(written)
    records, _ = decode_all("dtg-link-v2", bytes(received))
    data = b"".join(r.data for r in records if isinstance(r, CanFrame))
    assert data == bytes(range(256))


def test_a_stalled_uart_drops_the_batch_and_counts_it(channel: str, buses: list[can.BusABC]) -> None:
    class StalledUart:
        def write(self, data: bytes) -> int:
            raise serial.SerialTimeoutException("write timeout")

    tester = new_bus(buses, channel)
    firmware = Stm32Sim(new_bus(buses, channel), StalledUart(), ScenarioClock(1.0), profile="j1939",
                        codec="raw-can-v1").start()
    for i in range(3):
        tester.send(can.Message(arbitration_id=0x200 + i, is_extended_id=False, data=b"\x00"))
    firmware.stop()
    stats = firmware.stats
    assert stats.frames_received == 3 and stats.frames_dropped_uart == 3 and stats.frames_forwarded == 0
    assert stats.uart_write_timeouts >= 1 and stats.bytes_written == 0


# ------------------------------------------------------------------------------------------ lifecycle


def test_lifecycle_refuses_reuse(channel: str, buses: list[can.BusABC]) -> None:
    firmware = Stm32Sim(new_bus(buses, channel), ByteSink(), ScenarioClock(1.0), profile="j1939")
    with pytest.raises(Stm32SimError, match="never started"):
        firmware.wait(0.1)
    firmware.start()
    with pytest.raises(Stm32SimError, match="already running"):
        firmware.start()
    started = time.monotonic()
    firmware.stop()
    assert time.monotonic() - started < 1.0
    firmware.stop()  # idempotent
    with pytest.raises(Stm32SimError, match="cannot be restarted, create a new Stm32Sim"):
        firmware.start()


def test_unknown_profile_and_codec_list_the_choices(channel: str, buses: list[can.BusABC]) -> None:
    bus = new_bus(buses, channel)
    with pytest.raises(ValueError, match="expected one of: j1939, obd2"):
        Stm32Sim(bus, ByteSink(), ScenarioClock(1.0), profile="canopen")
    with pytest.raises(ValueError, match="expected one of: dtg-link-v2, raw-can-v1"):
        Stm32Sim(bus, ByteSink(), ScenarioClock(1.0), codec="raw-can-v3")


def test_a_failed_worker_is_reported_on_stop(channel: str, buses: list[can.BusABC]) -> None:
    class BrokenUart:
        def write(self, data: bytes) -> int:
            raise OSError(5, "Input/output error")

    tester = new_bus(buses, channel)
    firmware = Stm32Sim(new_bus(buses, channel), BrokenUart(), ScenarioClock(1.0), profile="j1939").start()
    tester.send(can.Message(arbitration_id=0x1, is_extended_id=False, data=b""))
    deadline = time.monotonic() + 2.0
    while firmware.running and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(Stm32SimError, match="failed: OSError"):
        firmware.stop()


# ------------------------------------------------------------------------- end to end (acceptance 6)

E2E_DRIVE_S = 180.0
E2E_TIME_SCALE = 50.0


@pytest.fixture(scope="module")
def udds_trace() -> Trace:
    return simulate(load_cycle("udds"), get_vehicle("passenger_car"))


@pytest.fixture
def settled_heap() -> Iterator[None]:
    """Keep the objects earlier tests left behind out of the garbage collector's full passes for one test.

    At 50x a stop-the-world collection of a big heap (~0.1 s after the other test modules ran) is 5 s of
    drive: every simulated part stalls at once and the firmware misses poll ticks. A rig run does the same
    (`harness.tools.bench.link` freezes the heap after setup). Unfrozen afterwards, so nothing leaks.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize(
    ("profile", "codec"), [("obd2", "raw-can-v1"), ("obd2", "dtg-link-v2"), ("j1939", "dtg-link-v2")]
)
def test_rest_bus_to_pty_loses_no_frame_at_50x(
    profile: str, codec: str, udds_trace: Trace, channel: str, buses: list[can.BusABC], settled_heap: None
) -> None:
    """Three minutes of UDDS at 50x: every frame on the bus is decoded from the pty, in bus order."""
    sniffer = new_bus(buses, channel)  # sees every frame anyone puts on the bus
    ecu_bus = new_bus(buses, channel, preserve_timestamps=True)
    firmware_bus = new_bus(buses, channel)
    codec_obj = get_codec(codec)
    with PtyPair() as pty:
        decoder = codec_obj.decoder(first_seq=0) if codec_obj.capabilities.has_sequence else codec_obj.decoder()
        capture = UartCapture(pty.open_serial(), decoder).start()
        clock = ScenarioClock(E2E_TIME_SCALE)
        firmware = Stm32Sim(firmware_bus, pty.device, clock, profile=profile, codec=codec, end_s=E2E_DRIVE_S,
                            local_sensors=udds_trace.reading_at).start()
        rest_bus = RestBus(ecu_bus, udds_trace, profile, clock, end_s=E2E_DRIVE_S).start()
        try:
            assert rest_bus.wait(E2E_DRIVE_S / E2E_TIME_SCALE + 10.0)
            assert firmware.wait(5.0)
        finally:
            rest_bus.stop()
            firmware.stop()
        assert capture.wait_for_bytes(firmware.stats.bytes_written, 5.0)
        capture.stop()

    on_bus = []
    while (message := sniffer.recv(timeout=0.0)) is not None:
        on_bus.append((message.arbitration_id, message.is_extended_id, bytes(message.data)))
    decoded = [(f.can_id, f.is_extended, f.data) for f in capture.can_frames()]
    fw, rb, link = firmware.stats, rest_bus.stats, capture.decoder_stats

    diagnosis = f"firmware {fw}, rest-bus {rb}, link {link}"
    # The drive really ran: a poll cycle every second (obd2), or every J1939 broadcast sent or, if the rest-bus
    # fell behind on a loaded machine, skipped (skipped frames never reach the bus: not the firmware's loss).
    if profile == "obd2":
        # every 1 Hz tick was polled or, if a stall made the firmware overrun it, counted as missed
        assert fw.poll_cycles + fw.poll_ticks_missed == pytest.approx(E2E_DRIVE_S, abs=2), diagnosis
        # (most of them polled: a loaded machine makes a paced firmware miss ticks, which it counts, not loses)
        assert fw.poll_cycles >= 0.5 * E2E_DRIVE_S, diagnosis
    else:
        assert len(on_bus) + rb.frames_skipped == pytest.approx(E2E_DRIVE_S * 203.2, rel=0.02), diagnosis
    assert rb.send_errors == 0 and len(on_bus) == rb.frames_sent + fw.requests_sent, diagnosis
    assert decoded == on_bus, diagnosis  # nothing lost, nothing added, nothing reordered, byte for byte
    assert fw.frames_unforwardable == 0 and fw.frames_dropped_uart == 0
    assert fw.frames_forwarded == len(on_bus) == fw.frames_received + fw.requests_sent
    assert link.crc_errors == 0 and link.bytes_skipped == 0 and link.malformed_frames == 0
    if codec_obj.capabilities.has_sequence:
        assert link.frames_lost == 0
        samples = capture.samples()
        # one sample per whole scenario second from start to end_s, none skipped, even when late
        first_s = samples[0].t_ms // 1000
        assert first_s <= 2 and [s.t_ms for s in samples] == [1000 * k for k in range(first_s, int(E2E_DRIVE_S))]
        # Values are decoded from the bus all the way (their exactness is checked by the tests above; here the
        # firmware may lag the bus by scenario seconds when the machine is busy, so values are not compared).
        carried = get_profile(profile).carried
        assert all(dict(zip(SIGNALS, s.values, strict=False))[name] is not None
                   for s in samples[2:] for name in carried)
    if profile == "obd2":
        # the rest-bus leaves at end_s; a firmware running late may still be in its last cycle then
        assert 0 <= fw.requests_sent - (rb.requests_answered + rb.requests_ignored) <= len(OBD_POLL_PIDS)


# ---------------------------------------------------------------------------------------- benchmark


def test_can_frame_bits_match_the_frame_layout() -> None:
    # 11-bit: SOF 1, ID 11, RTR 1, IDE 1, r0 1, DLC 4, data, CRC 15, CRC delimiter 1, ACK 2, EOF 7, IFS 3
    assert can_frame_bits(0, extended=False) == 47 and can_frame_bits(8, extended=False) == 111
    # 29-bit adds SRR 1, 18 ID bits and r1 1
    assert can_frame_bits(8, extended=True) == 131
    # worst-case stuffing over SOF..CRC: (34 + 64 - 1) // 4 = 24, (54 + 64 - 1) // 4 = 29
    assert can_frame_bits(8, extended=False, stuffing=True) == 135
    assert can_frame_bits(8, extended=True, stuffing=True) == 160


@pytest.mark.parametrize(("profile", "codec"), [("obd2", "dtg-link-v2"), ("j1939", "raw-can-v1")])
def test_bench_link_counts_what_it_moves(profile: str, codec: str) -> None:
    # Paced by the wall clock: on a loaded machine the firmware misses poll ticks (counted), so fewer frames go on
    # the bus than nominal; what went on it is all accounted for below.
    result = bench_link(minutes=0.5, time_scale=25.0, profile=profile, codec=codec, echo=False)
    assert 0.5 * 30 * (18 if profile == "obd2" else 203.2) <= result.can_frames_on_bus <= \
        1.05 * 30 * (18 if profile == "obd2" else 203.2)
    if codec == "raw-can-v1":  # J1939 on the reference frame: every frame is unforwardable, and said so
        assert result.can_frames_decoded == 0
        assert result.frames_lost_end_to_end == result.frames_unforwardable == result.can_frames_on_bus
    else:
        assert result.frames_lost_end_to_end == 0 and result.link_frames_lost == 0
        assert result.samples_decoded == 29
    nominal, stuffed = result.bus_load
    assert 0 < nominal < stuffed < 0.2
    assert 0 < result.time_scale_achieved <= 25.0
    assert "lost end to end" in result.report()
