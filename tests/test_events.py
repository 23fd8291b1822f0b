"""Tests for harness.wire.events: the EdgeAI logcat contract.

Round trips (format → parse, for every kind, through whole lines and through a collector fed in random
chunks), real-looking logcat with other tags interleaved, every kind of malformed payload reported with its
reason (never raised, never dropped), seq-based loss counting, the examples in docs/events.md, and a 100k-line
stream.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.wire.events import (
    BEHAVIOUR_CLASSES,
    EVENT_KINDS,
    FEATURE_COUNT,
    RULE_EVENT_TYPES,
    AnomalyResult,
    AppStatus,
    BehaviourResult,
    EventCollector,
    EventFormatError,
    FeatureDebug,
    FuelResult,
    ModelRef,
    ParseProblem,
    RuleEvent,
    event_to_json,
    format_event_line,
    main,
    parse_event_line,
)
from harness.wire.signals import SIGNALS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "events.md"
WALL = datetime(2024, 1, 15, 10, 23, 45, 123000)
MODEL = ModelRef("anomaly", "3fa9c1d2e4b5", "1.0.0")


# --- strategies ----------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
t_values = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
durations_ms = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
counts = st.integers(min_value=0, max_value=2**40)
seqs = st.none() | st.integers(min_value=0, max_value=2**31)
models = st.builds(ModelRef, st.text(min_size=1, max_size=20),
                   st.text(alphabet="0123456789abcdef", min_size=8, max_size=64),
                   st.none() | st.text(max_size=12))


def _n_floats(n: int) -> st.SearchStrategy:
    return st.lists(finite, min_size=n, max_size=n).map(tuple)


@st.composite
def behaviour_results(draw: st.DrawFn) -> BehaviourResult:
    label = draw(st.integers(0, len(BEHAVIOUR_CLASSES) - 1))
    return BehaviourResult(draw(t_values), draw(durations_ms), draw(models), label, BEHAVIOUR_CLASSES[label],
                           draw(_n_floats(len(BEHAVIOUR_CLASSES))), draw(seqs))


events_strategy = st.one_of(
    st.builds(AnomalyResult, t_values, durations_ms, models, finite, finite, st.booleans(),
              st.none() | _n_floats(len(SIGNALS)), seqs),
    st.builds(FuelResult, t_values, durations_ms, models, finite, seqs),
    behaviour_results(),
    st.builds(RuleEvent, t_values, st.sampled_from(RULE_EVENT_TYPES), finite, finite,
              st.none() | st.sampled_from(SIGNALS), seqs),
    st.builds(FeatureDebug, t_values, durations_ms, t_values, _n_floats(FEATURE_COUNT), st.none() | counts, seqs),
    st.builds(AppStatus, st.none() | t_values, counts, counts,
              st.dictionaries(st.sampled_from(["frames_decoded", "crc_errors", "bytes_skipped", "frames_lost"]),
                              counts), seqs),
)


# --- round trips ---------------------------------------------------------------------------------------------

@given(event=events_strategy, pid=st.integers(1, 99999), tid=st.integers(1, 99999))
def test_format_then_parse_is_identity_for_every_kind(event, pid, tid):
    line = format_event_line(event, pid=pid, tid=tid, wall_time=WALL)
    assert "\n" not in line
    assert parse_event_line(line) == event
    # -v brief carries the same payload.
    assert parse_event_line(f"I/EdgeAI({pid:5d}): {event_to_json(event)}") == event


def test_round_trip_covers_every_kind():
    seen = set()

    @given(events_strategy)
    @settings(max_examples=200)
    def collect(event):
        seen.add(event.kind)

    collect()
    assert seen == set(EVENT_KINDS)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=50)
@given(events=st.lists(events_strategy, min_size=1, max_size=20), data=st.data())
def test_collector_reassembles_lines_split_anywhere(events, data):
    text = "".join(format_event_line(e, pid=4321, tid=4350, wall_time=WALL) + "\r\n" for e in events).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    collector = EventCollector(clock=lambda: 42.0)
    for lo, hi in zip([0] + cuts, cuts + [len(text)], strict=False):
        collector.feed(text[lo:hi])
    collector.flush()
    assert collector.events == events
    assert collector.problems == []
    assert all(r.received_wall_s == 42.0 for r in collector.received)


def test_numpy_scalars_are_written_as_plain_json_numbers():
    event = AnomalyResult(np.float64(60.0), np.float32(2.5), MODEL, np.float32(0.25), np.float64(0.2),
                          np.bool_(True), tuple(np.arange(10, dtype=np.float32)))
    parsed = parse_event_line(format_event_line(event, pid=1, tid=1, wall_time=WALL))
    assert parsed == event
    assert type(parsed.alarm) is bool and type(parsed.score) is float


def test_format_matches_logcat_threadtime_exactly():
    line = format_event_line(RuleEvent(514.0, "harsh_braking", -4.6, -3.0), pid=4321, tid=4350, wall_time=WALL)
    assert line == ('01-15 10:23:45.123  4321  4350 I EdgeAI  : '
                    '{"v":1,"kind":"event","t":514.0,"type":"harsh_braking","value":-4.6,"limit":-3.0}')


@pytest.mark.parametrize("event, reason", [
    (AnomalyResult(60.0, 1.0, MODEL, float("nan"), 0.1, False), "field 'score': expected a finite number"),
    (AnomalyResult(60.0, 1.0, MODEL, 0.1, 0.1, False, (0.0,) * 9), "expected 10 numbers"),
    (BehaviourResult(60.0, 1.0, MODEL, 1, "aggressive", (0.1, 0.2, 0.7)), "contradicts label 1"),
    (RuleEvent(60.0, "overheat", 120.0, 110.0), "unknown rule event type 'overheat'; expected one of: harsh_braking"),
    (FuelResult(60.0, -1.0, MODEL, 5.0), "field 'infer_ms': expected a duration >= 0"),
    (FuelResult(60.0, 1.0, ModelRef("fuel", "XYZ"), 5.0), "field 'model.sha256'"),
    (FeatureDebug(60.0, 1.0, 1.0, (0.0,) * 200), "expected 18 numbers"),
])
def test_format_refuses_what_the_parser_would_reject(event, reason):
    with pytest.raises(EventFormatError, match=re.escape(reason)):
        format_event_line(event, pid=1, tid=1, wall_time=WALL)


def test_format_refuses_what_is_not_an_event():
    with pytest.raises(EventFormatError, match="not an event: dict; expected one of: AnomalyResult"):
        format_event_line({"kind": "fuel"}, pid=1, tid=1, wall_time=WALL)
    with pytest.raises(EventFormatError, match="fuel: cannot write"):
        format_event_line(FuelResult(1.0, 1.0, None, 5.0), pid=1, tid=1, wall_time=WALL)


def test_format_refuses_payloads_logcat_would_truncate():
    status = AppStatus(1.0, 0, 0, {f"counter_{i:04d}": i for i in range(300)})
    with pytest.raises(EventFormatError, match="logcat truncates"):
        format_event_line(status, pid=1, tid=1, wall_time=WALL)


# --- real-looking logcat -------------------------------------------------------------------------------------

REAL_LOG = (
    '--------- beginning of main\n'
    '01-15 10:23:44.870   612   612 I ActivityManager: Start proc 4321:com.example.dtg/u0a123 for '
    'service {com.example.dtg/com.example.dtg.EdgeAIService}\n'
    '01-15 10:23:45.001  4321  4321 D EdgeAIService: binding UART /dev/ttyS1 at 921600\n'
    '01-15 10:23:45.110  4321  4350 I EdgeAI  : {"v":1,"kind":"status","seq":0,"t":null,'
    '"samples_received":0,"windows_scored":0}\n'
    '01-15 10:23:45.111  1203  1290 W chatty  : uid=10123(com.example.dtg) EdgeAI identical 2 lines\n'
    '--------- beginning of system\n'
    '01-15 10:23:45.123  4321  4350 I EdgeAI  : {"v":1,"kind":"anomaly","seq":1,"t":59.0,"infer_ms":7.9,'
    '"model":{"name":"anomaly","sha256":"3fa9c1d2e4b5"},"score":0.02,"threshold":0.0625,"alarm":false}\n'
    '01-15 10:23:45.124   905  1011 E BatteryService: {"not":"ours","v":1}\n'
    '01-15 10:23:45.125  4321  4350 I EdgeAI  : {"v":1,"kind":"fuel","seq":2,"t":59.0,"infer_ms":3.4,'
    '"model":{"name":"fuel","sha256":"a71c09be55d2"},"fuel_rate_lph":6.82}\n'
    '01-15 10:23:45.126  4321  4351 E EdgeAI  : model session failed: OrtException: invalid input shape [1,60,9]\n'
    '01-15 10:23:45.127  4321  4350 I EdgeAI  : {"v":1,"kind":"behaviour","seq":5,"t":59.0,'
    '"infer_ms":1.2,"model":{"name":"behaviour","sha256":"5be0d4e1a9f3"},"label":0,"class":"normal",'
    '"probabilities":[0.7,0.2,0.1]}\n'
    '01-15 10:23:45.128  4321  4350 I EdgeAIDebug: {"v":1,"kind":"fuel"}\n'
    '01-15 10:23:45.131  4321  4350 I EdgeAI  : {"v":1,"kind":"event","seq":6,"t":61.0,'
    '"type":"harsh_braking","value":-4.6,"limit":-3.0}\n'
)


def test_real_threadtime_log_with_other_tags():
    collector = EventCollector()
    collector.feed(REAL_LOG.replace("\n", "\r\n"))
    collector.flush()
    kinds = [e.kind for e in collector.events]
    assert kinds == ["status", "anomaly", "fuel", "behaviour", "event"]
    assert collector.received[1].logcat_time == "01-15 10:23:45.123"
    [problem] = collector.problems
    assert problem.line_no == 10 and "not valid JSON" in problem.reason and "model session failed" in problem.reason
    stats = collector.stats()
    assert (stats.lines, stats.events, stats.problems) == (13, 5, 1)
    assert stats.by_kind == {"status": 1, "anomaly": 1, "fuel": 1, "behaviour": 1, "event": 1}
    assert stats.lines_lost == 2  # seq 2 → 5: lines 3 and 4 never arrived
    assert stats.seq_restarts == 0


@pytest.mark.parametrize("prefix", [
    "01-15 10:23:45.123  4321  4350 I EdgeAI  : ",        # threadtime
    "2024-01-15 10:23:45.123  4321  4350 I EdgeAI  : ",   # threadtime,year
    "01-15 10:23:45.123 +0100  4321  4350 I EdgeAI  : ",  # threadtime,zone
    "01-15 10:23:45.123 u0_a123  4321  4350 I EdgeAI  : ",  # threadtime,uid
    "01-15 10:23:45.123  10123  4321  4350 I EdgeAI  : ",  # threadtime,uid (numeric)
    "1705310625.123  4321  4350 I EdgeAI  : ",             # threadtime,epoch
    "     12.345678  4321  4350 I EdgeAI  : ",             # threadtime,monotonic (padded)
    "I/EdgeAI( 4321): ",                                   # brief
    "I/EdgeAI  ( 4321): ",                                 # brief, padded tag
    "I/EdgeAI: ",                                          # tag
    "01-15 10:23:45.123  4321  4350 W EdgeAI: ",           # another priority, unpadded tag
])
def test_logcat_variants_are_read(prefix):
    event = FuelResult(60.0, 3.4, ModelRef("fuel", "a71c09be55d2"), 6.82)
    assert parse_event_line(prefix + event_to_json(event)) == event


@pytest.mark.parametrize("line", [
    "",
    "--------- beginning of crash",
    "01-15 10:23:45.123  4321  4350 I EdgeAIDebug: {}",
    "01-15 10:23:45.123  4321  4350 I Edgeai  : {}",
    "01-15 10:23:45.123   612   612 I ActivityManager: Killing 4321:com.example.dtg (EdgeAI): {}",
    "I/OtherTag( 4321): {\"v\":1}",
])
def test_lines_that_are_not_edgeai_lines_are_ignored(line):
    assert parse_event_line(line) is None


# --- malformed EdgeAI lines ----------------------------------------------------------------------------------

HEAD = "01-15 10:23:45.123  4321  4350 I EdgeAI  : "
GOOD_FUEL = {"v": 1, "kind": "fuel", "t": 60.0, "infer_ms": 3.4, "model": {"name": "fuel", "sha256": "a71c09be"},
             "fuel_rate_lph": 6.8}


def _with(**changes) -> str:
    payload = {k: v for k, v in {**GOOD_FUEL, **changes}.items() if v is not ...}
    return json.dumps(payload)


@pytest.mark.parametrize("payload, field, reason", [
    ('{"v":1,"kind":"fuel","t":60.0', None, "not valid JSON"),                      # truncated by logcat
    ("model load failed", None, "not valid JSON"),
    ("[1, 2]", None, "expected a JSON object; got a list"),
    ("", None, "empty payload"),
    (_with(kind="anomaly2"), "kind",
     "unknown kind 'anomaly2'; expected one of: anomaly, fuel, behaviour, event, features, status"),
    (_with(kind=...), "kind", "missing field 'kind'; expected one of: anomaly, fuel"),
    (_with(v=...), "v", "missing field 'v' (schema version)"),
    (_with(v=2), "v", "unsupported schema version 2; this harness reads: 1"),
    (_with(v="1"), "v", "unsupported schema version '1'"),
    (_with(fuel_rate_lph=...), "fuel_rate_lph", "missing field 'fuel_rate_lph'"),
    (_with(t="60"), "t", "field 't': expected a number; got a string '60'"),
    (_with(t=True), "t", "field 't': expected a number; got a boolean"),
    (_with(infer_ms=...), "infer_ms", "missing field 'infer_ms'"),
    (_with(model=...), "model", "missing field 'model'"),
    (_with(model="fuel"), "model", "field 'model': expected an object"),
    (_with(model={"name": "fuel"}), "model.sha256", "missing field 'model.sha256'"),
    (_with(seq=-1), "seq", "field 'seq': expected an integer >= 0"),
    ('{"v":1,"kind":"fuel","t":NaN}', None, "NaN is not a JSON number"),
    ('{"v":1,"kind":"fuel","t":Infinity}', None, "Infinity is not a JSON number"),
    ('{"v":1,"kind":"fuel","t":1e400}', "t", "field 't': expected a finite number; got inf"),
    ('{"v":1,"kind":"fuel","t":1' + "0" * 5000 + "}", None, "not valid JSON: Exceeds the limit"),
    ('{"v":1,"v":1,"kind":"fuel"}', "v", "duplicate field 'v'"),
    ('{"v":1,"kind":"anomaly","t":1,"infer_ms":1,"model":{"name":"a","sha256":"01234567"},"score":1,'
     '"threshold":1,"alarm":1}', "alarm", "field 'alarm': expected true or false; got 1"),
    ('{"v":1,"kind":"anomaly","t":1,"infer_ms":1,"model":{"name":"a","sha256":"01234567"},"score":1,'
     '"threshold":1,"alarm":true,"signal_scores":[1,2]}', "signal_scores", "expected 10 numbers (one per signal)"),
    ('{"v":1,"kind":"behaviour","t":1,"infer_ms":1,"model":{"name":"b","sha256":"01234567"},"label":3,'
     '"class":"aggressive","probabilities":[0,0,1]}', "label", "expected 0..2 (normal, eco, aggressive); got 3"),
    ('{"v":1,"kind":"behaviour","t":1,"infer_ms":1,"model":{"name":"b","sha256":"01234567"},"label":0,'
     '"class":"sporty","probabilities":[0,0,1]}', "class",
     "unknown behaviour class 'sporty'; expected one of: normal, eco, aggressive"),
    ('{"v":1,"kind":"behaviour","t":1,"infer_ms":1,"model":{"name":"b","sha256":"01234567"},"label":0,'
     '"class":"normal","probabilities":[0.5,0.5]}', "probabilities",
     "field 'probabilities': expected 3 numbers (normal, eco, aggressive); got 2"),
    ('{"v":1,"kind":"event","t":1,"type":"overheat","value":1,"limit":2}', "type",
     "unknown rule event type 'overheat'; expected one of: harsh_braking, aggressive_acceleration, erratic_driving"),
    ('{"v":1,"kind":"event","t":1,"type":"stale_data","value":1,"limit":2,"signal":"speed"}', "signal",
     "unknown signal 'speed'; expected one of: vehicle_speed"),
    ('{"v":1,"kind":"features","t":1,"infer_ms":1,"window_start_t":0,"features":[1,2,"x"]}', "features",
     "expected 18 numbers (behaviour features); got 3"),
    ('{"v":1,"kind":"status","t":1,"samples_received":1,"windows_scored":-2}', "windows_scored",
     "field 'windows_scored': expected an integer >= 0; got a number -2"),
    ('{"v":1,"kind":"status","t":1,"samples_received":1,"windows_scored":1,"link":{"crc_errors":1.5}}',
     "link.crc_errors", "field 'link.crc_errors': expected an integer >= 0"),
])
def test_malformed_payloads_are_reported_with_field_and_reason(payload, field, reason):
    problem = parse_event_line(HEAD + payload)
    assert isinstance(problem, ParseProblem), problem
    assert reason in problem.reason
    assert problem.field == field
    assert problem.line == HEAD + payload


def test_a_line_mentioning_the_tag_outside_logcat_format_is_reported_not_dropped():
    problem = parse_event_line('10:23:45 EdgeAI {"v":1,"kind":"fuel"}')
    assert isinstance(problem, ParseProblem)
    assert "not a logcat threadtime or brief line" in problem.reason


def test_unknown_fields_are_ignored_for_forward_compatibility():
    event = parse_event_line(HEAD + _with(gpu_temp_c=51.5))
    assert isinstance(event, FuelResult) and event.fuel_rate_lph == 6.8


json_values = st.recursive(st.none() | st.booleans() | finite | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


@given(payload=st.dictionaries(st.sampled_from(["v", "kind", "t", "infer_ms", "model", "score", "threshold",
                                                "alarm", "label", "class", "type", "features", "link", "seq"]),
                               json_values) | json_values)
def test_arbitrary_json_never_raises(payload):
    result = parse_event_line(HEAD + json.dumps(payload))
    assert result is None or isinstance(result, ParseProblem) or result.kind in EVENT_KINDS


@given(text=st.text())
def test_arbitrary_text_never_raises(text):
    for line in (text, HEAD + text, "I/EdgeAI( 1): " + text):
        result = parse_event_line(line)
        assert result is None or isinstance(result, ParseProblem) or result.kind in EVENT_KINDS


@given(data=st.binary(max_size=300))
def test_collector_never_raises_on_bytes(data):
    collector = EventCollector()
    collector.feed(data)
    collector.feed(HEAD.encode() + data + b"\n")
    collector.flush()
    assert collector.stats().problems == len(collector.problems) >= 1


def test_utf8_split_across_chunks_is_kept():
    event = FuelResult(60.0, 3.4, ModelRef("kraftstoff-\u00fc\u20ac", "a71c09be"), 6.8)
    line = (HEAD + json.dumps(json.loads(event_to_json(event)), ensure_ascii=False, separators=(",", ":")))
    data = (line + "\n").encode()
    euro = data.index("\u20ac".encode())
    collector = EventCollector()
    collector.feed(data[:euro + 1])
    collector.feed(data[euro + 1:])
    assert collector.events == [event]


# --- collector bookkeeping -----------------------------------------------------------------------------------

def test_collector_counts_seq_loss_and_restarts_and_stamps_receive_time():
    ticks = iter([10.0, 11.0, 12.0, 13.0, 14.0])
    collector = EventCollector(clock=lambda: next(ticks))
    for seq in (0, 1, 4, 5, 0):  # 2 and 3 lost; then the app restarts
        collector.feed(format_event_line(RuleEvent(float(seq), "low_fuel", 8.0, 10.0, seq=seq), pid=1, tid=1,
                                         wall_time=WALL) + "\n")
    stats = collector.stats()
    assert (stats.lines_lost, stats.seq_restarts) == (2, 1)
    assert [r.received_wall_s for r in collector.received] == [10.0, 11.0, 12.0, 13.0, 14.0]


def test_feed_line_returns_what_the_line_held():
    collector = EventCollector(clock=lambda: 0.0)
    event = FuelResult(60.0, 3.4, ModelRef("fuel", "a71c09be"), 6.8)
    assert collector.feed_line(format_event_line(event, pid=1, tid=1, wall_time=WALL), received_wall_s=5.0) == event
    assert collector.received[0].received_wall_s == 5.0
    problem = collector.feed_line(HEAD + "{")
    assert isinstance(problem, ParseProblem) and problem.line_no == 2
    assert collector.feed_line("01-15 10:23:45.123  1  1 I Other   : x") is None
    assert collector.of_kind("fuel") == [event]
    with pytest.raises(ValueError, match="unknown kind 'fule'; expected one of: anomaly"):
        collector.of_kind("fule")


def test_flush_parses_a_final_line_without_newline():
    collector = EventCollector()
    collector.feed(HEAD + _with())
    assert collector.events == []
    assert len(collector.flush()) == 1 and len(collector.events) == 1


def test_cli_reports_problems_and_fails(tmp_path, capsys):
    log = tmp_path / "run.log"
    log.write_text(REAL_LOG)
    assert main([str(log)]) == 1
    out = capsys.readouterr().out
    assert "5 EdgeAI events" in out and "1 malformed" in out and "line 10: not valid JSON" in out
    good = tmp_path / "good.log"
    good.write_text(HEAD + _with() + "\n")
    assert main([str(good)]) == 0


# --- the documentation's examples ----------------------------------------------------------------------------

def test_every_example_line_in_the_docs_parses_and_every_kind_has_one():
    lines = [line for line in DOCS.read_text().splitlines() if re.match(r"(\d\d-\d\d |I/)\S*", line)
             and "EdgeAI" in line and line.endswith("}") and not line.endswith("...}")]
    events = [parse_event_line(line) for line in lines]
    problems = [(line, e) for line, e in zip(lines, events, strict=False) if not hasattr(e, "kind")]
    assert not problems
    assert {e.kind for e in events} == set(EVENT_KINDS)


def test_error_examples_in_the_docs_are_the_real_messages():
    text = DOCS.read_text()
    for example in ("unknown kind 'anomaly2'; expected one of: anomaly, fuel, behaviour, event, features, status",
                    "missing field 'score'",
                    "field 'probabilities': expected 3 numbers (normal, eco, aggressive); got 2",
                    "unsupported schema version 2; this harness reads: 1"):
        assert example in text
    truncated = '{"v":1,"kind":"fuel","t":512.0,"infer_ms":3.4,"model":{"name":"fu'
    problem = parse_event_line(HEAD + truncated)
    assert problem.reason in text


def test_doctests():
    import doctest

    import harness.wire.events
    assert doctest.testmod(harness.wire.events).failed == 0


# --- volume --------------------------------------------------------------------------------------------------

def test_a_100k_line_stream_parses():
    kinds = [
        AnomalyResult(0.0, 7.9, MODEL, 0.02, 0.0625, False, tuple(0.01 * i for i in range(10))),
        FuelResult(0.0, 3.4, ModelRef("fuel", "a71c09be55d2"), 6.82),
        BehaviourResult(0.0, 1.2, ModelRef("behaviour", "5be0d4e1a9f3"), 1, "eco", (0.1, 0.8, 0.1)),
    ]
    other = "01-15 10:23:45.123   612   700 D WifiStateMachine: rssi=-61 linkspeed=72 freq=5180\n"
    template = [format_event_line(e, pid=4321, tid=4350, wall_time=WALL) + "\n" for e in kinds]
    chunks = []
    for i in range(25_000):  # 4 lines each: three results and one other tag
        chunks.append(template[0].replace('"t":0.0', f'"t":{i}.0') + template[1] + template[2] + other)
    text = "".join(chunks)
    collector = EventCollector(clock=lambda: 0.0)
    for start in range(0, len(text), 65536):
        collector.feed(text[start:start + 65536])
    collector.flush()
    stats = collector.stats()
    assert (stats.lines, stats.events, stats.problems) == (100_000, 75_000, 0)
    assert [e.t_s for e in collector.of_kind("anomaly")[:3]] == [0.0, 1.0, 2.0]
