"""The GNSS feed: NMEA builders and strict parser (published vectors, round trips, a fuzzer), the feed and reader
over a pty, and the baud-rate capacity check.

Known-good sentences are published ones, quoted with their source; their checksums are the publishers'.
Each test that runs threads or hypothesis has a wall-clock limit (`support.time_limit`).
"""
from __future__ import annotations

import math
import string
from datetime import date, datetime, time, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import time_limit

from firmware_sim.uart import PtyPair
from harness.core.clock import ScenarioClock
from harness.rig.gnss_feed import NmeaCapacityError, NmeaFeed, epoch_bytes_max, line_load, trace_position_source
from harness.wire.nmea import (
    KMH_PER_KNOT,
    NMEA_MAX_SENTENCE_CHARS,
    as_received_nmea,
    gga_sentence,
    nmea_checksum,
    rmc_sentence,
    scenario_utc,
)
from harness.wire.nmea_parser import NmeaError, NmeaStream, parse_sentence
from harness.wire.nmea_reader import GnssError, NmeaReader
from harness.wire.signals import PLANT_RATE_HZ, Trace

START_UTC = datetime(2024, 5, 1, 23, 59, 50, tzinfo=timezone.utc)  # the feed crosses midnight after 10 s


def _resign(sentence: str) -> str:
    """`sentence` with its checksum recomputed (to corrupt a field and still pass the checksum)."""
    body = sentence[1:sentence.rindex("*")]
    return f"${body}*{nmea_checksum(body)}"


def _with_field(sentence: str, index: int, value: str) -> str:
    """`sentence` with data field `index` (1 = the first after the address) replaced, checksum recomputed."""
    body = sentence[1:sentence.rindex("*")].split(",")
    body[index] = value
    return _resign("$" + ",".join(body) + "*00")


# ---------------------------------------------------------------------------------------- published vectors

# (sentence, source). Every checksum here is the publisher's, not ours.
PUBLISHED = [
    # The GGA example of gpsd's "NMEA 0183 sentences" notes (after Dale DePriest), quoted by most NMEA guides.
    ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", "gpsd NMEA notes"),
    # u-blox 8 / M8 receiver description (UBX-13003221), NMEA GGA and RMC examples, and the no-fix forms.
    ("$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B", "u-blox M8 GGA"),
    ("$GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A*57", "u-blox M8 RMC"),
    ("$GPGGA,,,,,,0,00,99.99,,,,,,*48", "u-blox M8 GGA, no fix"),
    ("$GPRMC,,V,,,,,,,,,,N*53", "u-blox M8 RMC, no fix"),
    # A u-blox 6 capture from the README of the Elixir nmea package (hex.pm).
    ("$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76", "u-blox 6 via hex.pm nmea"),
    ("$GPRMC,092750.000,A,5321.6802,N,00630.3372,W,0.02,31.66,280511,,,A*43", "u-blox 6 via hex.pm nmea"),
    # MicroNMEA's test sentences (stevemarple/MicroNMEA extras/test/nmea_sentences.txt).
    ("$GPGGA,111309.00,5400.6000,N,00247.1000,W,1,16,00.7,042.2,M,49.1,M,,*4A", "MicroNMEA"),
    ("$GPRMC,111309.00,A,5400.6000,N,00247.1000,W,00.00,302.5,140915,,,A*4C", "MicroNMEA"),
    ("$GPRMC,194812.00,V,,,,,,,290317,,,N*74", "MicroNMEA, invalid fix"),
]


@pytest.mark.parametrize("sentence, source", PUBLISHED)
def test_checksum_of_published_sentences(sentence: str, source: str) -> None:
    body, checksum = sentence[1:].split("*")
    assert nmea_checksum(body) == checksum, source
    parse_sentence(sentence)
    parse_sentence((sentence + "\r\n").encode("ascii"))


