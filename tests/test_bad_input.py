"""Bad input is refused before use: one line `file:line: field: message` each, exit 2 from `dtg-hil` and 4 under pytest
(a usage error), in bounded memory (a 50 MB file is refused without being read)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import can
import pytest

from harness.core.datafile import MAX_BYTES, FileTooLarge, read_limited
from harness.inference.models import ManifestError, load_manifest
from harness.rig.rigfile import RigConfig, RigError, load_rig, time_scale_problem
from harness.tools.cli import main
from harness.world.cycles import CycleError, read_cycle_csv
from harness.world.replay import RecordingError, read_recording
from harness.world.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "scenarios" / "recordings" / "city_loop_car.blf"
#: One line `file:line: field: message`.
ONE_LINE = re.compile(r"^[^\n]+:\d+: [\w.\[\]]+: [^\n]+$")


def _cli(args: list[str]) -> tuple[int, str, int]:
    """`dtg-hil ARGS` in a fresh interpreter: exit code, stderr, and its peak resident memory in kB."""
    code = ("import resource, sys\nfrom harness.tools.cli import main\nrc = main(sys.argv[1:])\n"
            "print(f'maxrss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\nsys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    *lines, rss = done.stderr.strip().splitlines()
    return done.returncode, "\n".join(lines), int(rss.split("=")[1])


# --- rig files ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("0", "must be >= 300; got 0"),
    ("-5", "must be >= 300; got -5"),
    ("fast", "expected an integer; got text 'fast'"),
    ("1e300", "expected an integer; got text '1e300' (in YAML an exponent needs a decimal point and a sign"),
    ("1.0e+300", "expected an integer; got a number 1e+300"),
    ("20000000", "must be <= 1.2e+07; got 2e+07"),
])
@pytest.mark.parametrize("section", ["stm32", "gnss"])
def test_a_bad_rig_baudrate_is_an_error_never_a_default(tmp_path, capsys, section, value, message):
    rig = tmp_path / "rig.yaml"
    rig.write_text(f"name: r\n{section}: {{kind: simulated, baudrate: {value}}}\n")
    with pytest.raises(RigError) as error:
        load_rig(rig)
    assert str(error.value) == f"{rig}:2: {section}.baudrate: {message}" or \
        str(error.value).startswith(f"{rig}:2: {section}.baudrate: {message}")
    assert ONE_LINE.match(str(error.value))
    assert main(["rig", "validate", str(rig)]) == 2
    assert f"{section}.baudrate" in capsys.readouterr().err


def test_every_rig_problem_is_reported_at_once(tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text("name: r\nstm32: {baudrate: 0}\ngnss: {baudrate: fast}\ncan: {interface: virtual, bitrate: 'x'}\n"
                   "time_scale: 1.0e-6\n")
    with pytest.raises(RigError) as error:
        load_rig(rig)
    fields = [p.field_path for p in error.value.problems]
    assert sorted(fields) == ["can.bitrate", "gnss.baudrate", "stm32.baudrate", "time_scale"]


def test_time_scale_is_bounded(tmp_path):
    slow = tmp_path / "slow.yaml"
    slow.write_text("name: slow\ntime_scale: 1.0e-6\n")
    with pytest.raises(RigError, match=r"slow.yaml:2: time_scale: must be >= 1 \(real time"):
        load_rig(slow)
    paced = tmp_path / "paced.yaml"
    paced.write_text((ROOT / "rigs" / "loopback.yaml").read_text().replace("time_scale: 20", "time_scale: 1.0e+6"))
    with pytest.raises(RigError, match=r"paced.yaml:\d+: time_scale: must be <= 200 on a rig paced by the wall clock"):
        load_rig(paced)
    # On virtual time a finite scale only paces: fast is fine.
    fast = tmp_path / "fast.yaml"
    fast.write_text("name: fast\ntime_scale: 1.0e+6\n")
    assert load_rig(fast).time_scale == 1e6
    assert time_scale_problem(RigConfig(name="x", path=None, stm32_kind="real", time_scale=2.0)) is not None


def test_a_bad_time_scale_is_a_usage_error_under_pytest(tmp_path):
    rig = tmp_path / "slow.yaml"
    rig.write_text("name: slow\ntime_scale: 1.0e-6\n")
    scenario = ROOT / "scenarios" / "clean_mixed_truck.yaml"
    for options in (["--rig", str(rig)], ["--dtg-time-scale", "0.5"]):
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "sim",
                               "-n", "0", str(scenario), *options], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert done.returncode == 4, done.stdout + done.stderr
        assert "time_scale" in done.stderr or "--dtg-time-scale" in done.stderr, done.stderr


# --- size limits -------------------------------------------------------------------------------------------------

def test_a_50_mb_scenario_is_refused_without_reading_it(tmp_path):
    small = tmp_path / "small.yaml"
    small.write_text("route: {cycle: udds}\n")
    big = tmp_path / "big.yaml"
    with big.open("w") as out:
        out.write("route: {cycle: udds}\nanomalies:\n")
        line = "  - {type: overheating, at_s: 100, sustain_s: 60}\n"
        out.write(line * (50_000_000 // len(line)))
    assert big.stat().st_size > 49_000_000
    rc_small, _, rss_small_kb = _cli(["scenario", "validate", str(small)])
    rc_big, err, rss_big_kb = _cli(["scenario", "validate", str(big)])
    assert rc_small == 0 and rc_big == 2
    problem = err.splitlines()[0]
    assert len(err.splitlines()) == 1 and problem.startswith(f"{big}: ") and "too large for a scenario file" in problem
    # Refused before reading: no more memory than validating a one-line file (the file is 50 MB; reading it would
    # take at least that, parsing it gigabytes).
    assert rss_big_kb < rss_small_kb + 16 * 1024, (rss_small_kb, rss_big_kb)


@pytest.mark.parametrize("kind", sorted(MAX_BYTES))
def test_every_kind_of_data_file_has_a_size_limit(tmp_path, kind):
    path = tmp_path / "f"
    with path.open("wb") as out:
        out.truncate(MAX_BYTES[kind] + 1)  # sparse: no disk used
    with pytest.raises(FileTooLarge, match=f"too large for a {kind} file"):
        read_limited(path, kind)
    path.write_bytes(b"x" * 10)
    assert read_limited(path, kind) == b"x" * 10


def test_oversized_rig_cycle_recording_and_manifest_are_refused(tmp_path):
    for name, kind in (("rig.yaml", "rig"), ("cycle.csv", "drive cycle"), ("drive.blf", "recording"),
                       ("manifest.json", "manifest")):
        path = tmp_path / name
        with path.open("wb") as out:
            out.truncate(MAX_BYTES[kind] + 1)
        loader = {"rig": load_rig, "drive cycle": read_cycle_csv, "recording": read_recording,
                  "manifest": load_manifest}[kind]
        with pytest.raises((RigError, CycleError, RecordingError, ManifestError), match="too large"):
            loader(path)


# --- drive cycles ------------------------------------------------------------------------------------------------

def _scenario_on(tmp_path: Path, csv_text: str) -> Path:
    (tmp_path / "cycle.csv").write_text(csv_text)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\n\nroute:\n  cycle: cycle.csv\n")
    return scenario


def test_a_nan_speed_is_one_line_with_its_line_number(tmp_path):
    # Blank and comment lines before and between the rows: the line number is the file's own.
    scenario = _scenario_on(tmp_path, "# provenance\n\ntime_s,speed_kmh\n0,0\n\n# a pause\n1,5\n2,nan\n3,0\n")
    rc, err, _ = _cli(["scenario", "validate", str(scenario)])
    assert rc == 2
    assert err.splitlines() == [f"{scenario}:4: route.cycle: {tmp_path / 'cycle.csv'}:8: speed_kmh: not a finite "
                                f"number: 'nan'"]


@pytest.mark.parametrize("row, message", [
    ("inf,3", "time_s: not a finite number: 'inf'"),
    ("2e8,3", "time_s: 2e+08 is 5.556e+04 h after the first row; a drive cycle lasts at most 72 h"),
    ("1,-3", "speed_kmh: -3 is outside 0..200 km/h"),
    ("1,1e9", "speed_kmh: 1e+09 is outside 0..200 km/h"),
    ("0,3", "time_s: 0 does not increase (the row before: 0)"),
    ("1,fast", "speed_kmh: not a number: 'fast'"),
])
def test_cycle_values_are_checked_before_any_allocation(tmp_path, row, message):
    path = tmp_path / "cycle.csv"
    path.write_text(f"time_s,speed_kmh\n\n0,0\n{row}\n")
    with pytest.raises(CycleError) as error:
        read_cycle_csv(path)
    assert str(error.value) == f"{path}:4: {message}"


def test_inf_and_huge_times_fail_in_bounded_memory(tmp_path):
    baseline = _scenario_on(tmp_path, "time_s,speed_kmh\n0,0\n100,3\n")
    _, _, rss_ok_kb = _cli(["scenario", "validate", str(baseline)])
    for row in ("2e8,3", "inf,3", "1e300,3"):
        scenario = _scenario_on(tmp_path, f"time_s,speed_kmh\n0,0\n{row}\n")
        rc, err, rss_kb = _cli(["scenario", "validate", str(scenario)])
        assert rc == 2 and len(err.splitlines()) == 1 and ":3: time_s: " in err, err
        assert rss_kb < rss_ok_kb + 64 * 1024, (row, rss_ok_kb, rss_kb)  # 2e8 seconds as float64: 1.6 GB


def test_the_bundled_cycles_still_read(tmp_path):
    assert [load_scenario(p).profile().duration_s > 0 for p in sorted((ROOT / "scenarios").glob("*.yaml"))]


# --- recordings ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.97, 0.5])
def test_a_truncated_blf_is_refused_against_its_header(tmp_path, keep):
    data = RECORDING.read_bytes()
    cut = tmp_path / "cut.blf"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(RecordingError, match=r"cut.blf: truncated: \d+ of the \d+ bytes its header counts"):
        read_recording(cut)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nroute: {recording: cut.blf}\n")
    rc, err, _ = _cli(["scenario", "validate", str(scenario)])
    assert rc == 2 and len(err.splitlines()) == 1 and "route.recording" in err and "truncated" in err, err


def test_a_blf_with_fewer_frames_than_its_header_counts_is_refused(tmp_path):
    whole = tmp_path / "whole.blf"
    with can.LogReader(str(RECORDING)) as reader:
        frames = list(reader)
    with can.BLFWriter(str(whole)) as writer:
        for frame in frames:
            writer.on_message_received(frame)
    assert read_recording(whole).frames == len(frames)
    # The header's object count: offset 32, after the signature, header size, 8 application and API bytes and the
    # two 8-byte sizes.
    data = bytearray(whole.read_bytes())
    count = int.from_bytes(data[32:36], "little")
    assert count == len(frames)
    data[32:36] = (count + 5).to_bytes(4, "little")
    short = tmp_path / "short.blf"
    short.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=f"incomplete: {count} of the {count + 5} frames its header counts"):
        read_recording(short)
