"""Tests for harness.wire.link: CRCs, the raw-can-v1 reference vectors, round trips, and resync under corruption.

The corruption properties build a stream of encoded frames, corrupt it (bit flips, inserted bytes, deleted
byte runs) at positions given in the clean stream's coordinates, feed it in random chunk sizes, and compare
what comes out with what was sent. A frame is "touched" when a corruption lands on one of its bytes.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.wire.link import (
    CRC_VARIANTS,
    SAMPLE_FIELDS,
    CanFrame,
    DtgLinkV2Codec,
    LinkCapabilityError,
    LinkError,
    LinkFrameError,
    RawCanV1Codec,
    Received,
    SampleRecord,
    StatusRecord,
    codec_names,
    crc16_ccitt_false,
    crc16_modbus,
    crc32_iso_hdlc,
    get_codec,
    identify_crc,
)
from harness.wire.signals import SIGNALS

VECTORS = Path("/work/shared/vectors/raw_can_v1_reference_firmware.txt")
V1 = RawCanV1Codec()
V2 = DtgLinkV2Codec()
STREAM_SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def _read_vectors() -> list[tuple[int, int, bytes, bytes]]:
    rows = []
    for line in VECTORS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        can_id, dlc, data, frame = line.split()
        rows.append((int(can_id, 16), int(dlc), b"" if data == "-" else bytes.fromhex(data), bytes.fromhex(frame)))
    return rows


# ------------------------------------------------------------------------------------------------ CRCs


def test_crc16_modbus_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37


def test_crc16_ccitt_false_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


@pytest.mark.parametrize("name", sorted(CRC_VARIANTS))
def test_every_registered_crc_variant_meets_its_catalogue_check_value(name: str) -> None:
    variant = CRC_VARIANTS[name]
    assert variant.compute(b"123456789") == variant.check


@given(st.binary(max_size=64))
def test_crc32_table_version_agrees_with_zlib(data: bytes) -> None:
    assert CRC_VARIANTS["crc32-iso-hdlc"].compute(data) == crc32_iso_hdlc(data) == zlib.crc32(data)


def test_identify_crc_names_the_variant_and_the_byte_order() -> None:
    assert identify_crc(b"123456789", 0x4B37) == ["crc16-modbus"]
    assert identify_crc(b"123456789", 0x374B) == ["crc16-modbus (byte-swapped)"]  # Modbus's own byte order
    assert identify_crc(b"123456789", 0x29B1) == ["crc16-ccitt-false"]
    assert identify_crc(b"123456789", 0x1234) == []


# ------------------------------------------------------------------------------------------ raw-can-v1


@pytest.mark.parametrize(
    "can_id,dlc,data,frame", _read_vectors(), ids=lambda v: v.hex() if isinstance(v, bytes) else None
)
def test_raw_can_v1_matches_reference_firmware_vector(can_id: int, dlc: int, data: bytes, frame: bytes) -> None:
    assert len(data) == dlc
    assert V1.encode(CanFrame(can_id, data)) == frame
    assert V1.decode(frame) == Received(CanFrame(can_id, data))


def test_reference_vector_file_is_not_empty_and_decodes_as_one_stream() -> None:
    rows = _read_vectors()
    assert len(rows) >= 4
    decoder = V1.decoder()
    got = decoder.feed(b"".join(frame for *_, frame in rows)) + decoder.finish()
    assert [rx.record for rx in got] == [CanFrame(can_id, data) for can_id, _, data, _ in rows]
    assert decoder.stats.bytes_skipped == 0 and decoder.stats.crc_errors == 0


@pytest.mark.parametrize(
    "frame,expected_hex",
    [
        # OBD-II request for PID 0x0C, padded with 0xAA as the STM32 sends it.
        # CRC-16/MODBUS over 07 df 08 02 01 0c aa aa aa aa aa = 0x2339 -> sent 23 39
        (CanFrame(0x7DF, bytes.fromhex("02010caaaaaaaaaa")), "aa07df0802010caaaaaaaaaa233955"),
        # both markers inside the data, DLC 2 zero-padded to 8.
        # CRC-16/MODBUS over 01 23 02 aa 55 00 00 00 00 00 00 = 0x1F65 -> sent 1f 65
        (CanFrame(0x123, bytes.fromhex("aa55")), "aa012302aa550000000000001f6555"),
        # the start marker inside the ID, the end marker as the only data byte.
        # CRC-16/MODBUS over 00 aa 01 55 00 00 00 00 00 00 00 = 0xD5E8 -> sent d5 e8
        (CanFrame(0x0AA, bytes.fromhex("55")), "aa00aa015500000000000000d5e855"),
    ],
)
def test_raw_can_v1_hand_computed_frame(frame: CanFrame, expected_hex: str) -> None:
    assert V1.encode(frame).hex() == expected_hex
    assert V1.decode(bytes.fromhex(expected_hex)).record == frame


def test_raw_can_v1_refuses_29_bit_ids_and_names_the_successor() -> None:
    j1939_eec1 = CanFrame(0x0CF00400, bytes(8), is_extended=True)
    with pytest.raises(LinkCapabilityError, match=r"raw-can-v1 cannot carry 29-bit.*dtg-link-v2") as info:
        V1.encode(j1939_eec1)
    assert isinstance(info.value, LinkError)
    assert "0xCF00400" in str(info.value)
    # an extended frame is refused even when its ID would fit in 11 bits: the flag itself cannot be sent
    with pytest.raises(LinkCapabilityError, match="29-bit"):
        V1.encode(CanFrame(0x100, b"", is_extended=True))


def test_raw_can_v1_refuses_non_can_records() -> None:
    with pytest.raises(LinkCapabilityError, match="CAN frames only.*dtg-link-v2"):
        V1.encode(SampleRecord(0, (0.0,) * 10))


def test_raw_can_v1_decode_names_the_crc_a_broken_firmware_used() -> None:
    good = bytearray(V1.encode(CanFrame(0x7E8, bytes.fromhex("03410d3c"))))
    wrong = crc16_ccitt_false(bytes(good[1:12]))
    good[12:14] = wrong.to_bytes(2, "big")
    with pytest.raises(LinkFrameError, match="CRC mismatch.*CRC-16/CCITT-FALSE"):
        V1.decode(good)
    modbus_order = bytearray(V1.encode(CanFrame(0x7E8, b"\x01")))
    modbus_order[12], modbus_order[13] = modbus_order[13], modbus_order[12]
    with pytest.raises(LinkFrameError, match="CRC-16/MODBUS sent byte-swapped"):
        V1.decode(modbus_order)


def test_raw_can_v1_decoder_counts_but_never_yields_a_crc_valid_frame_with_an_impossible_id() -> None:
    # what a firmware that truncates a 29-bit ID to 16 bits would send
    body = bytes((0xF0, 0x04, 8)) + bytes(8)
    crc = crc16_modbus(body)
    truncated = b"\xaa" + body + crc.to_bytes(2, "big") + b"\x55"
    decoder = V1.decoder()
    good = CanFrame(0x7E8, b"\x01\x02")
    assert [rx.record for rx in decoder.feed(truncated + V1.encode(good))] == [good]
    assert decoder.stats.malformed_frames == 1
    with pytest.raises(LinkFrameError, match="0xF004 > 0x7FF"):
        V1.decode(truncated)


# ---------------------------------------------------------------------------------------------- records


def test_can_frame_validation_messages() -> None:
    with pytest.raises(ValueError, match="at most 8 bytes"):
        CanFrame(0x100, bytes(9))
    with pytest.raises(ValueError, match=r"standard frame.*0x0\.\.0x7FF.*is_extended=True"):
        CanFrame(0x800, b"")
    with pytest.raises(ValueError, match=r"extended frame.*0x0\.\.0x1FFFFFFF"):
        CanFrame(0x20000000, b"", is_extended=True)
    with pytest.raises(ValueError, match="out of range"):
        CanFrame(-1, b"")
    assert CanFrame(0x1FFFFFFF, bytearray(b"\x01"), is_extended=True).data == b"\x01"


def test_sample_record_normalises_nan_to_none_and_checks_arity() -> None:
    record = SampleRecord(1000, (math.nan,) + (1.0,) * 9)
    assert record.values[0] is None
    assert record == SampleRecord(1000, (None,) + (1.0,) * 9)
    assert math.isnan(record.to_signals()["vehicle_speed"])
    assert SampleRecord.from_signals(1000, record.to_signals()) == record
    with pytest.raises(ValueError, match="carries 10 values"):
        SampleRecord(0, (1.0,) * 9)


def test_sample_out_of_range_values_saturate_and_never_become_not_available() -> None:
    record = SampleRecord(0, (1e9, -5.0, math.inf, -math.inf, 1e9, 0.0, -1e9, 95.0, -200.0, 1e12))
    decoded = V2.decode(V2.encode(record)).record
    assert all(v is not None for v in decoded.values)
    speed, rpm, throttle, brake, coolant, _, accel, _, _, altitude = decoded.values
    assert speed == SAMPLE_FIELDS[0].value_range[1] and rpm == 0.0 and throttle == 655.34 and brake == 0.0
    assert coolant == 327.67 and accel == -32.767 and altitude == SAMPLE_FIELDS[9].value_range[1]


def test_sample_fields_follow_the_signal_order_and_lat_lon_resolution() -> None:
    assert tuple(f.name for f in SAMPLE_FIELDS) == SIGNALS
    lat, lon = SAMPLE_FIELDS[7], SAMPLE_FIELDS[8]
    assert lat.resolution == lon.resolution == 1e-7 and lat.struct_code == lon.struct_code == "i"


# --------------------------------------------------------------------------------------- codec registry


def test_get_codec_lists_valid_choices() -> None:
    assert codec_names() == ["dtg-link-v2", "raw-can-v1"]
    with pytest.raises(ValueError, match=r"^unknown link codec 'x'; expected one of: dtg-link-v2, raw-can-v1$"):
        get_codec("x")


def test_codec_capabilities() -> None:
    v1, v2 = get_codec("raw-can-v1"), get_codec("dtg-link-v2")
    assert (v1.name, v1.capabilities.max_id_bits, v1.capabilities.has_sequence, v1.capabilities.has_timestamp) == (
        "raw-can-v1", 11, False, False,
    )
    assert (v2.name, v2.capabilities.max_id_bits, v2.capabilities.has_sequence, v2.capabilities.has_timestamp) == (
        "dtg-link-v2", 29, True, True,
    )


def test_v2_encoder_numbers_frames_and_wraps() -> None:
    encoder = V2.encoder(first_seq=2**32 - 2)
    frames = [encoder.encode(CanFrame(0x7E8, bytes([i]))) for i in range(4)]
    assert [V2.decode(f).seq for f in frames] == [2**32 - 2, 2**32 - 1, 0, 1]
    decoder = V2.decoder()
    assert len(decoder.feed(b"".join(frames[:1] + frames[2:]))) == 3
    assert decoder.stats.frames_lost == 1 and decoder.stats.sequence_gaps == 1


def test_v2_sequence_reset_and_duplicate_are_not_counted_as_loss() -> None:
    frame = CanFrame(0x100, b"")
    decoder = V2.decoder()
    decoder.feed(V2.encode(frame, seq=500) + V2.encode(frame, seq=500) + V2.encode(frame, seq=0))
    assert decoder.stats.duplicate_frames == 1 and decoder.stats.sequence_resets == 1
    assert decoder.stats.frames_lost == 0


def test_v2_refuses_timestamps_it_cannot_carry() -> None:
    with pytest.raises(LinkCapabilityError, match="uint32 ms"):
        V2.encode(CanFrame(0x100, b"", timestamp_s=-0.5))
    with pytest.raises(LinkCapabilityError, match="uint32 ms"):
        V2.encode(CanFrame(0x100, b"", timestamp_s=5e6))


def test_v2_unknown_record_type_is_skipped_by_its_length() -> None:
    # a newer firmware's record type: well-formed, CRC-valid, unknown here; the next frame must still come out
    body = bytes((0x02, 0x7E, 3)) + (7).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"new"
    unknown = b"\xd7\x47" + body + zlib.crc32(body).to_bytes(4, "big")
    follower = CanFrame(0x123, b"\x01", timestamp_s=0.001)
    decoder = V2.decoder()
    assert decoder.feed(unknown + V2.encode(follower, seq=8)) == [Received(follower, 8)]
    stats = decoder.stats
    assert stats.unknown_records == 1 and stats.frames_lost == 0 and stats.bytes_skipped == 0


def test_v2_finish_releases_frames_held_behind_a_corrupted_length() -> None:
    # a corrupted type byte (unknown type, so any length is plausible) with a large length makes the decoder
    # wait for bytes that never come; finish() gives up on it and decodes the frames behind it
    frames = [V2.encode(CanFrame(0x100 + i, b"\x00"), seq=i) for i in range(3)]
    broken = bytearray(frames[0])
    broken[3], broken[4] = 0x7E, 250
    decoder = V2.decoder()
    assert decoder.feed(bytes(broken) + frames[1] + frames[2]) == []
    assert [rx.seq for rx in decoder.finish()] == [1, 2]


# ------------------------------------------------------------------------------------------- strategies

standard_frames = st.builds(CanFrame, can_id=st.integers(0, 0x7FF), data=st.binary(max_size=8))
extended_frames = st.builds(
    CanFrame, can_id=st.integers(0, 0x1FFFFFFF), data=st.binary(max_size=8), is_extended=st.just(True)
)
timestamps_s = st.none() | st.integers(0, 2**32 - 2).map(lambda ms: ms / 1000.0)
v2_can_frames = st.builds(
    lambda f, t: CanFrame(f.can_id, f.data, f.is_extended, t), standard_frames | extended_frames, timestamps_s
)


def _field_values(sample_field) -> st.SearchStrategy:
    lo, hi = sample_field.value_range
    return st.none() | st.just(math.nan) | st.floats(lo, hi, allow_nan=False, allow_infinity=False)


sample_records = st.builds(
    SampleRecord, st.integers(0, 2**32 - 2), st.tuples(*(_field_values(f) for f in SAMPLE_FIELDS))
)
counter = st.integers(0, 2**32 - 1)
status_records = st.builds(StatusRecord, st.integers(0, 2**32 - 2), counter, counter, counter, counter)
v2_records = v2_can_frames | sample_records | status_records


# -------------------------------------------------------------------------------------------- round trips


@given(standard_frames)
def test_raw_can_v1_round_trip(frame: CanFrame) -> None:
    encoded = V1.encode(frame)
    assert len(encoded) == 15 and encoded[0] == 0xAA and encoded[-1] == 0x55
    assert V1.decode(encoded) == Received(frame)
    decoder = V1.decoder()
    assert decoder.feed(encoded) == [Received(frame)]


@given(v2_can_frames | status_records, st.integers(0, 2**32 - 1))
def test_dtg_link_v2_round_trip_can_and_status(record, seq: int) -> None:
    encoded = V2.encode(record, seq=seq)
    assert V2.decode(encoded) == Received(record, seq)
    assert V2.decoder().feed(encoded) == [Received(record, seq)]


@given(sample_records, st.integers(0, 2**32 - 1))
def test_dtg_link_v2_round_trip_samples_within_half_a_step(record: SampleRecord, seq: int) -> None:
    encoded = V2.encode(record, seq=seq)
    received = V2.decode(encoded)
    assert received.seq == seq and received.record.t_ms == record.t_ms
    for sample_field, sent, got in zip(SAMPLE_FIELDS, record.values, received.record.values, strict=False):
        if sent is None:
            assert got is None, sample_field.name
        else:
            half_step = sample_field.resolution / 2 * (1 + 1e-9)
            assert got is not None and abs(got - sent) <= half_step, sample_field.name
    assert V2.encode(received.record, seq=seq) == encoded  # quantisation is idempotent


# --------------------------------------------------------------------------------- corruption properties


@dataclass(frozen=True)
class Corruption:
    kind: str  # "flip", "insert" or "delete"
    position: int  # in the clean stream
    argument: int | bytes  # bit index, inserted bytes, or number of deleted bytes


marker_heavy_bytes = st.binary(min_size=1, max_size=6) | st.lists(
    st.sampled_from([0xAA, 0x55, 0xD7, 0x47, 0x02]), min_size=1, max_size=6
).map(bytes)


@st.composite
def corruptions(draw, stream_length: int) -> list[Corruption]:
    ops = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        if kind == "flip":
            ops.append(Corruption(kind, draw(st.integers(0, stream_length - 1)), draw(st.integers(0, 7))))
        elif kind == "insert":
            ops.append(Corruption(kind, draw(st.integers(0, stream_length)), draw(marker_heavy_bytes)))
        else:
            ops.append(Corruption(kind, draw(st.integers(0, stream_length - 1)), draw(st.integers(1, 20))))
    return ops


def _corrupt(frames: list[bytes], ops: list[Corruption]) -> tuple[bytes, set[int]]:
    """The corrupted stream and the indices of the frames a corruption landed on.

    All positions are clean-stream positions, applied in one pass, so overlapping corruptions compose
    (a flipped byte may also be deleted; bytes may be inserted into a deleted run).
    """
    clean = b"".join(frames)
    frame_of: list[int] = [i for i, frame in enumerate(frames) for _ in frame]
    frame_starts = {sum(map(len, frames[:i])) for i in range(len(frames))}
    flips = [0] * len(clean)
    deleted = [False] * len(clean)
    inserts: dict[int, bytes] = {}
    touched: set[int] = set()
    for op in ops:
        if op.kind == "flip":
            flips[op.position] ^= 1 << op.argument
            touched.add(frame_of[op.position])
        elif op.kind == "insert":
            inserts[op.position] = inserts.get(op.position, b"") + op.argument
            if op.position < len(clean) and op.position not in frame_starts:
                touched.add(frame_of[op.position])  # inside a frame; on a boundary it touches none
        else:
            for position in range(op.position, min(op.position + op.argument, len(clean))):
                deleted[position] = True
                touched.add(frame_of[position])
    stream = bytearray()
    for position in range(len(clean) + 1):
        stream += inserts.get(position, b"")
        if position < len(clean) and not deleted[position]:
            stream.append(clean[position] ^ flips[position])
    return bytes(stream), touched


def _chunks(stream: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(stream):
        size = sizes[i % len(sizes)]
        out.append(stream[pos : pos + size])
        pos, i = pos + size, i + 1
    return out


def _feed_all(decoder, chunks: list[bytes]) -> list[Received]:
    got: list[Received] = []
    for chunk in chunks:
        got.extend(decoder.feed(chunk))
    got.extend(decoder.finish())
    return got


chunk_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=8)


@STREAM_SETTINGS
@given(
    st.lists(standard_frames, min_size=1, max_size=25, unique_by=lambda f: (f.can_id, f.data)),
    st.data(),
    chunk_sizes,
)
def test_raw_can_v1_decoder_resyncs_after_corruption(frames: list[CanFrame], data, sizes: list[int]) -> None:
    encoded = [V1.encode(f) for f in frames]
    ops = data.draw(corruptions(sum(map(len, encoded))))
    stream, touched = _corrupt(encoded, ops)
    decoder = V1.decoder()
    got = _feed_all(decoder, _chunks(stream, sizes))  # must not raise

    # only frames that were sent, in the order they were sent (frames are unique, so the index is exact)
    index_of = {f: i for i, f in enumerate(frames)}
    assert all(rx.record in index_of and rx.seq is None for rx in got)
    indices = [index_of[rx.record] for rx in got]
    assert indices == sorted(set(indices))

    lost_untouched = set(range(len(frames))) - touched - set(indices)
    assert len(lost_untouched) <= len(ops)  # the contract: resync within one frame per corruption
    assert not lost_untouched  # what this decoder achieves: rejected bytes are rescanned, nothing else is lost

    stats = decoder.stats
    assert stats.frames_decoded == len(got) and stats.frames_lost is None
    assert stats.bytes_skipped + 15 * (stats.frames_decoded + stats.malformed_frames) == len(stream)
    if not ops:
        assert indices == list(range(len(frames))) and stats.bytes_skipped == stats.crc_errors == 0


@STREAM_SETTINGS
@given(
    st.lists(v2_records, min_size=1, max_size=25),
    st.integers(0, 2**32 - 1) | st.integers(2**32 - 30, 2**32 - 1),  # often wraps within the stream
    st.data(),
    chunk_sizes,
)
def test_dtg_link_v2_decoder_resyncs_and_counts_loss(
    records: list, first_seq: int, data, sizes: list[int]
) -> None:
    encoder = V2.encoder(first_seq)
    encoded = [encoder.encode(r) for r in records]
    sent_by_seq = {(first_seq + i) % 2**32: (i, V2.decode(frame).record) for i, frame in enumerate(encoded)}
    ops = data.draw(corruptions(sum(map(len, encoded))))
    stream, touched = _corrupt(encoded, ops)
    chunks = _chunks(stream, sizes)
    decoder, told_start = V2.decoder(), V2.decoder(first_seq=first_seq)
    got = _feed_all(decoder, chunks)  # must not raise
    assert _feed_all(told_start, chunks) == got

    # only frames that were sent, exactly as sent, in order
    assert all(rx.seq in sent_by_seq and sent_by_seq[rx.seq][1] == rx.record for rx in got)
    indices = [sent_by_seq[rx.seq][0] for rx in got]
    assert indices == sorted(set(indices))

    lost_untouched = set(range(len(records))) - touched - set(indices)
    assert len(lost_untouched) <= len(ops)  # the contract: resync within one frame per corruption
    assert not lost_untouched  # what this decoder achieves

    # loss ground truth: sent frames missing before the last one received; losses after it are invisible
    received = set(indices)
    if indices:
        lost_between = sum(1 for i in range(indices[0], indices[-1]) if i not in received)
        lost_from_start = sum(1 for i in range(0, indices[-1]) if i not in received)
    else:
        lost_between = lost_from_start = 0
    assert decoder.stats.frames_lost == lost_between
    assert told_start.stats.frames_lost == lost_from_start
    assert decoder.stats.sequence_resets == decoder.stats.duplicate_frames == 0
    assert decoder.stats.frames_decoded == len(got)
    if not ops:
        assert indices == list(range(len(records)))
        assert decoder.stats.bytes_skipped == decoder.stats.crc_errors == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), chunk_sizes)
def test_decoders_never_raise_on_noise(noise: bytes, sizes: list[int]) -> None:
    for codec in (V1, V2):
        decoder = codec.decoder()
        got = _feed_all(decoder, _chunks(noise, sizes))
        assert decoder.stats.frames_decoded == len(got)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from([b"\xaa", b"\x55", b"\xd7\x47\x02", b"\xd7", b"\x00", b"\xff"]), max_size=200),
    chunk_sizes,
)
def test_decoders_never_raise_on_marker_soup(pieces: list[bytes], sizes: list[int]) -> None:
    stream = b"".join(pieces)
    for codec in (V1, V2):
        decoder = codec.decoder()
        _feed_all(decoder, _chunks(stream, sizes))
        assert decoder.stats.bytes_skipped <= len(stream)
