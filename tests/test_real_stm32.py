"""A real STM32 on a bench (issue 19, `stm32: {kind: real}`), its code path run in CI: the rig's flash and reset
command templates point at `firmware_sim.bench_board`, a stand-in board that (re)starts the host-built sample firmware
as its own process on the wall clock, its CAN behind an slcan pty and its UART and GNSS on ptys. Besides: a failing
flash command is an ERROR of the run, a device fault the bench has no command for is refused naming what it lacks,
bad command templates are one-line errors, and pyOCD's path says which probe it did not find."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import SimpleNamespace

import pytest

from firmware_sim.host_build import SAMPLE_FIRMWARE_DIR, build_firmware
from harness.inference.models import ModelSet
from harness.judge.result import RunError
from harness.rig.bench import Bench, BenchConfig, BenchError
from harness.rig.device_faults import DeviceFault
from harness.rig.rigfile import RigError, load_rig
from harness.run.bench_stage import FaultUnavailableError
from harness.run.chain import run_scenario
from harness.run.host_stage import HOST_DEFINES
from harness.tools.cli import main as cli_main
from harness.world.cycles import load_cycle
from harness.world.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
#: The drive: the first 64 s of the EPA urban cycle (clean_udds_car's route, cut), 1x real time.
CUT_S = 64

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and not os.environ.get("CI"),
                                reason="no C compiler (cc): `make test` installs gcc when root (apt-get install gcc)")


#: The stand-in board's commands (firmware_sim.bench_board).
BOARD = f"{sys.executable} -m firmware_sim.bench_board"


def _rig_text(board: Path, image: Path, *, flash: str | None = None, extra: str = "") -> str:
    command = BOARD
    flash = flash or f"{command} flash --dir {board} --image {{image}}"
    return textwrap.dedent(f"""\
        name: stm32-standin
        profile: obd2
        can: {{interface: slcan, channel: {board}/can, bitrate: 500000, sleep_after_open: 0}}
        stm32:
          kind: real
          codec: dtg-link-v2
          uart_tap: {board}/uart-tap
          firmware: {{image: {image}, flash: '{flash}'}}
          reset: '{command} reset --dir {board}'
          sensors: {board}/sensors
        """) + extra + textwrap.dedent(f"""\
        android: {{kind: simulated, port: {board}/uart-app}}
        gnss: {{kind: nmea, port: {board}/gnss}}
        time_scale: 1
        """)


def _cut_scenario(folder: Path) -> Path:
    udds = load_cycle("udds")
    rows = ["time_s,speed_kmh"] + [f"{t},{v:.3f}" for t, v in enumerate(udds.speed_kmh[:CUT_S + 1])]
    (folder / "udds_cut.csv").write_text("\n".join(rows) + "\n")
    scenario = folder / "udds_cut.yaml"
    scenario.write_text("name: udds-cut\ndescription: the first 64 s of clean_udds_car's route, on a bench\n"
                        "vehicle: passenger_car\nseed: 11\nroute: {cycle: udds_cut.csv}\n")
    return scenario


@pytest.fixture(scope="module")
def image() -> Path:
    return build_firmware(SAMPLE_FIRMWARE_DIR, defines=HOST_DEFINES["dtg-link-v2"]).executable


@pytest.fixture
def board(tmp_path):
    folder = tmp_path / "board"
    folder.mkdir()
    yield folder
    subprocess.run([sys.executable, "-m", "firmware_sim.bench_board", "stop", "--dir", str(folder)],
                   capture_output=True, timeout=60, check=False)


def test_a_real_stm32_rig_runs_the_whole_path_with_its_flash_and_reset_commands(tmp_path, image, board):
    rig = tmp_path / "bench.yaml"
    rig.write_text(_rig_text(board, image))
    scenario = _cut_scenario(tmp_path)
    reports, junit = tmp_path / "reports", tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.plugin", "-p", "no:cacheprovider", "-m", "hil", "-rA",
         "--rig", str(rig), "--dtg-artifacts", str(reports), f"--junitxml={junit}", str(scenario)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    out = done.stdout
    print(out[-4000:])
    summary = json.loads(next(reports.glob("*/udds_cut/result.json")).read_text())
    assert done.returncode == 0 and "1 passed" in out, out[-3000:] + done.stderr[-2000:] + summary["verdict"]
    assert summary["outcome"] == "PASS" and summary["rig"] == "stm32-standin"
    # The bench's commands ran: the stand-in board logs each one it was given.
    assert (board / "commands.log").read_text().splitlines() == [f"flash {image}", "reset"]
    # The image's sha256 in result.json, the JUnit properties and the HTML report.
    sha256 = hashlib.sha256(image.read_bytes()).hexdigest()
    firmware = summary["firmware"]
    assert firmware["sha256"] == sha256 and firmware["image"] == str(image) and firmware["bench_actions"][0] \
        .startswith("firmware.flash (") and firmware["bench_actions"][1].startswith("reset (")
    assert 0 <= firmware["clock_offset_s"] < 5
    properties = {p.get("name"): p.get("value") for p in ElementTree.parse(junit).iter("property")}
    assert properties["firmware_sha256"] == sha256 and properties["verdict"] == "PASS"
    assert sha256 in next(reports.glob("*/index.html")).read_text()
    # The unit's own counters, off the tap, over its window: OBD-II polling answered, nothing lost either side.
    accounting = summary["accounting"]
    assert accounting["firmware_simulated"] is False
    assert accounting["obd_requests_answered"] >= 9 * (CUT_S - 10) and accounting["obd_requests_unanswered"] == 0
    assert accounting["firmware_frames_received"] == accounting["restbus_frames_sent"] > 0
    assert all(row["lost"] == 0 for row in summary["data_loss"]), summary["data_loss"]
    assert summary["uart_tap"]["missing"] == summary["uart_tap"]["unexpected"] == 0
    assert summary["rig_loss_judged"] == "all" and not summary["virtual_time"]
    assert summary["scenario_s"] == CUT_S + 1 and summary["wall_s"] >= CUT_S  # 1x real time
    # The unit's own sensors follow the drive through the bench's stimulator: the anomaly model is quiet once the
    # first windows (holding the boot sample: no answer, no GNSS fix yet) are past; at rest every window alarms.
    windows = [json.loads(line.split("EdgeAI  : ", 1)[1]) for line in
               next(reports.glob("*/udds_cut/events.log")).read_text().splitlines() if '"kind":"anomaly"' in line]
    assert len(windows) >= CUT_S - 60 and not [w["t"] for w in windows if w["alarm"] and w["t"] >= 61]


def test_a_flash_command_that_fails_is_an_error_of_the_run_with_its_stderr(tmp_path, image, board):
    rig_file = tmp_path / "bench.yaml"
    rig_file.write_text(_rig_text(board, image, flash='sh -c "echo no ST-LINK found >&2; exit 3" {image}'))
    rig = load_rig(rig_file)
    scenario = load_scenario(_cut_scenario(tmp_path))
    with pytest.raises(RunError) as failed:
        run_scenario(scenario, rig, ModelSet.open(rig.models), tmp_path / "run")
    message = str(failed.value)
    assert message.startswith("rig 'stm32-standin': stm32.firmware.flash `sh -c ") and "failed with exit status 3: " \
        "no ST-LINK found (rig-side: not a verdict on the unit)" in message
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["outcome"] == "ERROR" and summary["passed"] is False and "no ST-LINK found" in summary["verdict"]
    assert not (board / "commands.log").exists()  # nothing else ran


def test_a_device_fault_without_the_bench_s_command_is_refused_naming_what_the_rig_lacks(tmp_path, image, board):
    rig_file = tmp_path / "bench.yaml"
    rig_file.write_text(_rig_text(board, image))
    rig = load_rig(rig_file)
    scenario = load_scenario(_cut_scenario(tmp_path))
    with pytest.raises(FaultUnavailableError) as refused:
        run_scenario(scenario, rig, ModelSet.open(rig.models), tmp_path / "run",
                     faults=[DeviceFault("uart_disconnect", 10), DeviceFault("power_cycle", 20)])
    assert str(refused.value) == (
        "rig 'stm32-standin' cannot inject power_cycle, uart_disconnect (power_cycle needs a stm32.power command in "
        "the rig file, and it has none) (uart_disconnect needs a stm32.uart_relay command in the rig file, and it has "
        "none): it can inject firmware_restart, app_killed, logging_stopped")
    assert not (tmp_path / "run").exists() and not (board / "commands.log").exists()
    # With the commands declared, the bench can.
    rig_file.write_text(_rig_text(board, image, extra=f"  power: '{BOARD} power {{state}} --dir "
                                                      f"{board}'\n  uart_relay: 'relay {{state}}'\n"))
    config = load_rig(rig_file).bench
    assert [config.lacks(kind) for kind in ("firmware_restart", "power_cycle", "uart_disconnect")] == [None] * 3


@pytest.mark.parametrize("line, message", [
    ("  reset: 'st-flash --serial {prob} reset'\n",
     "stm32.reset: unknown placeholder {prob}; valid: {image}, {probe}, {target}"),
    ("  power: 'usbrelay BENCH_1={state} {image}'\n",
     "stm32.power: unknown placeholder {image}; valid: {state}, {probe}, {target}"),
    ("  uart_relay: 'relay \"{state}'\n", "stm32.uart_relay: not a command line (No closing quotation); "
                                           "placeholders: {state}, {probe}, {target}"),
    ("  reset: ''\n", None),
])
def test_bad_command_templates_are_one_line_errors_naming_file_field_and_placeholders(tmp_path, image, line,
                                                                                      message, capsys):
    rig_file = tmp_path / "bench.yaml"
    lines = _rig_text(tmp_path, image).splitlines(keepends=True)
    rig_file.write_text("".join(line if old.startswith("  reset: ") else old for old in lines))
    if message is None:  # an empty template: no command (the rig then has no reset)
        assert load_rig(rig_file).bench.reset is None
        return
    with pytest.raises(RigError) as bad:
        load_rig(rig_file)
    lineno = rig_file.read_text().splitlines().index(line.rstrip("\n")) + 1
    assert str(bad.value) == f"{rig_file}:{lineno}: {message}"
    assert cli_main(["rig", "validate", str(rig_file)]) == 2
    assert capsys.readouterr().err.strip() == f"{rig_file}:{lineno}: {message}"


def test_bench_fields_belong_to_a_real_stm32_and_flashing_needs_an_image(tmp_path):
    rig_file = tmp_path / "bench.yaml"
    rig_file.write_text("name: b\nstm32: {kind: real, uart_tap: /dev/ttyUSB0, sensors: /dev/ttyUSB2}\n")
    assert {"brake_pressure", "acceleration_x"} <= set(load_rig(rig_file).injectable_signals)  # stimulated
    rig_file.write_text("name: b\nstm32: {kind: real, uart_tap: /dev/ttyUSB0}\n")
    assert "brake_pressure" not in load_rig(rig_file).injectable_signals  # they read the bench
    rig_file.write_text("name: b\nstm32:\n  kind: simulated\n  reset: 'st-flash reset'\n")
    with pytest.raises(RigError, match=r"bench.yaml:4: stm32.reset: only a real STM32 \(stm32.kind: real\) is "
                                       r"flashed or switched, not kind simulated"):
        load_rig(rig_file)
    rig_file.write_text("name: b\nstm32:\n  kind: real\n  uart_tap: /dev/ttyUSB0\n  firmware: {flash: pyocd}\n")
    with pytest.raises(RigError) as bad:
        load_rig(rig_file)
    assert "stm32.firmware.image: is required to flash" in str(bad.value)
    assert "stm32.firmware.target: is required with flash: pyocd" in str(bad.value)


def test_pyocd_flashing_names_the_probe_it_did_not_find_or_the_missing_package(tmp_path, monkeypatch):
    image = tmp_path / "dtg.bin"
    image.write_bytes(b"\x00" * 64)
    bench = Bench(BenchConfig(image=image, flash="pyocd", target="stm32f407vg", probe="066DFF000000"), "bench-1")
    if shutil.which("pyocd") or _importable("pyocd"):
        with pytest.raises(BenchError, match=r"rig 'bench-1': pyOCD found no probe 066DFF000000 \(is it plugged in"):
            bench.flash()
    monkeypatch.setitem(sys.modules, "pyocd.core.helpers", None)  # as without the package
    other = Bench(BenchConfig(image=image, flash="pyocd", target="stm32f407vg", probe="066DFF000001"), "bench-1")
    with pytest.raises(BenchError, match=r"pyocd needs the pyocd package, which is not installed .*pip install "
                                         r"'dtg-hil\[bench\]'"):
        other.flash()


def _importable(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def test_device_faults_run_the_bench_s_commands_and_a_restart_folds_the_unit_s_counters(tmp_path):
    from harness.run.bench_stage import BenchUnit, bench_fault_actions
    from harness.wire.link import Received, SampleRecord, StatusRecord

    log = tmp_path / "bench.log"
    record = f"sh -c 'echo \"$0 $1\" >> {log}'"
    config = BenchConfig(reset=f"{record} reset x", power=f"{record} power {{state}}",
                         uart_relay=f"{record} relay {{state}}", folder=tmp_path)
    now = [0.0]
    clock = SimpleNamespace(now_s=lambda: now[0])
    unit = BenchUnit(Bench(config, "bench-1"), clock, end_s=100.0, clock_offset_s=0.0, has_status=True)
    start, end = bench_fault_actions(unit)
    for kind in ("firmware_restart", "power_cycle", "uart_disconnect"):
        start[kind](DeviceFault(kind, 1.0))
        if kind in end:
            end[kind](DeviceFault(kind, 1.0))
    assert log.read_text().splitlines() == ["reset x", "power off", "power on", "relay off", "relay on"]
    assert unit.restarts == 2 and [a.split(" (")[0] for a in unit.bench.actions] == [
        "reset", "power off", "power on", "uart_relay off", "uart_relay on"]
    # The unit's status counters start again at a restart: the run counts on from where they were.
    statuses = [StatusRecord(1000, 9, 0, 9, 0), StatusRecord(2000, 18, 1, 17, 0),
                StatusRecord(1000, 9, 0, 9, 0), StatusRecord(2000, 18, 0, 18, 0)]
    for second, status in enumerate(statuses, 1):
        now[0] = float(second)
        unit.on_tapped([Received(SampleRecord(status.t_ms, (1.0,) * 10)), Received(status)])
    stats = unit.stats
    assert (stats.requests_sent, stats.requests_unanswered, stats.frames_received) == (36 - 9, 1, 35 - 9)
    assert stats.samples_sent == 3 and stats.status_sent == 3  # in the window: after the first status record
