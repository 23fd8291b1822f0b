"""The ``events`` fuzz target: ``parse_event_line`` and `EventCollector` fed the same bytes in chunks.

The event parser never raises (it returns None for a line that is not an EdgeAI line, an event, or a
`ParseProblem`), so this target has no documented rejection: any exception is a finding. Also checked: the
collector fed the bytes in chunks yields what line-by-line parsing gives, and no problem it reports is the
parser's catch-all "unexpected parser error". Structure-aware inputs are EdgeAI lines of every kind, under
every logcat head format, with fields of the wrong type, NaN and huge literals, duplicate keys, deep nesting,
payloads cut short, trailing noise and very long lines.
"""
from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.tools.fuzz.target import REJECTED, FuzzTarget, OracleError, chunks, pick
from harness.wire.events import (
    BEHAVIOUR_CLASSES,
    EVENT_KINDS,
    FEATURE_COUNT,
    RULE_EVENT_TYPES,
    EventCollector,
    ParseProblem,
    parse_event_line,
)
from harness.wire.signals import SIGNALS

__all__ = ["TARGET"]


def _run_events(data: bytes, workdir: Path) -> object:
    line = data.decode("utf-8", "surrogateescape")  # any str at all, lone surrogates included
    results = [parse_event_line(line)]
    text = data.decode("utf-8", "replace")  # what the collector makes of the bytes
    lines = text.split("\n")
    expected = [parse_event_line(item) for item in (lines if lines[-1] else lines[:-1])]
    collector = EventCollector(clock=lambda: 0.0)
    for piece in chunks(data):
        collector.feed(piece)
    collector.flush()
    results += expected
    for result in results:
        if not (result is None or isinstance(result, ParseProblem) or getattr(result, "kind", None) in EVENT_KINDS):
            raise OracleError(f"parse_event_line returned {type(result).__name__}: {result!r}")
        if isinstance(result, ParseProblem) and result.reason.startswith("unexpected parser error"):
            raise OracleError(f"the parser's catch-all fired: {result.reason}")
    want_events = [r for r in expected if r is not None and not isinstance(r, ParseProblem)]
    want_problems = [(r.reason, r.field) for r in expected if isinstance(r, ParseProblem)]
    got_problems = [(p.reason, p.field) for p in collector.problems]
    stats = collector.stats()
    # Compared by repr: a `null` feature is NaN, and two NaNs are never equal as floats.
    if repr(collector.events) != repr(want_events) or got_problems != want_problems or stats.lines != len(expected):
        raise OracleError(f"the collector fed in chunks gave {stats}, line by line parsing gave "
                          f"{len(want_events)} events and {len(want_problems)} problems in {len(expected)} lines")
    return REJECTED if results[0] is None or isinstance(results[0], ParseProblem) else results[0]


_HEADS = (
    "01-15 10:23:45.123  4321  4350 I EdgeAI  : ",
    "2024-01-15 10:23:45.123  4321  4350 I EdgeAI  : ",
    "01-15 10:23:45.123 +0100  4321  4350 I EdgeAI  : ",
    "01-15 10:23:45.123 u0_a123  4321  4350 I EdgeAI  : ",
    "1705310625.123  4321  4350 I EdgeAI  : ",
    "I/EdgeAI( 4321): ",
    "I/EdgeAI: ",
    "01-15 10:23:45.123  4321  4350 D Zygote  : ",
    "01-15 10:23:45.123  4321  4350 I EdgeAI:",
    "01-15 10:23:45.123  4321  4350 X EdgeAI  : ",
    "--------- beginning of main ",
    "EdgeAI ",
    "",
)
_JSON_ODD = (None, True, False, 0, -1, 1, 2, 0.5, -0.0, 1e308, -1e308, 10**30, "", "x", "anomaly", "0123abcd",
             [], [1.0], {}, {"name": "x"}, "NaN", [None], 2**64)


def _model_ref(rng: random.Random) -> dict:
    ref = {"name": rng.choice(("anomaly", "fuel", "behaviour")), "sha256": f"{rng.getrandbits(64):016x}"}
    if rng.random() < 0.3:
        ref["version"] = f"1.{rng.randrange(10)}"
    return ref


