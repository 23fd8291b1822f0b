"""Every run leaves a verdict: any exception or signal during a run writes result.json with an ERROR verdict and keeps
the artifacts; a process killed outright leaves the ERROR result.json written as the run started; a crashed
pytest-xdist worker is an ERROR in the report (not re-run into a PASS); each run's artifacts folder is its own."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness.run.chain as chain
from harness.judge.result import RunError, RunInterrupted
from harness.rig.rigfile import BUILTIN_SIM_RIG
from harness.run.artifacts import UNFINISHED, claim_folder
from harness.world.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "models" / "manifest.json"
#: A drive long enough to be stopped in the middle: paced at 10x (--dtg-time-scale), 60 s of wall time.
LONG = """name: long-drive
vehicle: passenger_car
seed: 4
route:
  generated: {duration_s: 600, mix: {urban: 1.0}}
"""



def _short():
    data = {"name": "short", "vehicle": "passenger_car", "seed": 2,
            "route": {"generated": {"duration_s": 150, "mix": {"urban": 1.0}}}}
    return parse_scenario(data, {}, "", name="short")


def _error_result(folder: Path) -> dict:
    result = json.loads((folder / "result.json").read_text())
    assert result["outcome"] == "ERROR" and result["passed"] is False
    assert result["verdict"] == f"error: {result['error']}"
    return result


@pytest.mark.sim
def test_any_exception_is_an_error_verdict_with_the_artifacts_kept(tmp_path, models, monkeypatch):
    def broken_judge(*args, **kwargs):
        raise ZeroDivisionError("a bug in the harness")

    monkeypatch.setattr(chain, "_judge", broken_judge)
    with pytest.raises(RunError, match="the harness failed: ZeroDivisionError: a bug in the harness"):
        chain.run_scenario(_short(), BUILTIN_SIM_RIG, models, tmp_path / "run")
    result = _error_result(tmp_path / "run")
    assert result["finished"] is True and "ZeroDivisionError" in result["error"]
    assert result["scenario_s_reached"] >= 150  # it got to the end, then failed judging
    assert (tmp_path / "run" / "events.log").stat().st_size > 0 and (tmp_path / "run" / "can.blf").stat().st_size > 0


@pytest.mark.sim
def test_sigint_during_a_run_is_an_error_verdict_that_stops_the_caller(tmp_path, models, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what Python's default SIGINT handler raises (Ctrl-C)

    monkeypatch.setattr(chain, "_judge", interrupted)
    with pytest.raises(RunInterrupted, match=r"the run was stopped by SIGINT at t=\d+ s of scenario time"):
        chain.run_scenario(_short(), BUILTIN_SIM_RIG, models, tmp_path / "run")
    result = _error_result(tmp_path / "run")
    assert result["finished"] is True and "SIGINT" in result["error"]
    assert (tmp_path / "run" / "events.log").stat().st_size > 0 and (tmp_path / "run" / "can.blf").stat().st_size > 0


@pytest.mark.sim
def test_a_run_has_an_error_verdict_from_its_first_moment(tmp_path, models, monkeypatch):
    seen = {}
    run_chain = chain._run_chain

    def look_then_run(scenario, rig, models_, artifacts, *args):
        seen.update(json.loads((artifacts / "result.json").read_text()))
        return run_chain(scenario, rig, models_, artifacts, *args)

    monkeypatch.setattr(chain, "_run_chain", look_then_run)
    result = chain.run_scenario(_short(), BUILTIN_SIM_RIG, models, tmp_path / "run")
    # while it ran, a killed process would have left this:
    assert seen["outcome"] == "ERROR" and seen["error"] == UNFINISHED and seen["finished"] is False
    assert seen["pid"] == os.getpid()
    final = json.loads((tmp_path / "run" / "result.json").read_text())
    assert final["finished"] is True and final["outcome"] == result.verdict == "PASS"


def test_each_run_claims_its_own_folder(tmp_path):
    first, second, third = (claim_folder(tmp_path, "clean_udds") for _ in range(3))
    assert [f.name for f in (first, second, third)] == ["clean_udds", "clean_udds-2", "clean_udds-3"]
    assert all(f.is_dir() for f in (first, second, third))


def _pytest(work: Path, *extra: str) -> subprocess.Popen:
    (work / "scenarios").mkdir(exist_ok=True)
    (work / "scenarios" / "long.yaml").write_text(LONG)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider", "-m", "sim", "scenarios",
         "--dtg-artifacts", "reports", "--dtg-time-scale", "10", "--dtg-models", str(MANIFEST), *extra],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for_events(work: Path, proc: subprocess.Popen) -> tuple[Path, dict]:
    """The run's folder once its app has logged (the run is in the middle), and its result.json then."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        for events in work.glob("reports/*/long/events.log"):
            if events.stat().st_size > 2000:
                return events.parent, json.loads((events.parent / "result.json").read_text())
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the run did not start: {proc.communicate()[0]}")


@pytest.mark.sim
def test_sigterm_of_a_run_gives_an_error_verdict_and_keeps_the_artifacts(tmp_path):
    proc = _pytest(tmp_path, "-n", "0")
    try:
        folder, running = _wait_for_events(tmp_path, proc)
        assert running["error"] == UNFINISHED and running["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None), out
    result = _error_result(folder)
    assert result["finished"] is True and result["error"].startswith("the run was stopped by SIGTERM at t="), result
    assert 0 < result["scenario_s_reached"] < 600
    assert (folder / "events.log").stat().st_size > 2000 and (folder / "can.blf").stat().st_size > 0
    assert "ERROR" in out and "stopped by SIGTERM" in out, out
    page = (folder.parent / "index.html").read_text(encoding="utf-8")  # the session's report, with the ERROR row
    assert "long-drive" in page and "ERROR: the run was stopped by SIGTERM" in page


@pytest.mark.sim
def test_a_killed_xdist_worker_is_an_error_in_the_report_not_a_rerun(tmp_path):
    pytest.importorskip("xdist")
    proc = _pytest(tmp_path, "-n", "1", "--dist", "loadfile")
    try:
        folder, running = _wait_for_events(tmp_path, proc)
        worker = running["pid"]
        assert worker != proc.pid  # the run is in the worker's process
        os.kill(worker, signal.SIGKILL)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "crashed" in out and "ERROR" in out, out
    result = _error_result(folder)
    assert "pytest-xdist worker gw0 running it crashed" in result["error"] and result["finished"] is False
    assert (folder / "events.log").stat().st_size > 2000 and (folder / "can.blf").exists()
    # Not re-run on the replacement worker: no second folder, no PASS for it.
    assert sorted(p.name for p in folder.parent.iterdir() if p.is_dir()) == ["long"]
    assert " passed" not in out.splitlines()[-1], out
    page = (folder.parent / "index.html").read_text(encoding="utf-8")
    assert "long-drive" in page and "ERROR: the pytest-xdist worker gw0 running it crashed" in page
