"""Fuzzing the parsers, the fast version: a few hundred hypothesis examples per target (`harness.tools.fuzz`), the
runner against a planted failure and a planted hang, and `dtg-hil bench fuzz` end to end.

The hypothesis tests draw from the same three sources as the benchmark (pure random bytes, mutations of the
target's valid examples, structure-aware inputs), with hypothesis's own random generator so a failure shrinks,
and run each example through `run_one` under a per-input time limit, so a hang fails the test instead of
hanging it. The benchmark (`dtg-hil bench fuzz`, 100,000 inputs per target) is not part of this run.

Every defect the fuzzer found in the data-file loaders (scenario, rig) is fixed; `FIXED_LOADER_DEFECTS` replays
the minimal input of each, which must now be accepted or rejected with the loader's own error.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.tools.cli import main
from harness.tools.fuzz.engine import Outcome, run_fuzz, run_one
from harness.tools.fuzz.inputs import draw_input
from harness.tools.fuzz.target import REJECTED, FuzzTarget
from harness.tools.fuzz.targets import TARGETS
from harness.wire.link import get_codec

ROOT = Path(__file__).resolve().parents[1]
TIME_LIMIT_S = 2.0
FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

@pytest.fixture(scope="module")
def workdirs(tmp_path_factory) -> dict[str, Path]:
    """A scratch folder per target, prepared as the runner prepares it."""
    out = {}
    for name, target in TARGETS.items():
        out[name] = tmp_path_factory.mktemp(name)
        if target.prepare is not None:
            target.prepare(out[name])
    return out


def _inputs(target: FuzzTarget) -> st.SearchStrategy[bytes]:
    """The benchmark's three sources, drawn through hypothesis's random so that failures shrink; plus plain binary."""
    corpus = target.examples()
    return st.one_of(st.binary(max_size=target.max_size),
                     st.randoms(use_true_random=False).map(lambda rng: draw_input(rng, target, corpus)[1]))


def _check(name: str, data: bytes, workdirs: dict[str, Path]) -> Outcome:
    outcome = run_one(TARGETS[name], data, workdirs[name], TIME_LIMIT_S)
    if outcome.failed:
        pytest.fail(f"{name}: {outcome.signature} on {data!r}\n{outcome.traceback}")
    return outcome


# ------------------------------------------------------------------------------ one hypothesis test per parser


@FAST
@given(data=_inputs(TARGETS["link-raw-can-v1"]))
def test_raw_can_v1_decoder_only_counts_errors(data: bytes, workdirs) -> None:
    _check("link-raw-can-v1", data, workdirs)


@FAST
@given(data=_inputs(TARGETS["link-dtg-link-v2"]))
def test_dtg_link_v2_decoder_only_counts_errors(data: bytes, workdirs) -> None:
    _check("link-dtg-link-v2", data, workdirs)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.one_of(st.binary(max_size=600),
                      st.randoms(use_true_random=False).map(lambda rng: TARGETS["link-dtg-link-v2"].structured(rng))),
       codec=st.sampled_from(["raw-can-v1", "dtg-link-v2"]),
       sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_link_decoders_give_the_same_result_in_any_chunking(data: bytes, codec: str, sizes: list[int]) -> None:
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        pieces.append(data[pos:pos + sizes[i % len(sizes)]])
        pos, i = pos + sizes[i % len(sizes)], i + 1
    results = []
    for chunks in ([data], pieces):
        decoder = get_codec(codec).decoder()
        got = [rx for chunk in chunks for rx in decoder.feed(chunk)] + decoder.finish()  # must not raise
        results.append((got, decoder.stats))
    assert results[0] == results[1]


@FAST
@given(data=_inputs(TARGETS["nmea"]))
def test_nmea_parser_raises_only_nmea_error(data: bytes, workdirs) -> None:
    _check("nmea", data, workdirs)


@FAST
@given(data=_inputs(TARGETS["events"]))
def test_event_parser_never_raises_and_the_collector_agrees(data: bytes, workdirs) -> None:
    _check("events", data, workdirs)


@FAST
@given(data=_inputs(TARGETS["scenario"]))
def test_scenario_loader_raises_only_scenario_error(data: bytes, workdirs) -> None:
    _check("scenario", data, workdirs)


@FAST
@given(data=_inputs(TARGETS["scenario-data"]))
def test_scenario_parser_raises_only_scenario_error_on_loaded_data(data: bytes, workdirs) -> None:
    _check("scenario-data", data, workdirs)


@FAST
@given(data=_inputs(TARGETS["rig"]))
def test_rig_loader_raises_only_rig_error(data: bytes, workdirs) -> None:
    _check("rig", data, workdirs)


def test_the_mutation_corpus_holds_valid_inputs(workdirs) -> None:
    """Every example runs cleanly; the first of each target (one link frame, a sentence, an EdgeAI line, a bundled
    scenario or rig file) is valid, and so is every bundled scenario and rig file."""
    for name, target in TARGETS.items():
        outcomes = [run_one(target, example, workdirs[name], TIME_LIMIT_S) for example in target.examples()]
        assert not [o for o in outcomes if o.failed], name
        assert outcomes[0].kind == "ok", (name, outcomes[0].error)
    for name, folder in (("scenario", "scenarios"), ("rig", "rigs")):
        bundled = len(list((ROOT / folder).glob("*.yaml")))
        outcomes = [run_one(TARGETS[name], e, workdirs[name], TIME_LIMIT_S) for e in TARGETS[name].examples()]
        assert [o.kind for o in outcomes[:bundled]] == ["ok"] * bundled, [o.error for o in outcomes[:bundled]]


# ------------------------------------------------------------------------------ the loader defects, fixed

#: Defects the fuzzer found in the loaders, each a minimal input: every one is now accepted or rejected with the
#: loader's own error (the comment says what used to happen).
LAUGHS = b"l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    b"l%d: &l%d [" % (i, i) + b", ".join([b"*l%d" % (i - 1)] * 9) + b"]\n" for i in range(1, 10))
FIXED_LOADER_DEFECTS = [
    ("scenario", b"[]:"),  # a list as a mapping key: TypeError
    ("rig", b"0: &r {0: *r}"),  # an alias to a mapping that contains it: RecursionError
    ("rig", b"0: &r [*r]"),  # ... to a list that contains it
    ("scenario", b"deep: " + b"[" * 800 + b"]" * 800 + b"\n"),  # nesting past PyYAML's composer's recursion
    ("scenario", b"seed: " + b"9" * 4301 + b"\n"),  # an integer of more than 4300 digits: ValueError
    ("scenario", b"0: !!timestamp"),  # an empty timestamp
    ("rig", b"0: !!bool\n0:"),  # a !!bool that is not one
    ("rig", b'"stm32":\ndeep: ' + b"[" * 1700),  # PyYAML's scanner: seconds to reject 1,700 unclosed levels
    ("scenario", LAUGHS),  # aliases nested 10 deep expand to 9^10 values ("billion laughs"): a hang
    # integers beyond float range: OverflowError formatting or converting them
    ("scenario", b"route: {cycle: udds}\nconditions: {ambient_c: " + b"9" * 400 + b"}\n"),
    ("scenario", b"route: {cycle: udds}\nanomalies: [{type: overheating, at_s: " + b"9" * 400 + b"}]\n"),
    ("rig", b"stm32: {kind: real}\ntime_scale: " + b"9" * 400 + b"\n"),
    ("rig", b"time_scale: " + b"9" * 400 + b"\n"),
    ("scenario", b"route: {generated: {duration_s: 300, mix: {urban: " + b"9" * 400 + b"}}}\n"),
    ("scenario", b"route: {cycle: udds, repeat: 9999999999}\n"),  # unbounded repeat: MemoryError (or the OOM killer)
    ("scenario", b"route: {cycle: udds, repeat: 99999999999999999999}\n"),  # ... beyond a C long: OverflowError
    ("scenario", b"route: {generated: {duration_s: 300, seed: -1}}\n"),  # negative seed: numpy's ValueError
    ("scenario", b"route: {generated: {duration_s: 300, mix: {urban: .inf}}}\n"),  # NaN probabilities
    ("scenario", b"route: {generated: {duration_s: .inf}}\n"),  # generated forever
    ("scenario", b"route: {generated: {duration_s: 1.0e+9}}\n"),  # ... for years
    ("scenario", b"route: {cycle: " + b"x" * 300 + b".csv}\n"),  # a path too long: OSError from Path.exists
]


@pytest.mark.parametrize("name, data", FIXED_LOADER_DEFECTS)
def test_fixed_loader_defect_stays_fixed(name: str, data: bytes, workdirs) -> None:
    outcome = run_one(TARGETS[name], data, workdirs[name], TIME_LIMIT_S)
    assert not outcome.failed, f"{outcome.signature}\n{outcome.traceback}"
    assert outcome.kind == "rejected", name


def test_the_loaders_name_the_field_and_the_bound(tmp_path: Path) -> None:
    """What a scenario author sees for the inputs above: the field, the bound, no traceback."""
    from harness.world.scenario import ScenarioError, load_scenario
    cases = {
        b"route: {cycle: udds, repeat: 9999999999}\n": "route.repeat: 9999999999 x 1370 s would drive",
        b"route: {generated: {duration_s: .inf}}\n": "route.generated.duration_s: expected a finite number; got inf",
        b"route: {generated: {duration_s: 300, seed: -1}}\n": "route.generated.seed: must be >= 0; got -1",
        b"route: {cycle: udds}\nanomalies: [{type: overheating, at_s: " + b"9" * 400 + b"}]\n":
            "anomalies[0].at_s: expected a finite number; got an integer beyond float range",
        LAUGHS: "more than 100000 values once its aliases are expanded",
    }
    for data, wanted in cases.items():
        path = tmp_path / "s.yaml"
        path.write_bytes(data)
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path)
        assert wanted in str(caught.value) and str(path) in str(caught.value), str(caught.value)


# -------------------------------------------------------------------------------------- the runner itself


def _planted(data: bytes, workdir: Path) -> object:
    """A parser with a bug (KeyError on DE AD), a hang (on BE EF), a documented rejection (ValueError on a
    leading 'x') and a rejection by value (on a leading 'r')."""
    if b"\xde\xad" in data:
        raise KeyError("planted bug")
    if b"\xbe\xef" in data:
        while True:
            pass
    if data.startswith(b"x"):
        raise ValueError("documented rejection")
    return REJECTED if data.startswith(b"r") else len(data)


PLANTED = FuzzTarget("planted", "a parser with a planted bug and a planted hang", (ValueError,), _planted,
                     examples=lambda: [b"hello \xde\xad world", b"xbad input", b"slow \xbe\xef here", b"fine", b"rr"],
                     structured=lambda rng: rng.choice((b"x", b"r", b"")) + rng.randbytes(rng.randint(0, 12)),
                     max_size=64, suffix=".bin")


def test_the_runner_reports_a_planted_bug_and_a_planted_hang_with_minimal_reproducers(tmp_path: Path) -> None:
    report = run_fuzz([PLANTED], inputs=300, seed=3, out=tmp_path, time_limit_s=0.05, minimize_s=3.0)
    (target,) = report.targets
    assert target.inputs == 300 == target.ok + target.rejected + target.unexpected + target.timeouts
    assert target.unexpected > 0 and target.timeouts > 0 and target.ok > 0 and target.rejected > 0
    assert sum(target.by_source.values()) == 300 and set(target.by_source) <= {"random", "mutation", "structured"}
    by_kind = {f.signature.split(" ")[0]: f for f in target.findings}
    assert set(by_kind) == {"KeyError", "timeout"}, [f.signature for f in target.findings]

    bug = by_kind["KeyError"]
    assert bug.minimized == b"\xde\xad"
    assert bug.count == target.unexpected and "planted bug" in bug.description
    assert bug.path is not None and bug.path.read_bytes() == b"\xde\xad"
    note = bug.path.with_name(bug.path.name + ".txt").read_text()
    assert "KeyError: 'planted bug'" in note and "--replay" in note and "_planted" in note
    assert b"\xde\xad" in bug.path.with_name(bug.path.name.replace(".bin", "-original.bin")).read_bytes()

    hang = by_kind["timeout"]
    assert hang.minimized == b"\xbe\xef" and hang.count == target.timeouts
    assert "hang" in hang.description and "_planted" in hang.signature
    assert 0.05 <= target.slowest_s < 1.0  # a hang is cut at the limit, not waited out

    text = report.format()
    assert "KeyError" in text and "hang" in text and str(bug.path) in text
    assert (tmp_path / "report.txt").read_text().strip() == text.strip()
    assert report.failed == target.unexpected + target.timeouts


def test_the_runner_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    first = run_fuzz([TARGETS["nmea"]], inputs=200, seed=9)
    again = run_fuzz([TARGETS["nmea"]], inputs=200, seed=9)
    assert (first.targets[0].ok, first.targets[0].rejected) == (again.targets[0].ok, again.targets[0].rejected)
    assert first.targets[0].by_source == again.targets[0].by_source


# ------------------------------------------------------------------------------------------- the command


_FINDING = re.compile(r"^  (?P<target>[a-z0-9-]+): .*\[(?P<signature>[^\[\]]+ at [^\[\]]+)\] x\d+; reproducer")


def test_bench_fuzz_runs_every_target_from_the_command_line(tmp_path: Path, capsys) -> None:
    code = main(["bench", "fuzz", "--inputs", "300", "--seed", "1", "--out", str(tmp_path), "--minimize-s", "1"])
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in TARGETS and len(fields) == 9:
            rows[fields[0]] = [float(x) for x in fields[1:]]
    assert set(rows) == set(TARGETS), out
    for name, (inputs, parsed, rejected, unexpected, hangs, slowest_ms, per_s, _wall_s) in rows.items():
        assert inputs == 300 == parsed + rejected + unexpected + hangs, name
        assert per_s > 0 and slowest_ms <= 1000 * 1.0 + 50, name  # the default limit is 1 s per input
        assert unexpected == hangs == 0, out
    assert not [m for m in map(_FINDING.search, out.splitlines()) if m], out
    assert code == 0
    assert (tmp_path / "report.txt").exists()
    assert not (tmp_path / "in-flight.bin").exists() and not (tmp_path / "fatal.txt").exists()


def test_bench_fuzz_replays_a_saved_input(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.nmea"
    good.write_bytes(b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n")
    assert main(["bench", "fuzz", "--target", "nmea", "--replay", str(good)]) == 0
    assert "nmea on" in capsys.readouterr().out
    assert main(["bench", "fuzz", "--target", "nmea", "events", "--replay", str(good)]) == 2
    assert "exactly one --target" in capsys.readouterr().err
