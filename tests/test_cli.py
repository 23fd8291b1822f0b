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


def test_version_names_the_installed_package(capsys):
    from importlib.metadata import version

    import pytest

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"dtg-hil {version('dtg-hil')}"


def test_rig_validate_accepts_the_bundled_rigs_and_rejects_a_bad_one_naming_line_and_field(tmp_path, capsys):
    rigs = sorted(str(p) for p in ROOT.glob("rigs/**/*.yaml"))
    assert any(p.endswith("examples/pcan-bench.yaml") for p in rigs) and any("socketcan" in p for p in rigs)
    assert main(["rig", "validate", *rigs]) == 0
    assert f"{len(rigs)} valid, 0 invalid" in capsys.readouterr().out
    bad = tmp_path / "bench.yaml"
    bad.write_text("name: bench\nstm32: {kind: real, codec: raw-can-v1}\nprofile: j1939\n")
    assert main(["rig", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:2: stm32.codec: raw-can-v1 cannot carry the j1939 profile's 29-bit CAN IDs")


def test_scenario_new_writes_a_valid_commented_scenario_with_the_anomalies_asked_for(tmp_path, capsys):
    import jsonschema
    import yaml

    from harness.world.scenario import load_scenario
    from harness.world.scenario_schema import scenario_schema

    out = tmp_path / "mine.yaml"
    assert main(["scenario", "new", "mine", "--anomaly", "fuel_leak", "--anomaly", "drift:engine_rpm",
                 "--anomaly", "stuck_value", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# mine: a dtg-hil scenario") and text.count("#") > 10
    scenario = load_scenario(out)
    assert [(a.type, a.signal) for a in scenario.anomalies] == [("fuel_leak", None), ("drift", "engine_rpm"),
                                                                ("stuck_value", "coolant_temp")]
    jsonschema.Draft202012Validator(scenario_schema()).validate(yaml.safe_load(text))
    assert main(["scenario", "new", "mine", "--out", str(out)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err
    assert main(["scenario", "new", "other", "--anomaly", "overheat", "--out", str(tmp_path / "o.yaml")]) == 2
    assert "unknown anomaly type 'overheat'; expected one of: overheating" in capsys.readouterr().err


def test_scenario_validate_reads_yml_and_an_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "a.yml").write_text((ROOT / "scenarios" / "clean_mixed_truck.yaml").read_text())
    assert main(["scenario", "validate", str(tmp_path)]) == 0
    assert "1 valid, 0 invalid" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["scenario", "validate", str(tmp_path / "empty")]) == 2
    assert "no scenario files (.yaml, .yml)" in capsys.readouterr().err


def test_record_help_names_the_time_scale_a_recording_runs_at(capsys):
    import pytest

    from harness.rig.rigfile import BUILTIN_SIM_RIG

    with pytest.raises(SystemExit):
        main(["record", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"or {BUILTIN_SIM_RIG.wall_clock_scale:g} on a rig that is unpaced" in help_text