def test_as_received_nmea_rounds_a_single_float_as_it_rounds_an_array() -> None:
    # The simulated unit's once-a-second position takes a float path; training data takes numpy's: bit for bit the
    # same, halves (round half to even), negative zeros, NaN and infinities included.
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.uniform(-180.0, 180.0, 5000), rng.uniform(-1e-4, 1e-4, 1000),
                             (np.arange(-500, 500) + 0.5) / 60_000.0, (np.arange(-500, 500) + 0.5) / 10.0,
                             [0.0, -0.0, -1e-9, math.nan, math.inf, -math.inf, 1e300]])
    for name in ("latitude", "longitude", "altitude"):
        by_array = as_received_nmea({name: values})[name]
        by_float = np.array([as_received_nmea({name: float(v)})[name] for v in values])
        assert by_array.tobytes() == by_float.tobytes(), name

def test_checksum_of_the_nmea_specification_examples() -> None:
    # GLL and VTG examples from the NMEA 0183 standard, quoted in swift-nav/swiftnav-rs PR #137.
    assert nmea_checksum("GPGLL,5057.970,N,00146.110,E,142451,A") == "27"
    assert nmea_checksum("GPVTG,089.0,T,,,15.2,N,,") == "7F"


def test_published_gga_fields() -> None:
    fix = parse_sentence("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47")
    assert (fix.talker, fix.sentence_type, fix.valid) == ("GP", "GGA", True)
    assert fix.time_utc == time(12, 35, 19)
    assert fix.latitude_deg == pytest.approx(48 + 7.038 / 60, abs=1e-12)
    assert fix.longitude_deg == pytest.approx(11 + 31.0 / 60, abs=1e-12)
    assert (fix.fix_quality, fix.satellites, fix.hdop) == (1, 8, 0.9)
    assert (fix.altitude_m, fix.geoid_separation_m) == (545.4, 46.9)


def test_published_rmc_fields_west_and_date() -> None:
    fix = parse_sentence("$GPRMC,092750.000,A,5321.6802,N,00630.3372,W,0.02,31.66,280511,,,A*43")
    assert fix.longitude_deg == pytest.approx(-(6 + 30.3372 / 60), abs=1e-12)
    assert fix.datetime_utc == datetime(2011, 5, 28, 9, 27, 50, tzinfo=timezone.utc)
    assert (fix.speed_knots, fix.course_deg, fix.mode) == (0.02, 31.66, "A")
    assert fix.speed_kmh == pytest.approx(0.02 * 1.852)


def test_no_fix_sentences_parse_as_invalid_without_position() -> None:
    gga = parse_sentence("$GPGGA,,,,,,0,00,99.99,,,,,,*48")
    rmc = parse_sentence("$GPRMC,194812.00,V,,,,,,,290317,,,N*74")
    assert not gga.valid and gga.latitude_deg is None and gga.altitude_m is None and gga.time_utc is None
    assert not rmc.valid and rmc.latitude_deg is None and rmc.date_utc == date(2017, 3, 29)


# ----------------------------------------------------------------------------------------------- round trip


def _round_trip(latitude: float, longitude: float, altitude: float, speed_kmh: float, course: float, t_s: float,
                talker: str = "GN") -> None:
    moment = scenario_utc(START_UTC, t_s)
    gga = parse_sentence(gga_sentence(moment, latitude, longitude, altitude, talker=talker))
    rmc = parse_sentence(rmc_sentence(moment, latitude, longitude, speed_kmh, course, talker=talker))
    for fix in (gga, rmc):
        assert fix.valid and fix.talker == talker
        assert abs(fix.latitude_deg - latitude) <= 1e-6
        assert abs(fix.longitude_deg - longitude) <= 1e-6
        assert fix.time_utc == moment.time()
    assert abs(gga.altitude_m - altitude) <= 0.05 + 1e-9
    assert rmc.datetime_utc == moment
    assert abs(rmc.speed_kmh - speed_kmh) <= 0.0005 * KMH_PER_KNOT + 1e-9
    course_error = abs(rmc.course_deg - course % 360.0)
    assert min(course_error, 360.0 - course_error) <= 0.005 + 1e-9


