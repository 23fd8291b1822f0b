"""A lab of rigs through labgrid (harness.rig.lab, docs/lab.md), against a real coordinator and real exporters.

`tests/lab_support.py` starts a `labgrid-coordinator` on 127.0.0.1 (a free port) and two stand-in benches
(`firmware_sim.bench`), each exported by a `labgrid-exporter` (serial lines through ser2net), and creates the places
`bench-a` and `bench-b` (tag `bench=dtg`) with labgrid's own client. Sessions run in pytests of their own, as a CI
job would run them. Every process is started and stopped by its PID.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lab_support
import pytest

from harness.core.datafile import DataFileError
from harness.rig.lab import ROLES, LabError, LabSpec, build_rig, parse_lab_arg

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("labgrid")

SHORT_DRIVE = """name: {name}
vehicle: passenger_car
seed: {seed}
route:
  generated:
    duration_s: {duration_s}
    mix: {{urban: 1}}
"""

lab = lab_support.lab  # the module's lab of two benches


def test_a_bench_pc_lost_mid_run_ends_the_run_as_error_naming_the_resource_and_the_place(lab, tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "short_b.yaml").write_text(SHORT_DRIVE.format(name="short-b", seed=11, duration_s=120))
    rig = tmp_path / "lab-b.yaml"  # the rig-file form: coordinator, place, roles
    rig.write_text(f"name: lab-b\nprofile: obd2\ntime_scale: 5\nandroid: {{package: com.dtg.edgeai}}\n"
                   f"lab:\n  coordinator: {lab.address}\n  place: bench-b\n  roles: {{can: can}}\n")
    session = lab_support.run_pytest(lab, "ci-kill", "-m", "hil", "--rig", str(rig), "--dtg-artifacts",
                                     str(tmp_path / "art"), str(scenarios))
    exporter, orphans = lab.exporters["bench-b"], []
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in (tmp_path / "art").rglob("uart.bin")):  # the STM32 sends
            assert time.monotonic() < deadline and session.poll() is None, "the run did not start"
            time.sleep(0.2)
        # The bench PC gone: its ser2net instances first (the lines break before the coordinator knows), then
        # the exporter.
        orphans = lab_support.children(exporter.pid)
        assert len(orphans) == 6, orphans  # one ser2net per serial line of the acquired place
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        exporter.send_signal(signal.SIGKILL)
        exporter.wait(10)
        out, _ = session.communicate(timeout=120)
    finally:
        lab_support.stop(session)
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        lab.exporters["bench-b"] = lab.start_exporter("bench-b")
    runs = lab_support.results(tmp_path / "art")
    assert "short_b" in runs, out[-3000:]
    result = runs["short_b"]
    print(result["error"])
    assert session.returncode == 1 and " error" in out.splitlines()[-1], out[-2000:]
    assert result["outcome"] == "ERROR", result
    assert "of place 'bench-b' disappeared: its exporter 'exp-bench-b' is gone" in result["error"], result["error"]
    assert "rig-side" in result["error"] and "resource '" in result["error"]
    assert lab.holder("bench-b") is None


def test_ctrl_c_mid_run_releases_the_place(lab, tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "short_c.yaml").write_text(SHORT_DRIVE.format(name="short-c", seed=12, duration_s=120))
    session = lab_support.run_pytest(lab, "ci-interrupted", "-m", "hil", "--rig", "labgrid:bench-b", "--dtg-artifacts",
                      str(tmp_path / "art"), str(scenarios))
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in (tmp_path / "art").rglob("uart.bin")):
            assert time.monotonic() < deadline and session.poll() is None, "the run did not start"
            time.sleep(0.2)
        assert (lab.holder("bench-b") or "").endswith("/ci-interrupted")
        session.send_signal(signal.SIGINT)
        out, _ = session.communicate(timeout=60)
    finally:
        lab_support.stop(session)
    # the run is an ERROR "stopped by SIGINT" (issue 17), the session ends interrupted (pytest's exit 2)
    assert "stopped by SIGINT" in out and session.returncode == 2, out[-2000:]
    assert lab.holder("bench-b") is None


def test_xdist_workers_each_take_their_own_place_among_those_tagged(lab, tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    for name, seed in (("short_1", 1), ("short_2", 2)):
        drive = SHORT_DRIVE.format(name=name.replace("_", "-"), seed=seed, duration_s=120)
        (scenarios / f"{name}.yaml").write_text(drive)
    session = lab_support.run_pytest(lab, "ci-xdist", "-m", "hil", "--rig", "labgrid:bench=dtg", "-n", "2",
                                     "--dist", "loadfile", "--dtg-artifacts", str(tmp_path / "art"), str(scenarios))
    out, _ = session.communicate(timeout=600)
    runs = lab_support.results(tmp_path / "art")
    assert sorted(runs) == ["short_1", "short_2"], out[-3000:]
    assert sorted(r["rig"] for r in runs.values()) == ["labgrid:bench-a", "labgrid:bench-b"], out[-3000:]
    assert session.returncode in (0, 1) and " failed" not in out, out[-3000:]  # 1: the rig fell behind (ERROR)
    assert "labgrid:bench-a" in out and "labgrid:bench-b" in out  # the session's report names the places
    assert lab.holder("bench-a") is None and lab.holder("bench-b") is None


# -- without a lab ------------------------------------------------------------------------------------------------

def test_rig_argument_forms(tmp_path, monkeypatch):
    import doctest

    import harness.rig.lab

    assert doctest.testmod(harness.rig.lab).failed == 0
    monkeypatch.setenv("LG_COORDINATOR", "127.0.0.1:4711")
    assert parse_lab_arg("labgrid:bench-3") == LabSpec("127.0.0.1:4711", place="bench-3",
                                                        settings=parse_lab_arg("labgrid:x").settings)
    assert parse_lab_arg("labgrid:bench=dtg").tags == (("bench", "dtg"),)
    assert parse_lab_arg(str(ROOT / "rigs" / "loopback.yaml")) is None and parse_lab_arg(None) is None
    with pytest.raises(LabError, match="name a place"):
        parse_lab_arg("labgrid:")
    with pytest.raises(LabError, match="tags must be KEY=VALUE pairs"):
        parse_lab_arg("labgrid:bench=dtg,ulm")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlab:\n  place: bench-1\n  tags: {bench: dtg}\n  roles: {cam: can}\n")
    with pytest.raises(DataFileError) as error:
        parse_lab_arg(str(bad))
    assert "lab.roles.cam: unknown key 'cam'; expected one of: " + ", ".join(ROLES) in str(error.value)
    assert "not both or neither" in str(error.value)


class _Entry:
    def __init__(self, cls: str, **params):
        self.cls, self.params = cls, params


def test_a_place_without_a_role_is_refused_naming_what_it_has():
    spec = parse_lab_arg("labgrid:bench-1")
    entries = {"can": _Entry("NetworkSerialPort", host="127.0.0.1", port=5000)}
    with pytest.raises(LabError, match=r"place 'bench-1' has no unit_can \(resource 'unit_can'\), .*; it has: can"):
        build_rig(spec, "bench-1", entries)
    entries = {role: _Entry("NetworkSerialPort", host="127.0.0.1", port=5000 + i) for i, role in enumerate(ROLES)}
    with pytest.raises(LabError, match="role phone needs a NetworkService, resource 'phone' is a NetworkSerialPort"):
        build_rig(spec, "bench-1", entries)
    entries["phone"] = _Entry("NetworkService", address="127.0.0.1", port=5555, username="shell")
    rig = build_rig(spec, "bench-1", entries)
    assert rig.name == "labgrid:bench-1" and rig.adb_serial == "127.0.0.1:5555" and not rig.simulated
    assert rig.can["channel"] == "rfc2217://127.0.0.1:5000?ign_set_control" and rig.standins == ()
    assert rig.unit_uart == "rfc2217://127.0.0.1:5003?ign_set_control" and rig.time_scale == 5


def test_an_unreachable_coordinator_is_named_in_one_line(monkeypatch):
    from harness.rig.lab import acquire_rig
    from harness.rig.phone import free_port

    address = f"127.0.0.1:{free_port()}"  # nobody listens there
    monkeypatch.setenv("LG_COORDINATOR", address)
    with pytest.raises(LabError) as error:
        acquire_rig(parse_lab_arg("labgrid:bench-1"), wait_s=1.0)
    assert str(error.value) == f"cannot reach the labgrid coordinator at {address}: Error: Could not connect to " \
        "coordinator"
