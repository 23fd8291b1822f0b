"""The plant-facing CLI commands: render and vehicle summary."""
import glob
from pathlib import Path

from harness.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(glob.glob(str(ROOT / "scenarios" / "*.yaml")))


def test_render_writes_a_png_for_every_bundled_scenario(tmp_path, capsys):
    assert main(["scenario", "render", *BUNDLED, "--out-dir", str(tmp_path)]) == 0
    for scenario in BUNDLED:
        png = tmp_path / f"{Path(scenario).stem}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, png


def test_render_single_out_file(tmp_path):
    out = tmp_path / "one.png"
    assert main(["scenario", "render", BUNDLED[0], "--out", str(out)]) == 0
    assert out.stat().st_size > 50_000


def test_render_out_needs_exactly_one_scenario(tmp_path, capsys):
    assert main(["scenario", "render", *BUNDLED[:2], "--out", str(tmp_path / "x.png")]) == 2
    assert "--out-dir" in capsys.readouterr().err


def test_vehicle_summary_prints_the_physics_figures(capsys):
    assert main(["vehicle", "summary", "--cycle", "udds", "--vehicle", "passenger_car"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("passenger_car"))
    fields = row.split()
    distance, l_per_100km, idle = float(fields[1]), float(fields[2]), float(fields[3])
    assert 11.9 < distance < 12.1 and 6.0 <= l_per_100km <= 11.0 and 0.6 <= idle <= 2.0


def test_vehicle_summary_unknown_cycle_exits_2(capsys):
    assert main(["vehicle", "summary", "--cycle", "nedc"]) == 2
    assert "expected one of: udds, wltc_class1, wltc_class3b" in capsys.readouterr().err