@pytest.mark.parametrize("latitude, longitude", [
    (0.0, 0.0), (90.0, 180.0), (-90.0, -180.0), (37.5665, 126.978), (-33.8688, 151.2093), (51.4779, -0.0015),
    (47.99999999, -8.999999999),  # minutes that round up to 60 carry into the degrees
    (-1e-9, 1e-9),  # a hair south of the equator
])
def test_round_trip_edges(latitude: float, longitude: float) -> None:
    _round_trip(latitude, longitude, 100.0, 87.0, 359.999, 3.0)


@settings(max_examples=300, deadline=None)
@given(
    latitude=st.floats(-90.0, 90.0),
    longitude=st.floats(-180.0, 180.0),
    altitude=st.floats(-450.0, 5000.0),
    speed_kmh=st.floats(0.0, 200.0),
    course=st.floats(0.0, 720.0),
    t_s=st.floats(0.0, 10 * 24 * 3600.0),
    talker=st.sampled_from(["GP", "GN"]),
)
@time_limit(30)
def test_round_trip_builder_to_parser(latitude: float, longitude: float, altitude: float, speed_kmh: float,
                                      course: float, t_s: float, talker: str) -> None:
    _round_trip(latitude, longitude, altitude, speed_kmh, course, t_s, talker)


def test_sentences_stay_within_the_nmea_length_limit() -> None:
    for decimals in range(1, 6):
        assert epoch_bytes_max("GN", decimals) <= 2 * NMEA_MAX_SENTENCE_CHARS


def test_scenario_time_crosses_midnight_and_rounds_to_centiseconds() -> None:
    assert scenario_utc(START_UTC, 10.0) == datetime(2024, 5, 2, 0, 0, 0, tzinfo=timezone.utc)
    assert scenario_utc(datetime(2024, 5, 1, 12, 0, 0), 0.123456).microsecond == 120000  # naive = UTC
    line = rmc_sentence(scenario_utc(START_UTC, 10.0), 37.5, 127.0, 0.0, 0.0)
    assert ",000000.00,A," in line and ",020524," in line


def test_builders_refuse_what_nmea_cannot_say() -> None:
    moment = scenario_utc(START_UTC, 0.0)
    with pytest.raises(ValueError, match="latitude"):
        gga_sentence(moment, 91.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="longitude"):
        rmc_sentence(moment, 0.0, math.nan, 0.0, 0.0)
    with pytest.raises(ValueError, match="speed_kmh"):
        rmc_sentence(moment, 0.0, 0.0, -1.0, 0.0)
    with pytest.raises(ValueError, match="talker"):
        gga_sentence(moment, 0.0, 0.0, 0.0, talker="GL")
    with pytest.raises(ValueError, match="minute_decimals"):
        gga_sentence(moment, 0.0, 0.0, 0.0, minute_decimals=7)


# --------------------------------------------------------------------------------------- strict rejections

GOOD_GGA = gga_sentence(datetime(2024, 5, 1, 12, 35, 19), 48.1173, 11.516667, 545.4)
GOOD_RMC = rmc_sentence(datetime(2024, 5, 1, 12, 35, 19), 48.1173, 11.516667, 50.0, 77.5)


