"""The UART tap and the link-corruption tools: `cross_check`, `TeeSink`, `CorruptingSink`, `UartTap` over a pty,
and the acceptance test of the real-rig issue: on a drive with injected link corruption, the tap's counts
(frames, CRC errors, loss) equal the firmware simulator's own counts and the corruptor's.

Every test that runs threads or hypothesis has a wall-clock limit (`support.time_limit`).
"""
from __future__ import annotations

import gc
import uuid
from collections import Counter
from pathlib import Path

import can
import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import time_limit

from firmware_sim.stm32 import Stm32Sim, obd_request_data
from firmware_sim.uart import PtyPair, UartCapture
from firmware_sim.uart_sinks import CorruptingSink, TeeSink
from harness.core.clock import ScenarioClock
from harness.rig.restbus import RestBus
from harness.rig.uart_tap import SentFrame, SentFrameLog, TappedRecord, UartTap, UartTapError, cross_check
from harness.wire.link import CanFrame, DecoderStats, Received, SampleRecord, StatusRecord, get_codec
from harness.wire.signals import Trace
from harness.world.cycles import generate_trip
from harness.world.vehicle import get_vehicle, simulate

pytestmark = pytest.mark.sim


class ByteSink:
    """The simplest UART: keeps what it is given, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)


class TimingOutSink(ByteSink):
    def write(self, data: bytes) -> int:
        raise serial.SerialTimeoutException("write timeout (nobody reads)")


def _decode_all(codec: str, data: bytes, first_seq: int | None = 0) -> tuple[list[Received], DecoderStats]:
    codec_obj = get_codec(codec)
    decoder = codec_obj.decoder(first_seq) if codec_obj.capabilities.has_sequence else codec_obj.decoder()
    out = decoder.feed(data) + decoder.finish()
    return out, decoder.stats


# ---------------------------------------------------------------------------------------------- cross-check

REQ = obd_request_data(0x0D)
ANS = bytes.fromhex("03410d57aaaaaaaa")


def test_cross_check_pairs_repeated_frames_in_order_and_names_what_is_missing_and_unexpected() -> None:
    sent = [(1.0, 0x7DF, REQ), (1.1, 0x7E8, ANS), (2.0, 0x7DF, REQ), (2.1, 0x7E8, ANS), (3.0, 0x7DF, REQ)]
    tapped = [
        (1.01, Received(CanFrame(0x7DF, REQ, timestamp_s=1.005), 0)),
        (1.12, Received(CanFrame(0x7E8, ANS, timestamp_s=1.105), 1)),
        (1.5, Received(SampleRecord(1000, (None,) * 10), 2)),
        (1.5, Received(StatusRecord(1000), 3)),
        (2.03, Received(CanFrame(0x7DF, REQ, timestamp_s=2.01), 4)),
        # the second answer never arrived; a frame nobody sent did
        (2.5, Received(CanFrame(0x123, b"\x01\x02", timestamp_s=2.4), 6)),
        (3.04, Received(CanFrame(0x7DF, REQ, timestamp_s=3.02), 7)),
    ]
    stats = DecoderStats(frames_decoded=7, crc_errors=1, frames_lost=1, sequence_gaps=1, sequence_resets=0,
                         duplicate_frames=0)
    report = cross_check(sent, tapped, decoder_stats=stats, codec="dtg-link-v2")
    assert report.frames_sent == 5 and report.frames_forwarded == 4
    assert report.missing == (SentFrame(2.1, 0x7E8, ANS),)
    assert [r.received.record.can_id for r in report.unexpected] == [0x123]
    assert report.samples == 1 and report.statuses == 1
    assert report.latency.n == 4 and report.latency.p50 == pytest.approx(25.0)  # 10, 20, 30, 40 ms
    assert report.firmware_latency is not None and report.firmware_latency.p50 == pytest.approx(7.5)
    assert not report.ok and report.crc_errors == 1 and report.frames_lost == 1
    text = str(report)
    assert "FAILED" in text and "1 of 5 CAN frames sent never reached the UART" in text
    assert "missing (1): t=2.100 s id 0x7E8 [03 41 0d 57 aa aa aa aa]" in text
    assert "unexpected on the UART (1): t=2.500 s id 0x123 [01 02] seq 6" in text
    assert "1 CRC errors on the link" in text and "1 link frames lost (1 sequence gaps)" in text


def test_cross_check_of_a_clean_link_is_ok_and_scales_scenario_time_to_wall_ms() -> None:
    sent = [SentFrame(10.0, 0x18FEEE00, b"\x01", True), SentFrame(10.5, 0x18FEEE00, b"\x01", True)]
    tapped = [TappedRecord(10.2, Received(CanFrame(0x18FEEE00, b"\x01", True, 10.1))),
              TappedRecord(10.9, Received(CanFrame(0x18FEEE00, b"\x01", True, 10.6)))]
    report = cross_check(sent, tapped, codec="dtg-link-v2", time_scale=100.0)
    assert report.ok and report.frames_forwarded == 2 and not report.missing
    assert report.latency.p50 == pytest.approx(3.0) and report.firmware_latency.p50 == pytest.approx(1.0)
    assert str(report).startswith("UART tap cross-check (dtg-link-v2): OK")
    blind = cross_check(sent, tapped, codec="dtg-link-v2", firmware_clock_offset_s=None)
    assert blind.firmware_latency is None


def test_cross_check_on_raw_can_v1_calls_29_bit_frames_unforwardable_not_missing() -> None:
    sent = [(0.0, 0x18FEEE00, b"\x01"), (0.1, 0x7E8, ANS)]  # a 3-tuple with an ID over 11 bits is extended
    tapped = [(0.2, CanFrame(0x7E8, ANS))]
    report = cross_check(sent, tapped, codec="raw-can-v1")
    assert report.ok and report.unforwardable == (SentFrame(0.0, 0x18FEEE00, b"\x01", True),)
    assert report.firmware_latency is None and "unforwardable (1)" in str(report)


# ----------------------------------------------------------------------------------------------- TeeSink


def test_tee_counts_a_timeout_per_sink_and_still_feeds_the_others() -> None:
    app, tap = ByteSink(), ByteSink()
    tee = TeeSink(app, TimingOutSink(), tap, names=("app", "dead-tap", "tap"))
    assert tee.write(b"abc") == 3  # an observer's timeout does not reach the writer
    assert app.data == tap.data == b"abc"
    stats = {s.name: s for s in tee.stats}
    assert stats["dead-tap"].write_timeouts == 1 and stats["dead-tap"].bytes_lost == 3
    assert stats["app"].bytes_written == stats["tap"].bytes_written == 3 and stats["tap"].write_timeouts == 0

    tee = TeeSink(TimingOutSink(), tap, names=("app", "tap"))
    with pytest.raises(serial.SerialTimeoutException):
        tee.write(b"def")  # the primary's timeout is the writer's: it drops the batch, as without a tee
    assert tap.data == b"abcdef" and tee.stats[0].write_timeouts == 1
    with pytest.raises(ValueError, match="2 sinks but 1 names"):
        TeeSink(app, tap, names=("app",))


# --------------------------------------------------------------------------------------- CorruptingSink


def _obd_stream(codec: str, n_cycles: int, values: list[int]) -> list[bytes]:
    """OBD-II requests and 0xAA-padded answers (false starts galore on raw-can-v1), one frame per write, as the
    simulated firmware writes them; on dtg-link-v2 with a sample and a status per cycle."""
    encoder = get_codec(codec).encoder()
    writes = []
    for cycle in range(n_cycles):
        for pid in (0x0D, 0x0C, 0x05):
            value = values[(cycle * 3 + pid) % len(values)]
            answer = bytes((3, 0x41, pid, value, 0x55, 0xAA, 0xAA, 0xAA))
            writes.append(encoder.encode(CanFrame(0x7DF, obd_request_data(pid), timestamp_s=cycle)))
            writes.append(encoder.encode(CanFrame(0x7E8, answer, timestamp_s=cycle + 0.01)))
        if codec == "dtg-link-v2":
            writes.append(encoder.encode(SampleRecord(cycle * 1000, (float(cycle),) * 10))
                          + encoder.encode(StatusRecord(cycle * 1000, cycle, 0, 3 * cycle, 0)))
    return writes


@time_limit(30)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codec=st.sampled_from(["raw-can-v1", "dtg-link-v2"]),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["every_nth_frame", "frame_error_rate"]),
    bits=st.integers(1, 3),
    values=st.lists(st.integers(0, 255), min_size=1, max_size=8),
    merge=st.integers(1, 4),
)
def test_each_corrupted_frame_costs_exactly_one_crc_error_and_one_frame(
    codec: str, seed: int, mode: str, bits: int, values: list[int], merge: int
) -> None:
    writes = _obd_stream(codec, 12, values)
    writes = [b"".join(writes[i:i + merge]) for i in range(0, len(writes), merge)]  # batches of `merge` writes
    sink = ByteSink()
    corruptor = CorruptingSink(sink, codec, rng_seed=seed, bits_per_frame=bits,
                               **({"every_nth_frame": 3} if mode == "every_nth_frame" else {"frame_error_rate": 0.3}))
    for data in writes:
        corruptor.write(data)
    corruptor.flush()
    stats, corrupted = corruptor.stats, corruptor.corrupted_frames
    clean, _ = _decode_all(codec, b"".join(writes))
    received, link = _decode_all(codec, sink.data)
    assert len(sink.data) == sum(map(len, writes)) and stats.frames_seen == len(clean)
    assert stats.frames_corrupted == len(corrupted) and stats.bits_flipped == bits * len(corrupted)
    assert all(b.index - a.index >= 2 for a, b in zip(corrupted, corrupted[1:], strict=False))  # never two in a row
    assert link.crc_errors == stats.frames_corrupted
    assert link.frames_decoded + link.crc_errors == stats.frames_seen
    # exactly the corrupted frames are gone, everything else arrived intact and in order
    lost = {c.index for c in corrupted}
    assert [r.record for r in received] == [r.record for i, r in enumerate(clean) if i not in lost]
    assert all(get_codec(codec).decode(c.original) == clean[c.index] for c in corrupted)
    if codec == "dtg-link-v2":
        tail = 1 if corrupted and corrupted[-1].index == stats.frames_seen - 1 else 0
        assert link.frames_lost == stats.frames_corrupted - tail


@time_limit(30)
@settings(max_examples=40, deadline=None)
@given(codec=st.sampled_from(["raw-can-v1", "dtg-link-v2"]), seed=st.integers(0, 2**32 - 1))
def test_line_noise_loses_exactly_the_frames_it_touches(codec: str, seed: int) -> None:
    writes = _obd_stream(codec, 20, [0x55, 0xAA, 0x10])
    sink = ByteSink()
    corruptor = CorruptingSink(sink, codec, rng_seed=seed, bit_error_rate=2e-3)
    for data in writes:
        corruptor.write(data)
    received, link = _decode_all(codec, sink.data)
    clean, _ = _decode_all(codec, b"".join(writes))
    stats = corruptor.stats
    lost = {c.index for c in corruptor.corrupted_frames}
    assert stats.frames_seen == len(clean) and len(lost) == stats.frames_corrupted and stats.bits_flipped >= len(lost)
    assert [r.record for r in received] == [r.record for i, r in enumerate(clean) if i not in lost]


def test_corrupting_sink_refuses_unclear_settings() -> None:
    with pytest.raises(ValueError, match="exactly one of: every_nth_frame, frame_error_rate, bit_error_rate"):
        CorruptingSink(ByteSink(), "dtg-link-v2")
    with pytest.raises(ValueError, match="every_nth_frame must be an int >= 2"):
        CorruptingSink(ByteSink(), "dtg-link-v2", every_nth_frame=1)
    with pytest.raises(ValueError, match="unknown link codec 'raw-can-v3'; expected one of: dtg-link-v2, raw-can-v1"):
        CorruptingSink(ByteSink(), "raw-can-v3", every_nth_frame=5)
    with pytest.raises(ValueError, match="bits_per_frame must be 1, 2 or 3"):
        CorruptingSink(ByteSink(), "raw-can-v1", every_nth_frame=5, bits_per_frame=4)


# ---------------------------------------------------------------------------------------- UartTap on a pty


@time_limit(10)
def test_tap_opens_its_port_by_path_records_the_bytes_and_stamps_each_record(tmp_path: Path) -> None:
    codec = get_codec("dtg-link-v2")
    encoder = codec.encoder(first_seq=5)
    frames = [CanFrame(0x100 + i, bytes([i] * (i % 9)), timestamp_s=i / 10) for i in range(40)]
    data = b"".join(encoder.encode(f) for f in frames)
    ticks = iter(range(1, 10**6))
    with PtyPair() as pty:
        tap = UartTap(pty.port, "dtg-link-v2", first_seq=5, record_path=tmp_path / "uart.bin",
                      now_s=lambda: float(next(ticks)))
        with tap:
            pty.device.write(data[:100])
            assert tap.wait_for_bytes(100, 5.0)
            pty.device.write(data[100:] + b"\xd7\x47\x02")  # a partial frame at the end: finish() drops it
            assert tap.wait_for_bytes(len(data) + 3, 5.0)
    assert (tmp_path / "uart.bin").read_bytes() == data + b"\xd7\x47\x02" and tap.bytes_recorded == len(data) + 3
    assert [t.received.record for t in tap.tapped] == frames
    assert [t.received.seq for t in tap.tapped] == list(range(5, 45))
    stamps = [t.rx_s for t in tap.tapped]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]  # two reads at least, each stamped when read
    stats = tap.decoder_stats
    assert stats.frames_decoded == 40 and stats.frames_lost == 0 and stats.crc_errors == 0 and stats.bytes_skipped == 3
    assert tap.stats.bytes_read == len(data) + 3 and tap.stats.can_frames == 40
    with pytest.raises(UartTapError, match="cannot be restarted"):
        tap.start()


def test_tap_fails_fast_naming_the_port_or_folder(tmp_path: Path) -> None:
    with pytest.raises(UartTapError, match="cannot open UART tap /dev/does-not-exist at 921600 baud 8N1"):
        UartTap("/dev/does-not-exist")
    with PtyPair() as pty:
        with pytest.raises(UartTapError, match="folder .*nowhere does not exist"):
            UartTap(pty.port, record_path=tmp_path / "nowhere" / "uart.bin")
        with pytest.raises(ValueError, match="expected one of: dtg-link-v2, raw-can-v1"):
            UartTap(pty.port, "raw-can-v3")
        tap = UartTap(pty.open_serial(), "raw-can-v1", record_path=tmp_path / "uart.bin")
        tap.stop()  # never started: releases the recording all the same
        assert (tmp_path / "uart.bin").read_bytes() == b""


# ------------------------------------------------------------------------ acceptance: counts under corruption

DRIVE_S = 150.0


@pytest.fixture(scope="module")
def trip_trace() -> Trace:
    return simulate(generate_trip(11, DRIVE_S + 30.0, mix={"urban": 1.0}), get_vehicle("passenger_car"), seed=11)


@pytest.fixture
def settled_heap():
    """Keep earlier tests' garbage out of full collections during a fast run (see tests/test_stm32.py)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _run_tapped_drive(trace: Trace, profile: str, codec: str, time_scale: float, artifacts: Path, **corruption):
    """The simulated rig with a tap: rest-bus → CAN → Stm32Sim → CorruptingSink → TeeSink → two ptys, the
    app's (read by a UartCapture, standing in for the app) and the tap's (read by a UartTap). Returns the parts."""
    channel = f"test-tap-{uuid.uuid4()}"
    buses = [can.Bus(interface="virtual", channel=channel, preserve_timestamps=True) for _ in range(3)]
    codec_obj = get_codec(codec)
    app_decoder = codec_obj.decoder(0) if codec_obj.capabilities.has_sequence else codec_obj.decoder()
    try:
        with PtyPair() as app_pty, PtyPair() as tap_pty:
            clock = ScenarioClock(time_scale)
            sent_log = SentFrameLog(clock.now_s)
            notifier = can.Notifier(buses[2], [sent_log], timeout=0.05)
            app = UartCapture(app_pty.open_serial(), app_decoder).start()
            tap = UartTap(tap_pty.port, codec, first_seq=0, record_path=artifacts / "uart.bin",
                          now_s=clock.now_s).start()
            tee = TeeSink(app_pty.device, tap_pty.device, names=("app", "tap"))
            corruptor = CorruptingSink(tee, codec, **corruption)
            firmware = Stm32Sim(buses[1], corruptor, clock, profile=profile, codec=codec, end_s=DRIVE_S,
                                local_sensors=trace.reading_at, max_value_age_s=1.5, catch_up_polls=True)
            rest_bus = RestBus(buses[0], trace, profile, clock, end_s=DRIVE_S, answer_at_request_stamp=True)
            try:
                firmware.start()
                rest_bus.start()
                # The firmware's drive ends the run: an OBD-II rest-bus answering by request stamp answers until
                # stopped (the firmware may still poll its last ticks after the clock passed the end).
                assert firmware.wait(DRIVE_S / time_scale + 10.0), "the STM32 simulator did not finish the drive"
                assert profile == "obd2" or rest_bus.wait(5.0), "the rest-bus did not finish the drive"
            finally:
                rest_bus.stop()  # first, so the firmware's stop() drains every frame sent
                firmware.stop()
                corruptor.flush()  # a raw-can-v1 frame held back for the next write goes out now
            line_bytes = tee.stats[0].bytes_written
            assert app.wait_for_bytes(line_bytes, 5.0) and tap.wait_for_bytes(line_bytes, 5.0)
            app.stop()
            tap.stop()
            notifier.stop()
    finally:
        for bus in buses:
            bus.shutdown()
    return firmware, rest_bus, corruptor, tee, app, tap, sent_log