def _event_payload(rng: random.Random) -> dict:
    kind = rng.choice(EVENT_KINDS)
    t = round(rng.uniform(0.0, 20000.0), 3)
    infer = round(rng.uniform(0.0, 50.0), 3)
    payload: dict[str, Any] = {"v": 1, "kind": kind}
    if rng.random() < 0.7:
        payload["seq"] = rng.randrange(2**32)
    if kind == "status":
        payload.update(t=rng.choice((None, t)), samples_received=rng.randrange(10**6),
                       windows_scored=rng.randrange(10**6),
                       link={name: rng.randrange(10**6) for name in ("frames_decoded", "crc_errors", "frames_lost")})
    elif kind == "event":
        payload.update(t=t, type=rng.choice(RULE_EVENT_TYPES), value=rng.uniform(-50, 8000), limit=rng.uniform(0, 8000))
        if rng.random() < 0.3:
            payload["signal"] = rng.choice(SIGNALS)
    elif kind == "features":
        payload.update(t=t, infer_ms=infer, window_start_t=t - 59,
                       features=[rng.uniform(-10, 100) for _ in range(FEATURE_COUNT)])
        if rng.random() < 0.5:
            payload["n_samples"] = rng.randint(0, 60)
    else:
        payload.update(t=t, infer_ms=infer, model=_model_ref(rng))
        if kind == "anomaly":
            payload.update(score=rng.uniform(0, 5), threshold=rng.uniform(0, 5), alarm=rng.random() < 0.5)
            if rng.random() < 0.3:
                payload["signal_scores"] = [rng.uniform(0, 5) for _ in SIGNALS]
        elif kind == "fuel":
            payload["fuel_rate_lph"] = rng.uniform(0, 60)
        else:
            label = rng.randrange(len(BEHAVIOUR_CLASSES))
            payload.update(label=label, **{"class": BEHAVIOUR_CLASSES[label]},
                           probabilities=[rng.random() for _ in BEHAVIOUR_CLASSES])
    return payload


def _json_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_paths(item, path + (index,))


def _events_structured(rng: random.Random) -> bytes:
    payload = _event_payload(rng)
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        paths = [p for p in _json_paths(payload) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        roll = rng.random()
        if roll < 0.6:
            parent[path[-1]] = pick(rng, _JSON_ODD)
        elif roll < 0.75 and isinstance(parent, dict):
            del parent[path[-1]]
        elif roll < 0.85 and isinstance(parent, dict):
            parent[rng.choice(("extra", "kind", "v", "t", "model", "link", "x" * 40))] = pick(rng, _JSON_ODD)
        elif isinstance(parent[path[-1]], (int, float)) and not isinstance(parent[path[-1]], bool):
            parent[path[-1]] = rng.choice((math.nan, math.inf, -math.inf, -parent[path[-1]]))
    text = json.dumps(payload, allow_nan=True, separators=rng.choice(((",", ":"), (", ", ": "))))
    roll = rng.random()
    if roll < 0.05:  # a duplicated key
        text = text.replace('"kind":', '"kind":"fuel","kind":', 1)
    elif roll < 0.09:  # an integer literal longer than Python converts by default
        text = text.replace('"t":', '"t":' + "9" * rng.choice((10, 4301, 5000)) + ',"t0":', 1)
    elif roll < 0.12:  # nested deeper than the JSON decoder recurses
        depth = rng.choice((50, 5000))
        text = text[:-1] + ',"deep":' + "[" * depth + "]" * depth + "}"
    elif roll < 0.17:  # cut short, as logcat cuts a payload over its limit
        text = text[:rng.randrange(len(text))]
    elif roll < 0.20:
        text = text + rng.choice((" trailing", "}", "\x00", "\ufeff", " " * 300))
    elif roll < 0.22:  # a very long line: the line regexes must stay linear
        text = " " * rng.choice((100, 3000)) + text
    head = rng.choice(_HEADS)
    ending = rng.choice(("", "", "\n", "\r\n", "\r"))
    lines = [head + text + ending]
    if rng.random() < 0.1:  # several lines, for the collector
        lines.append(rng.choice(_HEADS) + json.dumps(_event_payload(rng)) + "\n")
    return "".join(lines).encode("utf-8", "surrogatepass")


def _events_examples() -> list[bytes]:
    rng = random.Random(5)
    return [(_HEADS[i % 7] + json.dumps(_event_payload(rng), separators=(",", ":"))).encode() + b"\n"
            for i in range(12)]


TARGET = FuzzTarget("events", "harness.wire.events.parse_event_line, EventCollector.feed (chunked)", (),
                    _run_events, _events_examples, _events_structured, max_size=4096, text=True, suffix=".log",
                    tokens=(b'"', b":", b",", b"{", b"}", b"[", b"]", b"\n", b"I/EdgeAI: ", b" EdgeAI  : ",
                            b'"kind":', b'"v":1', b"NaN", b"Infinity", b"1e999", b"\\u0000", b"\\ud800", b"\xff"))