@pytest.mark.parametrize("line, field, form", [
    (GOOD_GGA[:-2] + "00", "checksum", "expected *"),
    (GOOD_GGA[:-3], "checksum", "'*hh'"),
    (GOOD_GGA.replace("4807.0380", "4807.0381"), "checksum", "does not match"),
    (GOOD_GGA[:-2] + GOOD_GGA[-2:].lower() if GOOD_GGA[-2:].lower() != GOOD_GGA[-2:] else GOOD_GGA[:-2] + "zz",
     "checksum", "upper-case hex"),
    ("GPGGA,1*00", "sentence", "start with '$'"),
    (_resign("$GLGGA,,,,,,0,00,99.99,,,,,,*00"), "talker", "GP, GN"),
    (_resign("$GPGSV,1,1,00*00"), "sentence type", "GGA, RMC"),
    (_resign("$GPGGA,1,2,3*00"), "field count", "expected 14"),
    (_resign("$GPRMC,1,2,3*00"), "field count", "11, 12, 13"),
    (_with_field(GOOD_GGA, 1, "246000.00"), "time", "hh 00-23"),
    (_with_field(GOOD_GGA, 2, "4860.0000"), "latitude", "ddmm.mmmm"),
    (_with_field(GOOD_GGA, 2, "9100.0000"), "latitude", "degrees 0-90"),
    (_with_field(GOOD_GGA, 2, "48O7.0380"), "latitude", "ddmm.mmmm"),
    (_with_field(GOOD_GGA, 3, "X"), "north/south", "N, S"),
    (_with_field(GOOD_GGA, 4, "1131.0000"), "longitude", "dddmm.mmmm"),
    (_with_field(GOOD_GGA, 5, "N"), "east/west", "E, W"),
    (_with_field(GOOD_GGA, 6, "9"), "fix quality", "0, 1, 2"),
    (_with_field(GOOD_GGA, 7, "100"), "satellites", "0-99"),
    (_with_field(GOOD_GGA, 8, "-1"), "hdop", "[0, 99.99]"),
    (_with_field(GOOD_GGA, 9, "1e3"), "altitude", "decimal number"),
    (_with_field(GOOD_GGA, 9, "60000.0"), "altitude", "[-1000, 50000]"),
    (_with_field(GOOD_GGA, 9, ""), "altitude", "fix quality 1"),
    (_with_field(GOOD_GGA, 10, "F"), "altitude unit", "M (metres)"),
    (_with_field(GOOD_GGA, 14, "2000"), "dgps station", "0000-1023"),
    (_with_field(GOOD_RMC, 2, "X"), "status", "A, V"),
    (_with_field(GOOD_RMC, 7, "nan"), "speed over ground", "knots"),
    (_with_field(GOOD_RMC, 8, "360.00"), "course over ground", "[0, 360)"),
    (_with_field(GOOD_RMC, 9, "310224"), "date", "ddmmyy"),  # 31 February
    (_with_field(GOOD_RMC, 9, ""), "date", "status A"),
    (_with_field(GOOD_RMC, 10, "3.1"), "magnetic variation direction", "E or W"),
    (_with_field(GOOD_RMC, 12, "Q"), "mode", "A, D, E"),
    (_resign(GOOD_RMC.replace("$", "$$", 1)), "sentence", "reserved"),
    ("$GPGGA" + "," * 90 + "*00", "sentence", "at most 82"),
    (GOOD_GGA + "\r\n\r\n", "sentence", "printable ASCII"),
    (GOOD_GGA.encode() + b"\xff", "sentence", "non-ASCII"),
    ("$GPGGA,\u0663\u0663*00", "sentence", "printable ASCII"),
    (12345, "sentence", "str or bytes"),
])
def test_rejections_name_the_field_and_the_valid_form(line: object, field: str, form: str) -> None:
    with pytest.raises(NmeaError) as raised:
        parse_sentence(line)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert form in str(raised.value)
    assert isinstance(raised.value, ValueError)


# ------------------------------------------------------------------------------------------------- fuzzing

_NMEA_ALPHABET = string.ascii_uppercase + string.digits + ".,-*$" + "NSEWAVM "


def _signed(address: str, fields: list[str]) -> str:
    body = ",".join([address, *fields])
    return f"${body}*{nmea_checksum(body)}"


