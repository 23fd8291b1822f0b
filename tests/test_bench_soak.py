"""`dtg-hil bench soak`: a short soak through the command line prints the loss and memory figures it judges by.

The real soak (`dtg-hil bench soak`, 4 h at 105x, about 2.3 min of wall time) is a benchmark, not part of the
test run. Here a 0.1 h drive (6 min of scenario, a few seconds of wall time) runs the same code path, with the
hour figures generalised to the first and last tenth of the drive.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.tools.bench.soak import SOAK_ANOMALIES, soak_scenario
from harness.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]

MEMORY = re.compile(r"  memory \(RSS\)\s+end of first tenth (?P<first>\d+\.\d) MiB \(t=(?P<t_first>\d+) s\), "
                    r"end of last tenth (?P<last>\d+\.\d) MiB \(t=(?P<t_last>\d+) s\): "
                    r"growth (?P<growth>[+-]\d+\.\d\d) % \(limit 10 %\); peak (?P<peak>\d+\.\d) MiB")
SPEED = re.compile(r"  speed\s+(?P<hours>\d+\.\d\d) h of drive in (?P<wall>\d+\.\d) s wall = "
                   r"(?P<speed>\d+\.\d)x real time")
LOST = re.compile(r"  frames lost\s+(?P<lost>\d+)")
LINK = re.compile(r"  link\s+(?P<decoded>\d+) frames decoded by the app \((?P<can>\d+) CAN \+ (?P<samples>\d+) "
                  r"samples \+ (?P<status>\d+) status\), (?P<seq_lost>\d+) lost by sequence, (?P<crc>\d+) CRC errors")
SAMPLES = re.compile(r"  samples\s+(?P<sent>\d+) sent, (?P<received>\d+) received;")
VERDICT = re.compile(r"  verdict\s+(?P<verdict>PASS|FAIL): ")


def test_soak_scenario_spreads_its_anomalies_over_the_drive() -> None:
    for hours in (0.1, 4.0):
        scenario = soak_scenario(hours)
        assert len(scenario.anomalies) == len(SOAK_ANOMALIES)
        assert scenario.profile().duration_s >= hours * 3600
        ends = [(a.at_s, a.end_s) for a in scenario.anomalies]
        assert all(end <= next_at for (_, end), (next_at, _) in zip(ends, ends[1:], strict=False))
        assert ends[-1][1] <= hours * 3600


@pytest.mark.sim
def test_a_short_soak_prints_its_figures_and_loses_no_frame(tmp_path: Path, capsys) -> None:
    code = main(["bench", "soak", "--hours", "0.1", "--time-scale", "100", "--out", str(tmp_path / "soak"),
                 "--manifest", str(ROOT / "models" / "manifest.json")])
    out = capsys.readouterr().out
    lines = out.splitlines()

    def one(pattern: re.Pattern) -> re.Match:
        found = [m for m in map(pattern.match, lines) if m]
        assert len(found) == 1, f"expected one line matching {pattern.pattern!r} in:\n{out}"
        return found[0]

    memory, speed, lost, verdict = one(MEMORY), one(SPEED), one(LOST), one(VERDICT)
    assert lost["lost"] == "0", out
    link, samples = one(LINK), one(SAMPLES)
    assert link["seq_lost"] == link["crc"] == "0" and samples["sent"] == samples["received"], out
    assert int(link["decoded"]) == int(link["can"]) + int(link["samples"]) + int(link["status"])

    first, last = float(memory["first"]), float(memory["last"])
    assert 0 < first <= float(memory["peak"]) and 0 < last <= float(memory["peak"])
    assert abs(float(memory["growth"]) - 100 * (last - first) / first) < 0.2  # MiB are rounded to 0.1 in print
    drive_s = 3600 * float(speed["hours"])
    assert 36 <= int(memory["t_first"]) <= 36 + 60 and drive_s - 60 <= int(memory["t_last"]) <= drive_s  # tenths
    assert float(speed["speed"]) > 10 and float(speed["wall"]) < 60

    passed = verdict["verdict"] == "PASS"
    assert passed == (float(memory["growth"]) < 10.0)  # no frame lost: memory decides
    assert code == (0 if passed else 1)
    result = json.loads((tmp_path / "soak" / "result.json").read_text())
    assert result["accounting"]["link_frames_lost"] == 0 and result["scenario"] == "soak-0.1h"


def test_soak_refuses_a_drive_too_short_to_generate(capsys) -> None:
    assert main(["bench", "soak", "--hours", "0.01"]) == 2
    assert "at least 120 s" in capsys.readouterr().err


def test_bench_help_lists_soak_and_fuzz(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "soak" in out and "memory grows 10 % or more" in out and "fuzz" in out