@pytest.mark.parametrize(("profile", "codec", "time_scale"), [
    ("obd2", "dtg-link-v2", 100.0),
    ("j1939", "dtg-link-v2", 50.0),
    ("obd2", "raw-can-v1", 100.0),
])
@time_limit(30)
def test_tap_counts_equal_the_firmware_and_the_corruptor_under_link_corruption(
    profile: str, codec: str, time_scale: float, trip_trace: Trace, tmp_path: Path, settled_heap: None
) -> None:
    nth = 40 if profile == "j1939" else 17  # ~300 corrupted frames on J1939's 30000, ~120 on OBD-II's 2000
    firmware, rest_bus, corruptor, tee, app, tap, sent_log = _run_tapped_drive(
        trip_trace, profile, codec, time_scale, tmp_path, rng_seed=20240501, every_nth_frame=nth)
    fw, cs, link = firmware.stats, corruptor.stats, tap.decoder_stats
    has_records = codec == "dtg-link-v2"
    written = fw.frames_forwarded + (fw.samples_sent + fw.status_sent if has_records else 0)
    diagnosis = f"\nfirmware {fw}\nrest-bus {rest_bus.stats}\ncorruptor {cs}\ntee {tee.stats}\ntap {link}"

    # the drive ran and the line carried it all: nothing timed out, every byte reached both receivers
    assert fw.poll_cycles >= 0.9 * DRIVE_S if profile == "obd2" else fw.frames_received > 100 * DRIVE_S, diagnosis
    assert fw.frames_dropped_uart == fw.frames_unforwardable == 0, diagnosis
    assert all(s.write_timeouts == 0 and s.bytes_written == fw.bytes_written for s in tee.stats), diagnosis
    assert tap.stats.bytes_read == app.stats.bytes_read == tap.bytes_recorded == fw.bytes_written, diagnosis

    # the acceptance criterion: the tap's counts equal the firmware's own and the corruptor's
    assert cs.frames_seen == written and cs.frames_corrupted >= written // nth // 2, diagnosis
    assert link.crc_errors == cs.frames_corrupted, diagnosis
    assert link.frames_decoded + link.crc_errors == written, diagnosis
    assert link.malformed_frames == link.unknown_records == 0, diagnosis
    assert tap.stats.can_frames == fw.frames_forwarded - sum(
        isinstance(get_codec(codec).decode(c.original).record, CanFrame) for c in corruptor.corrupted_frames)
    if has_records:
        tail = 1 if corruptor.corrupted_frames[-1].index == written - 1 else 0  # loss after the last frame is unseen
        assert link.frames_lost == link.sequence_gaps == cs.frames_corrupted - tail, diagnosis
        assert link.sequence_resets == link.duplicate_frames == 0, diagnosis
        if not tail:  # the firmware's last status record made it: its counters are the firmware's
            assert tap.last_status.can_frames_received == fw.frames_received, diagnosis
            assert tap.last_status.requests_sent == fw.requests_sent, diagnosis
    # the app, on the other branch of the same line, counted exactly what the tap counted
    assert app.decoder_stats == link and app.stats == tap.stats, diagnosis
    # the recording decodes offline to the same counts
    _, offline = _decode_all(codec, (tmp_path / "uart.bin").read_bytes())
    assert offline == link, diagnosis

    # frame by frame: what was sent on CAN and not forwarded is exactly what the corruptor destroyed
    report = tap.report(sent_log.frames, time_scale=time_scale)
    assert report.frames_sent == rest_bus.stats.frames_sent + fw.requests_sent, diagnosis
    destroyed = Counter()
    for c in corruptor.corrupted_frames:
        record = get_codec(codec).decode(c.original).record
        if isinstance(record, CanFrame):
            destroyed[(record.can_id, record.is_extended, record.data)] += 1
    missing = Counter((f.can_id, f.is_extended, f.data) for f in report.missing)
    assert missing == destroyed, f"{report}{diagnosis}"
    assert not report.unexpected and not report.unforwardable, f"{report}{diagnosis}"
    assert report.frames_forwarded == report.frames_sent - len(report.missing)
    assert report.latency.n == report.frames_forwarded and report.latency.p50 is not None
    assert (report.firmware_latency is not None) == has_records
    assert not report.ok and f"{link.crc_errors} CRC errors on the link" in str(report)