_near_valid = st.builds(
    _signed,
    st.sampled_from(["GPGGA", "GNGGA", "GPRMC", "GNRMC", "GPGSV", "GLGGA", "GPGG", "GPRMCX"]),
    st.lists(st.text(alphabet=_NMEA_ALPHABET, max_size=12), min_size=0, max_size=16),
)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A valid sentence with one field replaced by something else, re-signed so the checksum passes."""
    sentence = draw(st.sampled_from([GOOD_GGA, GOOD_RMC] + [s for s, _ in PUBLISHED]))
    n_fields = sentence.count(",")
    index = draw(st.integers(1, n_fields))
    value = draw(st.text(alphabet=_NMEA_ALPHABET.replace("*", "").replace("$", "").replace(",", ""), max_size=12)
                 | st.sampled_from(["", "0", "-0", "60", "9999", "99.99", "360", "1e5", "inf", "nan", "00.", ".5"]))
    return _with_field(sentence, index, value)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120), _near_valid, _mutated(),
                 _near_valid.map(str.encode), _mutated().map(lambda s: s + "\r\n")))
@time_limit(60)
def test_parser_raises_nothing_but_nmea_error(line: str | bytes) -> None:
    try:
        fix = parse_sentence(line)
    except NmeaError as error:
        assert error.field and str(error).startswith(error.field)
    else:
        assert fix.sentence_type in ("GGA", "RMC")


# ---------------------------------------------------------------------------------------------- the stream


def test_stream_counts_what_it_rejects() -> None:
    stream = NmeaStream()
    data = (
        GOOD_RMC + "\r\n" + GOOD_GGA[:-2] + "00\r\n" + "$GPGSV,1,1,00*79\r\n" + "garbage\r\n\r\n"
        + "x" * 400 + "\r\n" + GOOD_GGA + "\r\n"
    ).encode()
    fixes = [fix for i in range(0, len(data), 7) for fix in stream.feed(data[i:i + 7])]  # any chunking works
    assert [f.sentence_type for f in fixes] == ["RMC", "GGA"]
    stats = stream.stats
    assert (stats.lines, stats.fixes, stats.bad_checksum, stats.unsupported, stats.malformed) == (6, 2, 1, 1, 2)
    assert stats.bytes_read == len(data)


# ------------------------------------------------------------------------------------------ feed and reader


def _source(t_s: float) -> tuple[float, float, float, float, float]:
    return (37.5 + 1e-4 * t_s, 127.0 - 1e-4 * t_s, 100.0 + 0.5 * t_s, 36.0 + t_s, (10.0 * t_s) % 360.0)


@time_limit(10)
def test_feed_over_a_pty_gives_one_gga_and_one_rmc_per_scenario_second() -> None:
    duration_s = 30
    with PtyPair() as pty:
        reader = NmeaReader(pty.open_serial()).start()
        clock = ScenarioClock(time_scale=100.0)
        feed = NmeaFeed(pty.device, _source, clock, start_utc=START_UTC, end_s=duration_s, first_epoch_s=0.0,
                        baudrate=9600)
        with feed:
            assert feed.wait(timeout_s=duration_s / clock.time_scale + 5.0)
        assert feed.stats.epochs == duration_s and feed.stats.epochs_skipped == 0
        assert reader.wait_for_lines(feed.stats.sentences_written, timeout_s=5.0), reader.stats
        reader.stop()
    stats = reader.stats
    assert stats.fixes == 2 * duration_s and stats.lines == stats.fixes, reader.last_error
    assert stats.bytes_read == feed.stats.bytes_written
    fixes = reader.fixes
    for kind in ("GGA", "RMC"):
        times = [f.time_utc for f in fixes if f.sentence_type == kind]
        assert times == [scenario_utc(START_UTC, t).time() for t in range(duration_s)], kind
    for fix in fixes:
        t_s = round((datetime.combine(START_UTC.date(), fix.time_utc, tzinfo=timezone.utc) - START_UTC)
                    .total_seconds()) % 86400
        latitude, longitude, altitude, speed_kmh, course = _source(t_s)
        assert abs(fix.latitude_deg - latitude) <= 1e-6 and abs(fix.longitude_deg - longitude) <= 1e-6
        if fix.sentence_type == "GGA":
            assert abs(fix.altitude_m - altitude) <= 0.05 + 1e-9
        else:
            assert fix.datetime_utc == scenario_utc(START_UTC, t_s)
            assert abs(fix.speed_kmh - speed_kmh) <= 0.001
            assert abs(fix.course_deg - course) <= 0.005 + 1e-9


@time_limit(10)
def test_feed_at_10_hz_opens_a_path_and_stops_promptly() -> None:
    with PtyPair() as pty:
        clock = ScenarioClock(time_scale=100.0)
        feed = NmeaFeed(pty.port, _source, clock, start_utc=START_UTC, rate_hz=10, baudrate=115200,
                        first_epoch_s=0.0)
        stream = NmeaStream()
        fixes = []
        with feed:
            while clock.now_s() < 5.0:
                fixes += stream.feed(pty.read_device(timeout_s=0.01))
        assert feed.wait(timeout_s=0.0)
        fixes += stream.feed(pty.read_device(timeout_s=0.05))
        assert stream.stats.malformed == stream.stats.bad_checksum == 0
        gga_times = [f.time_utc for f in fixes if f.sentence_type == "GGA"]
        assert gga_times[:11] == [scenario_utc(START_UTC, k / 10).time() for k in range(11)]
        with pytest.raises(GnssError, match="cannot be restarted"):
            feed.start()


def _moving_trace(duration_s: float = 20.0) -> Trace:
    t_s = np.arange(0.0, duration_s, 1.0 / PLANT_RATE_HZ)
    speed = np.where(t_s < 5.0, 0.0, 36.0)  # stands still for 5 s, then 10 m/s due east
    east_m = np.cumsum(speed / 3.6 / PLANT_RATE_HZ)
    latitude = np.full_like(t_s, 37.5)
    longitude = 127.0 + np.degrees(east_m / (6_371_000.0 * math.cos(math.radians(37.5))))
    altitude = np.full_like(t_s, 50.0)
    signals = {"vehicle_speed": speed, "latitude": latitude.copy(), "longitude": longitude, "altitude": altitude}
    signals["latitude"][(t_s >= 12.0) & (t_s < 14.0)] = np.nan  # a dropout on the position reading
    truth = {"vehicle_speed": speed, "latitude": latitude, "longitude": longitude, "altitude": altitude}
    return Trace(t_s=t_s, signals=signals, truth=truth, aux={})


def test_trace_source_reads_position_from_readings_and_course_from_the_track() -> None:
    trace = _moving_trace()
    source = trace_position_source(trace)
    assert source(2.0).course_deg == pytest.approx(90.0)  # held at the first course while standing still
    moving = source(8.0)
    assert moving.course_deg == pytest.approx(90.0, abs=1e-6) and moving.speed_kmh == 36.0
    assert math.isnan(source(13.0).latitude_deg)
    with PtyPair() as pty:
        feed = NmeaFeed(pty.device, trace, ScenarioClock(), start_utc=START_UTC)
        rmc, gga = feed.epoch_sentences(13.0)
        assert not parse_sentence(rmc).valid and not parse_sentence(gga).valid
        rmc, gga = feed.epoch_sentences(8.0)
        assert parse_sentence(rmc).course_deg == 90.0 and parse_sentence(gga).valid


# ----------------------------------------------------------------------------------------- line capacity


def test_line_capacity_check() -> None:
    epoch_bytes = epoch_bytes_max()
    assert 140 <= epoch_bytes <= 160  # an RMC and a GGA of about 75 characters each
    assert line_load(9600, 1, epoch_bytes) < 0.2  # a u-blox default: 1 Hz at 9600 baud
    assert line_load(9600, 5, epoch_bytes) < 1.0
    assert line_load(9600, 10, epoch_bytes) > 1.0
    clock = ScenarioClock()
    with PtyPair() as pty:
        with pytest.raises(NmeaCapacityError, match=r"9600 baud 8N1 carries 960 bytes/s.*baudrate >= 19200.*\{1, 5\}"):
            NmeaFeed(pty.device, _source, clock, start_utc=START_UTC, rate_hz=10, baudrate=9600)
        with pytest.warns(RuntimeWarning, match="bytes/s"):
            NmeaFeed(pty.device, _source, clock, start_utc=START_UTC, rate_hz=10, baudrate=9600, on_overload="warn")
        assert NmeaFeed(pty.device, _source, clock, start_utc=START_UTC, rate_hz=10, baudrate=19200).line_load < 1.0
        # A pyserial port brings its own baud rate.
        assert NmeaFeed(pty.open_serial(), _source, clock, start_utc=START_UTC, rate_hz=10).baudrate == 921600
        with pytest.raises(ValueError, match="rate_hz must be one of: 1, 5, 10"):
            NmeaFeed(pty.device, _source, clock, start_utc=START_UTC, rate_hz=2)
