"""The pytest plugin as a test engineer gets it: the installed package, run in a folder of their own.

Every session here is a pytest of its own in a new folder outside the repository (no conftest, no models/ folder),
run by this venv's python: the plugin comes from the package's `pytest11` entry point, the models from the package.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harness.world.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]

#: A short clean drive that meets its criteria (on virtual time its figures are the same on any machine).
GOOD = textwrap.dedent("""\
    name: my-drive
    route: {generated: {duration_s: 300, seed: 3}}
    anomalies:
      - {type: fuel_leak, at_s: 60, onset_s: 10, sustain_s: 180, severity: 0.9}
    expect:
      fuel_mae_lph_max: 1.0
    """)
#: The same kind of drive, asked for a perfect fuel model: it fails.
FAILING = textwrap.dedent("""\
    name: too-strict
    route: {generated: {duration_s: 200, seed: 4}}
    expect:
      fuel_r2_min: 1.0
    """)


def pytest_in(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=folder, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def test_the_plugin_is_the_installed_package_s_pytest11_entry_point():
    found = [e for e in entry_points(group="pytest11") if e.value == "harness.plugin"]
    assert found, "dtg-hil is installed without its pytest11 entry point: run pip install -e . (make test does)"
    assert found[0].name == "harness.plugin" and found[0].dist.name == "dtg-hil"


def test_a_yml_anywhere_runs_and_lf_reruns_exactly_the_failed_item(tmp_path):
    (tmp_path / "my.yml").write_text(GOOD)
    first = pytest_in(tmp_path, "-m", "sim", "my.yml")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 passed" in first.stdout and "my-drive" in first.stdout
    assert not (tmp_path / "models").exists() and list((tmp_path / "reports").glob("*/my/result.json"))

    (tmp_path / "strict.yaml").write_text(FAILING)
    second = pytest_in(tmp_path, "-m", "sim", "my.yml", "strict.yaml")
    assert second.returncode == 1 and "1 failed, 1 passed" in second.stdout, second.stdout
    again = pytest_in(tmp_path, "-m", "sim", "--lf", "-rA")  # no paths: the failed file is found from the cache
    assert "run-last-failure: rerun previous 1 failure" in again.stdout, again.stdout
    assert "FAILED strict.yaml::too-strict[sim]" in again.stdout
    assert "1 failed in" in again.stdout and "my-drive[sim]" not in again.stdout


def test_markers_select_one_anomaly_type_and_are_registered(tmp_path):
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    wanted = set()
    for path in sorted((tmp_path / "scenarios").glob("*.yaml")):
        scenario = load_scenario(path)
        if any(a.type == "fuel_leak" for a in scenario.anomalies):
            for variant in ("sim", "hil"):
                wanted |= {f"scenarios/{path.name}::{one.name}[{variant}]" for one in scenario.variants()}
                if scenario.sweep is not None:
                    wanted.add(f"scenarios/{path.name}::{scenario.name}[sweep-{variant}]")
    assert wanted
    done = pytest_in(tmp_path, "--strict-markers", "-m", "fuel_leak", "--collect-only", "-q", "scenarios/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert {line for line in done.stdout.splitlines() if "::" in line} == wanted
    wanted = {nodeid for nodeid in wanted if nodeid.endswith("sim]")}
    by_keyword = pytest_in(tmp_path, "-k", "fuel_leak and sim", "--collect-only", "-q", "scenarios/")
    assert {line for line in by_keyword.stdout.splitlines() if "::" in line} == wanted
    vehicle = pytest_in(tmp_path, "--strict-markers", "-m", "light_truck", "--collect-only", "-q", "scenarios/")
    assert vehicle.returncode in (0, 5) and "error" not in vehicle.stdout.lower()


def test_a_bad_rig_file_ends_the_session_in_one_line_before_any_item(tmp_path):
    (tmp_path / "my.yml").write_text(GOOD)
    (tmp_path / "bench.yaml").write_text("name: bench\nprofile: obd3\n")
    done = pytest_in(tmp_path, "-m", "sim", "--rig", "bench.yaml", "my.yml")
    out = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 4
    assert len(out) < 5, out
    assert "bench.yaml:2: profile: unknown vehicle profile 'obd3'; expected one of: obd2, j1939" in out[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "reports").exists()


def test_a_yaml_syntax_error_in_a_rig_names_line_and_column(tmp_path):
    (tmp_path / "bench.yaml").write_text("name: bench\n  profile: obd2\n")
    done = pytest_in(tmp_path, "--rig", "bench.yaml")
    assert done.returncode == 4
    assert "bench.yaml:2:10: not valid YAML: mapping values are not allowed here" in done.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--dtg-time-scale", "-3", "--dtg-time-scale: must be a number > 0; got '-3'"),
    ("--dtg-time-scale", "fast", "--dtg-time-scale: expected a number; got 'fast'"),
    ("--dtg-models", "nowhere.json", "nowhere.json: cannot read the manifest"),
    ("--dtg-progress-s", "0", "--dtg-progress-s: must be a number > 0; got '0'"),
])
def test_a_bad_option_ends_the_session_in_one_line(tmp_path, option, value, message):
    done = pytest_in(tmp_path, f"{option}={value}")
    assert done.returncode == 4 and message in done.stderr and len(done.stderr.strip().splitlines()) < 5


def test_settings_come_from_the_command_line_then_dtg_rig_then_the_ini_file(tmp_path):
    for name in ("from-ini", "from-env", "from-cli"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nprofile: {name}\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\ndtg_rig = from-ini.yaml\n")
    assert "profile 'from-ini'" in pytest_in(tmp_path).stderr
    assert "profile 'from-env'" in pytest_in(tmp_path, env={"DTG_RIG": "from-env.yaml"}).stderr
    assert "profile 'from-cli'" in pytest_in(tmp_path, "--rig", "from-cli.yaml",
                                             env={"DTG_RIG": "from-env.yaml"}).stderr


def test_ini_settings_reach_the_fixtures_relative_to_the_ini_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\ndtg_artifacts = out\ndtg_time_scale = 50\n")
    (tmp_path / "sub" / "test_mine.py").write_text(textwrap.dedent("""\
        def test_settings(dtg_rig, dtg_artifacts, dtg_models):
            print("SCALE", dtg_rig.time_scale, "ARTIFACTS", dtg_artifacts.parent, "MODELS", dtg_rig.models)
        """))
    done = pytest_in(tmp_path / "sub", "-s", "-q", "test_mine.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SCALE 50.0 ARTIFACTS {tmp_path / 'out'} MODELS {ROOT / 'models' / 'manifest.json'}" in done.stdout
    faster = pytest_in(tmp_path / "sub", "-s", "-q", "--dtg-time-scale", "20", "test_mine.py")
    assert "SCALE 20.0" in faster.stdout


def test_a_yml_in_a_scenarios_folder_is_collected(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "mine.yml").write_text(GOOD)
    done = pytest_in(tmp_path, "--collect-only", "-q", "scenarios")
    assert "scenarios/mine.yml::my-drive[sim]" in done.stdout and "scenarios/mine.yml::my-drive[hil]" in done.stdout


def test_a_running_scenario_shows_its_progress_and_is_quiet_under_q(tmp_path):
    # The line comes every --dtg-progress-s of wall time; this drive runs a few seconds, a real one far longer.
    (tmp_path / "my.yml").write_text(GOOD.replace("duration_s: 300", "duration_s: 1200"))
    shown = pytest_in(tmp_path, "-m", "sim", "--dtg-progress-s", "0.05", "my.yml")
    lines = [line.strip() for line in shown.stdout.splitlines() if line.strip().startswith("my-drive: t=")]
    assert shown.returncode == 0 and lines, shown.stdout
    assert all(re.fullmatch(r"my-drive: t=\d+/\d+ s \(\d+ %\), \d+x, \d+ events, \d+ alarms", line) for line in lines)
    times = [int(line.split("t=")[1].split("/")[0]) for line in lines]
    assert times == sorted(set(times))  # the scenario time moves on from line to line
    quiet = pytest_in(tmp_path, "-q", "-m", "sim", "--dtg-progress-s", "0.05", "my.yml")
    assert quiet.returncode == 0 and "my-drive: t=" not in quiet.stdout + quiet.stderr


def test_an_xdist_worker_shows_its_progress_named(tmp_path):
    (tmp_path / "my.yml").write_text(GOOD.replace("duration_s: 300", "duration_s: 1200"))
    done = pytest_in(tmp_path, "-m", "sim", "-n", "1", "--dtg-progress-s", "0.05", "my.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[gw0] my-drive: t=" in done.stderr


def test_the_bundled_models_are_found_from_any_folder(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness.tools.cli", "bench", "models", "--runs", "20"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in ("fuel", "anomaly", "behaviour"))
